"""savecore info.N parsing and lookup beside the vmcore."""

from __future__ import annotations

import pytest

from vnetdbg.errors import FormatError
from vnetdbg.memory.infofile import find_info_file, parse_info, parse_info_file

# libxo-era layout; the version string spans two lines (kernel string has a "\n").
INFO_13 = """\
Dump header from device: /dev/ada0p3
  Architecture: amd64
  Architecture Version: 2
  Dump Length: 421502976
  Blocksize: 512
  Compression: none
  Dumptime: 2023-05-02 10:11:12 +0000
  Hostname: jailhost.example.org
  Magic: FreeBSD Kernel Dump
  Version String: FreeBSD 13.2-RELEASE releng/13.2-n254617-525ecfdad597 GENERIC
    root@releng1.nyi.freebsd.org:/usr/obj/usr/src/amd64.amd64/sys/GENERIC
  Panic String: page fault
  Dump Parity: 3211540826
  Bounds: 3
  Dump Status: good
"""

# pre-libxo savecore: decorated length, no Compression line, empty panic string.
INFO_OLD = """\
Dump header from device /dev/ada0s1b
  Architecture: i386
  Architecture Version: 2
  Dump Length: 12345B (0 MB)
  Blocksize: 512
  Dumptime: Thu Jan  1 00:00:00 2009
  Hostname: old
  Magic: FreeBSD Kernel Dump
  Version String: FreeBSD 7.1-RELEASE #0: Thu Jan  1 2009
    root@build:/usr/obj/usr/src/sys/GENERIC
  Panic String:
  Dump Parity: 7
  Bounds: 0
  Dump Status: bad
"""


def test_parse_libxo_info():
    info = parse_info(INFO_13)
    assert info["device"] == "/dev/ada0p3"
    assert info["architecture"] == "amd64"
    assert info["architecture_version"] == 2
    assert info["dump_length"] == 421502976
    assert info["blocksize"] == 512
    assert info["compression"] == "none"
    assert info["dumptime"] == "2023-05-02 10:11:12 +0000"
    assert info["hostname"] == "jailhost.example.org"
    assert info["magic"] == "FreeBSD Kernel Dump"
    assert info["version_string"] == (
        "FreeBSD 13.2-RELEASE releng/13.2-n254617-525ecfdad597 GENERIC\n"
        "    root@releng1.nyi.freebsd.org:/usr/obj/usr/src/amd64.amd64/sys/GENERIC")
    assert info["panic_string"] == "page fault"
    assert info["dump_parity"] == 3211540826
    assert info["bounds"] == 3
    assert info["dump_status"] == "good"


def test_version_string_continuation_may_look_like_a_key():
    text = INFO_13.replace("    root@releng1", "  Odd Line: root@releng1")
    assert parse_info(text)["version_string"].endswith("  Odd Line: root@releng1.nyi."
                                                    "freebsd.org:/usr/obj/usr/src/"
                                                    "amd64.amd64/sys/GENERIC")


def test_parse_old_info():
    info = parse_info(INFO_OLD)
    assert info["device"] == "/dev/ada0s1b"
    assert info["dump_length"] == 12345
    assert info["compression"] is None
    assert info["panic_string"] == ""
    assert info["dump_status"] == "bad"
    assert info["version_string"].startswith("FreeBSD 7.1-RELEASE")


def test_unknown_keys_kept():
    info = parse_info(INFO_13 + "  Future Key: 42\n")
    assert info["fields"]["Future Key"] == "42"


def test_not_an_info_file(tmp_path):
    p = tmp_path / "info.0"
    p.write_text("hello\n")
    with pytest.raises(FormatError, match=f"not a savecore info file.*{p}"):
        parse_info_file(p)


def test_parse_info_file(tmp_path):
    p = tmp_path / "info.3"
    p.write_text(INFO_13)
    assert parse_info_file(p)["hostname"] == "jailhost.example.org"


@pytest.mark.parametrize("core", ["vmcore.3", "vmcore.3.gz", "vmcore.3.zst",
                                  "vmcore_encrypted.3"])
def test_find_info_file(tmp_path, core):
    (tmp_path / "info.3").write_text(INFO_13)
    assert find_info_file(tmp_path / core) == tmp_path / "info.3"


def test_find_info_file_absent_or_unrelated(tmp_path):
    (tmp_path / "info.3").write_text(INFO_13)
    assert find_info_file(tmp_path / "vmcore.4") is None
    assert find_info_file(tmp_path / "core.3") is None
    assert find_info_file(tmp_path / "vmcore.3.bz2") is None
