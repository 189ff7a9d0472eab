"""netstat socket and statistics reports: formats from FreeBSD's own printf strings, and the
fast pcb walker over hand-made 12/13- and 14-style structures (offsets written by hand).

Expected lines are derived from usr.bin/netstat/inet.c (12+): header
``%-5.5s %-6.6s %-6.6s %-22.22s %-22.22s`` + `` %-11.11s`` "(state)"; rows
``%-3.3s%-2.2s `` ``%6u %6u `` then inetprint's ``%-22.22s `` of "host.port " and the
state ``%-11s``; inet6print ``%-22.22s `` of "host.port" (no inner blank); -L rows
``%-32.32s `` of "qlen/incqlen/qlimit".
"""

import struct
from types import SimpleNamespace as NS

import pytest

from vnetdbg.debuginfo.types import Kind, Member, Type
from vnetdbg.freebsd import inpcb as P
from vnetdbg.freebsd.inpcb import Pcb
from vnetdbg.reports import netstat_inet as NI
from vnetdbg.reports import netstat_stats as NSS
from vnetdbg.reports.scope import Stack

from .fakes import INT, U8, UINT, make_target, ptr

U16 = Type(Kind.INT, "unsigned short", 2)
SHORT = Type(Kind.INT, "short", 2, signed=True)
U64 = Type(Kind.INT, "unsigned long", 8)


def v4(*octets):
    return bytes(12) + bytes(octets)


def v6(text):
    import ipaddress
    return ipaddress.IPv6Address(text).packed


def pcb(vflag=1, laddr=v4(0, 0, 0, 0), lport=0, faddr=v4(0, 0, 0, 0), fport=0, state=None,
        flags=0, rcv=0, snd=0, q=(0, 0, 0), options=0, protocol=None, address=0xfffff80001000000,
        tcpcb=None, so_pcb=None, t_flags=0):
    p = Pcb(address, vflag, flags, lport, fport, laddr, faddr, socket=0xfffff80002000000)
    p.state, p.rcv_cc, p.snd_cc = state, rcv, snd
    p.qlen, p.incqlen, p.qlimit = q
    p.options, p.protocol, p.t_flags = options, protocol, t_flags
    p.tcpcb = address if tcpcb is None else tcpcb
    p.so_pcb = address if so_pcb is None else so_pcb
    return p


def fmt(**kw):
    ns = NS(all=False, numeric=False, listen=False, pcb_address=False, wide=False,
            inet4=False, inet6=False, protocol=None)
    for k, v in kw.items():
        setattr(ns, k, v)
    return NI.Formatter(NI.Options(ns), lambda: {1: "lo0", 2: "vtnet0"})


HEADER = "Proto Recv-Q Send-Q Local Address          Foreign Address        (state)    "


# -- headers ----------------------------------------------------------------------------

def test_header_plain_and_all():
    assert fmt().header() == ["Active Internet connections", HEADER]
    assert fmt(all=True).header()[0] == "Active Internet connections (including servers)"


def test_header_pcb_address_narrows_to_18():
    assert fmt(pcb_address=True).header()[1] == (
        "Tcpcb            Proto Recv-Q Send-Q Local Address      Foreign Address    "
        "(state)    ")


def test_header_wide_45_unless_inet_only():
    h = fmt(wide=True).header()[1]
    assert h == ("Proto Recv-Q Send-Q " + "Local Address".ljust(45) + " " +
                 "Foreign Address".ljust(45) + " (state)    ")
    assert fmt(wide=True, inet4=True).header()[1] == HEADER


def test_header_listen():
    assert fmt(listen=True).header() == [
        "Current listen queue sizes (qlen/incqlen/maxqlen)",
        "Proto Listen                           Local Address         "]


# -- rows -------------------------------------------------------------------------------

def test_tcp4_listen_row_numeric():
    text, rec = fmt(numeric=True).row(pcb(lport=22, state=1), "tcp", True, True)
    assert text == "tcp4       0      0 *.22                   *.*                    LISTEN     "
    assert rec == {"protocol": "tcp4", "receive-bytes-waiting": 0, "send-bytes-waiting": 0,
                   "local": {"address": "*", "port": "22"},
                   "remote": {"address": "*", "port": "*"}, "tcp-state": "LISTEN     "}


def test_tcp4_established_symbolic_ports():
    p = pcb(laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 2), fport=51234, state=4,
            rcv=5, snd=1234)
    text, _ = fmt().row(p, "tcp", True, False)
    assert text == "tcp4       5   1234 10.0.0.1.ssh           10.0.0.2.51234         ESTABLISHED"


