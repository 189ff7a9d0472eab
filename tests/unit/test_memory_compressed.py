"""Compressed vmcores and the core cache: gzip and zstd round trips (zstandard module
and zstd command), reuse without decompressing, sparse output, corrupted and truncated
streams, the decompression-bomb limit and the free-space check."""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
from collections import namedtuple

import pytest

from vnetdbg import memory
from vnetdbg.errors import FormatError, VnetdbgError
from vnetdbg.memory import compressed

PS = 4096
KERNBASE = 0xFFFFFFFF80000000
ZERO_PAGES = 256


def amd64_v1_core() -> bytes:
    """amd64 minidump v1: PTE[0] -> PA 0x2000 (bit 2, slot 0, tag "PA002000"), then
    256 present all-zero pages (bits 8..263) so the unpacked core has a 1 MiB hole."""
    hdr = struct.pack("<24sIIIIQQQI", b"minidump FreeBSD/amd64", 1, 0, 64, PS, KERNBASE,
                      0xFFFFF80000000000, 0xFFFFFC0000000000, 0)
    bitmap = bytearray(64)
    for bit in [2] + list(range(8, 8 + ZERO_PAGES)):
        bitmap[bit // 8] |= 1 << (bit % 8)
    pte = struct.pack("<Q", 0x2000 | 1).ljust(PS, b"\0")
    return (hdr.ljust(PS, b"\0") + bytes(bitmap).ljust(PS, b"\0") + pte
            + b"PA002000" * (PS // 8) + bytes(PS * ZERO_PAGES))


def zstd_bytes(data: bytes) -> bytes:
    import zstandard
    return zstandard.ZstdCompressor(write_checksum=True).compress(data)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("VNETDBG_CACHE_DIR", str(tmp_path / "vc"))
    return d


def leftovers(d) -> list[str]:
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def test_default_cache_dir(monkeypatch):
    monkeypatch.setenv("VNETDBG_CACHE_DIR", "/x")
    assert compressed.default_cache_dir() == "/x/cores"
    monkeypatch.delenv("VNETDBG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", "/y")
    assert compressed.default_cache_dir() == "/y/vnetdbg/cores"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", "/home/z")
    assert compressed.default_cache_dir() == "/home/z/.cache/vnetdbg/cores"


def test_gzip_round_trip_and_reuse(tmp_path, cache):
    p = tmp_path / "vmcore.0.gz"
    p.write_bytes(gzip.compress(amd64_v1_core()))
    before = compressed.DECOMPRESSIONS
    with compressed.open(p, cache_dir=str(cache)) as d:
        assert d.format_name == "amd64 minidump v1"
        assert d.read(KERNBASE, 8) == b"PA002000"
        desc = d.describe()
        assert desc["compression"] == "gzip" and desc["cache-reused"] is False
        cache_file = desc["cache-file"]
    assert compressed.DECOMPRESSIONS == before + 1
    st = os.stat(cache_file)
    assert st.st_size == len(amd64_v1_core())
    assert st.st_blocks * 512 < st.st_size - 512 * 1024     # the zero pages are a hole
    mtime = st.st_mtime_ns
    with compressed.open(p, cache_dir=str(cache)) as d:
        assert d.describe()["cache-reused"] is True and d.read(KERNBASE, 8) == b"PA002000"
    assert compressed.DECOMPRESSIONS == before + 1          # not decompressed again
    assert os.stat(cache_file).st_mtime_ns == mtime
    assert leftovers(cache) == [os.path.basename(cache_file)]


def test_open_core_dispatches_and_uses_env_cache(tmp_path, cache):
    p = tmp_path / "vmcore.1.gz"
    p.write_bytes(gzip.compress(amd64_v1_core()))
    with memory.open_core(p) as d:
        assert d.read(KERNBASE + 8, 8) == b"PA002000"
        assert d.describe()["cache-file"].startswith(str(tmp_path / "vc" / "cores"))


def test_multi_member_gzip(tmp_path, cache):
    core = amd64_v1_core()
    p = tmp_path / "vmcore.2.gz"
    p.write_bytes(gzip.compress(core[:5000]) + gzip.compress(core[5000:]))
    path, _ = compressed.materialize(p, "gzip", cache_dir=str(cache))
    assert open(path, "rb").read() == core


def test_changed_file_gets_new_cache_entry(tmp_path, cache):
    p = tmp_path / "vmcore.3.gz"
    p.write_bytes(gzip.compress(amd64_v1_core()))
    a, _ = compressed.materialize(p, "gzip", cache_dir=str(cache))
    p.write_bytes(gzip.compress(amd64_v1_core()[:-PS]))
    b, reused = compressed.materialize(p, "gzip", cache_dir=str(cache))
    assert a != b and not reused


@pytest.mark.parametrize("use_module", [True, False])
def test_zstd_round_trip(tmp_path, cache, use_module):
    if not use_module and shutil.which("zstd") is None:
        pytest.skip("no zstd command")
    p = tmp_path / "vmcore.4.zst"
    p.write_bytes(zstd_bytes(amd64_v1_core()))
    path, reused = compressed.materialize(p, "zstd", cache_dir=str(cache),
                                          use_module=use_module)
    assert not reused and open(path, "rb").read() == amd64_v1_core()
    n = compressed.DECOMPRESSIONS
    path2, reused = compressed.materialize(p, "zstd", cache_dir=str(cache),
                                           use_module=use_module)
    assert reused and path2 == path and compressed.DECOMPRESSIONS == n


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd command")
def test_zstd_from_the_command_line_tool(tmp_path, cache):
    """A stream written by zstd(1) (unknown content size, like the kernel's) opens."""
    raw = tmp_path / "core"
    raw.write_bytes(amd64_v1_core())
    p = tmp_path / "vmcore.5.zst"
    with open(raw, "rb") as src, open(p, "wb") as dst:
        subprocess.run(["zstd", "-q", "-c", "--no-content-size"], stdin=src, stdout=dst,
                       check=True)
    with compressed.open(p, cache_dir=str(cache)) as d:
        assert d.read(KERNBASE, 8) == b"PA002000"


def corrupt(blob: bytes) -> bytes:
    b = bytearray(blob)
    mid = len(b) // 2
    b[mid:mid + 16] = b"\xff" * 16
    return bytes(b)


@pytest.mark.parametrize("codec, make, use_module", [
    ("gzip", lambda d: corrupt(gzip.compress(d)), None),
    ("gzip", lambda d: gzip.compress(d)[:-100], None),                 # truncated
    ("zstd", lambda d: corrupt(zstd_bytes(d)), True),
    ("zstd", lambda d: zstd_bytes(d)[:len(zstd_bytes(d)) // 2], True),  # truncated
    ("zstd", lambda d: corrupt(zstd_bytes(d)), False),
    ("zstd", lambda d: zstd_bytes(d)[:len(zstd_bytes(d)) // 2], False),
])
def test_corrupted_stream_is_one_line_and_leaves_nothing(tmp_path, cache, codec, make,
                                                         use_module):
    if use_module is False and shutil.which("zstd") is None:
        pytest.skip("no zstd command")
    p = tmp_path / f"vmcore.6.{codec}"
    p.write_bytes(make(amd64_v1_core() + os.urandom(3 * PS)))
    with pytest.raises(FormatError, match=f"corrupted {codec} stream") as e:
        compressed.materialize(p, codec, cache_dir=str(cache), use_module=use_module)
    assert "\n" not in str(e.value) and str(e.value).endswith(str(p))
    assert leftovers(cache) == []


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_bomb_limit(tmp_path, cache, codec):
    data = bytes(8 << 20)    # 8 MiB of zeros compress to a few KiB
    p = tmp_path / f"bomb.{codec}"
    p.write_bytes(gzip.compress(data) if codec == "gzip" else zstd_bytes(data))
    assert p.stat().st_size < 64 << 10
    with pytest.raises(VnetdbgError, match="decompression bomb") as e:
        compressed.materialize(p, codec, cache_dir=str(cache), max_uncompressed=1 << 20)
    assert "\n" not in str(e.value)
    assert leftovers(cache) == []


def test_free_space_checked_first(tmp_path, cache, monkeypatch):
    p = tmp_path / "vmcore.7.gz"
    p.write_bytes(gzip.compress(amd64_v1_core()))
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(compressed.shutil, "disk_usage", lambda d: Usage(1, 1, 1 << 20))
    n = compressed.DECOMPRESSIONS
    with pytest.raises(VnetdbgError, match="not enough free space"):
        compressed.materialize(p, "gzip", cache_dir=str(cache))
    assert compressed.DECOMPRESSIONS == n


def test_nested_compression_refused(tmp_path, cache):
    p = tmp_path / "vmcore.8.gz"
    p.write_bytes(gzip.compress(gzip.compress(amd64_v1_core())))
    with pytest.raises(FormatError, match="nested compression"):
        compressed.open(p, cache_dir=str(cache))


def test_progress_bar_only_on_a_tty(tmp_path, cache, capsys):
    p = tmp_path / "vmcore.9.gz"
    p.write_bytes(gzip.compress(amd64_v1_core()))
    compressed.materialize(p, "gzip", cache_dir=str(cache))
    assert capsys.readouterr().err == ""
