"""What vnetdbg reads from each fixture vmcore, against the ground truth the fixture
writer recorded while building the machine (not against vnetdbg's own output)."""

from __future__ import annotations

import base64
import json

import pytest

from vnetdbg.freebsd.jail import all_prisons
from vnetdbg.freebsd.msgbuf import msgbuf_bytes
from vnetdbg.reports.info import panic_string
from vnetdbg.session import open_session

from .conftest import LAYOUTS, PROVIDERS, VMCORES, run_cli


def truth(layout: str) -> dict:
    return json.loads((VMCORES / layout / "ground-truth.json").read_text())


@pytest.fixture(params=[(l, p) for l in LAYOUTS for p in PROVIDERS],
                ids=lambda lp: f"{lp[0]}-{lp[1]}")
def opened(request):
    layout, provider = request.param
    session = open_session(str(VMCORES / layout / "vmcore.0"), types=provider)
    yield session, truth(layout)
    session.close()


def test_kernel_matches(opened):
    session, t = opened
    assert session.match.ok is True
    assert session.match.dump_version == t["version"]


def test_jails_as_written(opened):
    session, t = opened
    problems = []
    prisons = all_prisons(session.target, problems)
    assert problems == []
    expected = [t["prison0"]] + t["jails"]
    assert [p.jid for p in prisons] == [j["jid"] for j in expected]
    for got, want in zip(prisons, expected):
        assert got.address == int(want["address"], 16)
        assert got.name == want["name"]
        assert got.path.encode("utf-8", "surrogateescape") == base64.b64decode(want["path_b64"])
        assert got.hostname == want["hostname"]
        assert got.state == want["state"]
        assert got.cpusetid == want["cpusetid"]
        assert got.parent_jid == want["parent"]
        assert (got.ip4 or []) == want["ip4"]
        assert (got.ip6 or []) == want["ip6"]
        assert got.flags == want["flags"]
        assert got.allow == want["allow"]
        assert sorted(n for n, _, on in got.allows if on) == want["allow_names"]
        assert got.vnet == int(want["vnet"], 16)
        assert got.owns_vnet == want["vnet_owner"]
        assert (got.childcount, got.childmax) == (want["childcount"], want["childmax"])
        assert got.securelevel == want["securelevel"]
        assert got.osrelease == want["osrelease"] and got.osreldate == want["osreldate"]


def test_translation_facts(opened):
    """Virtual -> physical as the writer's page tables say, via the minidump only."""
    session, t = opened
    mem = session.memory
    assert t["translation_facts"], "the writer recorded no facts"
    for fact in t["translation_facts"]:
        assert mem.translate(int(fact["va"], 16)) == int(fact["pa"], 16), fact
    assert mem.describe()["present-pages"] == t["dump"]["present_pages"]


def test_crash_facts(opened):
    session, t = opened
    target = session.target
    assert panic_string(target) == t["panic_string"]
    assert msgbuf_bytes(target) == t["msgbuf"]["text"].encode("latin-1")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_info_json_keys(layout):
    r = run_cli("info", "--format", "json", str(VMCORES / layout / "vmcore.0"))
    assert r.code == 0, r.err
    facts = json.loads(r.out)
    t = truth(layout)
    assert facts["format"].startswith("amd64 minidump v")
    assert facts["arch"] == "amd64"
    assert facts["version"] == t["version"].rstrip("\n")
    assert facts["panic"] == t["panic_string"]
    assert facts["hostname"] == t["hostname"]
    assert facts["kernel-match"] is True
    assert facts["dumptime"]


def test_msgbuf_region_cross_check(opened):
    from vnetdbg.freebsd.msgbuf import cross_check

    session, _ = opened
    region = session.memory.msgbuf_region()
    assert region and cross_check(session.target, region) is None
    damaged = bytes([region[0] ^ 0xFF]) + region[1:]
    assert "differs" in cross_check(session.target, damaged)
