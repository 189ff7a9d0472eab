"""riscv Sv39 page tables (L1 gigapages, L2 megapages, L3 pages; 512 entries) and the
riscv minidump writer (version 2), following sys/riscv/riscv/minidump_machdep.c and
sys/riscv/include/{pte,vmparam,minidump}.h.  Must not import vnetdbg.
"""

from __future__ import annotations

import struct

from .arch_arm64 import _write
from .archmachine import dump_avail_bitmap, dumpable_pages_from_pmap

MINIDUMP_MAGIC = b"minidump FreeBSD/riscv"
MINIDUMP_VERSION = 2

PTE_V = 1 << 0
PTE_R = 1 << 1
PTE_W = 1 << 2
PTE_X = 1 << 3
PTE_G = 1 << 5
PTE_A = 1 << 6
PTE_D = 1 << 7
PTE_RWX = PTE_R | PTE_W | PTE_X
PTE_KERN = PTE_V | PTE_R | PTE_W | PTE_A | PTE_D
PTE_PPN0_S = 10
PAGE_SHIFT = 12


def _pte(pa: int, flags: int) -> int:
    return ((pa >> PAGE_SHIFT) << PTE_PPN0_S) | flags


def _pa(pte: int) -> int:
    return ((pte >> PTE_PPN0_S) & ((1 << 44) - 1)) << PAGE_SHIFT


class RISCVPageTables:
    ARCH = "riscv"
    RAM_BASE = 0x80000000                       # QEMU virt
    VM_MIN_KERNEL_ADDRESS = 0xFFFFFFC000000000
    DMAP_MIN_ADDRESS = 0xFFFFFFD000000000
    DMAP_MAX_ADDRESS = 0xFFFFFFF000000000
    L1_SIZE = 1 << 30
    L2_SIZE = 1 << 21
    DMAP_L1 = True
    SHIFTS = {1: 30, 2: 21, 3: 12}

    def __init__(self, mem, new_table, page_size: int = 4096):
        if page_size != 4096:
            raise ValueError("riscv pages are 4 KiB")
        self.mem = mem
        self.new_table = new_table
        self.ps = page_size
        self.root = None

    def _index(self, va: int, level: int) -> int:
        return (va >> self.SHIFTS[level]) & 511

    def _table(self, va: int, level: int) -> int:
        t = self.root
        for lv in range(1, level):
            i = self._index(va, lv)
            e = self.mem.read_u64(t + 8 * i)
            if not e & PTE_V:
                nt = self.new_table()
                e = _pte(nt, PTE_V)
                self.mem.write_u64(t + 8 * i, e)
            elif e & PTE_RWX:
                raise ValueError("leaf where a table was expected")
            t = _pa(e)
        return t

    def map_block(self, va: int, pa: int, level: int) -> None:
        size = 1 << self.SHIFTS[level]
        assert va % size == 0 and pa % size == 0 and level in (1, 2)
        self.mem.write_u64(self._table(va, level) + 8 * self._index(va, level),
                           _pte(pa, PTE_KERN | PTE_X | PTE_G))

    def map_page(self, va: int, pa: int) -> None:
        self.mem.write_u64(self._table(va, 3) + 8 * self._index(va, 3),
                           _pte(pa, PTE_KERN | PTE_G))

    def translate(self, va: int):
        t = self.root
        for lv in (1, 2, 3):
            e = self.mem.read_u64(t + 8 * self._index(va, lv))
            if not e & PTE_V:
                return None
            size = 1 << self.SHIFTS[lv]
            if e & PTE_RWX:
                return (_pa(e) & ~(size - 1)) | (va & (size - 1)), lv, size
            if lv == 3:
                return None
            t = _pa(e)
        return None

    def l2_entry(self, va: int):
        e = self.mem.read_u64(self.root + 8 * self._index(va, 1))
        if not e & PTE_V:
            return "invalid", 0
        if e & PTE_RWX:
            return "l1block", _pa(e) + (va & (self.L1_SIZE - 1) & ~(self.L2_SIZE - 1))
        e = self.mem.read_u64(_pa(e) + 8 * self._index(va, 2))
        if not e & PTE_V:
            return "invalid", 0
        if e & PTE_RWX:
            return "block", _pa(e)
        return "table", _pa(e)

    def l3_entries(self, table_pa: int) -> tuple[int, ...]:
        return struct.unpack("<512Q", self.mem.read(table_pa, 4096))

    def l3_pa(self, e: int) -> int | None:
        return _pa(e) if e & PTE_V and e & PTE_RWX else None

    def fake_l3(self, pa: int) -> bytes:
        return struct.pack("<512Q", *(_pte(pa + i * 4096, PTE_KERN) for i in range(512)))


def write_minidump(machine, path: str, *, msgbuf_ring: bytes, msg_size: int,
                   version: int = MINIDUMP_VERSION) -> dict:
    """riscv minidump v2 (header, msgbuf, dump_avail, bitmap, pmap, pages)."""
    from .arch_arm64 import pmap_pages
    ps = machine.page_size
    pages = dumpable_pages_from_pmap(machine)
    bitmap, bitmapsize = dump_avail_bitmap(machine, pages)
    dumpavailsize = -(-16 * (len(machine.dump_avail) + 1) // ps) * ps
    pmap = list(pmap_pages(machine))
    hdr = bytearray(ps)
    struct.pack_into("<24sIIIIQQQQI", hdr, 0, MINIDUMP_MAGIC, version, msg_size, bitmapsize,
                     len(pmap) * ps, machine.vm_min, machine.dmap_phys_base,
                     machine.dmap_min, machine.dmap_max_va, dumpavailsize)
    return _write(machine, path, hdr, msgbuf_ring, msg_size, dumpavailsize, bitmap, pmap,
                  pages)