def test_anonymous_local_port_is_numeric_foreign_symbolic():
    p = pcb(laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 2), fport=80, state=4,
            flags=P.INP_ANONPORT)
    text, _ = fmt().row(p, "tcp", True, False)
    assert text.split()[3:5] == ["10.0.0.1.22", "10.0.0.2.http"]


def test_foreign_port_symbolic_only_when_ports_equal():
    # inet.c: inetprint(..., inp_fport, name, inp->inp_lport != inp->inp_fport)
    p = pcb(laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 2), fport=22, state=4)
    assert fmt().row(p, "tcp", True, False)[0].split()[3:5] == ["10.0.0.1.ssh", "10.0.0.2.ssh"]
    p = pcb(laddr=v4(10, 0, 0, 1), lport=50000, faddr=v4(10, 0, 0, 2), fport=80, state=4)
    assert fmt().row(p, "tcp", True, False)[0].split()[3:5] == ["10.0.0.1.50000", "10.0.0.2.80"]


def test_truncation_22_and_host_16():
    p = pcb(laddr=v4(192, 168, 100, 200), lport=65535, faddr=v4(192, 168, 100, 201),
            fport=65534, state=4)
    text, rec = fmt(numeric=True).row(p, "tcp", True, True)
    # "192.168.100.200.65535 " is 22 characters: the field is full, then one blank
    assert text == "tcp4       0      0 192.168.100.200.65535  192.168.100.201.65534  ESTABLISHED"
    assert rec["local"] == {"address": "192.168.100.200", "port": "65535"}


def test_v6_truncated_to_22():
    p = pcb(vflag=2, laddr=v6("2001:db8:aaaa:bbbb::1"), lport=443,
            faddr=v6("2001:db8:cccc:dddd::2"), fport=50000, state=4)
    text, rec = fmt(numeric=True).row(p, "tcp", True, True)
    # inet6print cuts the host to 16 characters: "2001:db8:aaaa:bb"
    assert text == "tcp6       0      0 2001:db8:aaaa:bb.443   2001:db8:cccc:dd.50000 ESTABLISHED"
    assert rec["local"] == {"address": "2001:db8:aaaa:bb", "port": "443"}


def test_tcp46_prints_v4_side():
    p = pcb(vflag=3, lport=80, state=1)
    text, rec = fmt(all=True, numeric=True).row(p, "tcp", True, True)
    assert text.startswith("tcp46      0      0 *.80                   *.*    ")
    assert rec["protocol"] == "tcp46"


def test_link_local_scope_and_udp_row_ends_after_foreign():
    ll = bytes.fromhex("fe800001000000000000000000000001")   # scope 1 embedded
    text, rec = fmt(numeric=True).row(pcb(vflag=2, laddr=ll, lport=123), "udp", False, True)
    assert text == "udp6       0      0 fe80::1%lo0.123        *.*                    "
    assert "tcp-state" not in rec
    assert rec["local"] == {"address": "fe80::1%lo0", "port": "123"}


def test_unknown_scope_is_numeric():
    ll = bytes.fromhex("fe800009000000000000000000000001")
    assert fmt(numeric=True).row(pcb(vflag=2, laddr=ll, lport=1), "udp", False, False)[0] \
        .split()[3] == "fe80::1%9.1"


def test_time_wait_and_out_of_range_state_and_needsyn():
    f = fmt(numeric=True)
    p = pcb(laddr=v4(127, 0, 0, 1), lport=1, faddr=v4(127, 0, 0, 1), fport=2, state=10)
    assert f.row(p, "tcp", True, False)[0].endswith("127.0.0.1.2            TIME_WAIT  ")
    p.state = 42
    text, rec = f.row(p, "tcp", True, True)
    assert text.endswith(" 42         ") and rec["tcp-state"] == 42
    p.state, p.t_flags = 2, P.TF_NEEDSYN
    assert f.row(p, "tcp", True, False)[0].endswith("SYN_SENT   *")


def test_toe_name():
    p = pcb(lport=1, state=4, t_flags=P.TF_TOE)
    assert fmt(numeric=True).row(p, "tcp", True, False)[0].startswith("toe4 ")


def test_pcb_address_column_and_host_12():
    p = pcb(laddr=v4(192, 168, 100, 200), lport=22, faddr=v4(10, 0, 0, 2), fport=50000,
            state=4, address=0xfffff80012345000)
    text, rec = fmt(pcb_address=True).row(p, "tcp", True, True)
    # the host is cut to 12 characters before the '.', hence "192.168.100..ssh"
    assert text == ("fffff80012345000 tcp4       0      0 192.168.100..ssh   10.0.0.2.50000     "
                    "ESTABLISHED")
    assert rec["address"] == "fffff80012345000"


