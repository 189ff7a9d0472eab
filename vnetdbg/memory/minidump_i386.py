"""i386 minidump reader, versions 1 and 2, PAE and non-PAE
(``sys/i386/include/minidump.h``, ``sys/i386/i386/minidump_machdep_base.c``, libkvm's
``kvm_minidump_i386.c``).

Layout: header page, msgbuf, dump_avail page (v2 only), bitmap, pte region, sparse
4 KiB pages.  The pte region is a flat PTE array from ``kernbase`` (``KERNBASE``:
0xc0000000 up to FreeBSD 11, 0x00800000 from 12 on; always taken from the header),
superpages already expanded into fake PT pages.  Entries are u64 when ``paemode`` is
set, else u32.  There is no DMAP: only ``va >= kernbase`` translates.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vnetdbg.errors import FaultError
from vnetdbg.memory.minidump_arm64 import SparseMinidump, check_header, standard_regions

NAME = "i386 minidump"
MAGIC = b"minidump FreeBSD/i386"
MAGIC_FIELD = MAGIC.ljust(24, b"\0")
SUPPORTED_VERSIONS = (1, 2)
PAGE_SIZE = 4096

# magic[24], version, msgbufsize, bitmapsize, ptesize, kernbase, paemode,
# dumpavailsize (v2)
_HEADER = struct.Struct("<24sIIIIIII")

PG_V = 0x1
PG_FRAME = 0xFFFFF000                 # non-PAE, 32-bit PTEs
PG_FRAME_PAE = 0x000FFFFFFFFFF000     # PAE, 64-bit PTEs (drops NX)
MAX_PTE = 1 << 32


@dataclass(frozen=True)
class Header:
    version: int
    msgbufsize: int
    bitmapsize: int
    ptesize: int
    kernbase: int
    paemode: int
    dumpavailsize: int


def parse_header(page: bytes) -> Header:
    magic, version, msgbufsize, bitmapsize, ptesize, kernbase, paemode, \
        dumpavailsize = _HEADER.unpack_from(page)
    check_header(NAME, magic, version, MAGIC_FIELD, SUPPORTED_VERSIONS)
    if version < 2:
        dumpavailsize = 0
    return Header(version, msgbufsize, bitmapsize, ptesize, kernbase, paemode,
                  dumpavailsize)


def pte_width(hdr: Header) -> int:
    return 8 if hdr.paemode else 4


def pte_index(kernbase: int, va: int) -> int:
    return (va - kernbase) >> 12


def pte_pa(pte: int, va: int, pae: bool) -> int:
    return (pte & (PG_FRAME_PAE if pae else PG_FRAME)) | (va & 0xFFF)


class I386Minidump(SparseMinidump):
    arch = "i386"
    label = NAME
    page_size = PAGE_SIZE

    def _parse(self, head: bytes):
        self.header = hdr = parse_header(head)
        return standard_regions(hdr, hdr.ptesize, MAX_PTE)

    @property
    def pae(self) -> bool:
        return bool(self.header.paemode)

    def translate(self, va: int) -> int:
        hdr = self.header
        if not hdr.kernbase <= va < 1 << 32:
            raise FaultError(va, "address outside the kernel map")
        pte = self._pmap_entry(pte_index(hdr.kernbase, va), pte_width(hdr))
        if pte is None:
            raise FaultError(va, "address beyond the dumped kernel map")
        if not pte & PG_V:
            raise FaultError(va, "no valid kernel PTE")
        return pte_pa(pte, va, self.pae)

    @property
    def format_name(self) -> str:
        return f"i386 minidump v{self.header.version} ({'PAE' if self.pae else 'non-PAE'})"

    def describe(self) -> dict:
        d = super().describe()
        d["pae"] = self.pae
        return d


def probe(first_bytes: bytes) -> bool:
    return first_bytes[:len(MAGIC_FIELD)] == MAGIC_FIELD


def open(path) -> I386Minidump:  # noqa: A001 - registry protocol name
    return I386Minidump(path)
