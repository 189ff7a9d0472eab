"""i386 minidump reader against hand-packed dumps: v1 and v2, PAE (u64 PTEs) and
non-PAE (u32 PTEs), KERNBASE 0xc0000000 (<= 11) and 0x00800000 (12+).  Layout per doc
section 3.2; expected translations written down as facts."""

from __future__ import annotations

import struct

import pytest

from vnetdbg import memory
from vnetdbg.errors import FaultError, FormatError
from vnetdbg.memory import minidump_i386 as m

PS = 4096
NX = 1 << 63


def tag_page(tag: bytes) -> bytes:
    return tag * (PS // 8)


def pad(b: bytes) -> bytes:
    return b + bytes(-len(b) % PS)


def ptes(values: dict[int, int], count: int, width: int) -> bytes:
    out = bytearray(count * width)
    for i, v in values.items():
        struct.pack_into("<Q" if width == 8 else "<I", out, i * width, v)
    return bytes(out)


def pack(version, pages, *, bitmapsize, pte: bytes, kernbase, pae, dump_avail=(),
         msgbuf=b"", magic=b"minidump FreeBSD/i386", sizes=None):
    da = b""
    if version >= 2:
        da = pad(b"".join(struct.pack("<QQ", s, e) for s, e in dump_avail) + bytes(16))
    s = {"msgbuf": len(msgbuf), "bitmap": bitmapsize, "pte": len(pte), "dump_avail": len(da)}
    s.update(sizes or {})
    hdr = struct.pack("<24sIIIIIII", magic, version, s["msgbuf"], s["bitmap"], s["pte"],
                      kernbase, 1 if pae else 0, s["dump_avail"])
    bitmap = bytearray(bitmapsize)
    for bit in pages:
        bitmap[bit // 8] |= 1 << (bit % 8)
    return (pad(hdr) + pad(msgbuf) + da + pad(bytes(bitmap)) + pad(pte)
            + b"".join(pages[b] for b in sorted(pages)))


def write(tmp_path, blob, name="vmcore.0"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


# --- v2 PAE, KERNBASE 0x00800000 (FreeBSD 12+) ---------------------------------------
# dump_avail [0x1000, 0x5000) + [0x100000000, 0x100002000): bits 0-3 = PA 0x1000..0x4000,
# bits 4-5 = PA 0x100000000, 0x100001000.  Present: bits 1 (PA 0x2000), 5 (0x100001000).
# PTE[0] -> PA 0x100001000 with NX set, PTE[1] -> 0x2000, PTE[2] invalid,
# PTE[3] -> PA 0x3000 (bit 2 clear, absent).
KB12 = 0x00800000
PAE_PTES = {0: 0x100001000 | NX | 0x63, 1: 0x2000 | 0x3, 3: 0x3000 | 0x3}


def pae_v2() -> bytes:
    return pack(2, {1: tag_page(b"PA002000"), 5: tag_page(b"PA100001")}, bitmapsize=1,
                pte=ptes(PAE_PTES, 512, 8), kernbase=KB12, pae=True,
                dump_avail=[(0x1000, 0x5000), (0x100000000, 0x100002000)],
                msgbuf=b"i386 msgbuf")


def test_pae_v2(tmp_path):
    with memory.open_core(write(tmp_path, pae_v2())) as d:
        assert d.format_name == "i386 minidump v2 (PAE)"
        assert (d.arch, d.page_size, d.kernbase) == ("i386", 4096, KB12)
        assert d.describe()["pae"] is True and d.describe()["present-pages"] == 2
        assert d.msgbuf_region() == b"i386 msgbuf"
        assert d.translate(KB12 + 0x10) == 0x100001010      # above 4 GiB, NX dropped
        assert d.read(KB12 + 0x10, 8) == b"PA100001"
        assert d.read(KB12 + 0xFF8, 16) == b"PA100001PA002000"   # cross-page
        assert d.read_phys(0x2000, 8) == b"PA002000"


@pytest.mark.parametrize("va, why", [
    (KB12 + 0x2000, "no valid kernel PTE"),
    (KB12 + 0x3000, "not present"),
    (KB12 - 0x1000, "outside the kernel map"),
    (KB12 + 512 * 4096, "beyond the dumped kernel map"),
    (0x1_0000_0000, "outside the kernel map"),
])
def test_pae_absent(tmp_path, va, why):
    with memory.open_core(write(tmp_path, pae_v2())) as d:
        with pytest.raises(FaultError, match=why) as e:
            d.read(va, 4)
        assert e.value.address == va


def test_fault_names_first_absent_byte(tmp_path):
    with memory.open_core(write(tmp_path, pae_v2())) as d:
        with pytest.raises(FaultError) as e:
            d.read(KB12 + 0x1FFC, 8)
        assert e.value.address == KB12 + 0x2000


# --- v1 non-PAE, KERNBASE 0xc0000000 (FreeBSD <= 11) -----------------------------------
# Absolute bitmap: bit n = PA n*4K.  Present bits 2, 3 (slots 0, 1).
# u32 PTEs: [0] -> PA 0x3000, [1] -> PA 0x2000 (high flag bits set), [2] invalid.
KB11 = 0xC0000000


def nopae_v1() -> bytes:
    return pack(1, {2: tag_page(b"PA002000"), 3: tag_page(b"PA003000")}, bitmapsize=1,
                pte=ptes({0: 0x3000 | 0x1, 1: 0x2000 | 0x163}, 1024, 4), kernbase=KB11,
                pae=False)


def test_nopae_v1(tmp_path):
    with memory.open_core(write(tmp_path, nopae_v1())) as d:
        assert d.format_name == "i386 minidump v1 (non-PAE)"
        assert d.read(KB11, 8) == b"PA003000"
        assert d.read(KB11 + 0x1000, 8) == b"PA002000"
        assert d.translate(KB11 + 0x1ABC) == 0x2ABC
        assert d.dump_avail() == [(0, 8 * 4096)]
        with pytest.raises(FaultError, match="no valid kernel PTE"):
            d.read(KB11 + 0x2000, 1)
        # 1024 u32 entries cover 4 MiB; the next page is past the region
        with pytest.raises(FaultError, match="beyond"):
            d.read(KB11 + 0x400000, 1)


def test_nopae_reads_u32_entries_not_u64(tmp_path):
    """A non-PAE PTE array read as u64 would merge PTE[0] and PTE[1]: 0x2163_00003001."""
    with memory.open_core(write(tmp_path, nopae_v1())) as d:
        assert d.translate(KB11) == 0x3000


def test_pae_v1_and_nopae_v2(tmp_path):
    v1 = pack(1, {2: tag_page(b"PA002000")}, bitmapsize=1,
              pte=ptes({0: 0x2000 | 1}, 512, 8), kernbase=KB11, pae=True)
    with memory.open_core(write(tmp_path, v1, "a")) as d:
        assert d.format_name == "i386 minidump v1 (PAE)" and d.read(KB11, 8) == b"PA002000"
    v2 = pack(2, {0: tag_page(b"PA002000")}, bitmapsize=1, dump_avail=[(0x2000, 0x3000)],
              pte=ptes({0: 0x2000 | 1}, 1024, 4), kernbase=KB12, pae=False)
    with memory.open_core(write(tmp_path, v2, "b")) as d:
        assert d.format_name == "i386 minidump v2 (non-PAE)" and d.read(KB12, 8) == b"PA002000"


def test_wrong_magic_and_version(tmp_path):
    blob = pae_v2()
    bad = b"minidump FreeBSD/i387".ljust(24, b"\0") + blob[24:]
    assert not m.probe(bad)
    with pytest.raises(FormatError, match="bad i386 minidump magic"):
        m.open(write(tmp_path, bad, "m"))
    v3 = bytearray(blob)
    struct.pack_into("<I", v3, 24, 3)
    with pytest.raises(FormatError, match="unsupported i386 minidump version 3"):
        memory.open_core(write(tmp_path, bytes(v3), "v"))


def test_region_boundaries_truncated(tmp_path):
    blob = pae_v2()   # header 4K, msgbuf 4K, dump_avail 4K, bitmap 4K, pte 4K, data
    for cut, region in [(100, "header"), (8191, "msgbuf"), (12287, "dump_avail"),
                        (16383, "bitmap"), (20479, "pmap")]:
        with pytest.raises(FormatError, match="truncated i386 minidump") as e:
            memory.open_core(write(tmp_path, blob[:cut], f"c{cut}"))
        if region != "header":
            assert f"{region} needs" in str(e.value)


@pytest.mark.parametrize("field, value, message", [
    ("bitmap", 0xFFFFFFFF, "implausible i386 minidump bitmap size"),
    ("pte", 0xFFFFF000, "truncated i386 minidump: pmap needs"),
])
def test_huge_sizes(tmp_path, field, value, message):
    with pytest.raises(FormatError, match=message):
        memory.open_core(write(tmp_path, pack(2, {}, bitmapsize=1, pte=bytes(4096),
                                              kernbase=KB12, pae=True,
                                              dump_avail=[(0, 4096)],
                                              sizes={field: value})))


def test_pure_helpers():
    assert m.pte_index(KB11, KB11 + 0x5123) == 5
    assert m.pte_pa(0x8000_0001_2345_6067, 0xABC, True) == 0x1_2345_6ABC
    assert m.pte_pa(0x1234_5067, 0xABC, False) == 0x1234_5ABC
