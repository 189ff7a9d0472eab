"""Bad input end to end: one clear line and exit 1, or a partial report with a warning
naming the bad address; never a traceback (an uncaught exception fails these tests)."""

from __future__ import annotations

import shutil
import struct

import pytest

from tests.fixturegen.build import build_vmcore

from .conftest import VMCORES, run_cli

DEMO = VMCORES / "amd64-fbsd14"


@pytest.fixture(scope="module")
def corrupted(tmp_path_factory):
    """Build a corrupted variant of the 14.x machine on demand (cached per kind)."""
    built = {}

    def make(kind: str, layout: str = "amd64-fbsd14"):
        if (kind, layout) not in built:
            out = tmp_path_factory.mktemp(f"{layout}-{kind}")
            t = build_vmcore(str(VMCORES / layout), str(out), corrupt=kind,
                             dump_version=2 if layout.endswith("12") else 3)
            built[kind, layout] = (out, t)
        return built[kind, layout]
    return make


def copy_demo(tmp_path, mutate=None):
    for name in ("vmcore.0", "kernel", "kernel.debug", "info.0"):
        shutil.copy(DEMO / name, tmp_path / name)
    core = tmp_path / "vmcore.0"
    if mutate:
        data = bytearray(core.read_bytes())
        mutate(data)
        core.write_bytes(bytes(data))
    return str(core)


def one_error_line(result, *needles):
    assert result.code == 1, (result.code, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vnetdbg: "), result.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_wrong_magic(tmp_path):
    core = copy_demo(tmp_path, lambda d: d.__setitem__(slice(0, 8), b"notadump"))
    one_error_line(run_cli("jls", core), "not a FreeBSD vmcore", core)


def test_unknown_version(tmp_path):
    core = copy_demo(tmp_path, lambda d: d.__setitem__(slice(24, 28), struct.pack("<I", 4)))
    one_error_line(run_cli("jls", core), "version 4")


def test_truncated_inside_header_regions(tmp_path):
    core = copy_demo(tmp_path, lambda d: d.__delitem__(slice(3 * 4096, None)))
    one_error_line(run_cli("jls", core), "truncated")


def test_missing_core_and_empty_core(tmp_path):
    one_error_line(run_cli("jls", str(tmp_path / "vmcore.9")), "vmcore.9")
    empty = tmp_path / "vmcore.1"
    empty.write_bytes(b"")
    one_error_line(run_cli("jls", str(empty)), "empty")


def test_truncated_page_data_gives_partial_or_clear_error(corrupted):
    out, _ = corrupted("truncated")
    r = run_cli("jls", "-d", str(out / "vmcore.0"))
    assert r.code in (0, 1)
    assert all(line.startswith("vnetdbg: ") for line in r.err.splitlines())
    if r.code == 1:
        assert len(r.err.splitlines()) == 1


def test_mismatched_kernel(tmp_path):
    core = copy_demo(tmp_path)
    other = VMCORES / "amd64-fbsd13" / "kernel.debug"
    line = one_error_line(run_cli("jls", "-k", str(other), core), "does not match", "--force")
    assert "14." in line and "13." in line  # both version strings are shown
    forced = run_cli("jls", "--force", "-k", str(other), core)
    assert forced.err.startswith("vnetdbg: warning: kernel does not match")
    assert all(line.startswith("vnetdbg: ") for line in forced.err.splitlines())


def test_kernel_without_dwarf(tmp_path):
    core = copy_demo(tmp_path)
    (tmp_path / "kernel.debug").unlink()
    one_error_line(run_cli("jls", core), "no DWARF")


def test_explicit_kernel_missing(tmp_path):
    core = copy_demo(tmp_path)
    one_error_line(run_cli("jls", "-k", str(tmp_path / "nope"), core), "kernel file not found")


def warnings_of(result):
    return [l for l in result.err.splitlines() if l.startswith("vnetdbg: warning: ")]


def test_cyclic_allprison(corrupted):
    out, t = corrupted("cyclic-allprison")
    r = run_cli("jls", "-d", str(out / "vmcore.0"))
    assert r.code == 0
    listed = [line.split()[0] for line in r.text.splitlines()[1:]]
    assert listed == [str(j["jid"]) for j in t["jails"]]  # every jail exactly once
    (w,) = warnings_of(r)
    assert "allprison" in w and "cycle" in w and t["jails"][0]["address"].lstrip("0x") in w


@pytest.mark.parametrize("kind", ["bad-link", "absent-link"])
def test_link_to_unreadable_address(corrupted, kind):
    out, t = corrupted(kind)
    r = run_cli("jls", "-d", str(out / "vmcore.0"))
    assert r.code == 0
    listed = [int(line.split()[0]) for line in r.text.splitlines()[1:]]
    assert listed == t["corruption"]["jails_before_break"]
    (w,) = warnings_of(r)
    assert hex(int(t["corruption"]["bad_address"], 16)) in w


def test_null_link_mid_list(corrupted):
    out, t = corrupted("null-link")
    r = run_cli("jls", "-d", str(out / "vmcore.0"))
    assert r.code == 0
    listed = [int(line.split()[0]) for line in r.text.splitlines()[1:]]
    assert listed == t["corruption"]["jails_before_break"]
    (w,) = warnings_of(r)
    assert "ends early" in w


def test_dump_is_never_written(tmp_path):
    core = copy_demo(tmp_path)
    before = (tmp_path / "vmcore.0").read_bytes()
    (tmp_path / "vmcore.0").chmod(0o444)
    assert run_cli("jls", core).code == 0
    assert run_cli("show", "prison", core).code == 0
    assert (tmp_path / "vmcore.0").read_bytes() == before
