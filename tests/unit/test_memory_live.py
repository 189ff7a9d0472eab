"""Live kernel sources (/dev/kmem, /dev/mem) and raw physical images, tested on Linux
with regular files standing in for the devices: the KVA -> offset function and the
pread callable are injected, so short reads and EFAULT are exercised with fakes."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from vnetdbg.errors import FaultError, VnetdbgError
from vnetdbg.memory import live, physimage

PS = 4096
KERNBASE = 0xFFFFFFFF80000000
V, RW, PSB = 0x1, 0x2, 0x80


# --- /dev/kmem --------------------------------------------------------------------------

def test_kmem_offset_is_negative_for_upper_half():
    assert live.kmem_offset(0xFFFFFFFF80001000) == -0x7FFFF000
    assert live.kmem_offset(0xFFFFF80000000000) == -0x80000000000
    assert live.kmem_offset(0x1000) == 0x1000
    assert live.kmem_offset(1 << 63) == -(1 << 63)


@pytest.fixture
def kmem_file(tmp_path):
    """Stand-in for /dev/kmem: file offset = kva - KERNBASE; 3 pages tagged K0, K1, K2."""
    p = tmp_path / "kmem"
    p.write_bytes(b"".join(f"KMEMPG{i:02d}".encode() * (PS // 8) for i in range(3)))
    return p


def test_kmem_reads_through_offset_function(kmem_file):
    with live.KmemSource(str(kmem_file), offset=lambda kva: kva - KERNBASE) as k:
        assert k.read(KERNBASE + PS + 8, 8) == b"KMEMPG01"
        assert k.read(KERNBASE + PS - 4, 8) == b"PG00KMEM"      # cross-page
        assert k.describe()["live"] is True and k.msgbuf_region() is None
        with pytest.raises(FaultError) as e:
            k.read(KERNBASE + 3 * PS - 4, 8)                    # past the end: short read
        assert e.value.address == KERNBASE + 3 * PS


def test_kmem_passes_negative_offsets_to_pread(kmem_file):
    seen = []

    def fake_pread(fd, n, off):
        seen.append((n, off))
        return b"\xaa" * n

    with live.KmemSource(str(kmem_file), pread=fake_pread) as k:
        assert k.read(0xFFFFFFFF80000FF0, 32) == b"\xaa" * 32
    # clamped at the page boundary, offsets are kva - 2**64
    assert seen == [(16, 0xFFFFFFFF80000FF0 - (1 << 64)), (16, -0x7FFFF000)]


def test_kmem_short_read_then_nothing_faults_at_exact_byte(kmem_file):
    calls = []

    def fake_pread(fd, n, off):
        calls.append((n, off))
        if len(calls) == 1:
            return b"x" * 100            # short read: the kernel copied 100 bytes
        return b""                       # then nothing: unmapped

    with live.KmemSource(str(kmem_file), offset=lambda kva: kva, pread=fake_pread) as k:
        with pytest.raises(FaultError, match="short read") as e:
            k.read(0x10000, 200)
    assert e.value.address == 0x10000 + 100
    assert calls == [(200, 0x10000), (100, 0x10064)]


@pytest.mark.parametrize("err", [errno.EFAULT, errno.EIO, errno.ENXIO])
def test_kmem_efault_is_a_fault(kmem_file, err):
    def fake_pread(fd, n, off):
        raise OSError(err, os.strerror(err))

    with live.KmemSource(str(kmem_file), offset=lambda kva: kva, pread=fake_pread) as k:
        with pytest.raises(FaultError) as e:
            k.read(0x5000, 4)
    assert e.value.address == 0x5000


def test_kmem_permission_error_is_one_line(tmp_path, monkeypatch):
    def denied(*a, **kw):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(live.os, "open", denied)
    with pytest.raises(VnetdbgError, match="need root or group kmem") as e:
        live.KmemSource("/dev/kmem")
    assert "\n" not in str(e.value)


def test_kmem_missing_device(tmp_path):
    with pytest.raises(VnetdbgError, match="no such device"):
        live.KmemSource(str(tmp_path / "nokmem"))


# --- raw physical images and /dev/mem -----------------------------------------------------
# Image (file offset = PA), 64 KiB:
#   KPML4phys at VA KERNBASE+0x1000 -> PA 0x1000 holds 0x2000 (PML4).
#   PML4[511] -> 0x3000; PDP[510] -> 0x4000; PD[0] -> PT 0x5000;
#   PT[8] -> PA 0x8000 ("PHYS8000"), PT[9] -> PA 0x9000 ("PHYS9000"),
#   PT[10] -> PA 0x200000 (past the end of the image).
SYMS = {"kernbase": KERNBASE, "KPML4phys": KERNBASE + 0x1000}


def image() -> bytearray:
    img = bytearray(0x10000)

    def q(pa, v):
        struct.pack_into("<Q", img, pa, v)
    q(0x1000, 0x2000)
    q(0x2000 + 8 * 511, 0x3000 | V | RW)
    q(0x3000 + 8 * 510, 0x4000 | V | RW)
    q(0x4000, 0x5000 | V | RW)
    q(0x5000 + 8 * 8, 0x8000 | V)
    q(0x5000 + 8 * 9, 0x9000 | V)
    q(0x5000 + 8 * 10, 0x200000 | V)
    img[0x8000:0x9000] = b"PHYS8000" * 512
    img[0x9000:0xA000] = b"PHYS9000" * 512
    return img


@pytest.fixture
def phys(tmp_path):
    p = tmp_path / "guest.mem"
    p.write_bytes(bytes(image()))
    src = physimage.RawPhysImage(str(p))
    src.attach_symbols(SYMS.get)
    yield p, src
    src.close()


def test_physimage_reads(phys):
    p, src = phys
    assert src.read(KERNBASE + 0x8000, 8) == b"PHYS8000"
    assert src.read(KERNBASE + 0x8FFC, 8) == b"8000PHYS"       # cross-page
    assert src.read_phys(0x9000, 8) == b"PHYS9000"
    d = src.describe()
    assert d["image-size"] == 0x10000 and d["page-table-root"] == 0x2000


def test_physimage_pte_past_end_faults_that_page_only(phys):
    _, src = phys
    with pytest.raises(FaultError, match="past the end") as e:
        src.read(KERNBASE + 0xA000, 8)
    assert e.value.address == KERNBASE + 0xA000
    with pytest.raises(FaultError) as e:
        src.read(KERNBASE + 0x9FF8, 16)
    assert e.value.address == KERNBASE + 0xA000
    assert src.read(KERNBASE + 0x9000, 8) == b"PHYS9000"        # still fine


def test_physimage_sees_changes_between_reads(phys):
    p, src = phys
    assert src.read(KERNBASE + 0x8000, 8) == b"PHYS8000"
    with open(p, "r+b") as f:                     # the guest writes to its memory...
        f.seek(0x8000)
        f.write(b"CHANGED!")
        f.seek(0x5000 + 8 * 9)                    # ...and remaps a page
        f.write(struct.pack("<Q", 0x8000 | V))
    assert src.read(KERNBASE + 0x8000, 8) == b"CHANGED!"
    assert src.read(KERNBASE + 0x9000, 8) == b"CHANGED!"


def test_physimage_short_read_at_end(phys):
    p, src = phys
    with pytest.raises(FaultError) as e:
        src.read_phys(0xFFFC, 8)
    assert e.value.address == 0x10000


def test_physimage_needs_symbols(tmp_path):
    p = tmp_path / "m"
    p.write_bytes(bytes(image()))
    with physimage.RawPhysImage(str(p)) as src:
        with pytest.raises(FaultError, match="KPML4phys"):
            src.read(KERNBASE + 0x8000, 8)


def test_devmem_stand_in(tmp_path):
    p = tmp_path / "mem"
    p.write_bytes(bytes(image()))
    with live.DevMemSource(str(p)) as m:
        m.attach_symbols(SYMS.get)
        assert m.read(KERNBASE + 0x9000, 8) == b"PHYS9000"
        assert m.describe()["live"] is True


def test_devmem_efault_from_pread(tmp_path):
    p = tmp_path / "mem"
    p.write_bytes(bytes(image()))
    real = os.pread

    def pread(fd, n, off):
        if off >= 0x9000:
            raise OSError(errno.EFAULT, "Bad address")
        return real(fd, n, off)

    with live.DevMemSource(str(p), pread=pread) as m:
        m.attach_symbols(SYMS.get)
        assert m.read(KERNBASE + 0x8000, 8) == b"PHYS8000"
        with pytest.raises(FaultError) as e:
            m.read(KERNBASE + 0x9004, 4)
        assert e.value.address == KERNBASE + 0x9004
