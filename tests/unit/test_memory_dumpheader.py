"""kerneldumpheader v1-v4 (big-endian, 512 bytes, XOR parity) and raw dump images that
start with one.  Offsets are written down from doc section 1.1, independently of the
parser."""

from __future__ import annotations

import gzip
import struct

import pytest

from vnetdbg import memory
from vnetdbg.errors import FormatError
from vnetdbg.memory import dumpheader as dh

PS = 4096
KERNBASE = 0xFFFFFFFF80000000


def with_parity(block: bytearray) -> bytes:
    """Set the parity word (offset 508) so the XOR of all 128 BE u32 words is 0."""
    struct.pack_into(">I", block, 508, 0)
    x = 0
    for (w,) in struct.iter_unpack(">I", bytes(block)):
        x ^= w
    struct.pack_into(">I", block, 508, x)
    return bytes(block)


def v4(*, magic=b"FreeBSD Kernel Dump", arch=b"amd64", dumplength, blocksize=512,
       keysize=0, compression=0, extent=None, parity=True) -> bytes:
    b = bytearray(512)
    b[0:len(magic)] = magic
    b[20:20 + len(arch)] = arch
    struct.pack_into(">IIQQII", b, 32, 4, 2, dumplength, 1700000000, keysize, blocksize)
    b[64:72] = b"fbsdhost"
    v = b"FreeBSD 14.2-RELEASE GENERIC amd64\n"
    b[128:128 + len(v)] = v
    b[320:334] = b"page fault x y"
    b[495] = compression
    struct.pack_into(">Q", b, 496, dumplength if extent is None else extent)
    out = with_parity(b)
    if not parity:
        out = out[:100] + bytes([out[100] ^ 1]) + out[101:]
    return out


def v1(dumplength) -> bytes:
    """v1 (FreeBSD 5 - 11): dumplength 40, dumptime 48, blocksize 56, hostname 60,
    versionstring 124, panicstring 316."""
    b = bytearray(512)
    b[0:19] = b"FreeBSD Kernel Dump"
    b[20:24] = b"i386"
    struct.pack_into(">IIQQI", b, 32, 1, 2, dumplength, 1200000000, 512)
    b[60:66] = b"oldbox"
    b[124:141] = b"FreeBSD 10.4 i386"
    b[316:320] = b"oops"
    return with_parity(b)


def v3_block(dumplength) -> bytes:
    """v3: dumplength 40, dumpextent 48, dumptime 56, dumpkeysize 64, blocksize 68,
    compression 72 (u8), hostname 73, versionstring 137, panicstring 329."""
    b = bytearray(512)
    b[0:19] = b"FreeBSD Kernel Dump"
    b[20:25] = b"amd64"
    struct.pack_into(">IIQQQIIB", b, 32, 3, 2, dumplength, dumplength * 2, 1500000000, 0,
                     512, 2)
    b[73:77] = b"mid3"
    b[137:141] = b"v3vs"
    b[329:333] = b"v3ps"
    return with_parity(b)


