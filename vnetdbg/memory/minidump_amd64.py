"""amd64 minidump reader, versions 1-3 (``sys/amd64/include/minidump.h``, libkvm's
``kvm_minidump_amd64.c``).

File layout: header page, msgbuf ring, dump_avail page (v3 only), bitmap, pmap region,
then one 4 KiB page per set bitmap bit in ascending physical order.  The file is mapped
read-only and never loaded whole: a dump can be many GiB, mostly sparse.

The translators below are small pure functions over parsed header values so each can be
tested alone; ``AMD64Minidump`` only wires them to the mapped file.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

from vnetdbg.errors import FaultError, FormatError
from vnetdbg.memory.paged import drop_mapped_pages, read_mapped

NAME = "amd64 minidump"
MAGIC = b"minidump FreeBSD/amd64"
MAGIC_FIELD = MAGIC.ljust(24, b"\0")
SUPPORTED_VERSIONS = (1, 2, 3)

PAGE_SIZE = 4096
PAGE_SHIFT = 12
PAGE_MASK = PAGE_SIZE - 1
PDR_SHIFT = 21  # one PDE maps 2 MiB
SUPERPAGE_MASK = (1 << PDR_SHIFT) - 1

PG_V = 0x1
PG_PS = 0x80
PG_FRAME = 0x000FFFFFFFFFF000
PG_PS_FRAME = 0x000FFFFFFFE00000

# magic[24], version, msgbufsize, bitmapsize, pmapsize, kernbase, dmapbase, dmapend,
# dumpavailsize (v3; zero-filled in v1/v2 header pages, so always safe to unpack).
_HEADER = struct.Struct("<24sIIIIQQQI")
_U64 = struct.Struct("<Q")

# Limits that bound what we allocate or trust before looking at the data.  The bitmap
# limit (512 MiB of bitmap = 16 TiB of RAM) keeps the rank index under 8 MiB.
MAX_MSGBUF = 64 << 20
MAX_DUMP_AVAIL = 1 << 20
MAX_BITMAP = 512 << 20
MAX_PMAP = 1 << 30

# Rank index granularity: one cumulative count per 512 bitmap bytes (4096 pages), so a
# lookup popcounts at most 512 bytes.
RANK_BLOCK_BYTES = 512
RANK_BLOCK_BITS = RANK_BLOCK_BYTES * 8

# Bounded va-page -> file-offset cache; cleared wholesale when full (cheap, no LRU).
_CACHE_LIMIT = 4096


def round_page(n: int) -> int:
    return (n + PAGE_MASK) & ~PAGE_MASK


@dataclass(frozen=True)
class Header:
    version: int
    msgbufsize: int
    bitmapsize: int
    pmapsize: int
    kernbase: int
    dmapbase: int
    dmapend: int
    dumpavailsize: int


@dataclass(frozen=True)
class Region:
    name: str
    offset: int
    size: int  # bytes the region occupies in the file (page-rounded)


@dataclass(frozen=True)
class Segments:
    """dump_avail segments prepared for bisecting: byte bounds plus the bit number of
    each segment's first page slot (libkvm's running ``adj``)."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    first_bits: tuple[int, ...]


def parse_header(page: bytes) -> Header:
    """Decode and check the header page; FormatError for wrong magic or version."""
    magic, version, msgbufsize, bitmapsize, pmapsize, kernbase, dmapbase, dmapend, \
        dumpavailsize = _HEADER.unpack_from(page)
    if magic != MAGIC_FIELD:
        shown = magic.rstrip(b"\0")
        raise FormatError(f"bad amd64 minidump magic {shown!r}")
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(f"unsupported amd64 minidump version {version}")
    if version != 3:
        dumpavailsize = 0  # libkvm ignores the field before v3
    return Header(version, msgbufsize, bitmapsize, pmapsize, kernbase, dmapbase,
                  dmapend, dumpavailsize)


def check_sizes(hdr: Header) -> None:
    """Refuse sizes that could only come from a corrupt header, before allocating."""
    for name, value, limit in (("msgbuf", hdr.msgbufsize, MAX_MSGBUF),
                               ("dump_avail", hdr.dumpavailsize, MAX_DUMP_AVAIL),
                               ("bitmap", hdr.bitmapsize, MAX_BITMAP),
                               ("pmap", hdr.pmapsize, MAX_PMAP)):
        if value > limit:
            raise FormatError(f"implausible amd64 minidump {name} size {value} "
                              f"(limit {limit})")


