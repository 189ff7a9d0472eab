"""``netstat [-a] [-n] [-A] [-W] [-4|-6] [-p PROTO]`` and ``netstat -L``, per network stack.

Byte for byte what FreeBSD 12–14's netstat(1) prints (``usr.bin/netstat/inet.c``
``protopr``/``inetprint`` and ``inet6.c`` ``inet6print``/``inet6name``), from the pcb
lists of the dumped kernel instead of the ``net.inet.*.pcblist`` sysctls:

- one header per stack, printed before the first row that passes the filters
  ("Active Internet connections" [" (including servers)"] or, with ``-L``, "Current
  listen queue sizes (qlen/incqlen/maxqlen)"), then the column line; 12+ pads
  ``(state)`` to 11 (``" %-11.11s"``) and rows print the state ``%-11s``;
- protocols in netstat's order (``main.c`` ``protox[]`` then ``ip6protox[]``): ``tcp``
  and ``udp`` once for both families, then the raw-socket entries ``ip`` (IPPROTO_RAW),
  ``icmp``, ``igmp``, ``pim`` and, for IPv6, ``ip6`` and ``icmp6``; a raw pcb is listed
  under every entry whose protocol equals its socket's ``pr_protocol`` (an IPPROTO_RAW
  socket therefore appears under ``ip`` and again under ``ip6``, as netstat does).
  12–14 netstat has no UDP-Lite entry: UDP-Lite pcbs are listed only with
  ``-p udplite`` (a vnetdbg addition; the name is cut to 3 characters by netstat's
  ``%-3.3s`` like every protocol name); ``-p raw`` selects every raw entry;
- without ``-a``: no TCP listeners, no IPv4 pcb whose local address has a zero host part
  (``inet_lnaof``, classful, as netstat tests it), no IPv6 pcb bound to ``::``;
- ``-L`` keeps only sockets with a listen queue limit;
- addresses are always numeric: the dump's hosts are not ours to resolve (the real
  netstat without ``-n`` would print host names where DNS knew them);
- ports are symbolic without ``-n`` from a small built-in table of well-known services
  (``SERVICES`` below, FreeBSD ``/etc/services`` names), not the workstation's
  ``/etc/services``, so output does not depend on the machine running vnetdbg; a port
  missing from the table prints as a number;
- IPv6 link-local addresses carry the KAME embedded scope in bytes 2–3, as netstat sees
  them through the sysctl; ``inet6name`` turns that into ``%ifname`` using the stack's own
  interface list (the number if no interface has that index).  ``ie6_zoneid`` is not
  used, as netstat does not use it.

JSON (``--libxo json``) is libxo's encoding of the same ``xo_emit`` calls: list
``statistics``/``socket``, keys ``protocol`` (``tcp4``), ``receive-bytes-waiting``,
``send-bytes-waiting``, ``local``/``remote`` ``{address, port}``, ``tcp-state`` (libxo
keeps the ``%-11s`` padding: no trim modifier), ``need-syn-or-fin``; ``-A`` adds
``address`` (the ``%16lx`` pcb pointer, quoted); ``-L`` adds ``listen-queue-sizes``
(``%-32.32s``, padded) instead of the byte counts and the remote address.
"""

from __future__ import annotations

import socket as _socket
from typing import Iterator

from ..errors import VnetdbgError
from ..freebsd import inpcb as P
from ..freebsd.sockaddr import inet_ntop6
from ..freebsd.vnet import has_vimage, vnet_var_address

JSON_PATH = ("statistics", "socket")

AF_UNSPEC, AF_INET, AF_INET6 = 0, 2, 28
IPPROTO_ICMP, IPPROTO_IGMP, IPPROTO_TCP, IPPROTO_UDP = 1, 2, 6, 17
IPPROTO_ICMPV6, IPPROTO_PIM, IPPROTO_UDPLITE, IPPROTO_RAW = 58, 103, 136, 255

#: netstat's tcpstates[] (sys/netinet/tcp_fsm.h)
TCPSTATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT",
             "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT")