def test_wide_v4_not_truncated_and_keeps_inner_blank():
    p = pcb(laddr=v4(192, 168, 100, 200), lport=65535, faddr=v4(10, 0, 0, 2), fport=1,
            state=4)
    text, _ = fmt(wide=True, numeric=True, inet4=True).row(p, "tcp", True, False)
    assert text == ("tcp4       0      0 192.168.100.200.65535  10.0.0.2.1             "
                    "ESTABLISHED")


def test_listen_row():
    p = pcb(lport=22, state=1, q=(0, 0, 128), options=P.SO_ACCEPTCONN)
    text, rec = fmt(listen=True, all=True, numeric=True).row(p, "tcp", True, True)
    assert text == "tcp4  0/0/128                          *.22                   "
    assert rec["listen-queue-sizes"] == "0/0/128".ljust(32)
    assert "remote" not in rec and "tcp-state" not in rec


def test_filters():
    o = NI.Options(NS(all=False, numeric=True))
    listener = pcb(lport=22, state=1, protocol=6)
    assert not NI.keep(listener, o, True, 6)
    o_all = NI.Options(NS(all=True))
    assert NI.keep(listener, o_all, True, 6)
    assert not NI.keep(listener, o_all, True, 17)            # protocol mismatch
    # inet_lnaof: 10.0.0.0 has a zero host part -> hidden without -a
    assert not NI.keep(pcb(laddr=v4(10, 0, 0, 0), state=4, protocol=6), o, True, 6)
    assert NI.keep(pcb(laddr=v4(10, 0, 0, 1), state=4, protocol=6), o, True, 6)
    o6 = NI.Options(NS(all=True, inet6=True))
    assert not NI.keep(pcb(vflag=1, state=4, protocol=6), o6, True, 6)
    # TIME_WAIT without a socket still counts as TCP (tcp_inptoxtp)
    tw = pcb(laddr=v4(10, 0, 0, 1), state=10)
    tw.socket = 0
    assert NI.keep(tw, o, True, 6)


def test_inet_ntop6_forms():
    assert NI.inet_ntop6(v6("::ffff:1.2.3.4")) == "::ffff:1.2.3.4"
    assert NI.inet_ntop6(v6("::1")) == "::1"
    assert NI.inet_ntop6(v6("::")) == "::"
    assert NI.inet_ntop6(v6("2001:db8:0:1:0:0:0:1")) == "2001:db8:0:1::1"
    assert NI.inet_ntop6(v6("2001:db8::1:0:0:1")) == "2001:db8::1:0:0:1"
    assert NI.inet_ntop6(v6("1:0:2:3:4:5:6:7")) == "1:0:2:3:4:5:6:7"


# -- hand-made kernel structures ------------------------------------------------------------

