"""riscv minidump reader against hand-packed dumps (v1 absolute bitmap, v2 with
dump_avail).  Layout per doc section 3.3 (the arm64 header without flags)."""

from __future__ import annotations

import struct

import pytest

from vnetdbg import memory
from vnetdbg.errors import FaultError, FormatError
from vnetdbg.memory import minidump_riscv as m

PS = 4096
KERNBASE = 0xFFFFFFC000000000
DMAPBASE = 0xFFFFFFD000000000
DMAPEND = 0xFFFFFFE000000000
DMAPPHYS = 0x80000000
V, R, W, X = 1, 2, 4, 8
PBMT_IO = 2 << 61


def pte(pa: int, flags: int) -> int:
    return (pa >> 12) << 10 | flags


def tag_page(tag):
    return tag * (PS // 8)


def pad(b):
    return b + bytes(-len(b) % PS)


def pack(version, pages, *, bitmapsize, entries: dict, dump_avail=(), msgbuf=b"",
         magic=b"minidump FreeBSD/riscv", sizes=None):
    da = b""
    if version >= 2:
        da = pad(b"".join(struct.pack("<QQ", s, e) for s, e in dump_avail) + bytes(16))
    pmap = bytearray(512 * 8)
    for i, v in entries.items():
        struct.pack_into("<Q", pmap, i * 8, v)
    s = {"msgbuf": len(msgbuf), "bitmap": bitmapsize, "pmap": len(pmap), "dump_avail": len(da)}
    s.update(sizes or {})
    hdr = struct.pack("<24sIIIIQQQQI", magic, version, s["msgbuf"], s["bitmap"], s["pmap"],
                      KERNBASE, DMAPPHYS, DMAPBASE, DMAPEND, s["dump_avail"])
    bitmap = bytearray(bitmapsize)
    for bit in pages:
        bitmap[bit // 8] |= 1 << (bit % 8)
    return (pad(hdr) + pad(msgbuf) + da + pad(bytes(bitmap)) + pad(bytes(pmap))
            + b"".join(pages[b] for b in sorted(pages)))


def write(tmp_path, blob, name="vmcore.0"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


# v2: dump_avail [0x80000000, 0x80008000): bit n = PA 0x80000000 + n*4K.
# Present bits 0, 2 (slots 0, 1) = PA 0x80000000, 0x80002000.
# L3[0] -> PA 0x80002000 (R|W), L3[1] -> PA 0x80000000 (X only) with PBMT bits set,
# L3[2] V without R/W/X (a pointer, invalid as a leaf), L3[3] R|W but no V,
# L3[4] -> PA 0x80001000 (absent).
ENTRIES = {0: pte(0x80002000, V | R | W), 1: pte(0x80000000, V | X) | PBMT_IO,
           2: pte(0x80003000, V), 3: pte(0x80000000, R | W), 4: pte(0x80001000, V | R)}


def v2_dump():
    return pack(2, {0: tag_page(b"PA800000"), 2: tag_page(b"PA802000")}, bitmapsize=1,
                entries=ENTRIES, dump_avail=[(0x80000000, 0x80008000)], msgbuf=b"rv")


def test_v2(tmp_path):
    with memory.open_core(write(tmp_path, v2_dump())) as d:
        assert d.format_name == "riscv minidump v2" and d.arch == "riscv"
        assert d.read(KERNBASE + 8, 8) == b"PA802000"
        assert d.translate(KERNBASE + 0x1010) == 0x80000010   # PBMT bits dropped
        assert d.read(KERNBASE + 0xFF8, 16) == b"PA802000PA800000"
        assert d.read(DMAPBASE + 0x2000, 8) == b"PA802000"    # DMAP adds dmapphys
        assert d.describe()["dmapphys"] == DMAPPHYS and d.msgbuf_region() == b"rv"


@pytest.mark.parametrize("va, why", [
    (KERNBASE + 0x2000, "no valid kernel L3"),
    (KERNBASE + 0x3000, "no valid kernel L3"),
    (KERNBASE + 0x4000, "not present"),
    (KERNBASE + 0x200000, "beyond"),
    (DMAPBASE + 0x1000, "not present"),
    (0x1000, "outside"),
])
def test_v2_absent(tmp_path, va, why):
    with memory.open_core(write(tmp_path, v2_dump())) as d:
        with pytest.raises(FaultError, match=why) as e:
            d.read(va, 4)
        assert e.value.address == va


def test_v1_absolute_bitmap(tmp_path):
    # bit n = PA n*4K; bit 3 present -> PA 0x3000; L3[0] -> 0x3000
    blob = pack(1, {3: tag_page(b"PA003000")}, bitmapsize=1,
                entries={0: pte(0x3000, V | R)})
    with memory.open_core(write(tmp_path, blob)) as d:
        assert d.format_name == "riscv minidump v1" and d.read(KERNBASE, 8) == b"PA003000"


def test_refusals(tmp_path):
    blob = bytearray(v2_dump())
    struct.pack_into("<I", blob, 24, 3)
    with pytest.raises(FormatError, match="unsupported riscv minidump version 3"):
        memory.open_core(write(tmp_path, bytes(blob), "v3"))
    with pytest.raises(FormatError, match="truncated riscv minidump: bitmap needs"):
        memory.open_core(write(tmp_path, v2_dump()[:16383], "cut"))
    with pytest.raises(FormatError, match="implausible riscv minidump bitmap"):
        memory.open_core(write(tmp_path, pack(2, {}, bitmapsize=1, entries={},
                                              sizes={"bitmap": 0xFFFFF000}), "big"))
    assert not m.probe(b"minidump FreeBSD/riscv64".ljust(24, b"\0"))


def test_pure_helpers():
    assert m.pte_valid(V | R) and not m.pte_valid(V) and not m.pte_valid(R | W | X)
    assert m.pte_pa(pte(0x1_2345_6000, V | R) | (1 << 63) | PBMT_IO, 0x42) == 0x1_2345_6042
