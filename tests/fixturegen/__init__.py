"""Independent writer of FreeBSD amd64 crash dumps for vnetdbg's tests.

A simulated machine (sparse RAM, real amd64 page tables, kernel image, heap)
whose kernel objects are laid out from the fixture kernel's DWARF, written out
as an amd64 minidump (v1/v2/v3) plus savecore's info.N and a ground-truth
JSON.  Must not import vnetdbg: it is what the reader is tested against.

Entry points:
    build_vmcore(layout_dir, out_dir, *, dump_version=3, corrupt=None,
                 scenario=None, layout=None, copy_kernel=True) -> dict
    scenario.default(network=True, dying_vnet_jail=False, vimage=True),
    scenario.big(jails=10000),
    scenario.big_net(jails=200, pcbs=1_000_000, biggest=500_000)
    CORRUPTIONS

Network state (interfaces, addresses, sockets/pcbs, counter(9) statistics) is
data in netspec.py and is laid out by network.py in the machine's second
allocation arena ("net"), so the jail/vnet objects keep their addresses.
"""

from .build import CORRUPTIONS, SCHEMA, build_vmcore
from . import scenario

__all__ = ["build_vmcore", "CORRUPTIONS", "SCHEMA", "scenario"]
