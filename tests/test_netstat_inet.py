"""netstat's socket lists (-a/-n/-A/-W/-4/-6/-p/-L) and protocol statistics (-s) on
every fixture layout, under both type providers: against the fixtures' ground truth
(``ground-truth.json`` "network" section, written by the independent simulated machine)
and against golden text files.

netstat's rules applied to the ground truth (``expected_rows``):

- UDP-Lite pcbs (``ulitecbinfo``) are not listed: FreeBSD 12-14 netstat's ``protox[]``
  has no UDP-Lite entry (vnetdbg lists them only with ``-p udplite``);
- without ``-a``: no TCP listener, no IPv4 pcb bound to an address with a zero host part
  (``inet_lnaof``), no IPv6 pcb bound to ``::``;
- ``-L``: only sockets with a listen queue limit;
- raw sockets are listed under the protocol they were opened with: on 14 every raw
  socket's ``so_proto`` is the wildcard ``rip_protosw`` (``pr_protocol`` 0), so the
  pcb's ``inp_ip_p`` says it.

Goldens: ``tests/golden/<layout>/netstat-*.txt``; regenerate after an intended change
with ``UPDATE_GOLDEN=1 pytest tests/test_netstat_inet.py`` and review the diff.
"""

from __future__ import annotations

import functools
import json
import os
import re
import socket

import pytest

from .conftest import LAYOUTS, PROVIDERS, ROOT, VMCORES, run_cli

GOLDEN = ROOT / "tests" / "golden"


def core(layout: str) -> str:
    return f"fixtures/vmcores/{layout}/vmcore.0"


@functools.lru_cache(maxsize=None)
def truth(layout: str) -> dict:
    with open(VMCORES / layout / "ground-truth.json", encoding="utf-8") as f:
        return json.load(f)


def stacks(layout: str) -> dict[str, dict]:
    return {s["vnet"]: s for s in truth(layout)["network"]["stacks"]}


@functools.lru_cache(maxsize=None)
def cli_cached(*argv: str):
    """One in-process run per distinct command line for the whole session."""
    return run_cli(*argv)


def json_rows(layout: str, provider: str, *flags: str) -> list[dict]:
    r = cli_cached("netstat", *flags, "--format", "json", "--types", provider, core(layout))
    assert r.code == 0, r.err
    assert r.err == ""
    return json.loads(r.out)["statistics"]["socket"]


# -- the ground truth through netstat's rules ------------------------------------------------

def _lnaof_zero(addr: str) -> bool:
    if addr == "*":
        return True
    i = int.from_bytes(socket.inet_aton(addr), "big")
    if not i & 0x80000000:
        return not i & 0x00FFFFFF
    if i & 0xC0000000 == 0x80000000:
        return not i & 0x0000FFFF
    return not i & 0x000000FF


def _hidden_without_a(s: dict) -> bool:
    if s["state"] == "LISTEN":
        return True
    v4, v6 = s["vflag"] & 1, s["vflag"] & 2
    addr = s["local"]["addr"]
    if v4 and _lnaof_zero(addr):
        return True
    if v6 and addr == "*":
        return True
    return False


def _addr(end: dict) -> str:
    a = end["addr"]
    zone = end.get("zone")
    return f"{a}%{zone}" if zone else a


def _port(p: int) -> str:
    return "*" if p == 0 else str(p)


def expected_rows(stack: dict, *, aflag: bool, af: str | None = None,
                  listen: bool = False) -> list[dict]:
    out = []
    for s in stack["sockets"]:
        if s["pcbinfo"] == "ulitecbinfo":
            continue                  # no UDP-Lite entry in 12-14 netstat's protox[]
        if af == "4" and not s["vflag"] & 1 or af == "6" and not s["vflag"] & 2:
            continue
        if not aflag and _hidden_without_a(s):
            continue
        if listen and not (s["listen"] and s["listen"]["qlimit"]):
            continue
        row = {"protocol": s["proto"], "local": {"address": _addr(s["local"]),
                                                 "port": _port(s["local"]["port"])}}
        if listen:
            q = s["listen"]
            row["listen-queue-sizes"] = f"{q['qlen']}/{q['incqlen']}/{q['qlimit']}"
        else:
            row["remote"] = {"address": _addr(s["foreign"]),
                             "port": _port(s["foreign"]["port"])}
            row["receive-bytes-waiting"] = s["recv_q"]
            row["send-bytes-waiting"] = s["send_q"]
            if s["pcbinfo"] == "tcbinfo":
                row["tcp-state"] = s["state"]
        out.append(row)
    return out


