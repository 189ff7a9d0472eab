"""vnetdbg: FreeBSD kernel post-mortem and live inspection of jails and VNET stacks.

Layers, each importing only from the ones before it:
memory -> debuginfo -> objects -> freebsd -> reports -> cli.
"""

__version__ = "0.1.0"
