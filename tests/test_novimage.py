"""A kernel built without ``options VIMAGE`` (layout fbsd14-novimage): one network
stack, read from the plain globals (``ifnet``, ``tcbinfo``, ``tcpstat``, ...).

Generated at test time into a session tmp dir (nothing committed): the fbsd14 sources
with the fixtures/kernels/variants/novimage overlay (net/vnet.h's !VIMAGE branch, no
net/vnet.c) are built by scripts/build_fixture_kernels.py, then tests/fixturegen
writes scenario.default(vimage=False): the five jails (jail 2 "vnetjail" an ordinary
non-VNET jail, every pr_vnet NULL, prison0 without PR_VNET) and vnet0's network state
of the default scenario as the only stack.
"""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest

from .conftest import PROVIDERS, ROOT, run_cli
from .test_netstat_if import expected_ifconfig, expected_netstat_rows
from .test_netstat_inet import actual_rows, expected_rows

LAYOUT = "fbsd14-novimage"


def _kernel_builder():
    spec = importlib.util.spec_from_file_location(
        "build_fixture_kernels", ROOT / "scripts" / "build_fixture_kernels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def novimage(tmp_path_factory):
    """{"core": path of vmcore.0, "truth": ground truth, "kernel_dir": ...}."""
    bfk = _kernel_builder()
    missing = [t for t in bfk.TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"fixture kernels need {', '.join(missing)}")
    from tests.fixturegen import build_vmcore, scenario

    root = tmp_path_factory.mktemp("novimage")
    kdir = bfk.build(LAYOUT, root / "kernels")["dir"]
    out = root / "core"
    truth = build_vmcore(str(kdir), str(out), scenario=scenario.default(vimage=False),
                         layout=LAYOUT)
    truth = {k: v for k, v in truth.items() if not k.startswith("_")}
    return {"core": str(out / "vmcore.0"), "truth": truth, "kernel_dir": str(kdir)}


def cli(nv, *argv):
    return run_cli(*argv, "-M", nv["core"])


def json_ok(nv, *argv):
    r = cli(nv, *argv, "--format", "json")
    assert r.code == 0, r.err
    assert r.err == ""
    return json.loads(r.out)


def the_stack(nv) -> dict:
    (st,) = nv["truth"]["network"]["stacks"]
    return st


NOTE = "vnetdbg: note: kernel built without options VIMAGE"


# -- the fixture is what a non-VIMAGE kernel leaves --------------------------------------

def test_kernel_and_truth_have_no_vimage(novimage):
    from tests.fixturegen.kernel import Kernel
    k = Kernel(novimage["kernel_dir"])
    for sym in ("sysctl___kern_features_vimage", "vnet_head", "vnet0", "__start_set_vnet",
                "vnet_entry_ifnet", "vnet_entry_tcbinfo"):
        assert not k.has_symbol(sym), sym
    for sym in ("ifnet", "tcbinfo", "udbinfo", "ripcbinfo", "tcpstat", "prison0"):
        assert k.has_symbol(sym), sym
    t = novimage["truth"]
    assert t["vnets"] == [] and t["vnet0"] is None and t["vnet_head_address"] is None
    assert "PR_VNET" not in t["prison0"]["flag_names"]
    assert t["prison0"]["vnet"] is None
    assert all(j["vnet"] is None and "PR_VNET" not in j["flag_names"] for j in t["jails"])
    st = the_stack(novimage)
    assert st["vnet"] is None and st["owner_jid"] == 0
    assert st["ifnet_head"] == f"{k.symbol_address('ifnet'):#018x}"


# -- vnets / show all vnets: no virtual stacks -------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_vnets_is_an_empty_table_and_a_note(novimage, provider):
    r = cli(novimage, "vnets", "--types", provider)
    assert r.code == 0, r.err
    assert r.text.splitlines() == [r.text.splitlines()[0]]
    assert r.text.startswith("ADDRESS")
    assert r.err.startswith(NOTE) and len(r.err.splitlines()) == 1
    r = cli(novimage, "vnets", "--format", "json", "--types", provider)
    assert r.code == 0, r.err
    assert json.loads(r.out) == {"vnet-information": {"vnet": []}}
    assert r.err.startswith(NOTE)


@pytest.mark.parametrize("words", [("all", "vnets"), ("vnets",)])
def test_show_all_vnets_prints_nothing(novimage, words):
    r = cli(novimage, "show", *words)
    assert r.code == 0, r.err
    assert r.out == b""
    assert r.err.startswith(NOTE) and len(r.err.splitlines()) == 1


# -- jails -------------------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_jls_v(novimage, provider):
    r = cli(novimage, "jls", "-v", "--types", provider)
    assert r.code == 0 and r.err == "", r.err
    assert "vnetjail" in r.text
    jails = json_ok(novimage, "jls", "-v", "--types", provider)["jail-information"]["jail"]
    assert [j["jid"] for j in jails] == [1, 2, 3, 5]
    # the kernel's pr_flag_jailsys has no "vnet" without VIMAGE: no vnet= parameter
    r = cli(novimage, "jls", "-n", "--types", provider)
    assert r.code == 0 and " vnet=" not in r.text


# -- the single stack against the ground truth -------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_netstat_an_json(novimage, provider):
    rows = json_ok(novimage, "netstat", "-an", "--types", provider)["statistics"]["socket"]
    assert {(r["vnet"], r["jail"], r["jail-name"]) for r in rows} == {(None, 0, "0")}
    assert actual_rows(rows, None) == expected_rows(the_stack(novimage), aflag=True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_netstat_i_json(novimage, provider):
    data = json_ok(novimage, "netstat", "-i", "-b", "-d", "--types", provider)
    assert data["statistics"]["interface"] == expected_netstat_rows(the_stack(novimage))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_netstat_s_json(novimage, provider):
    records = json_ok(novimage, "netstat", "-s", "--types", provider)
    records = records["statistics"]["protocol-statistics"]
    assert {r["vnet"] for r in records} == {None}
    by = {x["protocol"]: x for x in records}
    stats = the_stack(novimage)["stats"]
    assert {"tcp", "udp", "ip", "icmp", "ip6", "tcps_states"} <= set(stats)
    for proto, block in stats.items():
        if proto == "tcps_states":
            assert by["tcp"]["tcp-states"] == block["fields"]
            continue
        flat = {}
        for k, v in by[proto].items():
            if isinstance(v, list):
                flat.update({f"{k}[{i}]": n for i, n in enumerate(v)})
            else:
                flat[k] = v
        for field, value in block["fields"].items():
            assert flat.get(field) == value % (1 << 64), (proto, field)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_ifconfig_json(novimage, provider):
    items = json_ok(novimage, "ifconfig", "--types", provider)["interface-information"]
    netlink = novimage["truth"]["osreldate"] >= 1400000
    assert items["interface"] == expected_ifconfig(the_stack(novimage), netlink)


# -- text: one stack, so no section heading ----------------------------------------------

@pytest.mark.parametrize("argv,first", [
    (("netstat", "-an"), "Active Internet connections (including servers)"),
    (("netstat", "-i"), "Name "),
    (("netstat", "-s", "-p", "udp"), "udp:"),
    (("ifconfig",), "vtnet0: flags="),
])
def test_text_has_no_heading(novimage, argv, first):
    r = cli(novimage, *argv)
    assert r.code == 0, r.err
    assert r.text.startswith(first), r.text[:200]
    assert "single stack" not in r.text and "vnet 0x" not in r.text


def test_every_jail_uses_the_one_stack(novimage):
    whole = cli(novimage, "netstat", "-an")
    for jail in ("2", "vnetjail", "web"):
        r = cli(novimage, "netstat", "-an", "-j", jail)
        assert r.code == 0 and r.out == whole.out, (jail, r.err)
    r = cli(novimage, "netstat", "-an", "-j", "nosuch")
    assert r.code == 1 and 'jail "nosuch" not found' in r.err
    r = cli(novimage, "netstat", "-an", "--vnet", "0xfffff80000001000")
    assert r.code == 1 and "without options VIMAGE" in r.err