def actual_rows(rows: list[dict], vnet: str, listen: bool = False) -> list[dict]:
    out = []
    for r in rows:
        if r["vnet"] != vnet:
            continue
        row = {"protocol": r["protocol"], "local": r["local"]}
        if listen:
            row["listen-queue-sizes"] = r["listen-queue-sizes"].rstrip()
        else:
            row["remote"] = r["remote"]
            row["receive-bytes-waiting"] = r["receive-bytes-waiting"]
            row["send-bytes-waiting"] = r["send-bytes-waiting"]
            if "tcp-state" in r:
                row["tcp-state"] = r["tcp-state"].rstrip()
        out.append(row)
    return out


# -- ground-truth comparisons ---------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_matches_ground_truth(layout, provider):
    rows = json_rows(layout, provider, "-an")
    seen = {r["vnet"] for r in rows}
    for vnet, st in stacks(layout).items():
        assert actual_rows(rows, vnet) == expected_rows(st, aflag=True), vnet
    # every row belongs to a stack of the dump
    assert seen <= set(stacks(layout))


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_n_without_a_applies_netstats_filters(layout, provider):
    rows = json_rows(layout, provider, "-n")
    for vnet, st in stacks(layout).items():
        assert actual_rows(rows, vnet) == expected_rows(st, aflag=False), vnet