def core() -> bytes:
    """amd64 minidump v1: PTE[0] -> PA 0x2000 (bit 2, first data page, "PA002000")."""
    hdr = struct.pack("<24sIIIIQQQI", b"minidump FreeBSD/amd64", 1, 0, 1, PS, KERNBASE,
                      0xFFFFF80000000000, 0xFFFFFC0000000000, 0)
    return (hdr.ljust(PS, b"\0") + b"\x04".ljust(PS, b"\0")
            + struct.pack("<Q", 0x2001).ljust(PS, b"\0") + b"PA002000" * (PS // 8))


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VNETDBG_CACHE_DIR", str(tmp_path / "vc"))


def write(tmp_path, blob, name="netdump.img"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


def test_parity():
    assert dh.parity(v4(dumplength=1)) == 0
    assert dh.parity(v4(dumplength=1, parity=False)) != 0


def test_parse_v4_fields():
    h = dh.parse(v4(dumplength=0x1234, compression=2, extent=0x8000, keysize=0))
    assert (h.magic, h.architecture, h.version, h.architectureversion) == \
        ("FreeBSD Kernel Dump", "amd64", 4, 2)
    assert (h.dumplength, h.dumptime, h.blocksize, h.dumpextent) == \
        (0x1234, 1700000000, 512, 0x8000)
    assert h.hostname == "fbsdhost" and h.panicstring == "page fault x y"
    assert h.versionstring.endswith("amd64\n") and h.compression == 2 and h.parity_ok


def test_parse_v1_and_v3():
    h = dh.parse(v1(0x5000))
    assert (h.version, h.architecture, h.dumplength, h.dumptime, h.blocksize) == \
        (1, "i386", 0x5000, 1200000000, 512)
    assert (h.hostname, h.versionstring, h.panicstring) == ("oldbox", "FreeBSD 10.4 i386",
                                                           "oops")
    assert h.dumpkeysize == 0 and h.compression == 0 and h.dumpextent == 0x5000
    h3 = dh.parse(v3_block(0x100))
    assert (h3.dumpextent, h3.dumptime, h3.compression, h3.hostname, h3.versionstring,
            h3.panicstring) == (0x200, 1500000000, 2, "mid3", "v3vs", "v3ps")


def test_unknown_version():
    b = bytearray(v4(dumplength=1))
    struct.pack_into(">I", b, 32, 9)
    with pytest.raises(FormatError, match="unsupported kerneldumpheader version 9"):
        dh.parse(with_parity(b))


def test_leading_header_image_opens_inner_core(tmp_path):
    data = core()
    p = write(tmp_path, v4(dumplength=len(data)) + data + bytes(512))
    with memory.open_core(p) as d:
        assert d.format_name == "amd64 minidump v1"
        assert d.read(KERNBASE, 8) == b"PA002000"
        info = d.dump_header()
        assert info["dump-status"] == "unknown"    # no trailing header to compare with
        assert info["hostname"] == "fbsdhost" and info["dump-length"] == len(data)
        assert d.describe()["dump-data-offset"] == 512


def test_larger_blocksize(tmp_path):
    data = core()
    p = write(tmp_path, v4(dumplength=len(data), blocksize=4096).ljust(4096, b"\0") + data)
    with memory.open_core(p) as d:
        assert d.read(KERNBASE, 8) == b"PA002000"
        assert d.describe()["dump-data-offset"] == 4096


def test_gzip_compressed_dump_behind_header(tmp_path):
    z = gzip.compress(core())
    p = write(tmp_path, v4(dumplength=len(z), compression=1) + z + bytes(-len(z) % 512))
    with memory.open_core(p) as d:
        assert d.read(KERNBASE, 8) == b"PA002000"
        assert d.describe()["compression"] == "gzip"


def test_cleared_header_still_opens(tmp_path):
    data = core()
    p = write(tmp_path, v4(magic=b"Cleared Kernel Dump", dumplength=len(data)) + data)
    with memory.open_core(p) as d:
        assert d.dump_header()["dump-status"] == "cleared"


@pytest.mark.parametrize("blob, message", [
    (v4(dumplength=PS * 4, parity=False) + core(), "bad kerneldumpheader parity"),
    (v4(dumplength=PS * 4, keysize=512) + bytes(512) + core(), "decryptcore"),
    (v4(dumplength=PS * 4, compression=7) + core(), "unknown dump compression 7"),
    (v4(dumplength=PS * 4, blocksize=100) + core(), "implausible kerneldumpheader blocksize"),
    (v4(dumplength=PS * 4), "truncated raw dump"),
])
def test_refusals(tmp_path, blob, message):
    p = write(tmp_path, blob)
    with pytest.raises(FormatError, match=message) as e:
        memory.open_core(p)
    assert str(e.value).endswith(str(p)) and "\n" not in str(e.value)


def test_find_trailing_on_a_device_image(tmp_path):
    data = core()
    extent = len(data) + 1024
    hdr = v4(dumplength=len(data), extent=extent)
    image = bytes(65536) + hdr + data + bytes(extent - len(data)) + hdr
    p = write(tmp_path, image, "ada0p3.img")
    h, loc = dh.find_trailing(p)
    assert loc.header_offset == 65536 and loc.data_offset == 65536 + 512
    assert loc.status == "good" and loc.data_length == len(data)
    with dh.open_at(p, h, loc) as d:
        assert d.read(KERNBASE, 8) == b"PA002000"
    bad = bytes(65536) + v4(dumplength=len(data) - 1, extent=extent) + data + \
        bytes(extent - len(data)) + hdr
    p2 = write(tmp_path, bad, "bad.img")
    assert dh.find_trailing(p2)[1].status == "bad"


def test_info_lines_like_savecore():
    text = dh.info_lines(dh.parse(v4(dumplength=4096)), "/dev/ada0p3")
    lines = text.splitlines()
    assert lines[0] == "Dump header from device: /dev/ada0p3"
    assert "  Architecture: amd64" in lines and "  Dump Length: 4096" in lines
    assert "  Compression: none" in lines and "  Magic: FreeBSD Kernel Dump" in lines
    assert "  Dump Status: good" in lines and "  Hostname: fbsdhost" in lines


def test_probe():
    assert dh.probe(v4(dumplength=1)) and dh.probe(v4(magic=b"Cleared Kernel Dump",
                                                      dumplength=1))
    assert not dh.probe(v4(magic=b"FreeBSD Text Dump", dumplength=1))
