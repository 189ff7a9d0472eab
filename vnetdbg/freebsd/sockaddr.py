"""Socket addresses read from kernel memory, and the ways FreeBSD's tools print them.

``read_sockaddr`` decodes a ``struct sockaddr *`` by its ``sa_family`` into a
``Sockaddr`` record, typed through DWARF (``struct sockaddr_in``/``sockaddr_in6``/
``sockaddr_dl``).  A kernel whose debug info lacks one of those types (it happens in
small builds) is read with the userland ABI layout of that structure instead, which
FreeBSD has never changed (``sys/netinet/in.h``, ``netinet6/in6.h``, ``net/if_dl.h``).

IPv6 scope (KAME): inside the kernel a link-local (``fe80::/10``), link-local multicast
(``ff02::``) or interface-local multicast (``ff01::``) address carries its zone, the
interface index, in bytes 2-3.  Userland never sees that form: the routing socket
(``sa6_recoverscope``) and netstat/ifconfig (``in6_fillscopeid``) move it to
``sin6_scope_id`` and clear the bytes.  ``Sockaddr.addr6``/``scope_id`` hold the
recovered form; ``embedded_scope`` remembers what the kernel had.

The text helpers reproduce libc and netstat exactly:
- ``inet_ntop4``/``inet_ntop6``: libc ``inet_ntop`` (FreeBSD ``inet_ntop6``: longest run
  of two or more zero words becomes ``::``, the first one on ties; ``::a.b.c.d`` for
  IPv4-compatible and ``::ffff:a.b.c.d`` for IPv4-mapped addresses).
- ``numeric_host``: ``getnameinfo(NI_NUMERICHOST)``; an IPv6 scope is appended as
  ``%ifname`` for link-/interface-local addresses (``if_indextoname``), else ``%N``.
- ``netname4``/``netname6``: ``usr.bin/netstat/route.c`` ``netname()`` with ``-n``
  semantics: ``192.168.122.0/24``, ``fe80::%vtnet0/64``, ``::1/128``, ``default`` for
  0/0; a non-contiguous IPv4 mask prints ``&0x…``.  Without ``-n`` netstat asks the
  resolver (``/etc/networks``, ``/etc/hosts``, DNS) of the crashed host, which a dump
  does not contain; vnetdbg always prints what netstat prints when no name is found.
- ``link_routename``: libc ``getnameinfo_link``: ``link#N`` when name, address and
  selector are all empty, the interface name when only the name is set (``lo0``),
  else the address as ``xx:xx:…`` (``hexname``).
- ``ether_ntoa`` (``%02x:…``) and ``link_ntoa`` (name, ``:``, unpadded hex bytes joined
  by ``.``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..errors import FaultError, VnetdbgError
from ..objects import Target, Value

AF_UNSPEC = 0
AF_INET = 2
AF_LINK = 18
AF_INET6 = 28

IFT_ETHER = 0x6
IFT_L2VLAN = 0x87
IFT_BRIDGE = 0xD1
IFT_IEEE8023ADLAG = 0xA1
ETHER_ADDR_LEN = 6


@dataclass
class Sockaddr:
    """One decoded socket address.  Fields not meaningful for ``family`` are None."""

    family: int
    length: int                      # sa_len
    addr4: bytes | None = None       # AF_INET: 4 bytes, network order
    addr6: bytes | None = None       # AF_INET6: 16 bytes, embedded scope cleared
    scope_id: int = 0                # AF_INET6: sin6_scope_id (recovered from the address)
    embedded_scope: int = 0          # AF_INET6: the zone the kernel kept in bytes 2-3
    sdl_index: int | None = None     # AF_LINK
    sdl_type: int | None = None
    sdl_nlen: int = 0
    sdl_alen: int = 0
    sdl_slen: int = 0
    sdl_data: bytes = b""            # name, then link address, then selector
    raw: bytes = b""                 # the whole sockaddr as the kernel holds it

    @property
    def sdl_name(self) -> str:
        return self.sdl_data[:self.sdl_nlen].decode("utf-8", "surrogateescape")

    @property
    def lladdr(self) -> bytes:
        """``LLADDR(sdl)``: the link-level address bytes."""
        return self.sdl_data[self.sdl_nlen:self.sdl_nlen + self.sdl_alen]


# -- reading ---------------------------------------------------------------------------

def _typed(target: Target, address: int, name: str) -> Value | None:
    if target.has_type(name):
        return target.value(address, name)
    return None


def _raw_bytes(v: Value) -> bytes:
    return v.bytes_()


def read_sockaddr(target: Target, address: int) -> Sockaddr | None:
    """The sockaddr at ``address`` (None for a NULL pointer).  Raises FaultError when
    its memory is absent from the dump."""
    if not address:
        return None
    if target.has_type("struct sockaddr"):
        sa = target.value(address, "struct sockaddr")
        length = sa.member("sa_len").value_()
        family = sa.member("sa_family").value_()
    else:
        head = target.read(address, 2)
        length, family = head[0], head[1]
    raw = target.read(address, max(length, 2)) if length else b""
    if family == AF_INET:
        return _read_in(target, address, length, raw)
    if family == AF_INET6:
        return _read_in6(target, address, length, raw)
    if family == AF_LINK:
        return _read_dl(target, address, length, raw)
    return Sockaddr(family, length, raw=raw)


def _read_in(target: Target, address: int, length: int, raw: bytes) -> Sockaddr:
    sin = _typed(target, address, "struct sockaddr_in")
    if sin is not None:
        addr = _raw_bytes(sin.member("sin_addr"))
    else:
        addr = target.read(address + 4, 4)
    return Sockaddr(AF_INET, length, addr4=bytes(addr[:4]), raw=raw)


def _read_in6(target: Target, address: int, length: int, raw: bytes) -> Sockaddr:
    sin6 = _typed(target, address, "struct sockaddr_in6")
    if sin6 is not None:
        addr = _raw_bytes(sin6.member("sin6_addr"))
        scope = sin6.member("sin6_scope_id").value_()
    else:
        addr = target.read(address + 8, 16)
        scope = int.from_bytes(target.read(address + 24, 4), "little")
    addr, scope, embedded = recover_scope(bytes(addr[:16]), scope)
    return Sockaddr(AF_INET6, length, addr6=addr, scope_id=scope, embedded_scope=embedded,
                    raw=raw)


def _read_dl(target: Target, address: int, length: int, raw: bytes) -> Sockaddr:
    sdl = _typed(target, address, "struct sockaddr_dl")
    if sdl is not None:
        index = sdl.member("sdl_index").value_()
        typ = sdl.member("sdl_type").value_()
        nlen = sdl.member("sdl_nlen").value_()
        alen = sdl.member("sdl_alen").value_()
        slen = sdl.member("sdl_slen").value_()
        data_addr = sdl.member("sdl_data").address
    else:
        head = target.read(address, 8)
        index = int.from_bytes(head[2:4], "little")
        typ, nlen, alen, slen = head[4], head[5], head[6], head[7]
        data_addr = address + 8
    # sdl_data is declared [46] but a sockaddr_dl may be longer (sa_len says how long)
    data = target.read(data_addr, nlen + alen + slen) if nlen + alen + slen else b""
    return Sockaddr(AF_LINK, length, sdl_index=index, sdl_type=typ, sdl_nlen=nlen,
                    sdl_alen=alen, sdl_slen=slen, sdl_data=bytes(data), raw=raw)


def try_read_sockaddr(target: Target, address: int, what: str,
                      problems: list[str] | None) -> Sockaddr | None:
    """``read_sockaddr`` that reports an unreadable address in ``problems``."""
    try:
        return read_sockaddr(target, address)
    except (FaultError, VnetdbgError) as e:
        if problems is None:
            raise
        problems.append(f"{what}: sockaddr at {address:#x} cannot be read ({e})")
        return None


# -- IPv6 scope ------------------------------------------------------------------------

def is_scoped6(addr: bytes) -> bool:
    """Link-local unicast, link-local multicast or interface-local multicast: the
    addresses whose zone KAME embeds (``IN6_IS_SCOPE_LINKLOCAL`` ||
    ``IN6_IS_ADDR_MC_INTFACELOCAL``)."""
    if addr[0] == 0xFE and (addr[1] & 0xC0) == 0x80:
        return True
    return addr[0] == 0xFF and (addr[1] & 0x0F) in (0x01, 0x02)


def recover_scope(addr: bytes, scope_id: int) -> tuple[bytes, int, int]:
    """(address with bytes 2-3 cleared, scope id, embedded zone) as
    ``sa6_recoverscope``/``in6_fillscopeid`` leave it."""
    if len(addr) != 16 or not is_scoped6(addr):
        return addr, scope_id, 0
    embedded = int.from_bytes(addr[2:4], "big")
    if embedded:
        if scope_id == 0:
            scope_id = embedded
        addr = addr[:2] + b"\0\0" + addr[4:]
    return addr, scope_id, embedded


# -- text forms ------------------------------------------------------------------------

def inet_ntop4(addr: bytes) -> str:
    return ".".join(str(b) for b in addr[:4])


def inet_ntop6(addr: bytes) -> str:
    """FreeBSD libc ``inet_ntop6`` (``lib/libc/inet/inet_ntop.c``)."""
    words = [int.from_bytes(addr[i:i + 2], "big") for i in range(0, 16, 2)]
    best_base, best_len = -1, 0
    cur_base, cur_len = -1, 0
    for i, w in enumerate(words):
        if w == 0:
            if cur_base == -1:
                cur_base, cur_len = i, 1
            else:
                cur_len += 1
        elif cur_base != -1:
            if best_base == -1 or cur_len > best_len:
                best_base, best_len = cur_base, cur_len
            cur_base = -1
    if cur_base != -1 and (best_base == -1 or cur_len > best_len):
        best_base, best_len = cur_base, cur_len
    if best_base != -1 and best_len < 2:
        best_base = -1
    out = []
    i = 0
    while i < 8:
        if best_base != -1 and best_base <= i < best_base + best_len:
            if i == best_base:
                out.append(":")
            i += 1
            continue
        if i != 0:
            out.append(":")
        if (i == 6 and best_base == 0 and
                (best_len == 6 or (best_len == 7 and words[7] != 0x0001) or
                 (best_len == 5 and words[5] == 0xFFFF))):
            out.append(inet_ntop4(addr[12:16]))
            i = 8
            break
        out.append(f"{words[i]:x}")
        i += 1
    if best_base != -1 and best_base + best_len == 8:
        out.append(":")
    return "".join(out)


def scope_text(addr: bytes, scope_id: int,
               ifname_of: Callable[[int], str | None] | None = None) -> str:
    """libc ``ip6_sa2str``: the interface name for a link-/interface-local address whose
    index names an interface, else the number."""
    if ifname_of is not None and (is_scoped6(addr) or
                                  (addr[0] == 0xFF and (addr[1] & 0x0F) == 0x01)):
        name = ifname_of(scope_id)
        if name:
            return name
    return str(scope_id)


def numeric_host(sa: Sockaddr, ifname_of: Callable[[int], str | None] | None = None) -> str:
    """``getnameinfo(sa, NI_NUMERICHOST)`` for AF_INET/AF_INET6."""
    if sa.family == AF_INET:
        return inet_ntop4(sa.addr4 or b"\0\0\0\0")
    if sa.family == AF_INET6:
        text = inet_ntop6(sa.addr6 or bytes(16))
        if sa.scope_id:
            text += "%" + scope_text(sa.addr6 or bytes(16), sa.scope_id, ifname_of)
        return text
    if sa.family == AF_LINK:
        return link_routename(sa)
    return ""


def ether_ntoa(addr: bytes) -> str:
    """libc ``ether_ntoa``: six ``%02x`` bytes joined by ``:``."""
    return ":".join(f"{b:02x}" for b in addr[:6])


def link_ntoa(sa: Sockaddr) -> str:
    """libc ``link_ntoa``: ``name:a.b.c`` with unpadded hex bytes."""
    out = sa.sdl_name
    if sa.sdl_nlen and sa.sdl_alen:
        out += ":"
    out += ".".join(f"{b:x}" for b in sa.lladdr)
    return out


def link_routename(sa: Sockaddr) -> str:
    """libc ``getnameinfo_link`` (what netstat -i prints as a link row's address)."""
    if sa.sdl_nlen == 0 and sa.sdl_alen == 0 and sa.sdl_slen == 0:
        return f"link#{sa.sdl_index}"
    if sa.sdl_nlen > 0 and sa.sdl_alen == 0:
        return sa.sdl_name
    return ":".join(f"{b:02x}" for b in sa.lladdr)


def mask_bytes(sa: Sockaddr | None, family: int) -> bytes | None:
    if sa is None:
        return None
    if family == AF_INET:
        # a netmask sockaddr may be short (sa_len < 8): missing bytes are zero
        raw = sa.raw
        if sa.addr4 is not None and len(raw) >= 8:
            return sa.addr4
        return (raw[4:8] + b"\0\0\0\0")[:4] if raw else (sa.addr4 or b"\0\0\0\0")
    if family == AF_INET6:
        raw = sa.raw
        if sa.addr6 is not None and len(raw) >= 24:
            return _raw6(raw)
        return (raw[8:24] + bytes(16))[:16] if raw else (sa.addr6 or bytes(16))
    return None


def _raw6(raw: bytes) -> bytes:
    return raw[8:24]


def prefix_len(mask: bytes) -> int:
    """ifconfig's ``prefix()``: the length of a contiguous mask, 0 if not contiguous."""
    plen = 0
    i = 0
    while i < len(mask) and mask[i] == 0xFF:
        plen += 8
        i += 1
    if i == len(mask):
        return plen
    byte = mask[i]
    bit = 7
    while bit != 0 and byte & (1 << bit):
        plen += 1
        bit -= 1
    while bit != 0:
        if byte & (1 << bit):
            return 0
        bit -= 1
    for b in mask[i + 1:]:
        if b:
            return 0
    return plen


_MASKTOLEN = {0xFF: 8, 0xFE: 7, 0xFC: 6, 0xF8: 5, 0xF0: 4, 0xE0: 3, 0xC0: 2, 0x80: 1,
              0x00: 0}


def masklen6_netstat(mask: bytes) -> int:
    """netstat's ``netname6`` mask length: the sum of per-byte lengths (an illegal byte
    counts 0; netstat also warns "illegal prefixlen")."""
    return sum(_MASKTOLEN.get(b, 0) for b in mask) & 0xFF


def _domask(mask: int) -> str:
    if mask == 0:
        return ""
    i = 0
    for b in range(32):
        if mask & (1 << b):
            i = b
            for bb in range(b + 1, 32):
                if not mask & (1 << bb):
                    i = -1
                    break
            break
    if i == -1:
        return f"&0x{mask:x}"
    return f"/{32 - i}"


def netname4(addr: bytes, mask: bytes | None) -> str:
    """netstat ``netname4`` (numeric): network address then ``/len``."""
    a = int.from_bytes(addr[:4], "big")
    m = int.from_bytes(mask[:4], "big") if mask is not None else 0
    if a == 0 and m == 0:
        return "default"
    net = a & m
    return inet_ntop4(net.to_bytes(4, "big")) + _domask(m)


def netname6(addr: bytes, scope_id: int, mask: bytes | None,
             ifname_of: Callable[[int], str | None] | None = None) -> str:
    """netstat ``netname6`` (numeric): masked address (scope kept) then ``/len``."""
    if mask is not None:
        masklen = masklen6_netstat(mask)
        addr = bytes(a & b for a, b in zip(addr, mask))
    else:
        masklen = 128
    if masklen == 0 and addr == bytes(16):
        return "default"
    text = inet_ntop6(addr)
    if scope_id:
        text += "%" + scope_text(addr, scope_id, ifname_of)
    return f"{text}/{masklen}"


def netname(sa: Sockaddr, mask: Sockaddr | None,
            ifname_of: Callable[[int], str | None] | None = None) -> str:
    """netstat ``netname(ifa_addr, ifa_netmask)`` for AF_INET/AF_INET6."""
    if sa.family == AF_INET:
        return netname4(sa.addr4 or bytes(4), mask_bytes(mask, AF_INET))
    if sa.family == AF_INET6:
        return netname6(sa.addr6 or bytes(16), sa.scope_id, mask_bytes(mask, AF_INET6),
                        ifname_of)
    return ""
