"""riscv minidump reader, versions 1 and 2 (``sys/riscv/include/minidump.h``,
``sys/riscv/riscv/minidump_machdep.c``, libkvm's ``kvm_minidump_riscv.c``).

The arm64 layout without flags (always 4 KiB pages): header, msgbuf, dump_avail (v2),
bitmap, pmap, sparse pages.  The pmap region is a flat L3 PTE array from kernbase;
an entry is valid iff V is set and at least one of R/W/X.  ``pa = PPN << 12`` with the
PPN taken from bits 10..53 only, so Svpbmt (61-62) and Svnapot N (63) bits are dropped
(libkvm shifts the whole entry; the hardware PPN field is 44 bits).  DMAP first, as on
arm64: ``pa = va - dmapbase + dmapphys``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vnetdbg.errors import FaultError
from vnetdbg.memory.minidump_arm64 import (DMAP_FIELDS, MAX_PMAP, SparseMinidump,
                                           check_header, dmap_pa, in_dmap,
                                           standard_regions)

NAME = "riscv minidump"
MAGIC = b"minidump FreeBSD/riscv"
MAGIC_FIELD = MAGIC.ljust(24, b"\0")
SUPPORTED_VERSIONS = (1, 2)
PAGE_SIZE = 4096

_HEADER = struct.Struct("<24sIIIIQQQQI")

PTE_V = 1 << 0
PTE_RWX = (1 << 1) | (1 << 2) | (1 << 3)
PTE_PPN_SHIFT = 10
PPN_MASK = (1 << 44) - 1


@dataclass(frozen=True)
class Header:
    version: int
    msgbufsize: int
    bitmapsize: int
    pmapsize: int
    kernbase: int
    dmapphys: int
    dmapbase: int
    dmapend: int
    dumpavailsize: int


def parse_header(page: bytes) -> Header:
    magic, version, msgbufsize, bitmapsize, pmapsize, kernbase, dmapphys, dmapbase, \
        dmapend, dumpavailsize = _HEADER.unpack_from(page)
    check_header(NAME, magic, version, MAGIC_FIELD, SUPPORTED_VERSIONS)
    if version < 2:
        dumpavailsize = 0
    return Header(version, msgbufsize, bitmapsize, pmapsize, kernbase, dmapphys, dmapbase,
                  dmapend, dumpavailsize)


def pte_valid(pte: int) -> bool:
    return bool(pte & PTE_V) and bool(pte & PTE_RWX)


def pte_pa(pte: int, va: int) -> int:
    return (((pte >> PTE_PPN_SHIFT) & PPN_MASK) << 12) | (va & 0xFFF)


class RISCVMinidump(SparseMinidump):
    arch = "riscv"
    label = NAME
    page_size = PAGE_SIZE
    describe_fields = DMAP_FIELDS

    def _parse(self, head: bytes):
        self.header = hdr = parse_header(head)
        return standard_regions(hdr, hdr.pmapsize, MAX_PMAP)

    def translate(self, va: int) -> int:
        hdr = self.header
        if in_dmap(hdr, va):
            return dmap_pa(hdr, va)
        if va >= hdr.kernbase:
            pte = self._pmap_entry((va - hdr.kernbase) >> 12, 8)
            if pte is None:
                raise FaultError(va, "address beyond the dumped kernel map")
            if not pte_valid(pte):
                raise FaultError(va, "no valid kernel L3 PTE")
            return pte_pa(pte, va)
        raise FaultError(va, "address outside the kernel map and the DMAP")


def probe(first_bytes: bytes) -> bool:
    return first_bytes[:len(MAGIC_FIELD)] == MAGIC_FIELD


def open(path) -> RISCVMinidump:  # noqa: A001 - registry protocol name
    return RISCVMinidump(path)