#: (name, pcbinfo variable, protocol, family list) in main.c's protox[]/ip6protox[] order
PROTOX = (("tcp", "tcbinfo", IPPROTO_TCP, AF_INET),
          ("udp", "udbinfo", IPPROTO_UDP, AF_INET),
          ("ip", "ripcbinfo", IPPROTO_RAW, AF_INET),
          ("icmp", "ripcbinfo", IPPROTO_ICMP, AF_INET),
          ("igmp", "ripcbinfo", IPPROTO_IGMP, AF_INET),
          ("pim", "ripcbinfo", IPPROTO_PIM, AF_INET),
          ("tcp", "tcbinfo", IPPROTO_TCP, AF_INET6),
          ("udp", "udbinfo", IPPROTO_UDP, AF_INET6),
          ("ip6", "ripcbinfo", IPPROTO_RAW, AF_INET6),
          ("icmp6", "ripcbinfo", IPPROTO_ICMPV6, AF_INET6))
UDPLITE = ("udplite", "ulitecbinfo", IPPROTO_UDPLITE, AF_INET)
RAW_NAMES = ("ip", "icmp", "igmp", "pim", "ip6", "icmp6")
_ZERO4 = bytes(4)
_ntoa = _socket.inet_ntoa
_STATE11 = tuple(f"{n:<11}" for n in TCPSTATES)
_PREFIX4: dict[str, tuple[str, str]] = {}   # protocol name -> ("tcp4  ", "tcp46 ")

#: Well-known services as FreeBSD's /etc/services names them: (port, proto) -> name.
#: Deliberately small and fixed (reproducible output); anything else prints numerically.
SERVICES = {}
for _port, _name, _protos in (
        (7, "echo", "tu"), (9, "discard", "tu"), (13, "daytime", "tu"),
        (19, "chargen", "tu"), (20, "ftp-data", "tu"), (21, "ftp", "tu"),
        (22, "ssh", "tu"), (23, "telnet", "tu"), (25, "smtp", "tu"), (37, "time", "tu"),
        (53, "domain", "tu"), (67, "bootps", "tu"), (68, "bootpc", "tu"),
        (69, "tftp", "u"), (79, "finger", "tu"), (80, "http", "tu"),
        (110, "pop3", "tu"), (111, "sunrpc", "tu"), (113, "auth", "tu"),
        (119, "nntp", "tu"), (123, "ntp", "tu"), (137, "netbios-ns", "tu"),
        (138, "netbios-dgm", "tu"), (139, "netbios-ssn", "tu"), (143, "imap", "tu"),
        (161, "snmp", "tu"), (162, "snmptrap", "tu"), (179, "bgp", "tu"),
        (389, "ldap", "tu"), (443, "https", "tu"), (445, "microsoft-ds", "tu"),
        (514, "shell", "t"), (514, "syslog", "u"), (587, "submission", "tu"),
        (636, "ldaps", "tu"), (993, "imaps", "tu"), (995, "pop3s", "tu"),
        (2049, "nfsd", "tu")):
    for _p in _protos:
        SERVICES[(_port, "tcp" if _p == "t" else "udp")] = _name


def getservbyport(port: int, proto: str) -> str | None:
    """The service name for ``port`` (host order) and ``proto`` ("tcp"/"udp"), or None."""
    return SERVICES.get((port, proto))


# -- address text --------------------------------------------------------------------------

def inet_ntoa(b: bytes) -> str:
    return _socket.inet_ntoa(b)


def inet_lnaof(b: bytes) -> int:
    """libc inet_lnaof(3): the host part of a classful address."""
    i = int.from_bytes(b, "big")
    if not i & 0x80000000:
        return i & 0x00FFFFFF
    if i & 0xC0000000 == 0x80000000:
        return i & 0x0000FFFF
    return i & 0x000000FF


def inet6name(b: bytes, ifnames) -> str:
    """netstat's inet6name with NI_NUMERICHOST: ``*`` for ``::``; a link-local or
    interface/link-local multicast address with an embedded scope (bytes 2-3) gets it
    cleared and ``%ifname`` appended (``ifnames()`` maps index -> name; the number if
    unknown), as in6_fillscopeid + getnameinfo do."""
    if not any(b):
        return "*"
    scope = 0
    if (b[0] == 0xFE and (b[1] & 0xC0) == 0x80) or \
            (b[0] == 0xFF and (b[1] & 0x0F) in (0x1, 0x2)):
        scope = (b[2] << 8) | b[3]
        if scope:
            b = b[:2] + b"\0\0" + b[4:]
    text = inet_ntop6(b)
    if scope:
        text += "%" + ifnames().get(scope, str(scope))
    return text


# -- options -------------------------------------------------------------------------------