@pytest.mark.parametrize("af", ["4", "6"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_an_family_filter(layout, af):
    rows = json_rows(layout, PROVIDERS[0], "-an", f"-{af}")
    for vnet, st in stacks(layout).items():
        assert actual_rows(rows, vnet) == expected_rows(st, aflag=True, af=af), vnet


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_listen_queues_match_ground_truth(layout, provider):
    rows = json_rows(layout, provider, "-aL", "-n")
    for vnet, st in stacks(layout).items():
        assert actual_rows(rows, vnet, listen=True) == \
            expected_rows(st, aflag=True, listen=True), vnet
    # the scenario has a listener with queued connections: it must be seen
    assert any(r["listen-queue-sizes"].startswith("2/1/") for r in rows)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_stats_match_ground_truth(layout, provider):
    r = cli_cached("netstat", "-s", "--format", "json", "--types", provider, core(layout))
    assert r.code == 0, r.err
    assert r.err == ""
    records = json.loads(r.out)["statistics"]["protocol-statistics"]
    by = {(x["vnet"], x["protocol"]): x for x in records}
    for vnet, st in stacks(layout).items():
        for proto, block in st["stats"].items():
            if proto == "tcps_states":
                got = by[(vnet, "tcp")]["tcp-states"]
                assert got == block["fields"], (vnet, proto)
                continue
            rec = by[(vnet, proto)]
            flat = {}
            for k, v in rec.items():
                if isinstance(v, list):
                    flat.update({f"{k}[{i}]": n for i, n in enumerate(v)})
                else:
                    flat[k] = v
            for field, value in block["fields"].items():
                assert flat.get(field) == value % (1 << 64), (vnet, proto, field)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_wrapped_counter_sums_modulo_2_64(layout):
    """vnet0's ESTABLISHED state counter is n + 3 on CPU 0 and -3 on CPU 1."""
    v0 = next(s for s in truth(layout)["network"]["stacks"] if s["owner_jid"] == 0)
    r = cli_cached("netstat", "-s", "-p", "tcp", "--types", PROVIDERS[0],
                   "--vnet", v0["vnet"], core(layout))
    n = v0["stats"]["tcps_states"]["fields"]["ESTABLISHED"]
    assert f"\t{n} connection{'s' if n != 1 else ' '} in ESTABLISHED state\n" in r.text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dying_vnet_shows_its_time_wait(layout):
    """Jail 6 "oldvnet" is dying but its stack still holds a TIME_WAIT connection."""
    st = next(s for s in truth(layout)["network"]["stacks"] if s["jail_name"] == "oldvnet")
    tw = [s for s in st["sockets"] if s["state"] == "TIME_WAIT"]
    assert tw
    r = cli_cached("netstat", "-an", "--types", PROVIDERS[0], core(layout))
    assert r.code == 0
    section = r.text.split(f"vnet {st['vnet']} (jail {st['owner_jid']} \"oldvnet\")\n")[1]
    section = section.split("\n\n")[0]
    for s in tw:
        local = f"{s['local']['addr']}.{s['local']['port']}"
        remote = f"{s['foreign']['addr']}.{s['foreign']['port']}"
        assert re.search(rf"^tcp4\s+0\s+0 {re.escape(local)}\s+{re.escape(remote)}\s+"
                         r"TIME_WAIT\s*$", section, re.M), section


# -- golden text ------------------------------------------------------------------------------

#: name -> argv after "vnetdbg" (CORE is appended); "{vnet2}" is jail 2's stack address
FORMS = {
    "netstat": ["netstat"],
    "netstat-a": ["netstat", "-a"],
    "netstat-an": ["netstat", "-an"],
    "netstat-anW": ["netstat", "-anW"],
    "netstat-aA": ["netstat", "-aA"],
    "netstat-an4": ["netstat", "-an", "-4"],
    "netstat-an6": ["netstat", "-an", "-6"],
    "netstat-an-p-udp": ["netstat", "-an", "-p", "udp"],
    "netstat-aL": ["netstat", "-aL"],
    "netstat-s": ["netstat", "-s"],
    "netstat-ss": ["netstat", "-ss"],
    "netstat-s-z": ["netstat", "-s", "-z"],
    "netstat-s-p-tcp": ["netstat", "-s", "-p", "tcp"],
    "netstat-j-vnetjail": ["netstat", "-j", "vnetjail", "-an"],
    "netstat-vnet": ["netstat", "-an", "--vnet", "{vnet2}"],
    "netstat-an-json": ["netstat", "-an", "--libxo", "json"],
}


def _argv(form: str, layout: str) -> list[str]:
    v2 = next(s["vnet"] for s in truth(layout)["network"]["stacks"] if s["owner_jid"] == 2)
    return [a.replace("{vnet2}", v2) for a in FORMS[form]]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_golden(layout, form, provider):
    result = cli_cached(*_argv(form, layout), "--types", provider, core(layout))
    assert result.code == 0, result.err
    assert result.err == ""
    path = GOLDEN / layout / f"{form}.txt"
    if os.environ.get("UPDATE_GOLDEN") and provider == PROVIDERS[0]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(result.out)
    assert result.out == path.read_bytes()


def test_vnet_form_is_exactly_the_jail_form():
    """--vnet ADDR and -j NAME pick the same stack and print it without a heading."""
    layout = "amd64-fbsd14"
    a = cli_cached(*_argv("netstat-vnet", layout), "--types", PROVIDERS[0], core(layout))
    b = cli_cached(*_argv("netstat-j-vnetjail", layout), "--types", PROVIDERS[0],
                   core(layout))
    assert a.out == b.out and not a.text.startswith("vnet ")


# -- a damaged dump ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def corrupt_dumps(tmp_path_factory):
    from tests.fixturegen.build import build_vmcore

    cache: dict = {}

    def get(layout: str, kind: str):
        if (layout, kind) not in cache:
            out = tmp_path_factory.mktemp(f"{layout}-{kind}")
            build_vmcore(str(VMCORES / layout), str(out), corrupt=kind)
            with open(out / "ground-truth.json", encoding="utf-8") as f:
                cache[(layout, kind)] = (out, json.load(f))
        return cache[(layout, kind)]
    return get


@pytest.mark.parametrize("layout", LAYOUTS)
def test_absent_inp_link_gives_partial_report_and_warning(corrupt_dumps, layout):
    out, t = corrupt_dumps(layout, "absent-inp-link")
    c = t["corruption"]
    result = run_cli("netstat", "-an", "--types", PROVIDERS[0], str(out / "vmcore.0"))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    bad = c["bad_address"]
    warnings = [line for line in result.err.splitlines()
                if line.startswith("vnetdbg: warning: ")]
    assert any(bad in line for line in warnings), result.err
    # the pcbs before the broken link are still listed, the rest of the stack is not lost
    v0 = next(s for s in t["network"]["stacks"] if s["owner_jid"] == 0)
    tcp = [s for s in v0["sockets"] if s["pcbinfo"] == "tcbinfo"]
    text = result.text
    first = tcp[0]
    assert f"{first['local']['addr']}.{first['local']['port']}" in text
    # UDP of the same stack and the other stacks are unaffected
    udp = [s for s in v0["sockets"] if s["pcbinfo"] == "udbinfo"]
    assert f"{udp[0]['local']['addr']}.{udp[0]['local']['port']}" in text
    assert 'jail 2 "vnetjail"' in text


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bad_vnet_magic_skips_that_stack_with_warning(corrupt_dumps, layout):
    out, t = corrupt_dumps(layout, "bad-vnet-magic")
    c = t["corruption"]
    result = run_cli("netstat", "-an", "--types", PROVIDERS[0], str(out / "vmcore.0"))
    assert result.code == 0, result.err
    assert "Traceback" not in result.err
    bad = c.get("vnet") or c.get("bad_address")
    assert bad
    warnings = [line for line in result.err.splitlines()
                if line.startswith("vnetdbg: warning: ")]
    assert any(bad in line for line in warnings), result.err
    assert f"vnet {bad} " not in result.text
    # the other stacks are reported
    others = [s for s in t["network"]["stacks"] if s["vnet"] != bad]
    for s in others:
        assert f"vnet {s['vnet']} " in result.text
