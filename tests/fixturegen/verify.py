"""A deliberately small minidump reader used only to check the writer's own
output (it shares no code with vnetdbg).  Reads the file, not the machine."""

from __future__ import annotations

import struct

PAGE = 4096
PG_V, PG_PS = 1, 0x80
PG_FRAME = 0x000FFFFFFFFFF000
PG_PS_FRAME = 0x000FFFFFFFE00000


def _rp(x: int) -> int:
    return (x + PAGE - 1) & ~(PAGE - 1)


class MiniReader:
    def __init__(self, path: str):
        with open(path, "rb") as f:
            self.data = f.read()
        d = self.data
        if not d.startswith(b"minidump FreeBSD/amd64\0"):
            raise ValueError("not an amd64 minidump")
        (self.version, self.msgbufsize, self.bitmapsize, self.pmapsize) = struct.unpack_from("<IIII", d, 24)
        self.kernbase, self.dmapbase, self.dmapend = struct.unpack_from("<QQQ", d, 40)
        self.dumpavailsize = struct.unpack_from("<I", d, 64)[0] if self.version == 3 else 0
        off = PAGE + _rp(self.msgbufsize)
        self.dump_avail_off = off
        if self.version == 3:
            da = []
            for i in range(0, self.dumpavailsize, 16):
                a, b = struct.unpack_from("<QQ", d, off + i)
                if b == 0:
                    break
                da.append((a, b))
            self.dump_avail = da
        else:
            self.dump_avail = [(0, self.bitmapsize * 8 * PAGE)]
        self.bitmap_off = off + _rp(self.dumpavailsize)
        self.pmap_off = self.bitmap_off + _rp(self.bitmapsize)
        self.sparse_off = self.pmap_off + _rp(self.pmapsize)
        bm = d[self.bitmap_off:self.bitmap_off + self.bitmapsize]
        self.bits = int.from_bytes(bm, "little")
        # rank table: bit -> rank
        self.rank = {}
        r = 0
        b = self.bits
        while b:
            low = b & -b
            idx = low.bit_length() - 1
            self.rank[idx] = r
            r += 1
            b ^= low
        self.npages = r

    def msgbuf_ring(self) -> bytes:
        return self.data[PAGE:PAGE + self.msgbufsize]

    def pa_bit(self, pa: int) -> int | None:
        adj = 0
        for a, b in self.dump_avail:
            if a <= pa < b:
                return pa // PAGE - a // PAGE + adj
            adj += (b + PAGE - 1) // PAGE - a // PAGE
        return None

    def pa_offset(self, pa: int) -> int | None:
        bit = self.pa_bit(pa)
        if bit is None or bit not in self.rank:
            return None
        return self.sparse_off + self.rank[bit] * PAGE + (pa & (PAGE - 1))

    def read_pa_u64(self, pa: int) -> int | None:
        off = self.pa_offset(pa)
        if off is None or off + 8 > len(self.data):
            return None
        return struct.unpack_from("<Q", self.data, off)[0]

    def kva_to_pa(self, va: int) -> int | None:
        if va >= self.kernbase:
            if self.version == 1:
                n = (va - self.kernbase) >> 12
                if n * 8 >= self.pmapsize:
                    return None
                pte = struct.unpack_from("<Q", self.data, self.pmap_off + 8 * n)[0]
                if not pte & PG_V:
                    return None
                return (pte & PG_FRAME) | (va & 0xFFF)
            n = (va - self.kernbase) >> 21
            if n * 8 >= self.pmapsize:
                return None
            pde = struct.unpack_from("<Q", self.data, self.pmap_off + 8 * n)[0]
            if not pde & PG_V:
                return None
            if pde & PG_PS:
                return (pde & PG_PS_FRAME) + (va & 0x1FFFFF)
            pte = self.read_pa_u64((pde & PG_FRAME) + 8 * ((va >> 12) & 511))
            if pte is None or not pte & PG_V:
                return None
            return (pte & PG_FRAME) | (va & 0xFFF)
        if self.dmapbase <= va < self.dmapend:
            return va - self.dmapbase
        return None

    def va_offset(self, va: int) -> int | None:
        pa = self.kva_to_pa(va)
        return None if pa is None else self.pa_offset(pa)

    def read(self, va: int, size: int) -> bytes | None:
        out = bytearray()
        while size:
            n = min(size, PAGE - (va & (PAGE - 1)))
            off = self.va_offset(va)
            if off is None or off + n > len(self.data):
                return None
            out += self.data[off:off + n]
            va += n
            size -= n
        return bytes(out)
