"""arm64 minidump reader against tiny hand-packed dumps (v1, v2, v3 with 4 KiB and
16 KiB pages).  The packer lays regions out as the doc (section 3.1) says; expected
translations are written down as facts, not recomputed with the reader's helpers."""

from __future__ import annotations

import struct

import pytest

from vnetdbg import memory
from vnetdbg.errors import FaultError, FormatError
from vnetdbg.memory import minidump_arm64 as m

KERNBASE = 0xFFFF000000000000
DMAPBASE = 0xFFFFA00000000000
DMAPEND = 0xFFFFFF0000000000
DMAPPHYS = 0x40000000
AF, L3 = 0x400, 0x3
XN = (1 << 53) | (1 << 54)


def tag_page(tag: bytes, ps: int = 4096) -> bytes:
    assert len(tag) == 8
    return tag * (ps // 8)


def u64s(values: dict[int, int], count: int) -> bytes:
    out = bytearray(count * 8)
    for i, v in values.items():
        struct.pack_into("<Q", out, i * 8, v)
    return bytes(out)


def pad(b: bytes, ps: int) -> bytes:
    return b + bytes(-len(b) % ps)


def pack(version: int, pages: dict[int, bytes], *, bitmapsize: int, pmap: bytes,
         dump_avail=(), msgbuf: bytes = b"", ps: int = 4096, flags: int = 0,
         magic: bytes = b"minidump FreeBSD/arm64", dmapphys: int = DMAPPHYS,
         sizes: dict | None = None) -> bytes:
    """Header page, msgbuf, dump_avail (v2+), bitmap, pmap, one page per set bit."""
    da = b""
    if version >= 2:
        da = pad(b"".join(struct.pack("<QQ", s, e) for s, e in dump_avail) + bytes(16), ps)
    s = {"msgbuf": len(msgbuf), "bitmap": bitmapsize, "pmap": len(pmap),
         "dump_avail": len(da)}
    s.update(sizes or {})
    hdr = struct.pack("<24sIIIIQQQQII", magic, version, s["msgbuf"], s["bitmap"],
                      s["pmap"], KERNBASE, dmapphys, DMAPBASE, DMAPEND, s["dump_avail"],
                      flags)
    bitmap = bytearray(bitmapsize)
    for bit in pages:
        bitmap[bit // 8] |= 1 << (bit % 8)
    data = b"".join(pages[b] for b in sorted(pages))
    return pad(hdr, ps) + pad(msgbuf, ps) + da + pad(bytes(bitmap), ps) + pad(pmap, ps) + data


def write(tmp_path, blob, name="vmcore.0"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


# --- v2, 4 KiB ------------------------------------------------------------------------
# dump_avail [0x40000000, 0x40010000): bit n = PA 0x40000000 + n*4K.
# Present bits 1, 2, 5 -> file slots 0, 1, 2 (PA 0x40001000, 0x40002000, 0x40005000).
# pmap page 0 (VA KERNBASE .. +2M), L3 entries:
#   [0] -> PA 0x40002000            [1] -> PA 0x40001000 with XN bits set
#   [2] invalid (0)                 [3] descriptor type 1 (not an L3 page)
#   [4] -> PA 0x40003000, bit 3 clear (absent)
# pmap page 1 (VA KERNBASE+2M ..): an L2 block at PA 0x40000000 expanded into fake L3
#   entries: [j] -> PA 0x40000000 + j*4K.
V2_L3 = {0: 0x40002000 | AF | L3, 1: 0x40001000 | AF | XN | L3, 3: 0x40004000 | 1,
         4: 0x40003000 | AF | L3}
V2_L3.update({512 + j: (0x40000000 + j * 4096) | AF | L3 for j in range(512)})


def v2_dump(**kw) -> bytes:
    return pack(2, {1: tag_page(b"PA401000"), 2: tag_page(b"PA402000"),
                    5: tag_page(b"PA405000")},
                bitmapsize=2, pmap=u64s(V2_L3, 1024), dump_avail=[(0x40000000, 0x40010000)],
                msgbuf=b"arm64 msgbuf", **kw)


@pytest.fixture
def v2(tmp_path):
    with memory.open_core(write(tmp_path, v2_dump())) as d:
        yield d


def test_v2_metadata(v2):
    assert v2.format_name == "arm64 minidump v2"
    assert (v2.arch, v2.page_size) == ("arm64", 4096)
    d = v2.describe()
    assert d["present-pages"] == 3 and d["dmapphys"] == DMAPPHYS
    assert d["kernbase"] == KERNBASE and d["dmapbase"] == DMAPBASE
    assert v2.msgbuf_region() == b"arm64 msgbuf"
    assert v2.dump_avail() == [(0x40000000, 0x40010000)]


def test_v2_l3_translation(v2):
    assert v2.read(KERNBASE + 0x10, 8) == b"PA402000"
    assert v2.read(KERNBASE + 0x1000, 8) == b"PA401000"   # XN bits masked off
    assert v2.translate(KERNBASE + 0x1234) == 0x40001234


def test_v2_cross_page_read(v2):
    assert v2.read(KERNBASE + 0xFF8, 16) == b"PA402000PA401000"


def test_v2_expanded_l2_block(v2):
    # VA KERNBASE + 2M + 5*4K -> L3[512+5] -> PA 0x40005000
    assert v2.read(KERNBASE + 0x200000 + 0x5000, 8) == b"PA405000"


def test_v2_dmap_adds_dmapphys(v2):
    assert v2.translate(DMAPBASE + 0x2010) == 0x40002010
    assert v2.read(DMAPBASE + 0x2000, 8) == b"PA402000"
    assert v2.read_phys(0x40005000, 8) == b"PA405000"


@pytest.mark.parametrize("va, why", [
    (KERNBASE + 0x2000, "no valid kernel L3"),          # L3[2] = 0
    (KERNBASE + 0x3000, "no valid kernel L3"),          # L3[3] is a block descriptor
    (KERNBASE + 0x4000, "not present"),                 # PA 0x40003000 bit clear
    (KERNBASE + 0x400000, "beyond the dumped kernel map"),
    (DMAPBASE + 0x3000, "not present"),                 # PA 0x40003000
    (DMAPBASE + 0x100000, "not present"),               # outside dump_avail
    (0xFFFF_0000_0000_0000 - 0x1000, "outside the kernel map"),
    (0x1000, "outside the kernel map"),
])
def test_v2_absent(v2, va, why):
    with pytest.raises(FaultError, match=why) as e:
        v2.read(va, 8)
    assert e.value.address == va


def test_v2_fault_names_first_absent_byte(v2):
    with pytest.raises(FaultError) as e:
        v2.read(KERNBASE + 0x1FF8, 16)       # second page (L3[2]) is invalid
    assert e.value.address == KERNBASE + 0x2000


# --- v3, 16 KiB pages -------------------------------------------------------------------
# flags = 1 (16K).  Header page, regions and data pages are 16384 bytes.
# dump_avail [0x40000000, 0x40040000): 16 slots of 16K; bits 0 and 3 present ->
# slot 0 = PA 0x40000000, slot 1 = PA 0x4000c000.
# pmap: one 16K page of 2048 L3 entries: [0] -> PA 0x4000c000, [1] -> PA 0x40000000.
PS16 = 16384


def v3_16k_dump() -> bytes:
    return pack(3, {0: tag_page(b"PA400000", PS16), 3: tag_page(b"PA40C000", PS16)},
                bitmapsize=2, ps=PS16, flags=1,
                pmap=u64s({0: 0x4000C000 | AF | L3, 1: 0x40000000 | AF | L3}, 2048),
                dump_avail=[(0x40000000, 0x40040000)])


def test_v3_16k_pages(tmp_path):
    blob = v3_16k_dump()
    # header 16K + msgbuf 0 + dump_avail 16K + bitmap 16K + pmap 16K + 2 data pages
    assert len(blob) == 6 * PS16
    with memory.open_core(write(tmp_path, blob)) as d:
        assert d.page_size == PS16 and d.format_name == "arm64 minidump v3"
        assert d.translate(KERNBASE + 0x4010) == 0x40000010   # L3[1], 16K index
        assert d.read(KERNBASE + 0x3FF8, 16) == b"PA40C000PA400000"
        assert d.read(DMAPBASE + 0xC000, 8) == b"PA40C000"
        with pytest.raises(FaultError):
            d.read(DMAPBASE + 0x4000, 8)   # slot bit 1 clear


def test_v3_4k_flag_zero(tmp_path):
    blob = pack(3, {0: tag_page(b"PA400000")}, bitmapsize=1, flags=0,
                pmap=u64s({0: 0x40000000 | AF | L3}, 512),
                dump_avail=[(0x40000000, 0x40001000)])
    with memory.open_core(write(tmp_path, blob)) as d:
        assert d.page_size == 4096 and d.read(KERNBASE, 8) == b"PA400000"


def test_v2_ignores_flags_field(tmp_path):
    """flags exists from v3 on; a v2 header's word there must not change the page size."""
    with memory.open_core(write(tmp_path, v2_dump(flags=1))) as d:
        assert d.page_size == 4096


# --- v1: absolute bitmap, no dump_avail -------------------------------------------------
# bit n = PA n*4K; bits 2 and 3 present (slots 0, 1).  L3[0] -> PA 0x3000, L3[1] -> 0x2000.
def test_v1_absolute_bitmap(tmp_path):
    blob = pack(1, {2: tag_page(b"PA002000"), 3: tag_page(b"PA003000")}, bitmapsize=1,
                pmap=u64s({0: 0x3000 | AF | L3, 1: 0x2000 | AF | L3}, 512), dmapphys=0)
    with memory.open_core(write(tmp_path, blob)) as d:
        assert d.format_name == "arm64 minidump v1"
        assert d.read(KERNBASE, 8) == b"PA003000"
        assert d.read(KERNBASE + 0x1000, 8) == b"PA002000"
        assert d.read(DMAPBASE + 0x2000, 8) == b"PA002000"
        assert d.dump_avail() == [(0, 8 * 4096)]


# --- refusals ---------------------------------------------------------------------------

def test_wrong_magic(tmp_path):
    blob = v2_dump(magic=b"minidump FreeBSD/arm65")
    assert not m.probe(blob)
    with pytest.raises(FormatError, match="bad arm64 minidump magic"):
        m.open(write(tmp_path, blob))


@pytest.mark.parametrize("version", [0, 4, 0xFFFFFFFF])
def test_unknown_version(tmp_path, version):
    blob = bytearray(v2_dump())
    struct.pack_into("<I", blob, 24, version)
    p = write(tmp_path, bytes(blob))
    with pytest.raises(FormatError, match=f"unsupported arm64 minidump version {version}: {p}"):
        memory.open_core(p)


def test_reserved_page_size_flag(tmp_path):
    blob = pack(3, {}, bitmapsize=1, pmap=bytes(4096), flags=2,
                dump_avail=[(0, 4096)])
    with pytest.raises(FormatError, match="page-size flag 2"):
        memory.open_core(write(tmp_path, blob))


def test_region_boundaries_truncated(tmp_path):
    blob = v2_dump()
    # regions: header [0,4K) msgbuf [4K,8K) dump_avail [8K,12K) bitmap [12K,16K)
    # pmap [16K,24K) data [24K, 36K)
    for cut, region in [(4095, "header"), (8191, "msgbuf"), (12287, "dump_avail"),
                        (16383, "bitmap"), (24575, "pmap")]:
        with pytest.raises(FormatError, match="truncated arm64 minidump") as e:
            memory.open_core(write(tmp_path, blob[:cut], f"cut{cut}"))
        if region != "header":
            assert f"{region} needs" in str(e.value)


def test_truncated_data_pages_fault(tmp_path):
    blob = v2_dump()
    with memory.open_core(write(tmp_path, blob[:24576 + 4096 + 100])) as d:
        # slot 0 (PA 0x40001000) is whole; slots 1 and 2 are cut off
        assert d.read(KERNBASE + 0x1000, 8) == b"PA401000"
        assert d.truncated_pages == 2
        with pytest.raises(FaultError):
            d.read(KERNBASE, 8)


@pytest.mark.parametrize("field, value, message", [
    ("bitmap", 0xFFFFF000, "implausible arm64 minidump bitmap size"),
    ("msgbuf", 0xFFFFFFFF, "implausible arm64 minidump msgbuf size"),
    ("dump_avail", 0x10000000, "implausible arm64 minidump dump_avail size"),
    ("pmap", 0x7FFFF000, "truncated arm64 minidump: pmap needs"),
])
def test_sizes_needing_huge_memory_refused(tmp_path, field, value, message):
    blob = v2_dump(sizes={field: value})
    with pytest.raises(FormatError, match=message):
        memory.open_core(write(tmp_path, blob))


def test_unsorted_dump_avail(tmp_path):
    blob = pack(2, {}, bitmapsize=1, pmap=bytes(4096),
                dump_avail=[(0x50000000, 0x50001000), (0x40000000, 0x40001000)])
    with pytest.raises(FormatError, match="not sorted"):
        memory.open_core(write(tmp_path, blob))


def test_pure_helpers():
    assert m.l3_index(KERNBASE, KERNBASE + 0x5000, 4096) == 5
    assert m.l3_index(KERNBASE, KERNBASE + 0x5000, 16384) == 1
    assert m.l3_pa(0x0060_0000_4000_1403 | XN, 0x123, 4096) == 0x40001123
    assert m.l3_valid(0x3) and not m.l3_valid(0x1) and not m.l3_valid(0x2)
    segs = m.build_segments([(0x1000, 0x3000), (0x10000, 0x12000)], 4096)
    assert [m.pa_to_bit(segs, pa) for pa in (0x1000, 0x2fff, 0x10000, 0x11000)] == [0, 1, 2, 3]
    assert m.pa_to_bit(segs, 0x3000) is None and m.pa_to_bit(segs, 0) is None
