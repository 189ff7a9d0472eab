"""Finding the kernel and proving it matches the dump, by each of the three methods."""

from __future__ import annotations

import shutil

import pytest

from vnetdbg.errors import VnetdbgError
from vnetdbg.freebsd.jail import for_each_prison, prison0
from vnetdbg.session import open_session

from .conftest import VMCORES


def lay_out(tmp_path, files, layout="amd64-fbsd14", kernel_from=None):
    """Copy the named fixture files into tmp_path (kernel files from another layout
    when ``kernel_from`` is given)."""
    for name in files:
        src = VMCORES / (kernel_from if kernel_from and name.startswith("kernel") else layout)
        shutil.copy(src / name, tmp_path / name)
    return str(tmp_path / "vmcore.0")


@pytest.mark.parametrize("files,method", [
    (("vmcore.0", "kernel", "kernel.debug", "info.0"), "version"),
    (("vmcore.0", "kernel.debug", "info.0"), "info"),
    (("vmcore.0", "kernel.debug"), "build-id"),
])
def test_match_methods(tmp_path, files, method):
    s = open_session(lay_out(tmp_path, files))
    try:
        assert (s.match.method, s.match.ok) == (method, True)
        assert s.kernel_path.endswith("kernel.debug")
    finally:
        s.close()


@pytest.mark.parametrize("files", [
    ("vmcore.0", "kernel", "kernel.debug"),
    ("vmcore.0", "kernel.debug", "info.0"),
    ("vmcore.0", "kernel.debug"),
])
def test_mismatch_by_each_method(tmp_path, files):
    core = lay_out(tmp_path, files, kernel_from="amd64-fbsd13")
    with pytest.raises(VnetdbgError, match="does not match"):
        open_session(core)
    s = open_session(core, force=True)
    assert s.match.ok is False and s.warnings
    s.close()


def test_stripped_kernel_finds_its_debug_twin(tmp_path):
    core = lay_out(tmp_path, ("vmcore.0", "kernel", "kernel.debug"))
    s = open_session(core, kernel=str(tmp_path / "kernel"))
    try:
        assert s.kernel_path == str(tmp_path / "kernel") + ".debug"
    finally:
        s.close()


def test_hierarchy_matches_ground_truth():
    import json
    from vnetdbg.freebsd.jail import prison_children

    t = json.loads((VMCORES / "amd64-fbsd14" / "ground-truth.json").read_text())
    s = open_session(str(VMCORES / "amd64-fbsd14" / "vmcore.0"))
    try:
        kids = {p.member("pr_id").value_(): [c.member("pr_id").value_() for c in prison_children(p)]
                for p in for_each_prison(s.target)}
        assert kids[0] == t["prison0"]["children"]
        for j in t["jails"]:
            assert kids[j["jid"]] == j["children"]
        assert prison0(s.target).address == int(t["prison0"]["address"], 16)
    finally:
        s.close()