class Options:
    """The netstat flags this mode uses, from the CLI namespace (missing = off)."""

    def __init__(self, opts):
        g = lambda name: getattr(opts, name, None)  # noqa: E731
        self.aflag = bool(g("all"))
        self.numeric = bool(g("numeric"))
        self.Lflag = bool(g("listen"))
        self.Aflag = bool(g("pcb_address"))
        self.Wflag = bool(g("wide"))
        v4, v6 = bool(g("inet4")), bool(g("inet6"))
        self.af = AF_INET if v4 and not v6 else AF_INET6 if v6 and not v4 else AF_UNSPEC
        self.protocol = g("protocol")


def protocol_entries(o: Options) -> list[tuple]:
    """The protox entries netstat would run, in order."""
    if o.protocol:
        name = o.protocol.lower()
        if name == "udplite":
            return [UDPLITE]
        if name == "raw":
            return [e for e in PROTOX if e[0] in RAW_NAMES and
                    (o.af == AF_UNSPEC or e[3] == o.af)]
        for e in PROTOX:
            if e[0] == name:
                return [e]   # -p: that entry alone (main.c: printproto(tp) once)
        raise VnetdbgError(f"{o.protocol}: unknown or uninstrumented protocol")
    return [e for e in PROTOX if o.af == AF_UNSPEC or e[3] == o.af]


# -- one row -------------------------------------------------------------------------------

