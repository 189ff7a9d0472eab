"""Every jls / show prison / info form on every fixture layout, under both type
providers, against golden files.

The golden files are the specification of each text form; the same file serves both
providers, which proves the reports do not depend on the provider.  Regenerate after an
intended change with ``UPDATE_GOLDEN=1 pytest tests/test_cli_golden.py`` and review the diff.
"""

from __future__ import annotations

import os

import pytest

from .conftest import LAYOUTS, PROVIDERS, ROOT, run_cli

GOLDEN = ROOT / "tests" / "golden"

#: name -> argv after "vnetdbg" (CORE is appended)
FORMS = {
    "jls": ["jls"],
    "jls-v": ["jls", "-v"],
    "jls-d": ["jls", "-d"],
    "jls-dv": ["jls", "-d", "-v"],
    "jls-N": ["jls", "-N"],
    "jls-n": ["jls", "-n"],
    "jls-dn": ["jls", "-d", "-n"],
    "jls-nq": ["jls", "-n", "-q"],
    "jls-s": ["jls", "-s"],
    "jls-h": ["jls", "-h"],
    "jls-params": ["jls", "jid", "name", "host.hostname", "ip4.addr", "ip6.addr", "dying"],
    "jls-h-params": ["jls", "-h", "jid", "parent", "path", "cpuset.id", "allow.raw_sockets"],
    "jls-q-params": ["jls", "-q", "name", "path", "ip4.addr"],
    "jls-j-name": ["jls", "-j", "web", "-v"],
    "jls-j-jid": ["jls", "-j", "3"],
    "jls-j-dying": ["jls", "-d", "-j", "dying"],
    "jls-json": ["jls", "--libxo", "json"],
    "jls-v-json": ["jls", "-v", "--libxo", "json,pretty"],
    "jls-n-json": ["jls", "-n", "--format", "json"],
    "show-prison": ["show", "prison"],
    "show-prison-jid": ["show", "prison", "2"],
    "info": ["info"],
    "info-json": ["info", "--format", "json-pretty"],
    "dmesg": ["dmesg"],
    "vnets": ["vnets"],
    "vnets-json": ["vnets", "--libxo", "json"],
    "show-all-vnets": ["show", "all", "vnets"],
    "netstat-i": ["netstat", "-i"],
    "netstat-ib": ["netstat", "-ib"],
    "netstat-id": ["netstat", "-id"],
    "netstat-iW": ["netstat", "-iW"],
    "netstat-in": ["netstat", "-in"],
    "netstat-i-I-vtnet0": ["netstat", "-i", "-I", "vtnet0"],
    "netstat-i-style15": ["netstat", "-i", "--style", "15"],
    "netstat-i-json": ["netstat", "-i", "--libxo", "json"],
    "ifconfig": ["ifconfig"],
    "ifconfig-vtnet0": ["ifconfig", "vtnet0"],
    "ifconfig-json": ["ifconfig", "--libxo", "json"],
    "ifconfig-j-vnetjail": ["ifconfig", "-j", "vnetjail"],
}


def core(layout: str) -> str:
    return f"fixtures/vmcores/{layout}/vmcore.0"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("layout", LAYOUTS)
def test_golden(layout, form, provider):
    result = run_cli(*FORMS[form], "--types", provider, core(layout))
    assert result.code == 0, result.err
    assert result.err == ""
    # info names the type provider; every other form must not depend on it
    suffix = f".{provider}" if form.startswith("info") else ""
    path = GOLDEN / layout / f"{form}{suffix}.txt"
    if os.environ.get("UPDATE_GOLDEN") and (suffix or provider == PROVIDERS[0]):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(result.out)
    assert result.out == path.read_bytes()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_core_given_with_M(layout):
    plain = run_cli("jls", core(layout))
    aliased = run_cli("jls", "-M", core(layout))
    assert aliased.code == 0 and aliased.out == plain.out


def test_jls_unknown_jail_is_one_error_line():
    result = run_cli("jls", "-j", "nosuchjail", core("amd64-fbsd14"))
    assert result.code == 1
    assert result.err == 'vnetdbg: jail "nosuchjail" not found\n'


def test_jls_dying_jail_without_d():
    result = run_cli("jls", "-j", "dying", core("amd64-fbsd14"))
    assert result.code == 1
    assert result.err == 'vnetdbg: jail "dying" is dying\n'


def test_usage_error_exits_2():
    assert run_cli("jls", "--no-such-option", core("amd64-fbsd14")).code == 2
    assert run_cli("frobnicate").code == 2


def test_no_orphan_golden_files():
    """A golden file no form produces is a stale specification."""
    expected = set()
    # other test modules keep golden files in the same directories (their own FORMS)
    forms = dict(FORMS)
    for module in ("tests.test_netstat_inet",):
        try:
            forms.update(__import__(module, fromlist=["FORMS"]).FORMS)
        except ImportError:
            pass
    for layout in LAYOUTS:
        for form in forms:
            names = ([f"{form}.{p}.txt" for p in ("drgn", "dwarf")] if form.startswith("info")
                     else [f"{form}.txt"])
            expected.update(f"{layout}/{n}" for n in names)
    present = {str(p.relative_to(GOLDEN)) for p in GOLDEN.glob("*/*.txt")}
    assert present <= expected, sorted(present - expected)