def kernel_types(release, pcb_first=False):
    """12/13 or 14 style inpcb/socket/tcpcb, offsets chosen here by hand.  ``pcb_first``
    puts ``so_pcb`` before ``so_proto``, as every real ``struct socket`` does."""
    inpcb = Type(Kind.STRUCT, "inpcb", 128)
    tcpcb = Type(Kind.STRUCT, "tcpcb", 160 if release == 14 else 32)
    clentry = Type(Kind.STRUCT, None, 16, members=[Member("cle_next", 0, ptr(inpcb)),
                                                   Member("cle_prev", 64, ptr(ptr(inpcb)))])
    addr16 = Type(Kind.ARRAY, None, 16, target=U8, length=16)
    ie = Type(Kind.STRUCT, "in_endpoints", 40, members=[
        Member("ie_fport", 0, U16), Member("ie_lport", 16, U16),
        Member("ie_dependfaddr", 32, addr16), Member("ie_dependladdr", 160, addr16),
        Member("ie6_zoneid", 288, UINT)])
    inc = Type(Kind.STRUCT, "in_conninfo", 48, members=[Member("inc_flags", 0, U8),
                                                        Member("inc_ie", 64, ie)])
    socket = Type(Kind.STRUCT, "socket", 64)
    members = [Member("inp_list", 0, clentry), Member("inp_vflag", 128, U8),
               Member("inp_ip_p", 136, U8), Member("inp_flags", 160, INT),
               Member("inp_inc", 192, inc), Member("inp_socket", 576, ptr(socket))]
    if release != 14:
        members.append(Member("inp_ppcb", 640, ptr(tcpcb)))
    inpcb._members = members
    head = Type(Kind.STRUCT, "inpcbhead", 8, members=[Member("clh_first", 0, ptr(inpcb))])
    info = Type(Kind.STRUCT, "inpcbinfo", 32, members=[
        Member("ipi_listhead", 64, ptr(head) if release != 14 else head)])
    sockbuf = Type(Kind.STRUCT, "sockbuf", 8, members=[Member("sb_ccc", 32, UINT)])
    protosw = Type(Kind.STRUCT, "protosw", 16, members=[Member("pr_protocol", 16, SHORT)])
    data = Type(Kind.STRUCT, None, 16, members=[Member("so_rcv", 0, sockbuf),
                                                Member("so_snd", 64, sockbuf)])
    listen = Type(Kind.STRUCT, None, 12, members=[Member("sol_qlen", 0, UINT),
                                                  Member("sol_incqlen", 32, UINT),
                                                  Member("sol_qlimit", 64, UINT)])
    union = Type(Kind.UNION, None, 16, members=[Member(None, 0, data), Member(None, 0, listen)])
    socket._members = [Member("so_options", 16, SHORT),
                       Member("so_proto", 128 if pcb_first else 64, ptr(protosw)),
                       Member("so_pcb", 64 if pcb_first else 128, ptr(inpcb)),
                       Member(None, 256, union)]
    if release == 14:
        tcpcb._members = [Member("t_inpcb", 0, inpcb), Member("t_flags", 1024 + 32, UINT),
                          Member("t_state", 1024 + 64, UINT, bit_size=4),
                          Member("t_port", 1024 + 68, UINT, bit_size=12)]
    else:
        tcpcb._members = [Member("t_inpcb", 0, ptr(inpcb)), Member("t_state", 64, INT),
                          Member("t_flags", 96, UINT)]
    types = {"struct inpcb": inpcb, "struct tcpcb": tcpcb, "struct inpcbhead": head,
             "struct inpcbinfo": info, "struct socket": socket, "struct protosw": protosw}
    return types


class Kernel:
    """A fake kernel with TCP/UDP pcb lists built like the real ones."""

    def __init__(self, release, pcb_first=False):
        self.release = release
        self.pcb_first = pcb_first
        types = kernel_types(release, pcb_first)
        self.mem, self.target = make_target(types, symbols={"tcbinfo": 0x1000,
                                                            "udbinfo": 0x1100,
                                                            "ripcbinfo": 0x1200})
        self.next_addr = 0x100000
        self.lists = {"tcbinfo": [], "udbinfo": [], "ripcbinfo": []}
        self.protosw = {6: 0x2000, 17: 0x2100, 0: 0x2200}   # 0: 14's wildcard rip_protosw
        for proto, a in self.protosw.items():
            self.mem.write(a, struct.pack("<hh", 0, proto))

    def alloc(self, size):
        a = self.next_addr
        self.next_addr += (size + 0xFFF) & ~0xFFF
        return a

    def add(self, info, *, vflag=1, laddr=v4(0, 0, 0, 0), lport=0, faddr=v4(0, 0, 0, 0),
            fport=0, state=None, listen=None, rcv=0, snd=0, flags=0, socket=True, ip_p=None):
        tcp = info == "tcbinfo"
        inp = self.alloc(0x300)
        if tcp and self.release == 14:
            tp = inp
        elif tcp:
            tp = self.alloc(0x100)
            self.mem.write(tp, struct.pack("<Qi", inp, state))
        so = self.alloc(0x100) if socket else 0
        body = bytearray(128)
        struct.pack_into("<BB", body, 16, vflag,
                         ip_p if ip_p is not None else 6 if tcp else 17)
        struct.pack_into("<i", body, 20, flags)
        struct.pack_into(">HH", body, 32, 0, 0)
        struct.pack_into(">H", body, 24 + 8, fport)
        struct.pack_into(">H", body, 24 + 10, lport)
        body[24 + 12:24 + 28] = faddr
        body[24 + 28:24 + 44] = laddr
        struct.pack_into("<Q", body, 72, so)
        if tcp and self.release != 14:
            struct.pack_into("<Q", body, 80, tp)
        self.mem.write(inp, bytes(body))
        if tcp and self.release == 14:
            self.mem.write(inp + 132, struct.pack("<II", 0, state))
        if so:
            sbody = bytearray(48)
            struct.pack_into("<h", sbody, 2, 2 if listen else 0)
            proto = self.protosw[6 if tcp else 17 if info == "udbinfo" else 0]
            struct.pack_into("<QQ", sbody, 8, *((inp, proto) if self.pcb_first
                                                else (proto, inp)))
            if listen:
                struct.pack_into("<III", sbody, 32, *listen)
            else:
                struct.pack_into("<I", sbody, 36, rcv)
                struct.pack_into("<I", sbody, 44, snd)
            self.mem.write(so, bytes(sbody))
        self.lists[info].insert(0, inp)       # CK_LIST_INSERT_HEAD
        return inp

    def finish(self, links=None):
        for info, addrs in self.lists.items():
            base = {"tcbinfo": 0x1000, "udbinfo": 0x1100, "ripcbinfo": 0x1200}[info]
            if self.release == 14:
                head = base + 8
            else:
                head = base + 0x80
                self.mem.write(base + 8, struct.pack("<Q", head))
            self.mem.write(head, struct.pack("<Q", addrs[0] if addrs else 0))
            for a, n in zip(addrs, addrs[1:] + [0]):
                if links and a in links:
                    n = links[a]
                self.mem.write(a, struct.pack("<Q", n))
        return self.target