class Formatter:
    """Header and row text/JSON for one stack (netstat's ``first`` flag is per stack)."""

    def __init__(self, o: Options, ifnames):
        self.o = o
        self.ifnames = ifnames
        A, W, af = o.Aflag, o.Wflag, o.af
        # inetprint widths; inet6print uses its own (W ? 45 : A ? 18 : 22)
        self.w4 = 18 if (A and not W) else (22 if (not W or af == AF_INET) else 45)
        self.w6 = 45 if W else 18 if A else 22
        self._v4 = {}
        self._v6 = {}
        self.simple4 = not A and not W
        if o.numeric and not A and not W and not o.Lflag:
            self.row_text = self._row_text_n

    def _row_text_n(self, p: P.Pcb, name: str, istcp: bool) -> str:
        """``row_text`` for ``-n`` without ``-A``/``-W``/``-L`` (the common and the
        benchmarked case): IPv4 rows are formatted inline, the rest go the long way."""
        vf = p.vflag
        if not vf & 1 or (istcp and p.t_flags & P.TF_TOE):
            return Formatter.row_text(self, p, name, istcp)
        pre = _PREFIX4.get(name)
        if pre is None:
            pre = _PREFIX4[name] = (f"{name[:3]:<3}4  ", f"{name[:3]:<3}46 ")
        la, fa = p.laddr[12:16], p.faddr[12:16]
        lp, fp = p.lport, p.fport
        line1 = f"{'*' if la == _ZERO4 else _ntoa(la)}.{lp or '*'} "
        line2 = f"{'*' if fa == _ZERO4 else _ntoa(fa)}.{fp or '*'} "
        out = (f"{pre[(vf >> 1) & 1]}{p.rcv_cc:6d} {p.snd_cc:6d} "
               f"{line1[:22]:<22} {line2[:22]:<22} ")
        if istcp:
            s = p.state
            if s is not None and 0 <= s < 11:
                if p.t_flags & (P.TF_NEEDSYN | P.TF_NEEDFIN):
                    return out + _STATE11[s] + "*"
                return out + _STATE11[s]
            return out + f"{s if s is not None else -1:<11d}"
        return out

    def header(self) -> list[str]:
        o = self.o
        if not o.Lflag:
            first = "Active Internet connections" + (" (including servers)" if o.aflag else "")
        else:
            first = "Current listen queue sizes (qlen/incqlen/maxqlen)"
        col = f"{'Tcpcb':<16} " if o.Aflag else ""
        if o.Aflag and not o.Wflag:
            w = 18
        elif not o.Wflag or o.af == AF_INET:
            w = 22
        else:
            w = 45
        if o.Lflag:
            col += f"{'Proto':<5.5} {'Listen':<32.32} {'Local Address':<{w}.{w}}"
        else:
            col += (f"{'Proto':<5.5} {'Recv-Q':<6.6} {'Send-Q':<6.6} "
                    f"{'Local Address':<{w}.{w}} {'Foreign Address':<{w}.{w}}")
            col += f" {'(state)':<11.11}"
        return [first, col]

    def _host4(self, b: bytes) -> str:
        h = self._v4.get(b)
        if h is None:
            h = self._v4[b] = "*" if b == b"\0\0\0\0" else inet_ntoa(b)
        return h

    def _host6(self, b: bytes) -> str:
        h = self._v6.get(b)
        if h is None:
            h = self._v6[b] = inet6name(b, self.ifnames)
        return h

    def inetprint(self, addr: bytes, port: int, proto: str, num_port: bool):
        """(field text incl. trailing blank, JSON address, JSON port) as inetprint."""
        o = self.o
        host = self._host4(addr)
        if not o.Wflag:
            host = host[:12 if (o.Aflag and not num_port) else 16]
        sp = None if (num_port or not port) else getservbyport(port, proto)
        ptext = sp[:15] if sp else ("*" if port == 0 else str(port))
        line = f"{host}.{ptext} "
        w = self.w4
        text = f"{line:<{w}} " if o.Wflag else f"{line[:w]:<{w}} "
        return text, host, ptext

    def inet6print(self, addr: bytes, port: int, proto: str, numeric: bool):
        o = self.o
        host = self._host6(addr)[:39 if o.Wflag else (12 if (o.Aflag and not numeric) else 16)]
        sp = None if (numeric or not port) else getservbyport(port, proto)
        ptext = sp[:15] if sp else ("*" if port == 0 else str(port))
        line = f"{host}.{ptext}"
        w = self.w6
        return f"{line[:w]:<{w}} ", host, ptext

    def _addr_text(self, v4: bool, addr: bytes, port: int, proto: str, num: bool) -> str:
        """The address field text alone (inetprint/inet6print display part)."""
        o = self.o
        if v4:
            b = addr[12:16]
            host = self._v4.get(b)
            if host is None:
                host = self._host4(b)
            if not o.Wflag:
                host = host[:12 if (o.Aflag and not num) else 16]
            if num or not port:
                ptext = "*" if port == 0 else str(port)
            else:
                sp = getservbyport(port, proto)
                ptext = sp[:15] if sp else str(port)
            line = f"{host}.{ptext} "
            w = self.w4
            if o.Wflag:
                return f"{line:<{w}} "
            return f"{line[:w]:<{w}} "
        return self.inet6print(addr, port, proto, num)[0]

    def row_text(self, p: P.Pcb, name: str, istcp: bool) -> str:
        """``row``'s text only, without building the JSON object (the hot path)."""
        o = self.o
        vf = p.vflag
        if vf & 2:
            vchar = "46" if vf & 1 else "6 "
        else:
            vchar = "4 " if vf & 1 else "  "
        if istcp and p.t_flags & P.TF_TOE:
            name = "toe"
        out = f"{name[:3]:<3}{vchar} "
        if o.Aflag:
            out = f"{((p.tcpcb or 0) if istcp else (p.so_pcb or 0)):16x} " + out
        if o.Lflag:
            q = f"{p.qlen}/{p.incqlen}/{p.qlimit}"
            out += f"{q[:32]:<32} "
        else:
            out += f"{p.rcv_cc:6d} {p.snd_cc:6d} "
        if o.numeric:
            lnum = fnum = True
        elif p.flags & P.INP_ANONPORT:
            lnum, fnum = True, False
        else:
            lnum, fnum = False, p.lport != p.fport
        if vf & 1 and self.simple4 and lnum and fnum:
            # -n, neither -A nor -W: the common case, inlined
            la, fa = p.laddr[12:16], p.faddr[12:16]
            lp, fp = p.lport, p.fport
            line = f"{'*' if la == _ZERO4 else _ntoa(la)}.{lp if lp else '*'} "
            out += f"{line[:22]:<22} "
            if not o.Lflag:
                line = f"{'*' if fa == _ZERO4 else _ntoa(fa)}.{fp if fp else '*'} "
                out += f"{line[:22]:<22} "
        elif vf & 3:
            v4 = bool(vf & 1)
            sproto = "tcp" if istcp else "udp" if name.startswith("udp") else name
            out += self._addr_text(v4, p.laddr, p.lport, sproto, lnum)
            if not o.Lflag:
                out += self._addr_text(v4, p.faddr, p.fport, sproto, fnum)
        if istcp and not o.Lflag:
            s = p.state
            if s is not None and 0 <= s < 11:
                out += _STATE11[s]
                if p.t_flags & (P.TF_NEEDSYN | P.TF_NEEDFIN):
                    out += "*"
            else:
                out += f"{s if s is not None else -1:<11d}"
        return out

    def row(self, p: P.Pcb, name: str, istcp: bool, want_json: bool):
        """(text line, JSON dict or None) for one pcb that passed the filters."""
        o = self.o
        parts = []
        rec = {} if want_json else None
        if o.Aflag:
            a = (p.tcpcb or 0) if istcp else (p.so_pcb or 0)
            parts.append(f"{a:16x} ")
            if rec is not None:
                rec["address"] = f"{a:16x}"
        vf = p.vflag
        if vf & P.INP_IPV6:
            vchar = "46" if vf & P.INP_IPV4 else "6"
        else:
            vchar = "4" if vf & P.INP_IPV4 else ""
        pname = "toe" if (istcp and p.t_flags and p.t_flags & P.TF_TOE) else name
        parts.append(f"{pname[:3]:<3}{vchar:<2} ")
        if rec is not None:
            rec["protocol"] = pname + vchar
        if o.Lflag:
            q = f"{p.qlen}/{p.incqlen}/{p.qlimit}"
            parts.append(f"{q[:32]:<32} ")
            if rec is not None:
                rec["listen-queue-sizes"] = f"{q[:32]:<32}"
        else:
            parts.append(f"{p.rcv_cc:6d} {p.snd_cc:6d} ")
            if rec is not None:
                rec["receive-bytes-waiting"] = p.rcv_cc
                rec["send-bytes-waiting"] = p.snd_cc
        if o.numeric:
            lnum, fnum = True, True
        elif p.flags & P.INP_ANONPORT:
            lnum, fnum = True, False
        else:
            lnum, fnum = False, p.lport != p.fport
        sproto = "tcp" if name in ("tcp", "toe") else "udp" if name.startswith("udp") else name
        if vf & P.INP_IPV4:
            pr = self.inetprint
            la, fa = p.laddr[12:16], p.faddr[12:16]
        elif vf & P.INP_IPV6:
            pr = self.inet6print
            la, fa = p.laddr, p.faddr
        else:
            pr = None
        if pr is not None:
            t, h, pt = pr(la, p.lport, sproto, lnum)
            parts.append(t)
            if rec is not None:
                rec["local"] = {"address": h, "port": pt}
            if not o.Lflag:
                t, h, pt = pr(fa, p.fport, sproto, fnum)
                parts.append(t)
                if rec is not None:
                    rec["remote"] = {"address": h, "port": pt}
        if istcp and not o.Lflag:
            s = p.state
            if s is None or not 0 <= s < len(TCPSTATES):
                st = f"{s if s is not None else -1:<11d}"
                parts.append(st)
                if rec is not None:
                    rec["tcp-state"] = s
            else:
                parts.append(f"{TCPSTATES[s]:<11}")
                if rec is not None:
                    rec["tcp-state"] = f"{TCPSTATES[s]:<11}"
                if p.t_flags & (P.TF_NEEDSYN | P.TF_NEEDFIN):
                    parts.append("*")
                    if rec is not None:
                        rec["need-syn-or-fin"] = "*"
        return "".join(parts), rec


