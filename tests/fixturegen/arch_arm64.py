"""arm64 page tables (4 KiB granule: L0-L3, 512 entries; 16 KiB granule: L0 with 2
entries, L1-L3 with 2048) and the arm64 minidump writer (version 3, with the 16 KiB
page-size flag), following sys/arm64/arm64/minidump_machdep.c and
sys/arm64/include/{pte,vmparam,minidump}.h.  Must not import vnetdbg.
"""

from __future__ import annotations

import struct

from .archmachine import dump_avail_bitmap, dumpable_pages_from_pmap, write_sparse

MINIDUMP_MAGIC = b"minidump FreeBSD/arm64"
MINIDUMP_VERSION = 3
MINIDUMP_FLAG_PS_4K = 0 << 0
MINIDUMP_FLAG_PS_16K = 1 << 0

ATTR_MASK = 0xFFFC000000000FFF
ATTR_DESCR_MASK = 3
L0_TABLE = L1_TABLE = L2_TABLE = 3
L1_BLOCK = L2_BLOCK = 1
L3_PAGE = 3
ATTR_AF = 1 << 10
ATTR_SH_IS = 3 << 8
ATTR_DEFAULT = ATTR_AF | ATTR_SH_IS
ATTR_S1_XN = (1 << 53) | (1 << 54)     # PXN | UXN


class ARM64PageTables:
    ARCH = "arm64"
    RAM_BASE = 0x40000000                       # QEMU virt
    VM_MIN_KERNEL_ADDRESS = 0xFFFF000000000000
    DMAP_MIN_ADDRESS = 0xFFFFA00000000000
    DMAP_MAX_ADDRESS = 0xFFFFFF0000000000

    def __init__(self, mem, new_table, page_size: int = 4096):
        if page_size not in (4096, 16384):
            raise ValueError("arm64 granule is 4 KiB or 16 KiB here")
        self.mem = mem
        self.new_table = new_table
        self.ps = page_size
        self.shift = page_size.bit_length() - 1          # 12 or 14
        self.bits = self.shift - 3                       # 9 or 11
        self.entries = page_size // 8
        # level -> shift of the VA bits that index it
        self.shifts = {3: self.shift, 2: self.shift + self.bits,
                       1: self.shift + 2 * self.bits, 0: self.shift + 3 * self.bits}
        self.L2_SIZE = 1 << self.shifts[2]
        self.L1_SIZE = 1 << self.shifts[1]
        self.DMAP_L1 = page_size == 4096                  # 1 GiB L1 blocks
        self.root = None

    def _index(self, va: int, level: int) -> int:
        n = 2 if level == 0 and self.ps == 16384 else self.entries
        return (va >> self.shifts[level]) & (n - 1)

    def _get(self, table: int, i: int) -> int:
        return self.mem.read_u64(table + 8 * i)

    def _set(self, table: int, i: int, v: int) -> None:
        self.mem.write_u64(table + 8 * i, v)

    def _table(self, va: int, level: int) -> int:
        """PA of the level-``level`` table covering ``va`` (created on the way)."""
        t = self.root
        for lv in range(0, level):
            i = self._index(va, lv)
            e = self._get(t, i)
            if e & ATTR_DESCR_MASK != 3:
                if e & 1:
                    raise ValueError("block where a table was expected")
                nt = self.new_table()
                self._set(t, i, nt | L1_TABLE)
                e = nt | L1_TABLE
            t = e & ~ATTR_MASK & ~(self.ps - 1)
        return t

    def map_block(self, va: int, pa: int, level: int) -> None:
        size = 1 << self.shifts[level]
        assert va % size == 0 and pa % size == 0 and level in (1, 2)
        self._set(self._table(va, level), self._index(va, level), pa | ATTR_DEFAULT | L1_BLOCK)

    def map_page(self, va: int, pa: int) -> None:
        assert va % self.ps == 0 and pa % self.ps == 0
        self._set(self._table(va, 3), self._index(va, 3),
                  pa | ATTR_DEFAULT | ATTR_S1_XN | L3_PAGE)

    def translate(self, va: int):
        """(pa, level of the leaf, leaf size) or None."""
        t = self.root
        for lv in range(4):
            e = self._get(t, self._index(va, lv))
            d = e & ATTR_DESCR_MASK
            size = 1 << self.shifts[lv]
            out = e & ~ATTR_MASK & ~(size - 1)
            if lv == 3:
                return (out | (va & (size - 1)), 3, size) if d == L3_PAGE else None
            if d == 3:
                t = e & ~ATTR_MASK & ~(self.ps - 1)
                continue
            if d == 1 and lv in (1, 2):
                return out | (va & (size - 1)), lv, size
            return None
        return None

    def l2_entry(self, va: int):
        t = self.root
        for lv in range(2):
            e = self._get(t, self._index(va, lv))
            if e & ATTR_DESCR_MASK != 3:
                if lv == 1 and e & ATTR_DESCR_MASK == 1:
                    return "l1block", (e & ~ATTR_MASK & ~(self.L1_SIZE - 1)) | (va & (self.L1_SIZE - 1) & ~(self.L2_SIZE - 1))
                return "invalid", 0
            t = e & ~ATTR_MASK & ~(self.ps - 1)
        e = self._get(t, self._index(va, 2))
        d = e & ATTR_DESCR_MASK
        if d == L2_TABLE:
            return "table", e & ~ATTR_MASK & ~(self.ps - 1)
        if d == L2_BLOCK:
            return "block", e & ~ATTR_MASK & ~(self.L2_SIZE - 1)
        return "invalid", 0

    def l3_entries(self, table_pa: int) -> tuple[int, ...]:
        return struct.unpack(f"<{self.entries}Q", self.mem.read(table_pa, self.ps))

    def l3_pa(self, e: int) -> int | None:
        return e & ~ATTR_MASK & ~(self.ps - 1) if e & ATTR_DESCR_MASK == L3_PAGE else None

    def fake_l3(self, pa: int) -> bytes:
        """A page of L3 entries mapping the block at ``pa`` (minidumpsys())."""
        return struct.pack(f"<{self.entries}Q",
                           *((pa + i * self.ps) | ATTR_DEFAULT | L3_PAGE
                             for i in range(self.entries)))


