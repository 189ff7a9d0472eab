"""The per-arch fixture writers on their own (no kernel build needed): arm64 (4 KiB and
16 KiB granules) and riscv Sv39 page tables, kerneldumpheader packing, the gzip member
and zstd frame shapes."""

from __future__ import annotations

import gzip
import struct

import pytest

from tests.fixturegen import rawimage
from tests.fixturegen.arch_arm64 import ARM64PageTables
from tests.fixturegen.arch_riscv import RISCVPageTables
from tests.fixturegen.physmem import MiB, PhysMem


def _tables(cls, ps):
    mem = PhysMem([(cls.RAM_BASE, cls.RAM_BASE + 64 * MiB)])
    cursor = [cls.RAM_BASE + 32 * MiB]

    def new_table():
        pa = cursor[0]
        cursor[0] += ps
        return pa

    pt = cls(mem, new_table, ps)
    pt.root = new_table()
    return pt


@pytest.mark.parametrize("cls,ps", [(ARM64PageTables, 4096), (ARM64PageTables, 16384),
                                    (RISCVPageTables, 4096)])
def test_page_tables_map_and_translate(cls, ps):
    pt = _tables(cls, ps)
    base = cls.RAM_BASE
    kva = cls.VM_MIN_KERNEL_ADDRESS
    pt.map_block(kva, base + pt.L2_SIZE, 2)
    page_va = kva + 4 * pt.L2_SIZE + 3 * ps
    pt.map_page(page_va, base + 5 * ps)
    pt.map_block(cls.DMAP_MIN_ADDRESS, base, 2)

    assert pt.translate(kva + 0x1234)[0] == base + pt.L2_SIZE + 0x1234
    assert pt.translate(kva + 0x1234)[1] == 2
    assert pt.translate(page_va + 17) == (base + 5 * ps + 17, 3, ps)
    assert pt.translate(page_va + ps) is None
    assert pt.translate(kva + 9 * pt.L2_SIZE) is None
    assert pt.l2_entry(kva) == ("block", base + pt.L2_SIZE)
    kind, table = pt.l2_entry(page_va)
    assert kind == "table"
    entries = pt.l3_entries(table)
    assert len(entries) == ps // 8
    idx = (page_va % pt.L2_SIZE) // ps
    assert pt.l3_pa(entries[idx]) == base + 5 * ps
    assert pt.l2_entry(kva + 7 * pt.L2_SIZE) == ("invalid", 0)
    assert pt.translate(cls.DMAP_MIN_ADDRESS + 0x4321)[0] == base + 0x4321
    fake = struct.unpack(f"<{ps // 8}Q", pt.fake_l3(base))
    assert [pt.l3_pa(e) for e in fake[:3]] == [base, base + ps, base + 2 * ps]


def test_arm64_granule_geometry():
    assert _tables(ARM64PageTables, 4096).L2_SIZE == 2 * MiB
    t16 = _tables(ARM64PageTables, 16384)
    assert (t16.L2_SIZE, t16.L1_SIZE, t16.entries) == (32 * MiB, 64 << 30, 2048)


@pytest.mark.parametrize("version", [1, 4])
def test_kerneldumpheader(version):
    h = rawimage.kerneldumpheader(version, arch="amd64", dumplength=0x123000,
                                  dumptime=1700000000, hostname=b"host",
                                  versionstring=b"FreeBSD 14.2\n", panicstring=b"boom")
    assert len(h) == 512 and h.startswith(b"FreeBSD Kernel Dump\0")
    assert rawimage.kerneldump_parity(h) == 0
    assert struct.unpack_from(">II", h, 32) == (version, 2)
    assert struct.unpack_from(">Q", h, 40)[0] == 0x123000
    if version == 4:
        assert h[495] == 0 and struct.unpack_from(">Q", h, 496)[0] == 0x123000
        assert h[64:68] == b"host"
    else:
        assert struct.unpack_from(">I", h, 56)[0] == 512 and h[60:64] == b"host"


def test_gzip_member_and_zstd_frame():
    data = bytes(70000) + b"vmcore" * 1000
    gz = rawimage.gzip_member(data)
    assert gz[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"
    assert gzip.decompress(gz) == data
    zst = rawimage.zstd_frame(data)
    assert zst[:4] == b"\x28\xb5\x2f\xfd"
    fhd = zst[4]
    assert fhd >> 6 == 0 and not fhd & 0x20       # no content size, not single-segment
    assert fhd & 0x04                             # content checksum
    import zstandard
    assert zstandard.ZstdDecompressor().decompressobj().decompress(zst) == data
