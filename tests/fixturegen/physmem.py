"""Sparse physical memory of a simulated amd64 machine.

Page frames live in a dict ``pa -> bytearray(4096)``; pages never written read
as zeros.  ``dump_avail`` / ``phys_avail`` segments have realistic holes (the
legacy VGA/BIOS hole below 1 MiB, the PCI hole below 4 GiB).
"""

from __future__ import annotations

PAGE_SIZE = 4096
PAGE_MASK = PAGE_SIZE - 1
GiB = 1 << 30
MiB = 1 << 20


def trunc_page(x: int) -> int:
    return x & ~PAGE_MASK


def round_page(x: int) -> int:
    return (x + PAGE_MASK) & ~PAGE_MASK


def default_segments(ram_size: int) -> list[tuple[int, int]]:
    """dump_avail-style [start, end) segments for a machine with ``ram_size`` bytes.

    Small machines: [0x1000, 0x9f000), [0x100000, ram - 128 KiB).
    Machines with more than 3 GiB: the PCI hole ends the second segment at
    0xbfee0000 and the rest of RAM is remapped above 4 GiB.
    """
    if ram_size < 16 * MiB:
        raise ValueError("machine too small")
    low = (0x1000, 0x9F000)
    if ram_size <= 3 * GiB:
        return [low, (0x100000, ram_size - 0x20000)]
    below = 0xBFEE0000
    rest = ram_size - below
    return [low, (0x100000, below), (4 * GiB, 4 * GiB + rest)]


class PhysMem:
    """Physical RAM: segments plus a sparse page store."""

    def __init__(self, segments: list[tuple[int, int]]):
        segs = sorted((int(a), int(b)) for a, b in segments)
        for a, b in segs:
            if a % PAGE_SIZE or b % PAGE_SIZE or a >= b:
                raise ValueError(f"bad segment {a:#x}-{b:#x}")
        for (a0, b0), (a1, b1) in zip(segs, segs[1:]):
            if b0 > a1:
                raise ValueError("overlapping segments")
        self.segments = segs
        self.pages: dict[int, bytearray] = {}

    # -- geometry -----------------------------------------------------------
    @property
    def maxpa(self) -> int:
        return self.segments[-1][1]

    def is_ram(self, pa: int) -> bool:
        for a, b in self.segments:
            if a <= pa < b:
                return True
        return False

    # -- access -------------------------------------------------------------
    def page(self, pa: int, create: bool = True) -> bytearray | None:
        base = trunc_page(pa)
        pg = self.pages.get(base)
        if pg is None and create:
            if not self.is_ram(base):
                raise ValueError(f"write to non-RAM physical address {pa:#x}")
            pg = bytearray(PAGE_SIZE)
            self.pages[base] = pg
        return pg

    def write(self, pa: int, data: bytes) -> None:
        mv = memoryview(bytes(data))
        off = 0
        while off < len(mv):
            cur = pa + off
            n = min(len(mv) - off, PAGE_SIZE - (cur & PAGE_MASK))
            pg = self.page(cur)
            pg[cur & PAGE_MASK:(cur & PAGE_MASK) + n] = mv[off:off + n]
            off += n

    def read(self, pa: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            n = min(size, PAGE_SIZE - (pa & PAGE_MASK))
            pg = self.pages.get(trunc_page(pa))
            if pg is None:
                out += bytes(n)
            else:
                out += pg[pa & PAGE_MASK:(pa & PAGE_MASK) + n]
            pa += n
            size -= n
        return bytes(out)

    def read_page(self, pa: int) -> bytes | None:
        """The page's bytes, or None when it was never written (all zero)."""
        pg = self.pages.get(pa)
        return None if pg is None else bytes(pg)

    def write_u64(self, pa: int, value: int) -> None:
        self.write(pa, (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little"))

    def read_u64(self, pa: int) -> int:
        return int.from_bytes(self.read(pa, 8), "little")


class FrameAllocator:
    """Hands out 4 KiB frames from the RAM segments, never twice.

    Two cursors: ``low`` grows upward from a start address (boot-time and
    UMA-style allocations), ``high`` grows downward from the top of RAM
    (vm_page_alloc-style allocations for kmem and page-table pages), like
    FreeBSD's free lists handing out high memory first.
    """

    def __init__(self, mem: PhysMem, low_start: int, reserved: list[tuple[int, int]] = ()):
        self.mem = mem
        self.reserved = [(trunc_page(a), round_page(b)) for a, b in reserved]
        self.used: set[int] = set()
        self._low = round_page(low_start)
        self._high = mem.maxpa - PAGE_SIZE

    def _usable(self, pa: int) -> bool:
        if pa in self.used or not self.mem.is_ram(pa):
            return False
        for a, b in self.reserved:
            if a <= pa < b:
                return False
        return True

    def reserve(self, start: int, end: int) -> None:
        self.reserved.append((trunc_page(start), round_page(end)))

    def alloc_low(self, npages: int = 1, cursor: str | None = None) -> int:
        """``npages`` physically contiguous frames from the low cursor (or from
        the named extra cursor made by ``add_cursor``)."""
        pa = self._low if cursor is None else self.cursors[cursor]
        while True:
            if all(self._usable(pa + i * PAGE_SIZE) for i in range(npages)):
                for i in range(npages):
                    self.used.add(pa + i * PAGE_SIZE)
                if cursor is None:
                    self._low = pa + npages * PAGE_SIZE
                else:
                    self.cursors[cursor] = pa + npages * PAGE_SIZE
                return pa
            pa += PAGE_SIZE
            if pa >= self.mem.maxpa:
                raise MemoryError("out of physical memory (low)")

    def add_cursor(self, name: str, start: int) -> None:
        """A second upward cursor starting at ``start`` (an allocation arena
        whose use does not move what the main cursor hands out)."""
        if not hasattr(self, "cursors"):
            self.cursors: dict[str, int] = {}
        self.cursors[name] = round_page(start)

    def alloc_high(self, stride: int = 1) -> int:
        """One frame from the high cursor; ``stride`` > 1 leaves gaps so
        consecutive frames are never physically adjacent."""
        pa = self._high
        while not self._usable(pa):
            pa -= PAGE_SIZE
            if pa < 0:
                raise MemoryError("out of physical memory (high)")
        self.used.add(pa)
        self._high = pa - stride * PAGE_SIZE
        return pa
