"""Exception types shared by every layer.

Every error a user can provoke with bad input is a ``VnetdbgError``; the CLI prints its
message as one line ``vnetdbg: <message>`` and exits 1.  Anything else is a bug.
"""


class VnetdbgError(Exception):
    """A user-facing failure with a one-line message."""


class FormatError(VnetdbgError):
    """The input file is not what it claims to be (bad magic, truncated, bad sizes)."""


class FaultError(VnetdbgError):
    """A kernel virtual address could not be read (page absent from the dump, unmapped).

    ``address`` is the first address that could not be read, so messages can name it.
    """

    def __init__(self, address: int, reason: str = "page not present in dump"):
        self.address = address
        self.reason = reason
        super().__init__(f"cannot read address {address:#x}: {reason}")