def keep(p: P.Pcb, o: Options, istcp: bool, proto: int) -> bool:
    """netstat's per-pcb filters (protocol, family, -a) before the header is printed."""
    if p.socket:
        sproto = p.protocol
        if sproto is None:      # no protosw in DWARF: the pcb list says it
            sproto = proto if istcp or proto in (IPPROTO_UDP, IPPROTO_UDPLITE) else p.ip_p
        elif sproto == 0 and not istcp and proto not in (IPPROTO_UDP, IPPROTO_UDPLITE):
            # 14+: raw sockets of every protocol share the wildcard rip_protosw
            # (pr_protocol 0); the protocol the socket was opened with is inp_ip_p
            sproto = p.ip_p
    else:
        # the sysctl zeroes a missing socket, except tcp_inptoxtp's xso_protocol
        sproto = IPPROTO_TCP if istcp else 0
    if sproto != proto:
        return False
    vf = p.vflag
    af = o.af
    if (af == AF_INET and not vf & P.INP_IPV4) or (af == AF_INET6 and not vf & P.INP_IPV6) \
            or (af == AF_UNSPEC and not vf & (P.INP_IPV4 | P.INP_IPV6)):
        return False
    if not o.aflag:
        if istcp and p.state == P.TCPS_LISTEN:
            return False
        any4 = inet_lnaof(p.laddr[12:16]) == 0
        any6 = not any(p.laddr)
        if af == AF_INET and any4:
            return False
        if af == AF_INET6 and any6:
            return False
        if af == AF_UNSPEC and ((vf & P.INP_IPV4 and any4) or (vf & P.INP_IPV6 and any6)):
            return False
    return True