def sample(release, **finish):
    k = Kernel(release)
    k.add("tcbinfo", lport=22, state=1, listen=(1, 2, 128), vflag=3)
    k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 2), fport=50000,
          state=4, rcv=7, snd=9)
    if release != 14:
        k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 3), fport=40000,
              state=0, flags=P.INP_TIMEWAIT, socket=False)
    else:
        k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 3), fport=40000,
              state=10, socket=False)
    k.add("udbinfo", lport=53, vflag=1)
    k.add("udbinfo", vflag=2, laddr=bytes.fromhex("fe800001000000000000000000000001"),
          lport=123)
    return k, k.finish(**finish)


def opts(**kw):
    ns = NS(all=False, numeric=True, listen=False, pcb_address=False, wide=False,
            inet4=False, inet6=False, protocol=None)
    ns.__dict__.update(kw)
    return ns


@pytest.mark.parametrize("release", [13, 14])
def test_walk_decodes_pcbs(release):
    k, target = sample(release)
    problems = []
    pcbs = list(P.walk_pcbs(target, 0x1000, tcp=True, what="tcbinfo", problems=problems))
    assert problems == []
    assert [p.state for p in pcbs] == [10, 4, 1]
    tw, est, lst = pcbs
    assert (est.lport, est.fport, est.rcv_cc, est.snd_cc, est.protocol) == (22, 50000, 7, 9, 6)
    assert est.laddr[12:] == bytes([10, 0, 0, 1])
    assert (lst.qlen, lst.incqlen, lst.qlimit, lst.rcv_cc) == (1, 2, 128, 0)
    assert tw.socket == 0
    if release == 14:
        assert est.tcpcb == est.address
    else:
        assert est.tcpcb != est.address


@pytest.mark.parametrize("release", [13, 14])
def test_netstat_text_end_to_end(release, monkeypatch):
    k, target = sample(release)
    problems = []
    monkeypatch.setattr(P, "interface_names", lambda t, v, pr: {1: "lo0"})
    lines = list(NI.text_lines(target, Stack(None, None), opts(all=True), problems))
    assert lines == [
        "Active Internet connections (including servers)", HEADER,
        "tcp4       0      0 10.0.0.1.22            10.0.0.3.40000         TIME_WAIT  ",
        "tcp4       7      9 10.0.0.1.22            10.0.0.2.50000         ESTABLISHED",
        "tcp46      0      0 *.22                   *.*                    LISTEN     ",
        "udp6       0      0 fe80::1%lo0.123        *.*                    ",
        "udp4       0      0 *.53                   *.*                    "]
    assert problems == []
    # without -a: no listener, no wildcard-bound UDP
    lines = list(NI.text_lines(target, Stack(None, None), opts(), problems))
    assert [l[:5] for l in lines[2:]] == ["tcp4 ", "tcp4 ", "udp6 "]
    # -L -a: only sockets with a queue limit; -L without -a shows the header only
    lines = list(NI.text_lines(target, Stack(None, None), opts(listen=True, all=True), problems))
    assert lines[2:] == ["tcp46 1/2/128                          *.22                   "]
    recs = list(NI.records(target, Stack(None, None), opts(all=True, protocol="udp"), problems))
    assert [r["protocol"] for r in recs] == ["udp6", "udp4"]


@pytest.mark.parametrize("release", [13, 14])
def test_link_into_absent_page_is_a_partial_report(release):
    k = Kernel(release)
    k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=1, faddr=v4(10, 0, 0, 2), fport=2, state=4)
    second = k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=3, faddr=v4(10, 0, 0, 2), fport=4,
                   state=4)
    target = k.finish(links={second: 0xDEAD0000})
    problems = []
    lines = list(NI.text_lines(target, Stack(None, None), opts(), problems))
    assert len(lines) == 3                          # header + the one readable pcb
    assert any("0xdead0000" in m for m in problems)