def pmap_pages(machine):
    """The pmap region, one page per L2_SIZE of KVA from VM_MIN_KERNEL_ADDRESS."""
    pt = machine.pt
    va = machine.vm_min
    while va < machine.kernel_vm_end:
        kind, x = pt.l2_entry(va)
        if kind in ("block", "l1block"):
            yield pt.fake_l3(x)
        elif kind == "table":
            yield machine.mem.read(x, pt.ps)
        else:
            yield bytes(pt.ps)
        va += pt.L2_SIZE


def write_minidump(machine, path: str, *, msgbuf_ring: bytes, msg_size: int,
                   version: int = MINIDUMP_VERSION) -> dict:
    """arm64 minidump v3 (header, msgbuf, dump_avail, bitmap, pmap, pages)."""
    ps = machine.page_size
    rnd = lambda n: -(-n // ps) * ps  # noqa: E731
    pages = dumpable_pages_from_pmap(machine)
    bitmap, bitmapsize = dump_avail_bitmap(machine, pages)
    dumpavailsize = rnd(16 * (len(machine.dump_avail) + 1))
    pmap = list(pmap_pages(machine))
    pmapsize = len(pmap) * ps
    flags = MINIDUMP_FLAG_PS_16K if ps == 16384 else MINIDUMP_FLAG_PS_4K
    hdr = bytearray(ps)
    struct.pack_into("<24sIIIIQQQQII", hdr, 0, MINIDUMP_MAGIC, version, msg_size, bitmapsize,
                     pmapsize, machine.vm_min, machine.dmap_phys_base,
                     machine.dmap_min, machine.dmap_max_va, dumpavailsize, flags)
    return _write(machine, path, hdr, msgbuf_ring, msg_size, dumpavailsize, bitmap, pmap,
                  pages)


def _write(machine, path, hdr, ring, msg_size, dumpavailsize, bitmap, pmap, pages) -> dict:
    ps = machine.page_size
    rnd = lambda n: -(-n // ps) * ps  # noqa: E731
    chunks = []
    off = 0
    chunks.append((off, bytes(hdr)))
    off += ps
    ring = bytes(ring[:msg_size])
    chunks.append((off, ring + bytes(rnd(msg_size) - len(ring))))
    off += rnd(msg_size)
    offsets = {"msgbuf": ps}
    if dumpavailsize:
        da = bytearray(dumpavailsize)
        for i, (a, b) in enumerate(machine.dump_avail):
            struct.pack_into("<QQ", da, 16 * i, a, b)
        offsets["dump_avail"] = off
        chunks.append((off, bytes(da)))
        off += dumpavailsize
    offsets["bitmap"] = off
    chunks.append((off, bitmap + bytes(rnd(len(bitmap)) - len(bitmap))))
    off += rnd(len(bitmap))
    offsets["pmap"] = off
    for pg in pmap:
        chunks.append((off, pg))
        off += ps
    offsets["pages"] = off
    rank = {}
    for i, pa in enumerate(pages):
        rank[pa] = i
        chunks.append((off, machine.mem.read(pa, ps)))
        off += ps
    size = write_sparse(path, chunks)
    return {"size": size, "pages": pages, "offsets": offsets, "page_size": ps,
            "rank": rank}
