"""amd64 minidump reader against tiny hand-packed dumps.

The packer here is deliberately independent of the reader and of tests/fixturegen: it
lays out regions as doc section 2.2 describes and the tests state the expected
translations as facts (bit numbers, file slots, page tags) rather than recomputing them.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct

import pytest

from vnetdbg.errors import FaultError, FormatError
from vnetdbg.memory import minidump_amd64 as m

PS = 4096
KERNBASE = 0xFFFFFFFF80000000
DMAPBASE = 0xFFFFF80000000000
DMAPEND = 0xFFFFFC0000000000
V, PS_BIT, NX = 0x1, 0x80, 1 << 63


def tag_page(tag: bytes) -> bytes:
    """An 8-byte tag repeated over the page, so any aligned 8 bytes read back the tag."""
    assert len(tag) == 8
    return tag * (PS // 8)


def u64s(values: dict[int, int], count: int) -> bytes:
    """A flat u64 LE array of ``count`` entries with the given index -> value set."""
    out = bytearray(count * 8)
    for i, v in values.items():
        struct.pack_into("<Q", out, i * 8, v)
    return bytes(out)


def pad(b: bytes) -> bytes:
    return b + bytes(-len(b) % PS)


def pack(version: int, bits: dict[int, bytes], *, bitmapsize: int, pmap: bytes,
         dump_avail: list[tuple[int, int]] = (), msgbuf: bytes = b"",
         kernbase: int = KERNBASE, magic: bytes = b"minidump FreeBSD/amd64") -> bytes:
    """Minidump bytes: header, msgbuf, dump_avail (v3), bitmap, pmap, then one page per
    set bit in ascending bit order."""
    dump_avail_page = b""
    if version == 3:
        pairs = b"".join(struct.pack("<QQ", s, e) for s, e in dump_avail)
        dump_avail_page = pad(pairs + bytes(16))  # terminating pair
    header = struct.pack("<24sIIIIQQQI", magic, version, len(msgbuf), bitmapsize,
                         len(pmap), kernbase, DMAPBASE, DMAPEND, len(dump_avail_page))
    bitmap = bytearray(bitmapsize)
    for bit in bits:
        bitmap[bit // 8] |= 1 << (bit % 8)
    data = b"".join(bits[b] for b in sorted(bits))
    return (pad(header) + pad(msgbuf) + dump_avail_page + pad(bytes(bitmap)) + pad(pmap)
            + data)


def write(tmp_path, blob: bytes, name="vmcore.0"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


# --- v1: flat PTE array from KERNBASE -------------------------------------------------
# PTE[0] -> PA 0x3000 (slot 1), PTE[1] -> PA 0x2000 (slot 0), PTE[2] invalid,
# PTE[3] -> PA 0x4000, whose bit is clear.
V1_PTES = {0: 0x3000 | V, 1: 0x2000 | V, 3: 0x4000 | V}


def v1_dump() -> bytes:
    return pack(1, {0x2: tag_page(b"PA002000"), 0x3: tag_page(b"PA003000")},
                bitmapsize=1, pmap=u64s(V1_PTES, 16), msgbuf=b"hello msgbuf")


# --- v2: PDEs from kernbase -------------------------------------------------------------
# PDE[0] -> PT page at PA 0x5000; PDE[1] = 2 MiB superpage at PA 0x200000.
# PT: PTE[1] -> 0x9000, PTE[2] -> 0x7000, PTE[3] -> 0xb000 (absent), PTE[5] -> 0x9000|NX.
# Present bits (= pa >> 12): 0x5, 0x7, 0x9, 0x200, 0x201, 0x203 -> file slots 0..5.
V2_PT = u64s({1: 0x9000 | V | 0x2, 2: 0x7000 | V, 3: 0xB000 | V, 5: NX | 0x9000 | V}, 512)
V2_PAGES = {
    0x5: V2_PT,
    0x7: tag_page(b"PA007000"),
    0x9: tag_page(b"PA009000"),
    0x200: tag_page(b"PA200000"),
    0x201: tag_page(b"PA201000"),
    0x203: tag_page(b"PA203000"),
}


def v2_dump() -> bytes:
    pdes = u64s({0: 0x5000 | V | 0x2, 1: 0x200000 | PS_BIT | V | NX}, 512)
    # bitmap must hold bit 0x203 -> 0x41 bytes; v2 allows an unrounded bitmapsize
    return pack(2, V2_PAGES, bitmapsize=0x41, pmap=pdes)


# --- v3: dump_avail [0x1000,0x3000) and [0x100000,0x102800) -----------------------------
# slots: seg0 = 3 - 1 = 2 (bits 0,1 = PA 0x1000,0x2000); seg1 = ceil(0x102800/PS) - 0x100
# = 3 (bits 2,3,4 = PA 0x100000,0x101000,0x102000).  Present: bit 1 (PA 0x2000, slot 0)
# and bit 3 (PA 0x101000, a page after the hole, slot 1).  PDE[0] = superpage at PA 0.
V3_AVAIL = [(0x1000, 0x3000), (0x100000, 0x102800)]


def v3_dump(msgbuf=b"v3 msgbuf ring") -> bytes:
    return pack(3, {1: tag_page(b"PA002000"), 3: tag_page(b"PA101000")}, bitmapsize=1,
                pmap=u64s({0: 0x0 | PS_BIT | V}, 512), dump_avail=V3_AVAIL, msgbuf=msgbuf)


@pytest.fixture
def v1(tmp_path):
    with m.open(write(tmp_path, v1_dump())) as d:
        yield d


@pytest.fixture
def v2(tmp_path):
    with m.open(write(tmp_path, v2_dump())) as d:
        yield d


@pytest.fixture
def v3(tmp_path):
    with m.open(write(tmp_path, v3_dump())) as d:
        yield d


# --- translation ------------------------------------------------------------------------

def test_v1_pte_translation(v1):
    assert v1.format_name == "amd64 minidump v1"
    assert v1.translate(KERNBASE + 0x10) == 0x3010
    assert v1.read(KERNBASE + 0x10, 8) == b"PA003000"
    assert v1.read(KERNBASE + 0x1008, 8) == b"PA002000"


def test_v1_read_across_pages_in_reverse_file_order(v1):
    # VA page 0 -> file slot 1, VA page 1 -> file slot 0
    assert v1.read(KERNBASE + 0xFFC, 8) == b"3000PA00"


def test_v1_invalid_and_absent_pte(v1):
    with pytest.raises(FaultError) as e:
        v1.read(KERNBASE + 0x2000, 1)
    assert e.value.address == KERNBASE + 0x2000
    with pytest.raises(FaultError) as e:
        v1.read(KERNBASE + 0x3004, 4)  # valid PTE, page 0x4000 not in bitmap
    assert e.value.address == KERNBASE + 0x3004
    with pytest.raises(FaultError):
        v1.translate(KERNBASE + 16 * PS)  # beyond the 16-entry PTE array


def test_v2_pde_with_pt_page_from_sparse_data(v2):
    assert v2.translate(KERNBASE + 0x1234) == 0x9234
    assert v2.read(KERNBASE + 0x1000, 8) == b"PA009000"
    assert v2.read(KERNBASE + 0x2ff8, 8) == b"PA007000"
    assert v2.read(KERNBASE + 0x5000, 8) == b"PA009000"  # NX bit masked off


def test_v2_read_spanning_non_contiguous_file_pages(v2):
    # VA +0x1000 -> PA 0x9000 (slot 2), VA +0x2000 -> PA 0x7000 (slot 1)
    data = v2.read(KERNBASE + 0x1FFC, 8)
    assert data == b"9000" + b"PA00"


def test_v2_superpage_read_inside(v2):
    assert v2.translate(KERNBASE + 0x201008) == 0x201008
    assert v2.read(KERNBASE + 0x201008, 8) == b"PA201000"
    assert v2.read(KERNBASE + 0x203FF8, 8) == b"PA203000"
    assert v2.read(KERNBASE + 0x200FFC, 8) == b"0000PA20"


def test_v2_superpage_absent_subpage(v2):
    with pytest.raises(FaultError) as e:
        v2.read(KERNBASE + 0x201FF0, 0x20)  # starts present, crosses into absent 0x202000
    assert e.value.address == KERNBASE + 0x202000


def test_v2_absent_page_behind_valid_pte(v2):
    with pytest.raises(FaultError) as e:
        v2.read(KERNBASE + 0x2FFE, 4)  # 0x7000 present, then VA +0x3000 -> PA 0xb000 absent
    assert e.value.address == KERNBASE + 0x3000


def test_v2_invalid_pde_and_unmapped(v2):
    for va in (KERNBASE + 0x400000, KERNBASE + (1 << 30), 0x1000, DMAPEND):
        with pytest.raises(FaultError) as e:
            v2.read(va, 1)
        assert e.value.address == va


def test_v2_dmap(v2):
    assert v2.translate(DMAPBASE + 0x7010) == 0x7010
    assert v2.read(DMAPBASE + 0x7010, 8) == b"PA007000"
    with pytest.raises(FaultError) as e:
        v2.read(DMAPBASE + 0x6000, 8)
    assert e.value.address == DMAPBASE + 0x6000


def test_read_phys(v2):
    assert v2.read_phys(0x200008, 8) == b"PA200000"
    assert v2.read_phys(0x5008, 8) == struct.pack("<Q", 0x9000 | V | 0x2)
    with pytest.raises(FaultError) as e:
        v2.read_phys(0x201FFF, 2)
    assert e.value.address == 0x202000


def test_v3_dump_avail_relative_bits(v3):
    assert v3.dump_avail() == V3_AVAIL
    assert v3.read_phys(0x2000, 8) == b"PA002000"
    assert v3.read_phys(0x101000, 8) == b"PA101000"  # after the hole: bit 3, slot 1
    assert v3.read(DMAPBASE + 0x101008, 8) == b"PA101000"
    assert v3.read(KERNBASE + 0x101008, 8) == b"PA101000"  # superpage at PA 0


def test_v3_hole_and_clear_bits(v3):
    for pa in (0x3000, 0x50000, 0x1000, 0x100000, 0x102000, 0x103000, 0):
        with pytest.raises(FaultError):
            v3.read_phys(pa, 1)


def test_describe_and_msgbuf(v3):
    assert v3.describe() == {
        "format": "amd64 minidump v3", "arch": "amd64", "dump-version": 3,
        "page-size": 4096, "present-pages": 2, "truncated-pages": 0,
        "kernbase": KERNBASE, "dmapbase": DMAPBASE, "dmapend": DMAPEND,
        "msgbuf-size": 14,
    }
    assert v3.msgbuf_region() == b"v3 msgbuf ring"


def test_v1_v2_synthesize_absolute_dump_avail(v1, v2):
    assert v1.dump_avail() == [(0, 8 * PS)]
    assert v2.dump_avail() == [(0, 0x41 * 8 * PS)]


def test_read_zero_bytes_and_close_twice(tmp_path):
    d = m.open(write(tmp_path, v2_dump()))
    assert d.read(KERNBASE, 0) == b""
    d.close()
    d.close()


# --- pure helpers -----------------------------------------------------------------------

def test_pa_to_bit_segments():
    segs = m.build_segments(V3_AVAIL)
    assert [m.pa_to_bit(segs, pa) for pa in (0x1000, 0x2000, 0x100000, 0x101000, 0x102000)] \
        == [0, 1, 2, 3, 4]
    assert m.pa_to_bit(segs, 0x0) is None
    assert m.pa_to_bit(segs, 0x3000) is None
    assert m.pa_to_bit(segs, 0x103000) is None
    assert m.pa_to_bit(m.build_segments([]), 0) is None


def test_index_helpers():
    assert m.pde_index(KERNBASE, KERNBASE + 0x3FFFFF) == 1
    assert m.pte_index(KERNBASE, KERNBASE + 0x3FFF) == 3
    assert m.superpage_pa(0x200000 | PS_BIT | V | NX, KERNBASE + 0x201008) == 0x201008
    assert m.pte_pa(NX | 0x9000 | 0x63, 0xABC) == 0x9ABC


def test_rank_matches_naive_popcount():
    rng = random.Random(1234)
    bitmap = bytes(rng.choice((0, 0, 0xFF, rng.randrange(256))) for _ in range(5000))
    index = m.build_rank_index(bitmap)
    assert index[-1] == sum(bin(b).count("1") for b in bitmap)
    nbits = len(bitmap) * 8
    probes = [0, 1, 7, 8, 4095, 4096, 4097, 8192, nbits - 1, nbits]
    probes += [rng.randrange(nbits) for _ in range(500)]
    for bit in probes:
        naive = sum((bitmap[i // 8] >> (i % 8)) & 1 for i in range(bit))
        assert m.rank(bitmap, index, bit) == naive, bit


# --- validation -------------------------------------------------------------------------

def test_wrong_magic(tmp_path):
    p = write(tmp_path, v2_dump().replace(b"FreeBSD/amd64", b"FreeBSD/amd65", 1))
    with pytest.raises(FormatError, match="bad amd64 minidump magic"):
        m.open(p)


def test_unknown_version(tmp_path):
    blob = bytearray(v2_dump())
    struct.pack_into("<I", blob, 24, 4)
    with pytest.raises(FormatError, match="unsupported amd64 minidump version 4"):
        m.open(write(tmp_path, bytes(blob)))


def test_bitmapsize_beyond_file(tmp_path):
    blob = bytearray(v2_dump())
    struct.pack_into("<I", blob, 32, 0x100000)
    with pytest.raises(FormatError, match=r"bitmap needs 1048576 bytes at offset 4096"):
        m.open(write(tmp_path, bytes(blob)))


def test_absurd_bitmapsize_refused_before_allocating(tmp_path):
    blob = bytearray(v2_dump())
    struct.pack_into("<I", blob, 32, 0xFFFFFFFF)
    with pytest.raises(FormatError, match="implausible amd64 minidump bitmap size"):
        m.open(write(tmp_path, bytes(blob)))


def test_empty_and_short_files(tmp_path):
    for blob in (b"", v2_dump()[:100]):
        with pytest.raises(FormatError, match="header needs 4096 bytes"):
            m.open(write(tmp_path, blob))


# v3 layout with a 14-byte msgbuf: header 0, msgbuf 4096, dump_avail 8192,
# bitmap 12288, pmap 16384, sparse data 20480 (2 pages).
@pytest.mark.parametrize("length, region", [
    (4096, "msgbuf"), (8192, "dump_avail"), (12288, "bitmap"), (16384 + 100, "pmap"),
])
def test_truncated_at_region_boundary(tmp_path, length, region):
    with pytest.raises(FormatError, match=f"truncated amd64 minidump: {region} needs"):
        m.open(write(tmp_path, v3_dump()[:length]))


@pytest.mark.parametrize("length, present", [(20480, 0), (20480 + PS, 1), (20480 + PS + 10, 1)])
def test_truncated_sparse_data_is_allowed(tmp_path, length, present):
    with m.open(write(tmp_path, v3_dump()[:length])) as d:
        assert d.describe()["present-pages"] == present
        assert d.truncated_pages == 2 - present
        with pytest.raises(FaultError) as e:
            d.read_phys(0x101000, 8)  # slot 1 is past the end of the file
        assert e.value.address == 0x101000
        if present:
            assert d.read_phys(0x2000, 8) == b"PA002000"


def test_dump_avail_must_be_sorted(tmp_path):
    blob = pack(3, {}, bitmapsize=1, pmap=u64s({}, 512),
                dump_avail=[(0x100000, 0x200000), (0x1000, 0x2000)])
    with pytest.raises(FormatError, match="dump_avail is not sorted"):
        m.open(write(tmp_path, blob))


def test_opened_read_only(tmp_path):
    p = write(tmp_path, v2_dump())
    before = (os.stat(p).st_mtime_ns, hashlib.sha256(p.read_bytes()).digest())
    with m.open(p) as d:
        d.read(KERNBASE + 0x1000, 16)
    assert (os.stat(p).st_mtime_ns, hashlib.sha256(p.read_bytes()).digest()) == before
    ro = tmp_path / "vmcore.ro"
    shutil.copy(p, ro)
    os.chmod(ro, 0o444)
    with m.open(ro) as d:
        assert d.read(KERNBASE + 0x1000, 8) == b"PA009000"


def test_multi_page_dmap_reads_take_the_run_path_only_when_whole(v2):
    """PA 0x200000-0x201fff are present and adjacent in the file (one slice); 0x202000
    is absent, so a read over it must fault exactly there, not return a short run."""
    whole = v2.read(DMAPBASE + 0x200ff8, 16)
    assert whole == tag_page(b"PA200000")[-8:] + tag_page(b"PA201000")[:8]
    assert v2.read(DMAPBASE + 0x200000, 2 * 4096) == tag_page(b"PA200000") + tag_page(b"PA201000")
    with pytest.raises(FaultError) as e:
        v2.read(DMAPBASE + 0x201ff0, 0x20)
    assert e.value.address == DMAPBASE + 0x202000
    # 0x7000 and 0x9000 are present, 0x8000 is not
    with pytest.raises(FaultError) as e:
        v2.read(DMAPBASE + 0x7000, 3 * 4096)
    assert e.value.address == DMAPBASE + 0x8000
