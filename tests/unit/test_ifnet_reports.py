"""Renderers for netstat -i and ifconfig on hand-built interface records, and the
sockaddr text helpers.  Expected strings come from the printf formats of
usr.bin/netstat/if.c (12-14 fixed, 15 dynamic), sbin/ifconfig (af_inet.c, af_inet6.c,
af_link.c, ifconfig.c / ifconfig_netlink.c) and libc inet_ntop/getnameinfo."""

from __future__ import annotations

from types import SimpleNamespace as NS

import pytest

from vnetdbg.freebsd.ifnet import IfAddress, Interface
from vnetdbg.freebsd.sockaddr import (AF_INET, AF_INET6, AF_LINK, Sockaddr, ether_ntoa,
                                      inet_ntop6, link_ntoa, link_routename, netname4,
                                      netname6, numeric_host, prefix_len, recover_scope)
from vnetdbg.reports import ifconfig as ic
from vnetdbg.reports import netstat_if as ns


def sdl(index, typ, name, addr=b""):
    nb = name.encode()
    return Sockaddr(AF_LINK, 8 + len(nb) + len(addr), sdl_index=index, sdl_type=typ,
                    sdl_nlen=len(nb), sdl_alen=len(addr), sdl_data=nb + addr)


def in4(a):
    return Sockaddr(AF_INET, 16, addr4=bytes(a))


def in6(a, scope=0):
    a, s, e = recover_scope(bytes(a), scope)
    return Sockaddr(AF_INET6, 28, addr6=a, scope_id=s, embedded_scope=e)


def m6(plen):
    b = (((1 << plen) - 1) << (128 - plen)).to_bytes(16, "big")
    return Sockaddr(AF_INET6, 28, addr6=b, raw=bytes(8) + b + bytes(4))


C = dict(ipackets=1234, ierrors=0, iqdrops=0, opackets=567, oerrors=0, collisions=0,
         ibytes=98765, obytes=43210, oqdrops=3)


def iface(**kw):
    base = dict(if_flags=0, drv_flags=0, mtu=1500, metric=0, type=6, link_state=2,
                baudrate=0, capabilities=0, capenable=0, capenable2=None, counters=None,
                get_counter=0x1000, get_counter_name="if_get_counter_default", lladdr=None)
    base.update(kw)
    return Interface(**base)


VT = iface(address=1, name="vtnet0", index=1, if_flags=0x8803, drv_flags=0x40, counters=C,
           capenable=0x80028, lladdr=sdl(1, 6, "vtnet0", bytes.fromhex("589cfc10ffac")),
           addresses=[IfAddress(2, AF_INET, in4([192, 168, 122, 10]), in4([255, 255, 255, 0]),
                                in4([192, 168, 122, 255]), ipackets=10, opackets=20,
                                ibytes=1000, obytes=2000),
                      IfAddress(3, AF_INET6,
                                in6(bytes.fromhex("fe800001000000005a9cfcfffe10ffac")),
                                m6(64))])
LO = iface(address=4, name="lo0", index=2, type=0x18, if_flags=0x8009, drv_flags=0x40,
           mtu=16384, capenable=0x680003, counters=dict(C, ipackets=42, opackets=42),
           lladdr=sdl(2, 0x18, "lo0"),
           addresses=[IfAddress(5, AF_INET6, in6(bytes(15) + b"\1"), m6(128)),
                      IfAddress(6, AF_INET6,
                                in6(bytes.fromhex("fe800002000000000000000000000001")),
                                m6(64)),
                      IfAddress(7, AF_INET, in4([127, 0, 0, 1]), in4([255, 0, 0, 0]),
                                ipackets=5, opackets=5)])
EP = iface(address=8, name="epair0b", index=3, if_flags=0x8802, drv_flags=0,
           counters=dict(C, ipackets=7, opackets=0), link_state=1,
           lladdr=sdl(3, 6, "epair0b", bytes.fromhex("020000000b0b")),
           get_counter_name="epair_get_counter", vnet=0x10, home_vnet=0x20)
