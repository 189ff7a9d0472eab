"""Golden tests for vnetdbg.reports.jls (formats from usr.sbin/jls/jls.c)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from vnetdbg.reports import jls


@dataclass
class P:
    address: int = 0xFFFFF80003A1B000
    jid: int = 1
    name: str = "www"
    path: str = "/jails/www"
    hostname: str = "www.example.org"
    domainname: str = ""
    hostuuid: str = "00000000-0000-0000-0000-000000000000"
    hostid: int = 0
    parent_address: int = 0xFFFFFFFF81F2E000
    parent_jid: int | None = 0
    ref: int = 2
    uref: int = 1
    state: str = "alive"
    has_state: bool = True
    cpusetid: int = 3
    vnet: int = 0
    root: int = 0
    first_child: int = 0
    sibling: int = 0
    securelevel: int = -1
    enforce_statfs: int = 2
    devfs_rsnum: int = 4
    childmax: int = 0
    childcount: int = 0
    osrelease: str = "14.1-RELEASE"
    osreldate: int = 1401000
    flags: int = 0x3
    allow: int = 0x1
    ip4: list | None = field(default_factory=lambda: ["10.0.0.2"])
    ip6: list | None = None
    ip_per_family_counters: bool = False
    bools: list = field(default_factory=lambda: [
        ("persist", "nopersist", True),
        ("ip4.saddrsel", "ip4.nosaddrsel", True),
        ("ip6.saddrsel", "ip6.nosaddrsel", False),
    ])
    jailsys: list = field(default_factory=lambda: [
        ("host", "new"), ("vnet", "inherit"), ("ip4", "disable"),
        ("ip6", "inherit"),
    ])
    allows: list = field(default_factory=lambda: [
        ("allow.set_hostname", "allow.noset_hostname", True),
        ("allow.sysvipc", "allow.nosysvipc", False),
        ("allow.mount", "allow.nomount", False),
        ("allow.mount.devfs", "allow.mount.nodevfs", True),
    ])


# --------------------------------------------------------------- helpers

def test_printf_s_counts_bytes():
    assert jls.printf_s("abc", 5, left=True) == "abc  "
    assert jls.printf_s("abc", 5) == "  abc"
    assert jls.printf_s("abcdef", 0, 3) == "abc"
    # 'é' is 2 bytes: %-4.4s keeps "aé" + 1 pad byte
    assert jls.printf_s("aéz", 4, 4, left=True) == "aéz"
    assert jls.printf_s("aé", 4, 4, left=True) == "aé "
    # cutting inside a multibyte char leaves a raw byte (surrogateescape)
    cut = jls.printf_s("aé", 0, 2)
    assert cut.encode("utf-8", "surrogateescape") == b"a\xc3"


def test_quote_char():
    assert jls.c_quote_char("a b") == '"'
    assert jls.c_quote_char("a\tb") == '"'
    assert jls.c_quote_char('say "x"') == "'"
    assert jls.c_quote_char("it's") == '"'
    assert jls.c_quote_char("plain") == ""


# --------------------------------------------------------------- default

def test_default_headers():
    assert jls.DEFAULT_HEADER == "   JID  IP Address      Hostname                      Path"
    assert jls.NAME_HEADER == " JID             IP Address      Hostname                      Path"


def test_default_basic_and_no_ipv4():
    a = P(jid=1, ip4=["192.168.3.17"], hostname="ns.example.org", path="/home/j/ns")
    b = P(jid=12, ip4=None, hostname="webserver", path="/jail/webserver")
    assert jls.default_lines([a, b]) == [
        "   JID  IP Address      Hostname                      Path",
        "     1  192.168.3.17    ns.example.org                /home/j/ns",
        "    12                  webserver                     /jail/webserver",
    ]


def test_default_only_first_ipv4_and_no_trailing_space_on_path():
    a = P(ip4=["10.1.1.1", "10.1.1.2"], path="")
    assert jls.default_lines([a], header=False) == [
        "     1  10.1.1.1        www.example.org               ",
    ]


def test_default_truncation_29_15_74():
    host = "h" * 255
    path = "/" + "p" * 99
    a = P(jid=123456, ip4=["255.255.255.255"], hostname=host, path=path)
    line = jls.default_lines([a], header=False)[0]
    assert line == "123456  255.255.255.255 " + "h" * 29 + " " + "/" + "p" * 73
    assert len(line) == 6 + 2 + 15 + 1 + 29 + 1 + 74


def test_default_truncation_counts_bytes_non_utf8_path():
    raw = b"/jails/\xff\xfe" + b"x" * 80
    path = raw.decode("utf-8", "surrogateescape")
    a = P(path=path, hostname="h\u00e9" * 20)  # 3 bytes per "hé"; cut at 29 bytes
    line = jls.default_lines([a], header=False)[0]
    data = line.encode("utf-8", "surrogateescape")
    host_bytes = ("h\u00e9" * 20).encode()[:29]
    assert data == (b"     1  10.0.0.2        " + host_bytes + b" " + raw[:74])


def test_default_by_name():
    a = P(name="www", ip4=["10.0.0.2"])
    b = P(jid=2, name="a-very-long-jail-name", ip4=[])
    assert jls.default_lines([a, b], by_name=True) == [
        " JID             IP Address      Hostname                      Path",
        " www             10.0.0.2        www.example.org               /jails/www",
        " a-very-long-jail-name                 www.example.org               /jails/www",
    ]


def test_default_without_inet():
    assert jls.default_lines([P()], header=False, inet=False) == [
        "     1  -               www.example.org               /jails/www",
    ]


# --------------------------------------------------------------- verbose

def test_verbose_several_addresses():
    a = P(jid=3, name="mail", hostname="mail.example.org", path="/j/mail",
          cpusetid=4, ip4=["10.0.0.3", "10.0.0.4"], ip6=["2001:db8::3", "fe80::1"])
    b = P(jid=7, name="dead", state="dying", ip4=None, ip6=None, cpusetid=9)
    assert jls.verbose_lines([a, b]) == [
        "   JID  Hostname                      Path",
        "        Name                          State",
        "        CPUSetID",
        "        IP Address(es)",
        "     3  mail.example.org              /j/mail",
        "        mail                          ACTIVE",
        "        4",
        "        10.0.0.3",
        "        10.0.0.4",
        "        2001:db8::3",
        "        fe80::1",
        "     7  www.example.org               /jails/www",
        "        dead                          DYING",
        "        9",
    ]


def test_verbose_name_truncated_29():
    a = P(name="n" * 40, ip4=None)
    assert jls.verbose_lines([a], header=False)[1] == "        " + "n" * 29 + " ACTIVE"


# --------------------------------------------------------------- params

def test_all_params_order():
    names = [n for n, _ in jls.all_params(P())]
    assert names == [
        "devfs_ruleset", "dying", "enforce_statfs", "host", "ip4", "ip6",
        "jid", "name", "osreldate", "osrelease", "parent", "path", "persist",
        "securelevel", "vnet",
        "allow.mount", "allow.mount.devfs", "allow.set_hostname",
        "allow.sysvipc", "children.cur", "children.max", "cpuset.id",
        "host.domainname", "host.hostid", "host.hostname", "host.hostuuid",
        "ip4.addr", "ip4.saddrsel", "ip6.addr", "ip6.saddrsel",
    ]
    vals = dict(jls.all_params(P()))
    assert vals["persist"] is True and vals["dying"] is False
    assert vals["ip6.addr"] == [] and vals["ip4.addr"] == ["10.0.0.2"]
    assert vals["host"] == "new" and vals["parent"] == 0


def test_n_all():
    line = jls.param_lines([P()], name_value=True)
    assert line == [
        "devfs_ruleset=4 nodying enforce_statfs=2 host=new ip4=disable "
        "ip6=inherit jid=1 name=www osreldate=1401000 osrelease=14.1-RELEASE "
        "parent=0 path=/jails/www persist securelevel=-1 vnet=inherit "
        "allow.nomount allow.mount.devfs allow.set_hostname allow.nosysvipc "
        "children.cur=0 children.max=0 cpuset.id=3 host.domainname=\"\" "
        "host.hostid=0 host.hostname=www.example.org "
        "host.hostuuid=00000000-0000-0000-0000-000000000000 "
        "ip4.addr=10.0.0.2 ip4.saddrsel ip6.addr= ip6.nosaddrsel"
    ]


def test_n_ip_list_comma_and_empty_variants():
    a = P(ip4=["10.0.0.2", "10.0.0.3"], ip6=None)
    assert jls.param_lines([a], ["ip4.addr", "ip6.addr"], name_value=True) == [
        "ip4.addr=10.0.0.2,10.0.0.3 ip6.addr="]
    assert jls.param_lines([a], ["ip4.addr", "ip6.addr"]) == [
        "10.0.0.2,10.0.0.3 -"]
    assert jls.param_lines([a], ["ip6.addr"], quote=True) == ['""']
    assert jls.param_lines([a], ["ip6.addr"], name_value=True, quote=True) == [
        'ip6.addr=""']


def test_params_plain_bools_print_true_false_and_nobool():
    a = P()
    assert jls.param_lines([a], ["persist", "dying", "allow.sysvipc"]) == [
        "true false false"]
    assert jls.param_lines([a], ["nopersist", "allow.nosysvipc"], name_value=True) == [
        "persist allow.nosysvipc"]


def test_q_quoting():
    a = P(hostname="my host", path="/it's", domainname='a"b')
    assert jls.param_lines([a], ["host.hostname", "path", "host.domainname"]) == [
        'my host /it\'s a"b']
    assert jls.param_lines([a], ["host.hostname", "path", "host.domainname"],
                           quote=True) == ['"my host" "/it\'s" \'a"b\'']
    assert jls.param_lines([a], ["host.hostname"], name_value=True, quote=True) == [
        'host.hostname="my host"']


def test_h_header_then_values():
    a = P()
    assert jls.param_lines([a, P(jid=2, name="b")], ["jid", "name"], header=True) == [
        "jid name", "1 www", "2 b"]


def test_s_skips_readonly_and_non_new_jailsys_children():
    a = P(jailsys=[("host", "inherit"), ("ip4", "new")])
    out = jls.param_lines([a], ["jid", "parent", "dying", "host.hostname",
                                "ip4.addr", "cpuset.id", "persist"], skip=True)
    assert out == ["jid=1 ip4.addr=10.0.0.2 persist"]


def test_unknown_param():
    with pytest.raises(jls.UnknownParameter, match="unknown parameter: sysvmsg"):
        jls.param_lines([P()], ["sysvmsg"])


# --------------------------------------------------------------- select

def _jails():
    return [
        P(jid=0, name="0", parent_jid=None),
        P(jid=5, name="b"),
        P(jid=2, name="a"),
        P(jid=3, name="d", state="dying", uref=0),
        P(jid=4, name="gone", state="invalid", ref=0),
    ]


def test_select_order_and_dying():
    assert [p.jid for p in jls.select(_jails())] == [2, 5]
    assert [p.jid for p in jls.select(_jails(), include_dying=True)] == [2, 3, 5]


def test_select_by_jid_and_name():
    assert jls.select(_jails(), "5")[0].name == "b"
    assert jls.select(_jails(), "a")[0].jid == 2
    with pytest.raises(jls.JailNotFound) as e:
        jls.select(_jails(), "x")
    assert str(e.value) == 'jail "x" not found'
    with pytest.raises(jls.JailNotFound) as e:
        jls.select(_jails(), "9")
    assert str(e.value) == "jail 9 not found"
    with pytest.raises(jls.JailNotFound) as e:
        jls.select(_jails(), "3")
    assert str(e.value) == "jail 3 is dying"
    with pytest.raises(jls.JailNotFound) as e:
        jls.select(_jails(), "d")
    assert str(e.value) == 'jail "d" is dying'
    assert jls.select(_jails(), "3", include_dying=True)[0].name == "d"
    # "0" is a name (prison0 is not a jail), "5x" too
    with pytest.raises(jls.JailNotFound, match='jail "0" not found'):
        jls.select(_jails(), "0")
    with pytest.raises(jls.JailNotFound, match='jail "5x" not found'):
        jls.select(_jails(), "5x")


# --------------------------------------------------------------- json

def test_json_default_and_name():
    a = P(ip4=None, hostname="h" * 40)
    d = jls.to_json([a])
    assert d == {"__version": "2", "jail-information": {"jail": [
        {"jid": 1, "ipv4": "", "hostname": "h" * 40, "path": "/jails/www"}]}}
    d = jls.to_json([a], "name")
    assert list(d["jail-information"]["jail"][0]) == ["name", "ipv4", "hostname", "path"]


def test_json_verbose():
    a = P(ip4=["10.0.0.2"], ip6=["::1"], state="dying")
    j = jls.to_json([a], "verbose")["jail-information"]["jail"][0]
    assert j == {"jid": 1, "hostname": "www.example.org", "path": "/jails/www",
                 "name": "www", "state": "DYING", "cpusetid": 3,
                 "ipv4_addrs": ["10.0.0.2"], "ipv6_addrs": ["::1"]}


def test_json_params():
    j = jls.to_json([P()], "params", params=["jid", "persist", "ip4.addr",
                                             "host.domainname", "allow.sysvipc"],
                    name_value=True)["jail-information"]["jail"][0]
    assert j == {"jid": "1", "persist": True, "ip4.addr": ["10.0.0.2"],
                 "host.domainname": "", "allow.sysvipc": False}
    j = jls.to_json([P()], "params", params=["persist"])["jail-information"]["jail"][0]
    assert j == {"persist": "true"}