# -- the walk ------------------------------------------------------------------------------

def _pcbinfo_address(target, stack, var: str) -> int | None:
    name = ("vnet_entry_" if has_vimage(target) else "") + var
    if not target.has_symbol(name):
        return None
    return vnet_var_address(target, var, stack.address)


def _keeper(o: Options, istcp: bool, proto: int):
    """``keep`` for one protox entry, with the common case (a socket whose protocol is
    the entry's, -a, no family filter) decided inline."""
    if not o.aflag or o.af != AF_UNSPEC:
        return lambda p: keep(p, o, istcp, proto)

    def fast(p: P.Pcb) -> bool:
        if p.socket and p.protocol == proto and p.vflag & 3:
            return True
        return keep(p, o, istcp, proto)
    return fast


_PORT_TEXT: tuple | None = None     # network-order port -> netstat -n port text


def _port_texts() -> tuple:
    """Port text (``*`` for 0) indexed by the port in *network* byte order."""
    global _PORT_TEXT
    if _PORT_TEXT is None:
        t = [""] * 65536
        for port in range(65536):
            t[((port & 0xFF) << 8) | (port >> 8)] = str(port) if port else "*"
        _PORT_TEXT = tuple(t)
    return _PORT_TEXT


_HOST_CACHE_MAX = 1 << 16          # local address texts kept per protocol walk


def _row_maker(fmt: Formatter, o: Options, name: str, istcp: bool, proto: int):
    """``P.walk_pcb_rows``'s ``row`` for text output without ``-L``: ``keep`` on the raw
    values, then the row text (None if filtered out).  IPv4 rows with ``-n`` and neither
    ``-A`` nor ``-W`` (the common case) are formatted here, from per-address and per-port
    text caches; every other row goes through a ``Pcb`` and ``Formatter.row_text``."""
    aflag, af = o.aflag, o.af
    inline = o.numeric and not o.Aflag and not o.Wflag and not o.Lflag
    row_text = fmt.row_text
    make_pcb = P._make_pcb
    lite = proto in (IPPROTO_UDP, IPPROTO_UDPLITE)
    no_socket_proto = IPPROTO_TCP if istcp else 0
    fam = {AF_UNSPEC: P.INP_IPV4 | P.INP_IPV6, AF_INET: P.INP_IPV4,
           AF_INET6: P.INP_IPV6}[af]
    LISTEN, TOE, NEED = P.TCPS_LISTEN, P.TF_TOE, P.TF_NEEDSYN | P.TF_NEEDFIN
    zero_mid = f"{0:6d} {0:6d} "
    pre = (f"{name[:3]:<3}4  ", f"{name[:3]:<3}46 ")
    pre_zero = (pre[0] + zero_mid, pre[1] + zero_mid)
    ports = _port_texts()
    hosts: dict[bytes, str] = {}       # 16 raw local address bytes -> "a.b.c.d." / "*."
    hosts_get = hosts.get
    ntoa = _ntoa
    states = _STATE11
    states_star = tuple(s + "*" for s in _STATE11)

    def row(address, vflag, flags, lport, fport, laddr, faddr, zoneid, ip_p, so, options,
            so_pcb, rcv, snd, qlen, incqlen, qlimit, protocol, tcpcb, state, t_flags):
        # keep(): the socket's protocol, the family, -a
        if so:
            if protocol != proto:
                sp = protocol
                if sp is None:
                    sp = proto if istcp or lite else ip_p
                elif sp == 0 and not istcp and not lite:
                    sp = ip_p
                if sp != proto:
                    return None
        elif proto != no_socket_proto:
            return None
        if not vflag & fam:
            return None
        if not aflag:
            if istcp and state == LISTEN:
                return None
            if af == AF_INET:
                if inet_lnaof(laddr[12:16]) == 0:
                    return None
            elif af == AF_INET6:
                if not any(laddr):
                    return None
            elif (vflag & P.INP_IPV4 and inet_lnaof(laddr[12:16]) == 0) or \
                    (vflag & P.INP_IPV6 and not any(laddr)):
                return None
        if inline and vflag & 1 and not (istcp and t_flags & TOE):
            lh = hosts_get(laddr)
            if lh is None:
                if len(hosts) >= _HOST_CACHE_MAX:
                    hosts.clear()
                b = laddr[12:16]
                lh = hosts[laddr] = ("*" if b == _ZERO4 else ntoa(b)) + "."
            # foreign addresses mostly differ row to row: not worth a cache
            b = faddr[12:16]
            fh = "*." if b == _ZERO4 else ntoa(b) + "."
            # "a.b.c.d.port" is at most 21 characters: never cut at 22, padded to 23
            if rcv or snd:
                out = f"{pre[(vflag >> 1) & 1]}{rcv:6d} {snd:6d} "
            else:
                out = pre_zero[(vflag >> 1) & 1]
            if istcp:
                if state is not None and 0 <= state < 11:
                    return out + (lh + ports[lport]).ljust(23) + \
                        (fh + ports[fport]).ljust(23) + \
                        (states_star[state] if t_flags & NEED else states[state])
                return out + (lh + ports[lport]).ljust(23) + \
                    (fh + ports[fport]).ljust(23) + \
                    f"{state if state is not None else -1:<11d}"
            return out + (lh + ports[lport]).ljust(23) + (fh + ports[fport]).ljust(23)
        return row_text(make_pcb(address, vflag, flags, lport, fport, laddr, faddr,
                                 zoneid, ip_p, so, options, so_pcb, rcv, snd, qlen,
                                 incqlen, qlimit, protocol, tcpcb, state, t_flags),
                        name, istcp)
    return row