@pytest.mark.parametrize("release", [13, 14])
def test_socket_fields_in_real_kernel_order(release, monkeypatch):
    """Real ``struct socket``s have ``so_pcb`` before ``so_proto``: the decoded columns
    must not depend on the order the reader names the fields in (the unpacked tuple is
    in offset order).  A 14 raw socket points at the wildcard ``rip_protosw``
    (``pr_protocol`` 0) and is listed under its ``inp_ip_p``."""
    k = Kernel(release, pcb_first=True)
    k.add("tcbinfo", lport=22, state=1, listen=(2, 1, 128))
    est = k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 2),
                fport=50000, state=4, rcv=7, snd=9)
    k.add("udbinfo", laddr=v4(10, 0, 0, 1), lport=53, rcv=84)
    k.add("ripcbinfo", ip_p=1)
    target = k.finish()
    problems = []
    pcbs = list(P.walk_pcbs(target, 0x1000, tcp=True, what="t", problems=problems))
    e, lst = pcbs
    assert (e.protocol, e.so_pcb, e.rcv_cc, e.snd_cc) == (6, est, 7, 9)
    assert (lst.protocol, lst.qlen, lst.incqlen, lst.qlimit) == (6, 2, 1, 128)
    monkeypatch.setattr(P, "interface_names", lambda t, v, pr: {})
    lines = list(NI.text_lines(target, Stack(None, None), opts(all=True), problems))
    assert lines[2:] == [
        "tcp4       7      9 10.0.0.1.22            10.0.0.2.50000         ESTABLISHED",
        "tcp4       0      0 *.22                   *.*                    LISTEN     ",
        "udp4      84      0 10.0.0.1.53            *.*                    ",
        "icm4       0      0 *.*                    *.*                    "]
    assert problems == []


def test_cycle_is_reported():
    k = Kernel(13)
    a = k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=1, state=4)
    b = k.add("tcbinfo", laddr=v4(10, 0, 0, 1), lport=2, state=4)
    target = k.finish(links={a: b})
    problems = []
    assert len(list(P.walk_pcbs(target, 0x1000, tcp=True, what="t", problems=problems))) == 2
    assert "cycle" in problems[0]


# -- netstat -s ----------------------------------------------------------------------------

def test_stats_lines_and_ss_hides_zero():
    t = NSS.table()
    spec = t["protocols"]["udp"]
    values = {"udps_ipackets": 10, "udps_hdrops": 0, "udps_badlen": 0, "udps_badsum": 1,
              "udps_nosum": 0, "udps_noport": 2, "udps_noportbcast": 1, "udps_fullsock": 0,
              "udpps_pcbhashmiss": 0, "udps_opackets": 1, "udps_filtermcast": 0,
              "udps_newfield": 5}
    lines = NSS.format_lines("udp", spec, values, 1, t["names"], None, dict)
    assert lines[:3] == ["udp:\n", "\t10 datagrams received\n", "\t0 with incomplete header\n"]
    assert "\t1 broadcast/multicast datagram undelivered\n" in lines
    assert "\t6 delivered\n" in lines
    assert "\t1 datagram output\n" in lines
    # in DWARF, not in the release's netstat: not printed (the JSON keeps it)
    assert lines[-1] == "\t0 times multicast source filter matched\n"
    assert not any("udps_newfield" in x for x in lines)
    ss = NSS.format_lines("udp", spec, values, 2, t["names"], None, dict)
    assert "\t0 with incomplete header\n" not in ss and "\t1 with bad checksum\n" in ss


def test_tcp_table_per_release():
    t = NSS.table()
    spec = t["protocols"]["tcp"]
    values = {"tcps_rcvreassfull": 2, "tcps_tunneled_pkts": 1, "tcps_tw_resets": 3,
              "tcps_ecn_rcvce": 4, "tcps_tlpresends": 9}
    text = {r: "".join(NSS.format_lines("tcp", spec, values, 2, t["names"], None, dict, r))
            for r in ("12", "13", "14")}
    assert "\t\t2 discarded due to full reassembly queue\n" in text["12"]
    assert "tunneled" not in text["12"] and "TIME-WAIT" not in text["12"]
    assert "\t\t1 UDP tunneled pkt\n" in text["13"]
    assert "\t3 times connection in TIME-WAIT responded with RST\n" in text["13"]
    assert "ECN" not in text["13"]                   # 13 prints tcps_ecn_ce, not rcvce
    assert "\t4 packets received with ECN CE bit set\n" in text["14"]
    assert all("tlpresends" not in x and " 9 " not in x for x in text.values())
    # a release newer than the newest table gets the newest table
    assert NSS.lines_of(spec, "15") is NSS.lines_of(spec, "14")
    assert NSS.lines_of(t["protocols"]["udp"], "14") is NSS.lines_of(t["protocols"]["udp"], "12")