IFS = [VT, LO, EP]
NAMES = {1: "vtnet0", 2: "lo0", 3: "epair0b"}
NOTE = ("vnetdbg: note: epair0b: if_get_counter is epair_get_counter (driver method); "
        "counts shown are the generic if_counters only")


def opts(**kw):
    d = dict(bytes=False, drops=False, wide=False, interface=None, inet4=False,
             inet6=False, style="auto")
    d.update(kw)
    return NS(**d)


def render(style, **kw):
    o = opts(**kw)
    return ns.render(ns.rows(IFS, interface=o.interface, family=ns._family(o)), o, style)


# -- sockaddr helpers -----------------------------------------------------------------

@pytest.mark.parametrize("hexaddr,text", [
    ("00000000000000000000000000000001", "::1"),
    ("00000000000000000000000000000000", "::"),
    ("fe800000000000000000000000000001", "fe80::1"),
    ("00000000000000000000ffff01020304", "::ffff:1.2.3.4"),
    ("00000000000000000000000001020304", "::1.2.3.4"),
    ("20010db8000000000001000000000001", "2001:db8::1:0:0:1"),   # first longest run
    ("00010000000200030004000500060007", "1:0:2:3:4:5:6:7"),     # one zero word stays
    ("20010db8000000000000000000000000", "2001:db8::"),
])
def test_inet_ntop6(hexaddr, text):
    assert inet_ntop6(bytes.fromhex(hexaddr)) == text


def test_kame_embedded_scope_is_recovered():
    addr, scope, embedded = recover_scope(
        bytes.fromhex("fe800002000000000000000000000001"), 0)
    assert (inet_ntop6(addr), scope, embedded) == ("fe80::1", 2, 2)
    sa = in6(bytes.fromhex("fe800002000000000000000000000001"))
    assert numeric_host(sa, NAMES.get) == "fe80::1%lo0"
    assert numeric_host(sa) == "fe80::1%2"          # no interface name known
    # a global address is never touched
    g = bytes.fromhex("20010db8000200000000000000000001")
    assert recover_scope(g, 0) == (g, 0, 0)


def test_netnames():
    assert netname4(bytes([192, 168, 122, 10]), bytes([255, 255, 255, 0])) == \
        "192.168.122.0/24"
    assert netname4(bytes([10, 0, 0, 1]), bytes([255, 0, 255, 0])) == "10.0.0.0&0xff00ff00"
    assert netname4(bytes(4), bytes(4)) == "default"
    assert netname6(bytes.fromhex("fe800000000000000000000000000001"), 2,
                    (b"\xff" * 8) + bytes(8), NAMES.get) == "fe80::%lo0/64"
    assert netname6(bytes(15) + b"\1", 0, b"\xff" * 16) == "::1/128"
    assert netname6(bytes(16), 0, bytes(16)) == "default"
    assert prefix_len(b"\xff" * 8 + bytes(8)) == 64
    assert prefix_len(b"\xff\x00\xff" + bytes(13)) == 0        # not contiguous


def test_link_names():
    assert link_routename(sdl(2, 0x18, "lo0")) == "lo0"
    assert link_routename(sdl(4, 6, "")) == "link#4"
    mac = sdl(1, 6, "em0", bytes.fromhex("0800270a0b0c"))
    assert link_routename(mac) == "08:00:27:0a:0b:0c"
    assert ether_ntoa(mac.lladdr) == "08:00:27:0a:0b:0c"
    assert link_ntoa(sdl(5, 0x17, "ppp0", bytes([1, 0x2a, 0]))) == "ppp0:1.2a.0"


# -- netstat -i, 12-14 fixed layout ---------------------------------------------------

HEAD12 = ("Name    Mtu Network       Address              Ipkts Ierrs Idrop    Opkts "
          "Oerrs  Coll")


