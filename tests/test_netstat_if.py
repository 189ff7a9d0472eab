"""netstat -i and ifconfig on every fixture layout, under both type providers, against
the network section of the fixtures' ground truth (written by the simulated machine in
tests/fixturegen, not by vnetdbg), plus the corrupted variants and the 15 layout.

Expected strings are derived here from the ground truth with FreeBSD's rules:
usr.bin/netstat/if.c (link rows ``<Link#N>`` + routename, address rows netname() +
routename(), only packets/bytes on address rows), sbin/ifconfig (af_inet.c netmask in
hex, af_inet6.c ``%zone`` + prefixlen + scopeid, 12/13 family grouping in first-seen
order, 14+ netlink sorting by family number and LOWER_UP).
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from .conftest import LAYOUTS, PROVIDERS, VMCORES, run_cli

IFF_UP, IFF_BROADCAST = 0x1, 0x2
IFF_LOWER_UP = 0x1000000
IFT_ETHER = 0x6


def core(layout: str) -> str:
    return f"fixtures/vmcores/{layout}/vmcore.0"


def truth(layout: str) -> dict:
    return json.loads((VMCORES / layout / "ground-truth.json").read_text())


def json_items(*argv: str) -> list[dict]:
    result = run_cli(*argv)
    assert result.code == 0, result.err
    assert result.err == ""
    data = json.loads(result.out)
    ((container, inner),) = data.items()
    ((_, items),) = inner.items()
    return items


def by_stack(items: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in items:
        out.setdefault(r["vnet"], []).append(r)
    return out


def host(a: dict) -> str:
    return a["addr"] + (f"%{a['zone']}" if a.get("zone") else "")


def network(a: dict) -> str:
    """netstat's netname(): masked address, the scope kept for link-local, /len."""
    net = ipaddress.ip_network(f"{a['addr']}/{a['prefixlen']}", strict=False)
    text = str(net.network_address)
    if a.get("zone"):
        text += f"%{a['zone']}"
    return f"{text}/{a['prefixlen']}"


def expected_netstat_rows(st: dict) -> list[dict]:
    rows = []
    for i in st["interfaces"]:
        c = i["counters"]
        link = i["addresses"][0]
        assert link["family"] == "link"
        row = {"name": i["name"], "flags": f"0x{i['flags']:x}", "mtu": i["mtu"],
               "network": f"<Link#{link['sdl_index']}>",
               "address": link["mac"] or link["name"],
               "received-packets": c["IFCOUNTER_IPACKETS"],
               "received-errors": c["IFCOUNTER_IERRORS"],
               "dropped-packets": c["IFCOUNTER_IQDROPS"],
               "received-bytes": c["IFCOUNTER_IBYTES"],
               "sent-packets": c["IFCOUNTER_OPACKETS"],
               "send-errors": c["IFCOUNTER_OERRORS"],
               "sent-bytes": c["IFCOUNTER_OBYTES"],
               "collisions": c["IFCOUNTER_COLLISIONS"],
               "sent-dropped-packets": c["IFCOUNTER_OQDROPS"]}
        if i["driver_counter_method"]:
            row["driver-get-counter"] = i["get_counter"]["symbol"]
        rows.append(row)
        for a in i["addresses"][1:]:
            ac = a["counters"]
            rows.append({"name": i["name"], "flags": f"0x{i['flags']:x}",
                         "network": network(a), "address": host(a),
                         "received-packets": ac["ipackets"], "received-bytes": ac["ibytes"],
                         "sent-packets": ac["opackets"], "sent-bytes": ac["obytes"]})
        for r in rows:
            r.update({"vnet": st["vnet"], "jail": st["owner_jid"],
                      "jail-name": st["jail_name"]})
    return rows


def _order(addrs: list[dict], netlink: bool) -> list[dict]:
    if netlink:
        return sorted(addrs, key=lambda a: {"inet": 2, "inet6": 28}[a["family"]])
    first: dict[str, int] = {}
    for a in addrs:
        first.setdefault(a["family"], len(first))
    return sorted(addrs, key=lambda a: first[a["family"]])