class _RelTarget:
    def __init__(self, osreldate=None, tcp_members=()):
        self.osreldate = osreldate
        self.members = tcp_members

    def variable(self, name):
        if self.osreldate is None:
            raise LookupError(name)
        return NS(value_=lambda: self.osreldate)

    def has_type(self, name):
        return name == "struct tcpstat"

    def type(self, name):
        ms = [NS(name=m) for m in self.members]
        return NS(strip_typedefs=lambda: NS(members=ms))


def test_release_from_osreldate_then_dwarf():
    assert NSS.release_of(_RelTarget(1204000)) == "12"
    assert NSS.release_of(_RelTarget(1302001)) == "13"
    assert NSS.release_of(_RelTarget(1402000)) == "14"
    assert NSS.release_of(_RelTarget(1500000)) == "14"
    # osreldate wins over the DWARF
    assert NSS.release_of(_RelTarget(1302001, ["tcps_ecn_rcvce"])) == "13"
    assert NSS.release_of(_RelTarget(None, ["tcps_sndtotal"])) == "12"
    assert NSS.release_of(_RelTarget(None, ["tcps_tunneled_pkts"])) == "13"
    assert NSS.release_of(_RelTarget(None, ["tcps_tunneled_pkts", "tcps_ecn_rcvce"])) == "14"


def test_tcp_states_section():
    t = NSS.table()
    lines = NSS.format_lines("tcp", t["protocols"]["tcp"], {"tcps_sndtotal": 1},
                             1, t["names"], [0, 1] + [0] * 9, dict)
    assert lines[1] == "\t1 packet sent\n"
    assert lines[-11:-9] == ["\t0 connections in CLOSED state\n",
                             "\t1 connection  in LISTEN state\n"]
    assert lines[-12] == "TCP connection count by state:\n"


def test_ip_forward_line_is_joined():
    t = NSS.table()
    lines = "".join(NSS.format_lines("ip", t["protocols"]["ip"],
                                     {"ips_forward": 2, "ips_fastforward": 1}, 2,
                                     t["names"], None, dict))
    assert lines == "ip:\n\t2 packets forwarded (1 packet fast forwarded)\n"


def test_icmp_histogram():
    t = NSS.table()
    lines = NSS.format_lines("icmp", t["protocols"]["icmp"],
                             {"icps_outhist": [0, 0, 0, 4] + [0] * 37}, 2, t["names"],
                             None, dict)
    assert lines == ["icmp:\n", "\tOutput histogram:\n", "\t\tdestination unreachable: 4\n"]


def test_fast_text_path_matches_row():
    ll = bytes.fromhex("fe800001000000000000000000000001")
    pcbs = [pcb(lport=22, state=1), pcb(vflag=3, lport=80, state=1),
            pcb(laddr=v4(192, 168, 100, 200), lport=22, faddr=v4(10, 0, 0, 2), fport=22,
                state=4, rcv=12345678),
            pcb(laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 2), fport=80, state=4,
                flags=P.INP_ANONPORT),
            pcb(vflag=2, laddr=ll, lport=123), pcb(vflag=2, laddr=v6("2001:db8::1"), lport=53,
                                                   faddr=v6("2001:db8::2"), fport=53, state=6),
            pcb(lport=1, state=42), pcb(lport=1, state=2, t_flags=P.TF_NEEDFIN | P.TF_TOE),
            pcb(vflag=0, lport=1, state=4), pcb(lport=22, state=1, q=(3, 4, 5))]
    for kw in ({}, {"numeric": True}, {"pcb_address": True}, {"wide": True},
               {"wide": True, "inet4": True}, {"listen": True}, {"pcb_address": True,
                                                                   "wide": True}):
        f = fmt(**kw)
        for p in pcbs:
            for name, istcp in (("tcp", True), ("udp", False)):
                assert f.row_text(p, name, istcp) == f.row(p, name, istcp, False)[0], (kw, p)