def test_fixed_default():
    assert render("12") == [
        HEAD12,
        "vtnet  1500 <Link#1>      58:9c:fc:10:ff:ac     1234     0     0      567     0     0",
        "vtnet     - 192.168.122.0 192.168.122.10          10     -     -       20     -     -",
        "vtnet     - fe80::%vtnet0 fe80::5a9c:fcff:f        0     -     -        0     -     -",
        "lo0   16384 <Link#2>      lo0                     42     0     0       42     0     0",
        "lo0       - ::1/128       ::1                      0     -     -        0     -     -",
        "lo0       - fe80::%lo0/64 fe80::1%lo0              0     -     -        0     -     -",
        "lo0       - 127.0.0.0/8   127.0.0.1                5     -     -        5     -     -",
        "epair  1500 <Link#3>      02:00:00:00:0b:0b        7     0     0        0     0     0",
        NOTE,
    ]


def test_fixed_bytes_and_drops():
    lines = render("12", bytes=True, drops=True)
    assert lines[0] == ("Name    Mtu Network       Address              Ipkts Ierrs Idrop"
                        "     Ibytes    Opkts Oerrs     Obytes  Coll  Drop")
    # " %5lu " for Drop leaves a trailing blank, as netstat's show_stat("LSlu") does
    assert lines[1] == ("vtnet  1500 <Link#1>      58:9c:fc:10:ff:ac     1234     0     0"
                        "      98765      567     0      43210     0     3 ")
    assert lines[2] == ("vtnet     - 192.168.122.0 192.168.122.10          10     -     -"
                        "       1000       20     -       2000     -     - ")


def test_fixed_wide():
    lines = render("12", wide=True)
    assert lines[0] == ("Name       Mtu Network                  Address              "
                        "                      Ipkts Ierrs Idrop    Opkts Oerrs  Coll")
    assert lines[3] == ("vtnet0       - fe80::%vtnet0/64         "
                        "fe80::5a9c:fcff:fe10:ffac%vtnet0               0     -     -"
                        "        0     -     -")
    assert lines[8].startswith("epair0b*  1500 <Link#3>  ")


def test_fixed_filters():
    lines = render("12", interface="lo0")
    assert [line[:5] for line in lines[1:]] == ["lo0  "] * 4
    lines = render("12", inet4=True)
    assert [line.split()[2] for line in lines[1:3]] == ["192.168.122.0", "127.0.0.0/8"]
    assert len(lines) == 3            # no link rows, no note (no epair0b row)


# -- netstat -i, 15 dynamic layout ----------------------------------------------------

def test_dynamic_default():
    assert render("15") == [
        "Name       Mtu Network           Address                             Ipkts Ierrs "
        "Idrop    Opkts Oerrs  Coll",
        "vtnet0    1500 <Link#1>          58:9c:fc:10:ff:ac                    1234     0 "
        "    0      567     0     0",
        "vtnet0       - 192.168.122.0/24  192.168.122.10                         10     - "
        "    -       20     -     -",
        "vtnet0       - fe80::%vtnet0/64  fe80::5a9c:fcff:fe10:ffac%vtnet0        0     - "
        "    -        0     -     -",
        "lo0      16384 <Link#2>          lo0                                    42     0 "
        "    0       42     0     0",
        "lo0          - ::1/128           ::1                                     0     - "
        "    -        0     -     -",
        "lo0          - fe80::%lo0/64     fe80::1%lo0                             0     - "
        "    -        0     -     -",
        "lo0          - 127.0.0.0/8       127.0.0.1                               5     - "
        "    -        5     -     -",
        "epair0b*  1500 <Link#3>          02:00:00:00:0b:0b                       7     0 "
        "    0        0     0     0",
        NOTE,
    ]