def _rows(target, stack, o: Options, problems: list[str], want_json: bool):
    """The header lines (text only), once, before the first pcb that passes the
    filters; then one rendered row (text line, or libxo JSON object) per printed pcb."""
    ifcache: dict = {}

    def ifnames():
        if "m" not in ifcache:
            ifcache["m"] = P.interface_names(target, stack.address, problems)
        return ifcache["m"]

    fmt = Formatter(o, ifnames)
    if want_json:
        def render(p, name, istcp):
            return fmt.row(p, name, istcp, True)[1]
    else:
        render = fmt.row_text
    first = True
    done = set()
    raw_cache: dict[str, list] = {}
    Lflag = o.Lflag
    for name, var, proto, _fam in protocol_entries(o):
        if name in ("tcp", "udp"):
            if name in done:           # tcp_done / udp_done
                continue
            done.add(name)
        istcp = proto == IPPROTO_TCP
        address = _pcbinfo_address(target, stack, var)
        if address is None:
            continue
        what = f"V_{var}" + (f" of vnet {stack.address:#x}" if stack.address is not None
                             else "")
        if var != "ripcbinfo" and not want_json and not Lflag:
            # text rows straight from the decoded values, no Pcb objects
            rows = P.walk_pcb_rows(target, address, tcp=istcp, what=what,
                                   problems=problems,
                                   row=_row_maker(fmt, o, name, istcp, proto))
            if first:
                for r in rows:
                    first = False
                    yield from fmt.header()
                    yield r
                    break
            yield from rows
            continue
        if var == "ripcbinfo":
            if var not in raw_cache:
                raw_cache[var] = list(P.walk_pcbs(target, address, tcp=False, what=what,
                                                  problems=problems))
            pcbs = raw_cache[var]
        else:
            pcbs = P.walk_pcbs(target, address, tcp=istcp, what=what, problems=problems)
        kept = _keeper(o, istcp, proto)
        for p in pcbs:
            if not kept(p):
                continue
            if first:
                first = False
                if not want_json:
                    yield from fmt.header()
            if Lflag and p.qlimit == 0:
                continue
            yield render(p, name, istcp)


def text_lines(target, stack, opts, problems: list[str]) -> Iterator[str]:
    """netstat's text for one stack, streamed as pcbs are read."""
    return _rows(target, stack, Options(opts), problems, False)


def records(target, stack, opts, problems: list[str]) -> Iterator[dict]:
    """One libxo ``socket`` object per row netstat would print."""
    return _rows(target, stack, Options(opts), problems, True)