def _row_args(p):
    """``walk_pcb_rows``'s ``row`` arguments for a Pcb (ports in network byte order)."""
    n = lambda port: ((port & 0xFF) << 8) | (port >> 8)  # noqa: E731
    return (p.address, p.vflag, p.flags, n(p.lport), n(p.fport), p.laddr, p.faddr, p.zoneid,
            p.ip_p, p.socket, p.options, p.so_pcb, p.rcv_cc, p.snd_cc, p.qlen, p.incqlen,
            p.qlimit, p.protocol, p.tcpcb, p.state, p.t_flags)


def test_row_maker_matches_keep_and_row_text():
    ll = bytes.fromhex("fe800001000000000000000000000001")
    pcbs = [pcb(lport=22, state=1, protocol=6), pcb(vflag=3, lport=80, state=1, protocol=6),
            pcb(laddr=v4(192, 168, 100, 200), lport=22, faddr=v4(10, 0, 0, 2), fport=22,
                state=4, rcv=12345678, protocol=6),
            pcb(laddr=v4(255, 255, 255, 255), lport=65535, faddr=v4(255, 255, 255, 254),
                fport=65534, state=4, snd=3, protocol=17),
            pcb(laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 2), fport=80, state=4,
                flags=P.INP_ANONPORT, protocol=6),
            pcb(laddr=v4(10, 0, 0, 0), lport=22, state=4, protocol=6),
            pcb(vflag=2, laddr=ll, lport=123, protocol=17),
            pcb(vflag=2, laddr=v6("2001:db8::1"), lport=53, faddr=v6("2001:db8::2"),
                fport=53, state=6, protocol=6),
            pcb(lport=1, state=42, protocol=6), pcb(lport=1, state=None, protocol=6),
            pcb(lport=1, state=2, t_flags=P.TF_NEEDFIN | P.TF_TOE, protocol=6),
            pcb(lport=1, state=2, t_flags=P.TF_NEEDSYN, protocol=6),
            pcb(vflag=0, lport=1, state=4, protocol=6),
            pcb(lport=22, state=1, q=(3, 4, 5), protocol=6),
            pcb(laddr=v4(10, 0, 0, 1), lport=9, protocol=None),
            pcb(laddr=v4(10, 0, 0, 1), lport=9, protocol=0),
            pcb(laddr=v4(10, 0, 0, 1), lport=9, protocol=17)]
    tw = pcb(laddr=v4(10, 0, 0, 1), lport=22, faddr=v4(10, 0, 0, 3), fport=999, state=10)
    tw.socket = 0
    pcbs.append(tw)
    for p in pcbs[-4:-1]:
        p.ip_p = 17
    for kw in ({}, {"all": True}, {"numeric": False}, {"all": True, "numeric": False},
               {"pcb_address": True}, {"wide": True}, {"inet4": True}, {"inet6": True},
               {"all": True, "inet4": True}, {"all": True, "inet6": True}):
        o = NI.Options(opts(**kw))
        f = NI.Formatter(o, lambda: {1: "lo0"})
        for name, proto in (("tcp", 6), ("udp", 17), ("udplite", 136), ("icmp", 1)):
            istcp = proto == 6
            row = NI._row_maker(f, o, name, istcp, proto)
            for p in pcbs:
                want = f.row_text(p, name, istcp) if NI.keep(p, o, istcp, proto) else None
                assert row(*_row_args(p)) == want, (kw, name, p)
            # the local address cache answers the second time round
            for p in pcbs:
                want = f.row_text(p, name, istcp) if NI.keep(p, o, istcp, proto) else None
                assert row(*_row_args(p)) == want, (kw, name, p)


@pytest.mark.parametrize("release", [13, 14])
def test_walk_pcb_rows_matches_walk_pcbs(release):
    k, target = sample(release)
    problems = []
    pcbs = list(P.walk_pcbs(target, 0x1000, tcp=True, what="t", problems=problems))
    rows = list(P.walk_pcb_rows(target, 0x1000, tcp=True, what="t", problems=problems,
                                row=lambda *a: a if a[1] else None))
    assert problems == []
    assert rows == [_row_args(p) for p in pcbs if p.vflag]
    # None from row skips the pcb
    assert list(P.walk_pcb_rows(target, 0x1000, tcp=True, what="t", problems=problems,
                                row=lambda *a: None)) == []


def test_row_maker_local_address_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(NI, "_HOST_CACHE_MAX", 2)
    o = NI.Options(opts(all=True))
    f = NI.Formatter(o, dict)
    row = NI._row_maker(f, o, "udp", False, 17)
    for i in range(6):
        p = pcb(laddr=v4(10, 0, 0, i), lport=7, protocol=17)
        assert row(*_row_args(p)) == f.row_text(p, "udp", False)