def expected_ifconfig(st: dict, netlink: bool) -> list[dict]:
    out = []
    for i in st["interfaces"]:
        flags = i["flags"]
        if netlink and (i["link_state"] == 2 if i["type"] == IFT_ETHER
                        else i["if_flags"] & IFF_UP):
            flags |= IFF_LOWER_UP
        names = list(i["flag_names"]) + (["LOWER_UP"] if flags & IFF_LOWER_UP else [])
        d = {"name": i["name"], "index": i["index"], "flags": f"0x{flags:x}",
             "flags-names": names, "metric": i["metric"], "mtu": i["mtu"]}
        if i["mac"]:
            d["ether"] = i["mac"]
        inet, inet6 = [], []
        addrs = [a for a in i["addresses"] if a["family"] in ("inet", "inet6")]
        for a in _order(addrs, netlink):
            if a["family"] == "inet":
                e = {"address": a["addr"], "netmask": a["netmask_hex"]}
                if a["broadcast"] and i["flags"] & IFF_BROADCAST:
                    e["broadcast"] = a["broadcast"]
                inet.append(e)
            else:
                e = {"address": host(a), "prefixlen": a["prefixlen"]}
                if a["scope_id"]:
                    e["scopeid"] = f"0x{a['scope_id']:x}"
                inet6.append(e)
        if inet:
            d["inet"] = inet
        if inet6:
            d["inet6"] = inet6
        d["link-state"] = {0: "unknown", 1: "down", 2: "up"}[i["link_state"]]
        if i["moved_from"]:
            m = i["moved_from"]
            d["home-vnet"] = m["vnet"]
            d["moved-from"] = f"vnet {m['vnet']} (jail {m['owner_jid']})"
            d["home-jail"] = m["owner_jid"]
        if i["driver_counter_method"]:
            d["driver-get-counter"] = i["get_counter"]["symbol"]
        d.update({"vnet": st["vnet"], "jail": st["owner_jid"], "jail-name": st["jail_name"]})
        out.append(d)
    return out


