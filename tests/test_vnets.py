"""Network stacks: vnets JSON against the writer's ground truth, DDB's show vnet, and
damaged stacks (freed magic) reported instead of trusted."""

from __future__ import annotations

import json

import pytest

from tests.fixturegen.build import build_vmcore

from .conftest import LAYOUTS, PROVIDERS, VMCORES, run_cli


def truth(layout):
    return json.loads((VMCORES / layout / "ground-truth.json").read_text())


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_vnets_match_ground_truth(layout, provider):
    t = truth(layout)
    r = run_cli("vnets", "--format", "json", "--types", provider,
                str(VMCORES / layout / "vmcore.0"))
    assert r.code == 0, r.err
    got = json.loads(r.out)["vnet-information"]["vnet"]
    assert [int(v["address"], 16) for v in got] == [int(v["address"], 16) for v in t["vnets"]]
    for g, w in zip(got, t["vnets"]):
        assert int(g["magic"], 16) == w["magic"] == t["vnet_magic_expected"]
        assert g["magic-ok"] is True
        assert (g["ifcnt"], g["sockcnt"]) == (w["ifcnt"], w["sockcnt"])
        assert int(g["data-base"], 16) == int(w["data_base"], 16)
        assert g["shutdown"] == w["shutdown"]
        assert g["state"] == (w["state_name"] or w["state"])
        assert g["jail"]["jid"] == w["owner_jid"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_show_vnet_by_address(layout):
    t = truth(layout)
    address = t["vnets"][0]["address"]
    core = str(VMCORES / layout / "vmcore.0")
    one = run_cli("show", "vnet", address, core)
    every = run_cli("show", "all", "vnets", core)
    assert one.code == 0 and one.text.startswith(f"vnet            = {hex(int(address, 16))}\n")
    assert one.text in every.text
    assert run_cli("show", "vnet", core).text == "usage: show vnet <struct vnet *>\n"


def test_freed_vnet_is_reported(tmp_path):
    t = build_vmcore(str(VMCORES / "amd64-fbsd14"), str(tmp_path), corrupt="freed-vnet")
    core = str(tmp_path / "vmcore.0")
    r = run_cli("vnets", "--format", "json", core)
    assert r.code == 0
    freed = [v for v in json.loads(r.out)["vnet-information"]["vnet"]
             if v["address"] == hex(int(t["corruption"]["vnet"], 16))]
    assert freed and freed[0]["magic-state"] == "freed" and freed[0]["magic-ok"] is False
    ddb = run_cli("show", "all", "vnets", core)
    assert "0xdeadbeef (mismatch, orig 0x5e4a6f28)" in ddb.text