def region_layout(hdr: Header) -> list[Region]:
    """Header, msgbuf, dump_avail, bitmap and pmap regions in file order (doc 2.2)."""
    regions = []
    offset = 0
    for name, size in (("header", PAGE_SIZE), ("msgbuf", hdr.msgbufsize),
                       ("dump_avail", hdr.dumpavailsize), ("bitmap", hdr.bitmapsize),
                       ("pmap", hdr.pmapsize)):
        regions.append(Region(name, offset, round_page(size)))
        offset += round_page(size)
    return regions


def check_regions_fit(regions: list[Region], file_size: int) -> None:
    """Every fixed region must be wholly in the file; only sparse data may be short."""
    for region in regions:
        if region.offset + region.size > file_size:
            raise FormatError(f"truncated amd64 minidump: {region.name} needs "
                              f"{region.size} bytes at offset {region.offset}, "
                              f"file has {file_size}")


def parse_dump_avail(data: bytes) -> list[tuple[int, int]]:
    """u64 LE ``[start, end)`` pairs up to the first pair whose end is 0; must be sorted
    and disjoint, because pa lookups bisect them."""
    pairs = []
    for start, end in struct.iter_unpack("<QQ", data[:len(data) // 16 * 16]):
        if end == 0:
            break
        if end <= start or (pairs and start < pairs[-1][1]):
            raise FormatError(f"amd64 minidump dump_avail is not sorted and disjoint "
                              f"at [{start:#x}, {end:#x})")
        pairs.append((start, end))
    return pairs


def absolute_dump_avail(bitmapsize: int) -> list[tuple[int, int]]:
    """v1/v2 number bits by pa >> 12; one segment from 0 makes that the same as v3."""
    return [(0, bitmapsize * 8 * PAGE_SIZE)] if bitmapsize else []


def build_segments(pairs: list[tuple[int, int]]) -> Segments:
    """Precompute each segment's first bit: segment i holds
    ceil(end/PS) - floor(start/PS) page slots (doc 2.4)."""
    slots = [-(-end // PAGE_SIZE) - start // PAGE_SIZE for start, end in pairs]
    return Segments(tuple(s for s, _ in pairs), tuple(e for _, e in pairs),
                    tuple(accumulate(slots, initial=0))[:-1] if pairs else ())


def pa_to_bit(segments: Segments, pa: int) -> int | None:
    """Bitmap bit of the page holding ``pa``, or None when no dump_avail segment covers
    it (such memory was never dumpable)."""
    i = bisect_right(segments.starts, pa) - 1
    if i < 0 or pa >= segments.ends[i]:
        return None
    return (pa >> PAGE_SHIFT) - (segments.starts[i] >> PAGE_SHIFT) + segments.first_bits[i]


def build_rank_index(bitmap) -> array:
    """Cumulative popcounts: entry k = set bits before block k; the last entry is the
    total.  Built once so rank() never scans the bitmap."""
    counts = (int.from_bytes(bitmap[i:i + RANK_BLOCK_BYTES], "little").bit_count()
              for i in range(0, len(bitmap), RANK_BLOCK_BYTES))
    return array("Q", accumulate(counts, initial=0))


def bit_is_set(bitmap, bit: int) -> bool:
    byte = bit >> 3
    return byte < len(bitmap) and bool(bitmap[byte] >> (bit & 7) & 1)


def rank(bitmap, index: array, bit: int) -> int:
    """Set bits strictly before ``bit`` = sparse page slot of ``bit`` if it is set."""
    block = bit // RANK_BLOCK_BITS
    byte = bit >> 3
    count = index[block]
    count += int.from_bytes(bitmap[block * RANK_BLOCK_BYTES:byte], "little").bit_count()
    if byte < len(bitmap):
        count += (bitmap[byte] & ((1 << (bit & 7)) - 1)).bit_count()
    return count


def pde_index(kernbase: int, va: int) -> int:
    """v2/v3 pmap region: flat PDE array, one entry per 2 MiB from kernbase."""
    return (va - kernbase) >> PDR_SHIFT


def pte_index(kernbase: int, va: int) -> int:
    """v1 pmap region: flat PTE array, one entry per 4 KiB from kernbase; also the index
    of ``va`` inside a PT page once reduced modulo 512."""
    return (va - kernbase) >> PAGE_SHIFT


def superpage_pa(pde: int, va: int) -> int:
    return (pde & PG_PS_FRAME) | (va & SUPERPAGE_MASK)


def pte_pa(pte: int, va: int) -> int:
    return (pte & PG_FRAME) | (va & PAGE_MASK)


def in_dmap(hdr: Header, va: int) -> bool:
    return hdr.dmapbase <= va < hdr.dmapend


class AMD64Minidump:
    """A mapped amd64 minidump answering kernel-virtual and physical reads."""

    arch = "amd64"
    page_size = PAGE_SIZE

    def __init__(self, path: str):
        self.path = str(path)
        # io.open: this module's own open() is the registry entry point.
        with io.open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < PAGE_SIZE:
                raise FormatError(f"truncated amd64 minidump: header needs {PAGE_SIZE} "
                                  f"bytes at offset 0, file has {size}: {self.path}")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._load(size)
        except FormatError as exc:
            self._mm.close()
            raise FormatError(f"{exc}: {self.path}") from None

    def _load(self, file_size: int) -> None:
        hdr = parse_header(self._mm[:_HEADER.size])
        check_sizes(hdr)
        regions = {r.name: r for r in region_layout(hdr)}
        check_regions_fit(list(regions.values()), file_size)
        self.header = hdr
        self._msgbuf_off = regions["msgbuf"].offset
        self._pmap_off = regions["pmap"].offset
        self._sparse_off = regions["pmap"].offset + regions["pmap"].size
        if hdr.version == 3:
            da = regions["dump_avail"]
            self._dump_avail = parse_dump_avail(self._mm[da.offset:da.offset + da.size])
        else:
            self._dump_avail = absolute_dump_avail(hdr.bitmapsize)
        self._segments = build_segments(self._dump_avail)
        bm = regions["bitmap"]
        self._bitmap = memoryview(self._mm)[bm.offset:bm.offset + hdr.bitmapsize]
        self._rank_index = build_rank_index(self._bitmap)
        total = self._rank_index[-1]
        self._file_pages = min(total, (file_size - self._sparse_off) // PAGE_SIZE)
        self.truncated_pages = total - self._file_pages
        self._cache: dict[int, int] = {}
        self._last_rank = (-2, -2)  # (bit, slot) of the last rank() answer

    # -- attributes -------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self.header.version

    @property
    def format_name(self) -> str:
        return f"amd64 minidump v{self.header.version}"

    @property
    def kernbase(self) -> int:
        return self.header.kernbase

    @property
    def dmapbase(self) -> int:
        return self.header.dmapbase

    @property
    def dmapend(self) -> int:
        return self.header.dmapend

    @property
    def msgbufsize(self) -> int:
        return self.header.msgbufsize

    @property
    def present_pages(self) -> int:
        """Pages the file actually holds (bitmap pages minus any truncated tail)."""
        return self._file_pages

    # -- physical pages ---------------------------------------------------------------

    def _page_offset(self, pa: int) -> int | None:
        """File offset of the physical page at ``pa`` (page-aligned), None if absent."""
        bit = pa_to_bit(self._segments, pa)
        if bit is None or not bit_is_set(self._bitmap, bit):
            return None
        last_bit, last_slot = self._last_rank
        # a scan through memory asks for consecutive bits: count on from the last one
        slot = last_slot + 1 if bit == last_bit + 1 else rank(self._bitmap, self._rank_index, bit)
        self._last_rank = (bit, slot)
        if slot >= self._file_pages:
            return None  # truncated core: the bitmap promises more than the file has
        return self._sparse_off + slot * PAGE_SIZE

    def _read_u64_phys(self, pa: int) -> int | None:
        off = self._page_offset(pa & ~PAGE_MASK)
        return None if off is None else _U64.unpack_from(self._mm, off + (pa & PAGE_MASK))[0]

    # -- virtual translation ----------------------------------------------------------

    def _pmap_entry(self, index: int) -> int | None:
        if index >= self.header.pmapsize // 8:
            return None
        return _U64.unpack_from(self._mm, self._pmap_off + index * 8)[0]

    def _kva_to_pa(self, va: int) -> int:
        """Translate through the pmap region (v1 PTEs, v2/v3 PDEs)."""
        hdr = self.header
        if hdr.version == 1:
            pte = self._pmap_entry(pte_index(hdr.kernbase, va))
            if pte is None or not pte & PG_V:
                raise FaultError(va, "no valid kernel PTE")
            return pte_pa(pte, va)
        pde = self._pmap_entry(pde_index(hdr.kernbase, va))
        if pde is None or not pde & PG_V:
            raise FaultError(va, "no valid kernel PDE")
        if pde & PG_PS:
            return superpage_pa(pde, va)
        pte = self._read_u64_phys((pde & PG_FRAME) + ((va >> PAGE_SHIFT) & 511) * 8)
        if pte is None:
            raise FaultError(va, "page-table page not present in dump")
        if not pte & PG_V:
            raise FaultError(va, "no valid kernel PTE")
        return pte_pa(pte, va)

    def translate(self, va: int) -> int:
        """Physical address of kernel virtual ``va``: kernbase range first, then DMAP,
        in libkvm's order.  FaultError if neither maps it."""
        if va >= self.header.kernbase:
            return self._kva_to_pa(va)
        if in_dmap(self.header, va):
            return va - self.header.dmapbase
        raise FaultError(va, "address outside the kernel map and the DMAP")

    def _va_page_offset(self, va_page: int) -> int:
        hdr = self.header
        if va_page < hdr.kernbase and hdr.dmapbase <= va_page < hdr.dmapend:
            # DMAP: translation is a subtraction, no need to cache it
            off = self._page_offset(va_page - hdr.dmapbase)
            if off is None:
                raise FaultError(va_page)
            return off
        off = self._cache.get(va_page)
        if off is None:
            off = self._page_offset(self.translate(va_page) & ~PAGE_MASK)
            if off is None:
                raise FaultError(va_page)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[va_page] = off
        return off

    # -- reads ------------------------------------------------------------------------

    def read(self, address: int, size: int) -> bytes:
        hdr = self.header
        if size > PAGE_SIZE and address < hdr.kernbase and \
                hdr.dmapbase <= address and address + size <= hdr.dmapend:
            run = self._dmap_run(address - hdr.dmapbase, size)
            if run is not None:
                return run
        return read_mapped(self._mm, address, size, PAGE_SIZE, self._va_page_offset)

    def _dmap_run(self, pa: int, size: int) -> bytes | None:
        """One slice for a multi-page DMAP read whose pages are all present and
        consecutive in the file (the common case when scanning memory); None otherwise,
        and the page-by-page path then names the first absent byte."""
        first = pa & ~PAGE_MASK
        pages = ((pa + size - 1) >> PAGE_SHIFT) - (first >> PAGE_SHIFT) + 1
        bit = pa_to_bit(self._segments, first)
        last = pa_to_bit(self._segments, first + (pages - 1) * PAGE_SIZE)
        if bit is None or last != bit + pages - 1:
            return None
        n = last - bit + 1
        window = int.from_bytes(self._bitmap[bit >> 3:(last >> 3) + 1], "little") >> (bit & 7)
        if window & ((1 << n) - 1) != (1 << n) - 1:  # some page of the run is absent
            return None
        off = self._page_offset(first)
        if off is None or (off - self._sparse_off) // PAGE_SIZE + pages > self._file_pages:
            return None
        self._last_rank = (last, self._last_rank[1] + pages - 1)
        start = off + (pa & PAGE_MASK)
        return self._mm[start:start + size]

    def read_phys(self, pa: int, size: int) -> bytes:
        def phys_page_offset(page: int) -> int:
            off = self._page_offset(page)
            if off is None:
                raise FaultError(page)
            return off
        return read_mapped(self._mm, pa, size, PAGE_SIZE, phys_page_offset)

    # -- metadata ---------------------------------------------------------------------

    def dump_avail(self) -> list[tuple[int, int]]:
        """Physical segments the bitmap numbers (synthesized ``[0, bits*PS)`` for v1/v2)."""
        return list(self._dump_avail)

    def msgbuf_region(self) -> bytes:
        return self._mm[self._msgbuf_off:self._msgbuf_off + self.header.msgbufsize]

    def describe(self) -> dict:
        return {
            "format": self.format_name,
            "arch": self.arch,
            "dump-version": self.version,
            "page-size": self.page_size,
            "present-pages": self.present_pages,
            "truncated-pages": self.truncated_pages,
            "kernbase": self.kernbase,
            "dmapbase": self.dmapbase,
            "dmapend": self.dmapend,
            "msgbuf-size": self.msgbufsize,
        }

    def drop_cached_pages(self) -> None:
        drop_mapped_pages(self._mm)

    def close(self) -> None:
        if self._mm.closed:
            return
        self._bitmap.release()
        self._mm.close()

    def __enter__(self) -> AMD64Minidump:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe(first_bytes: bytes) -> bool:
    return first_bytes[:len(MAGIC_FIELD)] == MAGIC_FIELD


def open(path) -> AMD64Minidump:  # noqa: A001 - registry protocol name
    return AMD64Minidump(path)
