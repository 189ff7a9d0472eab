"""The kernel printf's (``subr_prf.c`` kvprintf) number formats, which differ from C's:
``%p`` prints NULL as ``0``, and the ``#`` flag adds ``0x`` only to a non-zero number,
with the zero padding counted after the prefix."""

from __future__ import annotations


def kernel_p(addr: int | None) -> str:
    """``%p``: ``0x`` + lowercase hex without leading zeros; NULL prints ``0``."""
    if not addr:
        return "0"
    return "0x%x" % (addr & 0xFFFFFFFFFFFFFFFF)


def kernel_hex(value: int, width: int = 0, *, alt: bool = False, zero: bool = False) -> str:
    """``%[#][0][width]x`` as kvprintf prints it (``%#08x`` of 1 is ``0x000001``,
    of 0 is ``00000000``)."""
    digits = "%x" % value
    prefix = "0x" if alt and value != 0 else ""
    if zero:
        digits = digits.rjust(max(width - len(prefix), len(digits)), "0")
        return prefix + digits
    return (prefix + digits).rjust(width)