def test_dynamic_widths_grow():
    assert ns.max_num_len(8, 1234) == 8
    assert ns.max_num_len(5, 123456) == 7     # netstat's count, one more than digits
    assert ns.max_num_len(5, 10) == 5
    big = iface(address=9, name="ix0", index=4, if_flags=0x8843,
                counters=dict(C, ipackets=123456789012), lladdr=sdl(4, 6, "ix0", bytes(6)))
    o = opts()
    lines = ns.render(ns.rows([big]), o, "15")
    assert lines[0].endswith("         Ipkts Ierrs Idrop         Opkts Oerrs  Coll")
    assert lines[1].endswith(" 123456789012     0     0           567     0     0")


def test_json_keys():
    recs = ns.json_records(ns.rows(IFS), opts(drops=True), "12")
    assert recs[0] == {"name": "vtnet0", "flags": "0x8843", "mtu": 1500,
                       "network": "<Link#1>", "address": "58:9c:fc:10:ff:ac",
                       "received-packets": 1234, "received-errors": 0,
                       "dropped-packets": 0, "sent-packets": 567, "send-errors": 0,
                       "collisions": 0, "sent-dropped-packets": 3}
    # address rows: no mtu, no error/drop keys (netstat prints "-"), full strings
    assert recs[2] == {"name": "vtnet0", "flags": "0x8843", "network": "fe80::%vtnet0/64",
                       "address": "fe80::5a9c:fcff:fe10:ffac%vtnet0",
                       "received-packets": 0, "sent-packets": 0}
    assert recs[-1]["driver-get-counter"] == "epair_get_counter"
    assert recs[-1]["flags"] == "0x8802"


# -- ifconfig ----------------------------------------------------------------------------

def block(i, netlink, moved=None):
    bits = ic.IFCAPBITS_13 if netlink else ic.IFCAPBITS
    return ic.interface_lines(i, netlink=netlink, cap_bits=bits, ifname_of=NAMES.get,
                              moved_from=moved)


def test_ifconfig_12_13():
    assert block(VT, False) == [
        "vtnet0: flags=8843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST> metric 0 mtu 1500",
        "\toptions=80028<VLAN_MTU,JUMBO_MTU,LINKSTATE>",
        "\tether 58:9c:fc:10:ff:ac",
        "\tinet 192.168.122.10 netmask 0xffffff00 broadcast 192.168.122.255",
        "\tinet6 fe80::5a9c:fcff:fe10:ffac%vtnet0 prefixlen 64 scopeid 0x1",
    ]
    # getifaddrs order: the list order of if_addrhead
    assert block(LO, False) == [
        "lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST> metric 0 mtu 16384",
        "\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>",
        "\tinet6 ::1 prefixlen 128",
        "\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x2",
        "\tinet 127.0.0.1 netmask 0xff000000",
    ]
    assert block(EP, False, moved="vnet 0x20 (jail 0)") == [
        "epair0b: flags=8802<BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 1500",
        "\tether 02:00:00:00:0b:0b",
        "\tmoved from vnet 0x20 (jail 0)",
        "\tcounters: if_get_counter is epair_get_counter (driver method); "
        "the real counts are in the driver's softc",
    ]


# vtnet0 with an IPv4 alias added after its IPv6 addresses (if_addrhead order:
# link, inet, inet6, inet6, inet)
MIXED = iface(address=20, name="vtnet0", index=1, if_flags=0x8803, drv_flags=0x40,
              lladdr=sdl(1, 6, "vtnet0", bytes.fromhex("525400123456")),
              addresses=[IfAddress(21, AF_INET, in4([192, 0, 2, 1]), in4([255, 255, 255, 0]),
                                   in4([192, 0, 2, 255])),
                         IfAddress(22, AF_INET6,
                                   in6(bytes.fromhex("fe80000100000000505400fffe123456")),
                                   m6(64)),
                         IfAddress(23, AF_INET6,
                                   in6(bytes.fromhex("20010db8000000000000000000000001")),
                                   m6(64)),
                         IfAddress(24, AF_INET, in4([192, 0, 2, 2]), in4([255] * 4),
                                   in4([192, 0, 2, 2]))])


