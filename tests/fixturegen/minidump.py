"""amd64 minidump writer (versions 1, 2, 3), following the structure of
FreeBSD's sys/amd64/amd64/minidump_machdep.c.

File: header page | msgbuf ring | dump_avail page (v3) | bitmap | pmap | pages.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .pagetables import (DMAP_MAX_ADDRESS, DMAP_MIN_ADDRESS, KERNBASE, NBPDP, NBPDR,
                         PG_FRAME, PG_PS, PG_PS_FRAME, PG_V, VM_MIN_KERNEL_ADDRESS)
from .physmem import PAGE_SIZE, round_page

MINIDUMP_MAGIC = b"minidump FreeBSD/amd64"
PHYS_AVAIL_ENTRIES = 128          # x86 PHYS_AVAIL_COUNT-ish; sizeof(dump_avail) < 1 page
ZERO_PAGE = bytes(PAGE_SIZE)


@dataclass
class DumpLayout:
    version: int
    msgbufsize: int
    bitmapsize: int
    pmapsize: int
    kernbase: int
    dumpavailsize: int
    dump_avail_off: int
    bitmap_off: int
    pmap_off: int
    sparse_off: int
    size: int
    pages: list[int] = field(default_factory=list)   # dumped PAs, ascending
    rank: dict[int, int] = field(default_factory=dict)

    def file_offset(self, pa: int) -> int | None:
        r = self.rank.get(pa & ~(PAGE_SIZE - 1))
        if r is None:
            return None
        return self.sparse_off + r * PAGE_SIZE + (pa & (PAGE_SIZE - 1))


def _dumpable(machine, pa: int) -> bool:
    return pa < DMAP_MAX_ADDRESS - DMAP_MIN_ADDRESS and machine.is_dumpable(pa)


def dumped_pages(machine, version: int) -> list[int]:
    """Physical pages whose bits the kernel sets, ascending."""
    mem = machine.mem
    pt = machine.pt
    pages: set[int] = set()

    def add(pa):
        if _dumpable(machine, pa):
            pages.add(pa)

    def scan_pd(pd_pa: int, count: int = 512, first: int = 0, with_pt_pages: bool = True):
        for i in range(first, first + count):
            pde = mem.read_u64(pd_pa + 8 * i)
            if not pde & PG_V:
                continue
            if pde & PG_PS:
                base = pde & PG_PS_FRAME
                for k in range(512):
                    add(base + k * PAGE_SIZE)
                continue
            ptpa = pde & PG_FRAME
            if with_pt_pages:
                add(ptpa)
            ptraw = mem.read_page(ptpa)
            if ptraw is None:
                continue
            for k, pte in enumerate(struct.unpack("<512Q", ptraw)):
                if pte & PG_V:
                    add(pte & PG_FRAME)

    kva_end = machine.kva_end
    if version == 1:
        va = KERNBASE
        while va < kva_end:
            kind, x = pt.pd_page(va)
            n = min(512 - ((va >> 21) & 511), (kva_end - va + NBPDR - 1) // NBPDR)
            if kind == "pd":
                scan_pd(x, n, (va >> 21) & 511, with_pt_pages=False)
            elif kind == "1g":
                base = x & 0x000FFFFFC0000000
                for k in range(n * 512):
                    add(base + ((va & (NBPDP - 1)) + k * PAGE_SIZE))
            va += n * NBPDR
    else:
        va = VM_MIN_KERNEL_ADDRESS
        while va < kva_end:
            kind, x = pt.pd_page(va)
            if kind == "pd":
                scan_pd(x)
            elif kind == "1g":
                base = x & 0x000FFFFFC0000000
                for k in range(NBPDP // PAGE_SIZE):
                    add(base + k * PAGE_SIZE)
            va += NBPDP
    for pa in machine.dump_added:
        add(pa)
    return sorted(pages)


def _bitmap_v3(machine, pages: list[int]) -> tuple[bytearray, int]:
    segs = machine.dump_avail
    slots = []
    total = 0
    for a, b in segs:
        n = (b + PAGE_SIZE - 1) // PAGE_SIZE - a // PAGE_SIZE
        slots.append((a, b, total))
        total += n
    nbytes = round_page(((total + 63) // 64) * 8)
    bm = bytearray(nbytes)
    for pa in pages:
        for a, b, adj in slots:
            if a <= pa < b:
                bit = pa // PAGE_SIZE - a // PAGE_SIZE + adj
                bm[bit >> 3] |= 1 << (bit & 7)
                break
        else:
            raise AssertionError(f"page {pa:#x} outside dump_avail")
    return bm, nbytes


def _bitmap_abs(machine, pages: list[int]) -> tuple[bytearray, int]:
    last = machine.dump_avail[-1][1]
    npages = (last + PAGE_SIZE - 1) // PAGE_SIZE
    nbytes = round_page(((npages + 63) // 64) * 8)
    bm = bytearray(nbytes)
    for pa in pages:
        bit = pa >> 12
        bm[bit >> 3] |= 1 << (bit & 7)
    return bm, nbytes


def _pmap_pages(machine, version: int):
    """Yield the pmap region page by page (bytes, or None for a zero page)."""
    mem = machine.mem
    pt = machine.pt
    kva_end = machine.kva_end
    if version == 1:
        va = KERNBASE
        while va < kva_end:
            kind, x = pt.pd_page(va)
            if kind == "invalid":
                yield None
            elif kind == "1g":
                base = (x & 0x000FFFFFC0000000) + (va & (NBPDP - 1))
                flags = x & 0xFFF & ~PG_PS
                yield struct.pack("<512Q", *((base + k * PAGE_SIZE) | flags for k in range(512)))
            else:
                pde = mem.read_u64(x + 8 * ((va >> 21) & 511))
                if not pde & PG_V:
                    yield None
                elif pde & PG_PS:
                    base = pde & PG_PS_FRAME
                    flags = (pde & 0xFFF & ~PG_PS) | (pde & (1 << 63))
                    yield struct.pack("<512Q", *(((base + k * PAGE_SIZE) | flags) for k in range(512)))
                else:
                    yield mem.read_page(pde & PG_FRAME)
            va += NBPDR
        return
    va = VM_MIN_KERNEL_ADDRESS
    while va < kva_end:
        kind, x = pt.pd_page(va)
        if kind == "invalid":
            yield None
        elif kind == "1g":
            yield struct.pack("<512Q", *(((x + j * NBPDR) & 0xFFFFFFFFFFFFFFFF) for j in range(512)))
        else:
            yield mem.read_page(x) if _dumpable(machine, x) else None
        va += NBPDP


def _pmap_page_count(machine, version: int) -> int:
    if version == 1:
        return (machine.kva_end - KERNBASE + NBPDR - 1) // NBPDR
    return (machine.kva_end - VM_MIN_KERNEL_ADDRESS + NBPDP - 1) // NBPDP


class _SparseWriter:
    def __init__(self, f):
        self.f = f
        self.pos = 0

    def write(self, data: bytes | None, size: int | None = None):
        if data is None or not any(data):
            n = size if data is None else len(data)
            self.pos += n
            self.f.seek(self.pos)
            return
        self.f.seek(self.pos)
        self.f.write(data)
        self.pos += len(data)

    def write_region(self, data: bytes):
        """Write ``data`` page by page, skipping all-zero pages."""
        mv = memoryview(data)
        for off in range(0, len(data), PAGE_SIZE):
            chunk = mv[off:off + PAGE_SIZE]
            if chunk.nbytes < PAGE_SIZE:
                chunk = bytes(chunk) + bytes(PAGE_SIZE - chunk.nbytes)
            self.write(bytes(chunk))


def write_minidump(machine, path: str, version: int = 3, *, msgbuf_ring: bytes,
                   msg_size: int) -> DumpLayout:
    if version not in (1, 2, 3):
        raise ValueError("amd64 minidump versions are 1, 2 and 3")
    pages = dumped_pages(machine, version)
    if version == 3:
        bitmap, bitmapsize = _bitmap_v3(machine, pages)
        dumpavailsize = round_page((PHYS_AVAIL_ENTRIES + 2) * 8)
    else:
        bitmap, bitmapsize = _bitmap_abs(machine, pages)
        dumpavailsize = 0
    npmap = _pmap_page_count(machine, version)
    pmapsize = npmap * PAGE_SIZE
    kernbase = KERNBASE if version == 1 else VM_MIN_KERNEL_ADDRESS

    hdr = bytearray(PAGE_SIZE)
    hdr[0:24] = MINIDUMP_MAGIC.ljust(24, b"\0")
    struct.pack_into("<IIII", hdr, 24, version, msg_size, bitmapsize, pmapsize)
    struct.pack_into("<QQQ", hdr, 40, kernbase, DMAP_MIN_ADDRESS, DMAP_MAX_ADDRESS)
    if version == 3:
        struct.pack_into("<I", hdr, 64, dumpavailsize)

    dump_avail_off = PAGE_SIZE + round_page(msg_size)
    bitmap_off = dump_avail_off + dumpavailsize
    pmap_off = bitmap_off + round_page(bitmapsize)
    sparse_off = pmap_off + pmapsize
    size = sparse_off + len(pages) * PAGE_SIZE
    layout = DumpLayout(version, msg_size, bitmapsize, pmapsize, kernbase, dumpavailsize,
                        dump_avail_off, bitmap_off, pmap_off, sparse_off, size, pages,
                        {pa: i for i, pa in enumerate(pages)})

    with open(path, "wb") as f:
        w = _SparseWriter(f)
        w.write(bytes(hdr))
        ring = bytes(msgbuf_ring[:msg_size])
        w.write_region(ring + bytes(round_page(msg_size) - len(ring)))
        if version == 3:
            da = bytearray(dumpavailsize)
            i = 0
            for a, b in machine.dump_avail:
                struct.pack_into("<QQ", da, i, a, b)
                i += 16
            w.write_region(bytes(da))
        assert w.pos == bitmap_off
        w.write_region(bytes(bitmap))
        assert w.pos == pmap_off
        for pg in _pmap_pages(machine, version):
            w.write(pg if pg is not None else None, PAGE_SIZE)
        assert w.pos == sparse_off, (w.pos, sparse_off)
        for pa in pages:
            w.write(machine.mem.read_page(pa), PAGE_SIZE)
        f.truncate(size)
    return layout