# -- against the ground truth ------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_netstat_i_json_matches_ground_truth(layout, provider):
    t = truth(layout)
    got = by_stack(json_items("netstat", "-i", "-b", "-d", "--format", "json",
                              "--types", provider, core(layout)))
    stacks = t["network"]["stacks"]
    assert set(got) == {st["vnet"] for st in stacks}
    for st in stacks:
        assert got[st["vnet"]] == expected_netstat_rows(st), st["jail_name"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_ifconfig_json_matches_ground_truth(layout, provider):
    t = truth(layout)
    netlink = t["osreldate"] >= 1400000
    got = by_stack(json_items("ifconfig", "--format", "json", "--types", provider,
                              core(layout)))
    stacks = t["network"]["stacks"]
    assert set(got) == {st["vnet"] for st in stacks}
    for st in stacks:
        assert got[st["vnet"]] == expected_ifconfig(st, netlink), st["jail_name"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ground_truth_has_what_the_tests_rely_on(layout):
    """The scenario features this file is about are present in every layout."""
    stacks = {st["jail_name"]: st for st in truth(layout)["network"]["stacks"]}
    host_ifs = {i["name"]: i for i in stacks["0"]["interfaces"]}
    assert host_ifs["vtnet0"]["driver_counter_method"] is True
    assert not host_ifs["em0"]["flags"] & IFF_UP
    assert any(a.get("zone") for a in host_ifs["vtnet0"]["addresses"])
    moved = {i["name"]: i for i in stacks["vnetjail"]["interfaces"]}["epair0b"]
    assert moved["moved_from"]["owner_jid"] == 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_netstat_i_text_marks(layout):
    """Down interface with '*', the driver-counter note, vnetjail's own section."""
    text = run_cli("netstat", "-i", core(layout)).text
    assert "\nem0*   1500 <Link#" in text
    assert ("vnetdbg: note: vtnet0: if_get_counter is vtnet_get_counter (driver method); "
            "counts shown are the generic if_counters only\n") in text
    jail = run_cli("netstat", "-i", "-j", "vnetjail", core(layout))
    assert jail.code == 0 and jail.err == ""
    names = [line.split()[0] for line in jail.text.splitlines()[1:]]
    assert names == ["lo0", "lo0", "epair", "epair"]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ifconfig_moved_and_driver_lines(layout):
    t = truth(layout)
    home = next(st["vnet"] for st in t["network"]["stacks"] if st["owner_jid"] == 0)
    jail = run_cli("ifconfig", "-j", "vnetjail", core(layout))
    assert jail.code == 0 and jail.err == ""
    assert f"\tmoved from vnet {home} (jail 0)\n" in jail.text
    one = run_cli("ifconfig", "vtnet0", core(layout))
    assert one.code == 0 and one.err == ""
    assert ("\tcounters: if_get_counter is vtnet_get_counter (driver method); "
            "the real counts are in the driver's softc\n") in one.text
    assert "epair0b" not in one.text and "lo0" not in one.text


def test_ifconfig_missing_interface():
    # inside one stack: ifconfig's own error and exit status
    r = run_cli("ifconfig", "-j", "vnetjail", "vtnet0", core("amd64-fbsd14"))
    assert (r.code, r.err) == (1, "vnetdbg: ifconfig: interface vtnet0 does not exist\n")
    # across all stacks: a name no stack has is one warning
    r = run_cli("ifconfig", "nosuch0", core("amd64-fbsd14"))
    assert r.code == 0
    assert r.err == ("vnetdbg: warning: ifconfig: interface nosuch0 does not exist in any "
                     "network stack\n")


# -- layouts ------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", LAYOUTS)
def test_fixed_layout_is_the_default_below_15(layout):
    assert truth(layout)["osreldate"] < 1500000
    auto = run_cli("netstat", "-i", "-j", "0", core(layout)).text
    assert auto == run_cli("netstat", "-i", "-j", "0", "--style", "12", core(layout)).text
    assert auto.splitlines()[0] == ("Name    Mtu Network       Address              Ipkts "
                                    "Ierrs Idrop    Opkts Oerrs  Coll")
    assert "\nvtnet     - fe80::%vtnet0 fe80::5054:ff:fe1 " in auto


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dynamic_layout_forced(layout):
    """15's intpr(): widths measured over all rows, names never cut, two blanks after
    the Network column, addresses in full."""
    text = run_cli("netstat", "-i", "-j", "0", "--style", "15", core(layout)).text
    lines = text.splitlines()
    assert lines[0] == ("Name      Mtu Network           Address                           "
                        "Ipkts Ierrs Idrop    Opkts Oerrs  Coll")
    assert lines[1].startswith("vtnet0   1500 <Link#1>          52:54:00:12:34:56   ")
    assert lines[3] == ("vtnet0      - fe80::%vtnet0/64  fe80::5054:ff:fe12:3456%vtnet0 "
                        "     311     -     -      290     -     -")
    assert any(line.startswith("em0*     1500 ") for line in lines)
    # JSON keeps libxo's keys and full strings in both layouts
    fixed = json_items("netstat", "-i", "-j", "0", "--libxo", "json", core(layout))
    dyn = json_items("netstat", "-i", "-j", "0", "--libxo", "json", "--style", "15",
                     core(layout))
    assert fixed == dyn


# -- corrupted dumps ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def corrupt_dumps(tmp_path_factory):
    from tests.fixturegen.build import build_vmcore
    cache: dict = {}

    def get(layout: str, kind: str):
        if (layout, kind) not in cache:
            out = tmp_path_factory.mktemp(f"{layout}-{kind}")
            t = build_vmcore(str(VMCORES / layout), str(out), corrupt=kind)
            cache[layout, kind] = (str(out / "vmcore.0"), t)
        return cache[layout, kind]
    return get


@pytest.mark.parametrize("command", [["netstat", "-i"], ["ifconfig"]])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_cyclic_ifnet_partial_report(corrupt_dumps, layout, command):
    path, t = corrupt_dumps(layout, "cyclic-ifnet")
    c = t["corruption"]
    r = run_cli(*command, path)
    assert r.code == 0
    assert "Traceback" not in r.err
    warnings = [w for w in r.err.splitlines() if w.startswith("vnetdbg: warning: ")]
    assert len(warnings) == 1 and c["bad_address"] in warnings[0]
    assert c["vnet"] in warnings[0]
    # every interface before the cycle is reported once, and the other stacks in full
    section = r.text.split("\n\n")[0]
    assert section.startswith(f"vnet {c['vnet']} ")
    for name in c["interfaces_before_cycle"]:
        if command[0] == "ifconfig":
            assert section.count(f"\n{name}: flags=") == 1
        else:
            assert f"\n{name[:5]}" in section
    assert 'jail 2 "vnetjail"' in r.text and 'jail 6 "oldvnet"' in r.text


@pytest.mark.parametrize("command", [["netstat", "-i"], ["ifconfig"],
                                     ["netstat", "-i", "--libxo", "json"]])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_bad_vnet_magic_skips_that_stack(corrupt_dumps, layout, command):
    path, t = corrupt_dumps(layout, "bad-vnet-magic")
    c = t["corruption"]
    r = run_cli(*command, path)
    assert r.code == 0
    assert "Traceback" not in r.err
    assert r.err == (f"vnetdbg: warning: vnet {c['bad_address']}: bad magic "
                     f"{c['magic']:#x}; its stack is not shown\n")
    assert c["vnet"] not in r.text
    if "json" in command:
        shown = {x["vnet"] for x in json.loads(r.out)["statistics"]["interface"]}
        assert shown == {st["vnet"] for st in t["network"]["stacks"]} - {c["vnet"]}
    else:
        assert 'jail 0 "0"' in r.text and 'jail 6 "oldvnet"' in r.text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bad_vnet_magic_in_vnets(corrupt_dumps, layout):
    path, t = corrupt_dumps(layout, "bad-vnet-magic")
    c = t["corruption"]
    r = run_cli("vnets", path)
    assert r.code == 0 and "Traceback" not in r.err
    row = next(line for line in r.text.splitlines() if line.startswith(c["vnet"]))
    assert f"mismatch({c['magic']:#x})" in row
    data = json.loads(run_cli("vnets", "--libxo", "json", path).out)
    rec = next(v for v in data["vnet-information"]["vnet"] if v["address"] == c["vnet"])
    assert rec["magic-state"] == "mismatch"
