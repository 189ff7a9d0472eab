"""open_core: format registry, refusals with specific messages, and OS-level errors."""

from __future__ import annotations

import errno
import gzip
import io
import os
import struct
import tarfile

import pytest

from vnetdbg import memory
from vnetdbg.errors import FormatError, VnetdbgError


def minidump_header(magic: bytes, version: int = 2) -> bytes:
    """A header page with empty msgbuf, bitmap and pmap: the smallest valid minidump."""
    hdr = struct.pack("<24sIIIIQQQI", magic, version, 0, 0, 0, 0xFFFFFFFF80000000,
                      0xFFFFF80000000000, 0xFFFFFC0000000000, 0)
    return hdr.ljust(4096, b"\0")


def elf_header(e_type: int) -> bytes:
    ident = b"\x7fELF" + bytes([2, 1, 1, 255]) + bytes(8)  # 64-bit LE, OSABI standalone
    return (ident + struct.pack("<HHI", e_type, 62, 1)).ljust(4096, b"\0")


def textdump_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("ddb.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"db> \n"))
    return buf.getvalue()


def write(tmp_path, blob: bytes, name="vmcore.0"):
    p = tmp_path / name
    p.write_bytes(blob)
    return p


def test_registry_entries_have_protocol():
    for fmt in memory.FORMATS:
        assert isinstance(fmt.NAME, str) and callable(fmt.probe) and callable(fmt.open)


def test_opens_amd64_minidump(tmp_path):
    with memory.open_core(write(tmp_path, minidump_header(b"minidump FreeBSD/amd64"))) as d:
        assert d.format_name == "amd64 minidump v2"
        assert d.arch == "amd64"
        assert d.describe()["present-pages"] == 0


@pytest.mark.parametrize("blob, message", [
    (minidump_header(b"minidump FreeBSD/arm"), "FreeBSD/arm minidumps are not supported"),
    (b"minidump FreeBSD/powerpc64".ljust(4096, b"\0"),
     "FreeBSD/powerpc64 minidumps are not supported"),
    (b"minidump FreeBSD/mips".ljust(4096, b"\0"), "FreeBSD/mips minidumps are not supported"),
    (elf_header(2), "ELF file but not a core dump"),
    (b"FreeBSD Text Dump\0amd64".ljust(512, b"\0"), "textdump, not a memory dump"),
    (gzip.compress(minidump_header(b"minidump FreeBSD/amd64")[:100]), "truncated amd64 minidump"),
    (b"\x28\xb5\x2f\xfd" + bytes(20), "corrupted zstd stream"),
    (textdump_tar(), "textdump, not a memory dump"),
    (b"hello world\n", "not a FreeBSD vmcore (unrecognised format)"),
])
def test_refusals_name_the_format_and_path(tmp_path, blob, message):
    p = write(tmp_path, blob)
    with pytest.raises(FormatError) as e:
        memory.open_core(p)
    text = str(e.value)
    assert message in text
    assert text.endswith(str(p))
    assert "\n" not in text


@pytest.mark.parametrize("blob, fmt", [
    (minidump_header(b"minidump FreeBSD/arm64", 3), "arm64 minidump v3"),
    (minidump_header(b"minidump FreeBSD/i386"), "i386 minidump v2 (PAE)"),  # paemode = low word of the amd64 kernbase
    (minidump_header(b"minidump FreeBSD/riscv"), "riscv minidump v2"),
    (elf_header(4), "amd64 ELF full dump"),
])
def test_opens_newly_supported_formats(tmp_path, blob, fmt):
    """Formats that used to be refused as "not supported yet" now open."""
    with memory.open_core(write(tmp_path, blob)) as d:
        assert d.format_name == fmt


def test_encrypted_vmcore_names_decryptcore(tmp_path):
    p = write(tmp_path, os.urandom(4096), "vmcore_encrypted.0")
    with pytest.raises(FormatError, match="decryptcore") as e:
        memory.open_core(p)
    assert str(e.value).endswith(str(p))


def test_wrong_amd64_version_reports_version(tmp_path):
    p = write(tmp_path, minidump_header(b"minidump FreeBSD/amd64", 4))
    with pytest.raises(FormatError, match=f"unsupported amd64 minidump version 4: {p}"):
        memory.open_core(p)


def test_missing_file(tmp_path):
    with pytest.raises(VnetdbgError, match="no such file"):
        memory.open_core(tmp_path / "vmcore.9")


def test_directory(tmp_path):
    with pytest.raises(VnetdbgError, match="is a directory"):
        memory.open_core(tmp_path)


def test_empty_file(tmp_path):
    with pytest.raises(FormatError, match="empty file"):
        memory.open_core(write(tmp_path, b""))


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read mode-000 files")
def test_unreadable_file(tmp_path):
    p = write(tmp_path, minidump_header(b"minidump FreeBSD/amd64"))
    os.chmod(p, 0)
    try:
        with pytest.raises(VnetdbgError, match="permission denied"):
            memory.open_core(p)
    finally:
        os.chmod(p, 0o644)


def test_permission_error_is_one_line(tmp_path, monkeypatch):
    """Same path as the chmod test, but also runs as root (which ignores mode bits)."""
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(memory, "open", denied, raising=False)
    p = write(tmp_path, minidump_header(b"minidump FreeBSD/amd64"))
    with pytest.raises(VnetdbgError, match=f"cannot open core \\(permission denied\\): {p}"):
        memory.open_core(p)
