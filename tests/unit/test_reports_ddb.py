"""Golden tests for vnetdbg.reports.ddb_prison (kern_jail.c db_show_prison)."""

from __future__ import annotations

from dataclasses import replace

from vnetdbg.reports import ddb_prison as ddb

from tests.unit.test_reports_jls import P


def _jail(**kw):
    base = P(
        address=0xFFFFF80003A1B000, jid=1, name="www", path="/jails/www",
        hostname="www.example.org", domainname="", hostid=0,
        parent_address=0xFFFFFFFF81F2E0A0, parent_jid=0, ref=3, uref=2,
        state="alive", has_state=True, cpusetid=3, vnet=0xFFFFF80002F44C80,
        root=0xFFFFF80003B7D1E0, first_child=0, sibling=0xFFFFF80003A1A000,
        securelevel=-1, devfs_rsnum=4, childmax=0, childcount=0,
        enforce_statfs=2, flags=0x3, allow=0x81,
        ip4=["10.0.0.2", "10.0.0.3"], ip6=None, ip_per_family_counters=False,
        bools=[("persist", "nopersist", True),
               ("ip4.saddrsel", "ip4.nosaddrsel", False),
               ("ip6.saddrsel", "ip6.nosaddrsel", False)],
        jailsys=[("host", "new"), ("vnet", "inherit"), ("ip4", "disable"),
                 ("ip6", "inherit")],
        allows=[("allow.set_hostname", "allow.noset_hostname", True),
                ("allow.sysvipc", "allow.nosysvipc", False),
                ("allow.mlock", "allow.nomlock", True)],
    )
    return replace(base, **kw)


HEAD = [
    "prison 0xfffff80003a1b000:",
    " jid             = 1",
    " name            = www",
    " parent          = 0xffffffff81f2e0a0",
    " ref             = 3",
    " uref            = 2",
]
MIDDLE = [
    " path            = /jails/www",
    " cpuset          = 3",
    " vnet            = 0xfffff80002f44c80",
    " root            = 0xfffff80003b7d1e0",
    " securelevel     = -1",
    " devfs_rsnum     = 4",
    " children.max    = 0",
    " children.cur    = 0",
    " child           = 0",
    " sibling         = 0xfffff80003a1a000",
    " flags           = 0x3 persist host            = new",
    " vnet            = inherit",
    " ip4             = disable",
    " ip6             = inherit",
    " allow           = 0x81 allow.set_hostname allow.mlock",
    " enforce_statfs  = 2",
    " host.hostname   = www.example.org",
    " host.domainname = ",
    " host.hostuuid   = 00000000-0000-0000-0000-000000000000",
    " host.hostid     = 0",
]
IP4 = [
    " ip4s            = 2",
    " ip4.addr        = 10.0.0.2",
    "                   10.0.0.3",
]


def test_kernel_p():
    assert ddb.kernel_p(0) == "0"
    assert ddb.kernel_p(None) == "0"
    assert ddb.kernel_p(0x1000) == "0x1000"


def test_v14_variant_state_and_null_lists():
    # 14+: state line, ip6 list pointer NULL -> no ip6s line at all
    assert ddb.show_prison_lines(_jail()) == (
        HEAD + [" state           = alive"] + MIDDLE + IP4)


def test_v14_empty_but_non_null_list():
    lines = ddb.show_prison_lines(_jail(ip6=[]))
    assert lines[-1] == " ip6s            = 0"


def test_v13_variant_counters_always():
    p = _jail(ip_per_family_counters=True, ip4=[], ip6=None, state="dying")
    assert ddb.show_prison_lines(p) == (
        HEAD + [" state           = dying"] + MIDDLE
        + [" ip4s            = 0", " ip6s            = 0"])


def test_v12_variant_no_state_line():
    p = _jail(has_state=False, ip_per_family_counters=True,
              ip6=["2001:db8::1", "2001:db8::2"])
    assert ddb.show_prison_lines(p) == (
        HEAD + MIDDLE + IP4 + [
            " ip6s            = 2",
            " ip6.addr        = 2001:db8::1",
            "                   2001:db8::2",
        ])


def test_no_vimage_and_invalid_state_and_unsigned_fields():
    p = _jail(state="invalid", hostid=0xFFFFFFFFFFFFFFFF, ref=0xFFFFFFFF,
              jailsys=[("host", "new"), ("ip4", "disable"), ("ip6", "inherit")])
    lines = ddb.show_prison_lines(p, vimage=False)
    assert " vnet            = 0xfffff80002f44c80" not in lines
    assert " state           = invalid" in lines
    assert " ref             = -1" in lines
    assert " host.hostid     = 18446744073709551615" in lines


def test_prison0_like_record():
    p0 = _jail(address=0xFFFFFFFF81F2E0A0, jid=0, name="0", path="/",
               parent_address=0, parent_jid=None, ref=5, uref=5,
               first_child=0xFFFFF80003A1B000, sibling=0, flags=0x192,
               bools=[("persist", "nopersist", False),
                      ("ip4.saddrsel", "ip4.nosaddrsel", True),
                      ("ip6.saddrsel", "ip6.nosaddrsel", True)],
               jailsys=[("host", "new"), ("vnet", "new"), ("ip4", "inherit"),
                        ("ip6", "inherit")],
               ip4=None, ip6=None, hostname="host.example.org")
    lines = ddb.show_prison_lines(p0)
    assert lines[0] == "prison 0xffffffff81f2e0a0:"
    assert lines[3] == " parent          = 0"
    assert " flags           = 0x192 ip4.saddrsel ip6.saddrsel host            = new" in lines
    assert lines[-1] == " host.hostid     = 0"


def test_raw_bytes_survive():
    raw = b"/jails/\xff"
    p = _jail(path=raw.decode("utf-8", "surrogateescape"))
    line = [l for l in ddb.show_prison_lines(p) if l.startswith(" path")][0]
    assert line.encode("utf-8", "surrogateescape") == b" path            = /jails/\xff"


def test_show_all():
    p0 = _jail(jid=0, name="0", parent_jid=None)
    out = ddb.show_all_prisons_lines(p0, [_jail(), _jail(jid=2)])
    assert sum(1 for l in out if l.startswith("prison ")) == 3