def test_ifconfig_12_13_groups_families_in_first_seen_order():
    # ifconfig.c calcorders()/cmpifaddrs(): each interface's addresses grouped by
    # family, families in the order they first appear, list order within a family
    assert block(MIXED, False)[2:] == [
        "\tinet 192.0.2.1 netmask 0xffffff00 broadcast 192.0.2.255",
        "\tinet 192.0.2.2 netmask 0xffffffff broadcast 192.0.2.2",
        "\tinet6 fe80::5054:ff:fe12:3456%vtnet0 prefixlen 64 scopeid 0x1",
        "\tinet6 2001:db8::1 prefixlen 64",
    ]
    assert block(MIXED, True)[2:] == block(MIXED, False)[2:]


def test_ifconfig_14_lower_up_rule():
    # iface.c get_operstate(): Ethernet/VLAN by media status (the link state here),
    # every other type by IFF_UP, whatever its link state
    lo_unknown = iface(address=30, name="lo0", index=2, type=0x18, if_flags=0x8009,
                       drv_flags=0x40, link_state=0, mtu=16384)
    assert block(lo_unknown, True)[0].startswith("lo0: flags=1008049<")
    lo_down = iface(address=31, name="lo1", index=5, type=0x18, if_flags=0x8008,
                    link_state=0, mtu=16384)
    assert block(lo_down, True)[0].startswith("lo1: flags=8008<")
    em_down = iface(address=32, name="em0", index=2, if_flags=0x8802, link_state=1)
    assert block(em_down, True)[0] == \
        "em0: flags=8802<BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 1500"
    # 12/13 never show it
    assert block(lo_unknown, False)[0].startswith("lo0: flags=8049<")


def test_ifconfig_json_marks_driver_counters_and_moves():
    d = ic.interface_record(EP, netlink=False, cap_bits=ic.IFCAPBITS, ifname_of=NAMES.get,
                            moved_from="vnet 0x20 (jail 0)", home_jail=0)
    assert d["driver-get-counter"] == "epair_get_counter"
    assert (d["home-vnet"], d["moved-from"], d["home-jail"]) == \
        ("0x20", "vnet 0x20 (jail 0)", 0)
    assert "driver-get-counter" not in ic.interface_record(
        VT, netlink=False, cap_bits=ic.IFCAPBITS)


def test_ifconfig_14_netlink():
    # LOWER_UP for an up link; addresses sorted inet before inet6
    assert block(LO, True) == [
        "lo0: flags=1008049<UP,LOOPBACK,RUNNING,MULTICAST,LOWER_UP> metric 0 mtu 16384",
        "\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>",
        "\tinet 127.0.0.1 netmask 0xff000000",
        "\tinet6 ::1 prefixlen 128",
        "\tinet6 fe80::1%lo0 prefixlen 64 scopeid 0x2",
    ]
    assert block(EP, True)[0] == "epair0b: flags=8802<BROADCAST,SIMPLEX,MULTICAST> metric 0 mtu 1500"


def test_ifconfig_flag_strings():
    assert ic.printb("flags", 0, ic.IFFBITS_OLD) == "flags=0<>"
    assert ic.print_bits("flags", 0, ic.IFFBITS_NL) == "flags=0"
    assert ic.print_bits("flags", 0x20000001, ic.IFFBITS_NL) == "flags=20000001<UP,IFF_29>"


def test_ifconfig_inet6_flags_and_p2p():
    a = IfAddress(1, AF_INET6, in6(bytes.fromhex("20010db8000000000000000000000005")),
                  m6(64), flags6=0x02 | 0x40)
    assert ic.inet6_line(a, 0x8843, NAMES.get) == \
        "\tinet6 2001:db8::5 prefixlen 64 tentative autoconf"
    p = IfAddress(2, AF_INET, in4([10, 0, 0, 1]), in4([255, 255, 255, 255]),
                  in4([10, 0, 0, 2]))
    assert ic.inet_line(p, 0x8051) == "\tinet 10.0.0.1 --> 10.0.0.2 netmask 0xffffffff"
