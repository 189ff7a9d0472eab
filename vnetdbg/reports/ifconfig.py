"""``ifconfig [IFNAME]`` per network stack, in the format of the dumped release.

What is printed, per interface in ``V_ifnet`` order (``sbin/ifconfig/ifconfig.c``
``status()`` for 12/13, ``ifconfig_netlink.c`` ``status_nl()`` for 14+):

- ``NAME: flags=HEX<NAMES> metric N mtu N``.  Flags are ``if_flags | if_drv_flags``.
  12/13 name the bits with the ``IFFBITS`` ``%b`` string (``<>`` even when no bit is
  set); 14+ with the netlink ``IFFBITS[]`` array (``DRV_OACTIVE``, ``CANTCONFIG``,
  ``STICKYARP``, ..., nothing after the hex when no bit is set) and add ``LOWER_UP``
  (``IFF_NETLINK_1``, 0x1000000) as the netlink dump does (``get_operstate``): for
  Ethernet/VLAN when the media is active (the driver's last link state stands in for
  ``SIOCGIFMEDIA``), for every other type (lo0, ...) whenever ``IFF_UP`` is set.
  The release is told by ``osreldate`` (>= 1400000: netlink ifconfig).
- ``\\tdescription: TEXT`` when ``if_description`` is set.
- ``\\toptions=HEX<NAMES>`` from ``if_capenable`` when non-zero (names: ifconfig's
  ``IFCAPBITS`` / ``sys/net/if.h`` ``IFCAP_*``; 14+'s extra ``if_capenable2`` bits and
  the nvlist form drivers with ``IFCAP_NV`` use are not rendered).
- the link address: ``\\tether xx:xx:xx:xx:xx:xx`` (Ethernet, VLAN, bridge with a 6-byte
  address), else ``\\tlladdr`` with ``link_ntoa``; ``\\thwaddr`` when ``if_hw_addr``
  differs from the current address (af_link.c).
- addresses, grouped by family: on 12/13 families in the order each first appears on
  ``if_addrhead`` (``calcorders``/``cmpifaddrs``/``sortifaddrs``, a stable sort), on
  14+ by family number, inet before inet6 (``sort_iface_ifaddrs``); list order within
  a family:
  ``\\tinet A netmask 0xMASK broadcast B`` (``--> DST`` on point-to-point links) and
  ``\\tinet6 A[%ifname] prefixlen N[ flags][ scopeid 0xN]`` (af_inet.c, af_inet6.c).

Not printed, because a dump has no data for them or they need the driver: ``media:``
and ``status:`` (ifmedia lives in the driver's softc), ``nd6 options``, ``groups:``,
tunnel, carp ``vhid``, and the ``-v`` capabilities line.

One line real ifconfig does not print: for an interface that was moved into this stack
(``if_home_vnet`` differs from ``if_vnet``, e.g. ``epair0b`` given to a VNET jail)::

    \\tmoved from vnet 0xfffff80003a1b000 (jail 0)

naming its home stack and the jail that owns it ("no owning jail" if none does), and
one for an interface whose ``if_get_counter`` is a driver method (its real counters are
in the driver's softc, which a generic reader cannot interpret)::

    \tcounters: if_get_counter is vtnet_get_counter (driver method); the real counts are in the driver's softc

``ifconfig IFNAME`` inside one stack (``-j``/``--vnet``) fails as ifconfig does
(``interface IFNAME does not exist``, exit 1); across all stacks a stack without it has
an empty section and a name no stack has is one warning.

JSON: ifconfig has no libxo output; vnetdbg writes
``{"interface-information": {"interface": [...]}}`` with one object per interface:
``name``, ``flags`` (``0x…``), ``flags-names``, ``metric``, ``mtu``, ``index``,
``description``, ``options``, ``options-names``, ``ether``/``lladdr``, ``hwaddr``,
``inet`` (list of ``address``/``netmask``/``broadcast``/``destination``), ``inet6``
(list of ``address``/``prefixlen``/``flags``/``scopeid``), ``link-state``,
``home-vnet``, ``moved-from`` and ``home-jail`` (moved interfaces only), and
``driver-get-counter`` (the method's symbol) for driver-counted interfaces.
"""

from __future__ import annotations

import weakref

from ..errors import VnetdbgError
from ..freebsd.ifnet import Interface, ifname_map, interfaces
from ..freebsd.sockaddr import (AF_INET, AF_INET6, AF_LINK, ETHER_ADDR_LEN, IFT_BRIDGE,
                                IFT_ETHER, IFT_IEEE8023ADLAG, IFT_L2VLAN, ether_ntoa,
                                inet_ntop4, link_ntoa, mask_bytes, numeric_host,
                                prefix_len)

JSON_PATH = ("interface-information", "interface")

NETLINK_OSRELDATE = 1400000
IFF_UP, IFF_BROADCAST, IFF_POINTOPOINT, IFF_MONITOR = 0x1, 0x2, 0x10, 0x40000
IFF_LOWER_UP = 0x1000000
LINK_STATE_UP = 2

#: 12/13 ifconfig.c IFFBITS (bit number -> name)
IFFBITS_OLD = {0: "UP", 1: "BROADCAST", 2: "DEBUG", 3: "LOOPBACK", 4: "POINTOPOINT",
               6: "RUNNING", 7: "NOARP", 8: "PROMISC", 9: "ALLMULTI", 10: "OACTIVE",
               11: "SIMPLEX", 12: "LINK0", 13: "LINK1", 14: "LINK2", 15: "MULTICAST",
               17: "PPROMISC", 18: "MONITOR", 19: "STATICARP"}

#: 14+ ifconfig_netlink.c IFFBITS[] (index = bit number)
IFFBITS_NL = ("UP", "BROADCAST", "DEBUG", "LOOPBACK", "POINTOPOINT", "NEEDSEPOCH",
              "RUNNING", "NOARP", "PROMISC", "ALLMULTI", "DRV_OACTIVE", "SIMPLEX",
              "LINK0", "LINK1", "LINK2", "MULTICAST", "CANTCONFIG", "PPROMISC", "MONITOR",
              "STATICARP", "STICKYARP", "DYING", "RENAMING", "NOGROUP", "LOWER_UP")

#: IFCAPBITS (bit number -> name); bits 26+ appear from 13
IFCAPBITS = {0: "RXCSUM", 1: "TXCSUM", 2: "NETCONS", 3: "VLAN_MTU", 4: "VLAN_HWTAGGING",
             5: "JUMBO_MTU", 6: "POLLING", 7: "VLAN_HWCSUM", 8: "TSO4", 9: "TSO6",
             10: "LRO", 11: "WOL_UCAST", 12: "WOL_MCAST", 13: "WOL_MAGIC", 14: "TOE4",
             15: "TOE6", 16: "VLAN_HWFILTER", 18: "VLAN_HWTSO", 19: "LINKSTATE",
             20: "NETMAP", 21: "RXCSUM_IPV6", 22: "TXCSUM_IPV6", 24: "TXRTLMT",
             25: "HWRXTSTMP"}
IFCAPBITS_13 = {**IFCAPBITS, 26: "NOMAP", 27: "TXTLS4", 28: "TXTLS6", 29: "VXLAN_HWCSUM",
                30: "VXLAN_HWTSO", 31: "TXTLS_RTLMT"}

#: IN6_IFF_* words af_inet6.c prints, in its order
IN6_FLAGS = ((0x01, "anycast"), (0x02, "tentative"), (0x04, "duplicated"),
             (0x08, "detached"), (0x10, "deprecated"), (0x40, "autoconf"),
             (0x80, "temporary"), (0x200, "prefer_source"))


def printb(label: str, value: int, bits: dict[int, str]) -> str:
    """ifconfig's ``printb`` (``%b``): ``label=hex<NAME,...>``, ``<>`` when none."""
    names = [bits[b] for b in sorted(bits) if value & (1 << b)]
    return f"{label}={value:x}<{','.join(names)}>"


def print_bits(label: str, value: int, names: tuple[str, ...]) -> str:
    """14+ ``printf("flags=%x")`` + ``print_bits``: no brackets when no bit is set;
    an unnamed bit prints as ``IFF_<n>``."""
    out = []
    for i in range(32):
        if value & (1 << i):
            out.append(names[i] if i < len(names) else f"IFF_{i}")
    return f"{label}={value:x}" + (f"<{','.join(out)}>" if out else "")


def is_netlink(target) -> bool:
    try:
        return target.variable("osreldate").value_() >= NETLINK_OSRELDATE
    except Exception:
        return target.type("struct ifnet").has_member("if_capenable2")


def lower_up(i: Interface) -> bool:
    """The netlink dump's ``IFF_LOWER_UP`` (``sys/netlink/route/iface.c``
    ``get_operstate``): for Ethernet and VLAN interfaces the media status
    (``SIOCGIFMEDIA`` ``IFM_ACTIVE``, not in a dump: the link state the driver last
    reported stands in for it; ``IFF_MONITOR`` makes it "dormant"); for every other
    type the administrative state, ``IFF_UP`` in ``if_flags``."""
    if i.type in (IFT_ETHER, IFT_L2VLAN):
        return i.link_state == LINK_STATE_UP and not i.if_flags & IFF_MONITOR
    return bool(i.if_flags & IFF_UP)


def shown_flags(i: Interface, netlink: bool) -> int:
    f = i.flags
    if netlink and lower_up(i):
        f |= IFF_LOWER_UP
    return f


def _link_lines(i: Interface) -> list[str]:
    sdl = i.lladdr
    if sdl is None or sdl.family != AF_LINK or sdl.sdl_alen == 0:
        return []
    out = []
    if sdl.sdl_type in (IFT_ETHER, IFT_L2VLAN, IFT_BRIDGE) and sdl.sdl_alen == ETHER_ADDR_LEN:
        out.append(f"\tether {ether_ntoa(sdl.lladdr)}")
    else:
        text = link_ntoa(sdl)
        n = sdl.sdl_nlen + 1 if sdl.sdl_nlen > 0 else 0
        out.append(f"\tlladdr {text[n:]}")
    if (sdl.sdl_type in (IFT_ETHER, IFT_IEEE8023ADLAG) and sdl.sdl_alen == ETHER_ADDR_LEN
            and i.hwaddr is not None and any(i.hwaddr)
            and i.hwaddr != sdl.lladdr[:ETHER_ADDR_LEN]):
        out.append(f"\thwaddr {ether_ntoa(i.hwaddr)}")
    return out


def inet_line(a, flags: int) -> str:
    line = f"\tinet {numeric_host(a.addr)}"
    if flags & IFF_POINTOPOINT:
        dst = a.dstaddr.addr4 if a.dstaddr is not None and a.dstaddr.addr4 else bytes(4)
        line += f" --> {inet_ntop4(dst)}"
    mask = mask_bytes(a.netmask, AF_INET) or bytes(4)
    line += f" netmask 0x{int.from_bytes(mask, 'big'):x}"
    if flags & IFF_BROADCAST and a.dstaddr is not None and a.dstaddr.addr4 \
            and any(a.dstaddr.addr4):
        line += f" broadcast {inet_ntop4(a.dstaddr.addr4)}"
    return line


def inet6_line(a, flags: int, ifname_of) -> str:
    line = f"\tinet6 {numeric_host(a.addr, ifname_of)}"
    if flags & IFF_POINTOPOINT and a.dstaddr is not None and a.dstaddr.family == AF_INET6:
        line += f" --> {numeric_host(a.dstaddr, ifname_of)}"
    mask = mask_bytes(a.netmask, AF_INET6) or bytes(16)
    line += f" prefixlen {prefix_len(mask)}"
    for bit, word in IN6_FLAGS:
        if (a.flags6 or 0) & bit:
            line += f" {word}"
    if a.addr.scope_id:
        line += f" scopeid 0x{a.addr.scope_id:x}"
    return line


def _ordered(i: Interface, netlink: bool):
    """The addresses in the order ifconfig prints them.

    14+ (``sort_iface_ifaddrs``/``cmp_ifaddr``): by family number, so inet before
    inet6, list order within a family.  12/13 (``calcorders``/``cmpifaddrs`` and the
    stable merge ``sortifaddrs``): families in the order each first appears on the
    interface, list order within a family (so lo0 shows inet6 ::1 before inet
    127.0.0.1 when its IPv6 addresses were configured first)."""
    addrs = [a for a in i.addresses if a.family in (AF_INET, AF_INET6) and a.addr]
    if netlink:
        addrs.sort(key=lambda a: a.family)  # stable: list order within a family
    else:
        first: dict[int, int] = {}
        for a in addrs:
            first.setdefault(a.family, len(first))
        addrs.sort(key=lambda a: first[a.family])
    return addrs


def driver_counter_line(i: Interface) -> str | None:
    """The mark for an interface whose ``if_get_counter`` is a driver method."""
    if not i.driver_counters:
        return None
    name = i.get_counter_name or f"{i.get_counter:#x}"
    return (f"\tcounters: if_get_counter is {name} (driver method); "
            "the real counts are in the driver's softc")


def interface_lines(i: Interface, *, netlink: bool, cap_bits: dict[int, str],
                    ifname_of=None, moved_from: str | None = None) -> list[str]:
    """ifconfig's status block for one interface."""
    flags = shown_flags(i, netlink)
    head = print_bits("flags", flags, IFFBITS_NL) if netlink else \
        printb("flags", flags, IFFBITS_OLD)
    out = [f"{i.name}: {head} metric {i.metric} mtu {i.mtu}"]
    if i.description:
        out.append(f"\tdescription: {i.description}")
    if i.capenable:
        out.append(printb("\toptions", i.capenable, cap_bits))
    out += _link_lines(i)
    for a in _ordered(i, netlink):
        if a.family == AF_INET:
            out.append(inet_line(a, i.flags))
        else:
            out.append(inet6_line(a, i.flags, ifname_of))
    if moved_from is not None:
        out.append(f"\tmoved from {moved_from}")
    drv = driver_counter_line(i)
    if drv is not None:
        out.append(drv)
    return out


# -- per stack ------------------------------------------------------------------------

def _home(target, home: int) -> tuple[str, int | None]:
    """("vnet 0x… (jail N)", N) for the stack an interface came from."""
    from ..freebsd.jail import all_prisons
    from ..freebsd.vnet import owners
    cache = _OWNERS.setdefault(target, {})
    if "map" not in cache:
        cache["map"] = owners(all_prisons(target, []))
    owner = cache["map"].get(home)
    who = f"jail {owner.jid}" if owner is not None else "no owning jail"
    return f"vnet {home:#x} ({who})", (owner.jid if owner is not None else None)


#: per-target caches (owners map, names present in any stack), dropped with the target
_OWNERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _context(target):
    """(netlink ifconfig?, IFCAPBITS of the release)."""
    try:
        rel = target.variable("osreldate").value_()
    except Exception:
        rel = None
    netlink = is_netlink(target)
    cap_bits = IFCAPBITS_13 if netlink or (rel is not None and rel >= 1300000) \
        else IFCAPBITS
    return netlink, cap_bits


def text_lines(target, stack, opts, problems):
    ifs = interfaces(target, stack.address, problems)
    names = ifname_map(ifs)
    netlink, cap_bits = _context(target)
    for i in _selected_from(target, ifs, stack, opts, problems):
        moved = _home(target, i.home_vnet)[0] if i.moved else None
        yield from interface_lines(i, netlink=netlink, cap_bits=cap_bits,
                                   ifname_of=names.get, moved_from=moved)


def _single(stack, opts) -> bool:
    """Did the user pick one stack (then the report is exactly ifconfig's)?"""
    return (stack.vnet is None or getattr(opts, "jail", None) is not None
            or getattr(opts, "vnet", None) is not None)


def _anywhere(target, name: str) -> bool:
    """Does any usable stack of the dump have an interface called ``name``?"""
    from ..freebsd.ifnet import for_each_ifnet, _ifname
    from .scope import select_stacks
    cache = _OWNERS.setdefault(target, {}).setdefault("names", {})
    if name not in cache:
        found = False
        for s in select_stacks(target, problems=[])[0]:
            if any(_ifname(ifp) == name for ifp in for_each_ifnet(target, s.address, [])):
                found = True
                break
        cache[name] = found
    return cache[name]


def _selected_from(target, ifs, stack, opts, problems):
    """``ifconfig IFNAME``: that interface only.  Inside one stack a missing name is
    ifconfig's error (``interface X does not exist``, exit 1); across all stacks a
    stack without it contributes an empty section, and only a name no stack has is
    reported (once, as a warning)."""
    name = getattr(opts, "ifname", None)
    if name is None:
        return ifs
    picked = [i for i in ifs if i.name == name]
    if picked:
        return picked
    if _single(stack, opts):
        raise VnetdbgError(f"ifconfig: interface {name} does not exist")
    message = f"ifconfig: interface {name} does not exist in any network stack"
    if message not in problems and not _anywhere(target, name):
        problems.append(message)
    return picked


def interface_record(i: Interface, *, netlink: bool, cap_bits: dict[int, str],
                     ifname_of=None, moved_from: str | None = None,
                     home_jail: int | None = None) -> dict:
    flags = shown_flags(i, netlink)
    names = [IFFBITS_NL[b] if b < len(IFFBITS_NL) else f"IFF_{b}" for b in range(32)
             if flags & (1 << b)] if netlink else \
        [IFFBITS_OLD[b] for b in sorted(IFFBITS_OLD) if flags & (1 << b)]
    d: dict = {"name": i.name, "index": i.index, "flags": f"0x{flags:x}",
               "flags-names": names, "metric": i.metric, "mtu": i.mtu}
    if i.description:
        d["description"] = i.description
    if i.capenable:
        d["options"] = f"0x{i.capenable:x}"
        d["options-names"] = [cap_bits[b] for b in sorted(cap_bits)
                              if i.capenable & (1 << b)]
    for line in _link_lines(i):
        key, _, value = line.strip().partition(" ")
        d[key] = value
    inet, inet6 = [], []
    for a in _ordered(i, netlink):
        if a.family == AF_INET:
            e = {"address": numeric_host(a.addr)}
            mask = mask_bytes(a.netmask, AF_INET) or bytes(4)
            e["netmask"] = f"0x{int.from_bytes(mask, 'big'):x}"
            if a.dstaddr is not None and a.dstaddr.addr4 and any(a.dstaddr.addr4):
                key = "destination" if i.flags & IFF_POINTOPOINT else "broadcast"
                if i.flags & (IFF_POINTOPOINT | IFF_BROADCAST):
                    e[key] = inet_ntop4(a.dstaddr.addr4)
            inet.append(e)
        else:
            mask = mask_bytes(a.netmask, AF_INET6) or bytes(16)
            e = {"address": numeric_host(a.addr, ifname_of), "prefixlen": prefix_len(mask)}
            fl = [w for bit, w in IN6_FLAGS if (a.flags6 or 0) & bit]
            if fl:
                e["flags"] = fl
            if a.addr.scope_id:
                e["scopeid"] = f"0x{a.addr.scope_id:x}"
            inet6.append(e)
    if inet:
        d["inet"] = inet
    if inet6:
        d["inet6"] = inet6
    d["link-state"] = {0: "unknown", 1: "down", 2: "up"}.get(i.link_state, str(i.link_state))
    if moved_from is not None:
        d["home-vnet"] = f"{i.home_vnet:#x}"
        d["moved-from"] = moved_from
        d["home-jail"] = home_jail
    if i.driver_counters:
        d["driver-get-counter"] = i.get_counter_name or f"{i.get_counter:#x}"
    return d


def records(target, stack, opts, problems) -> list[dict]:
    ifs = interfaces(target, stack.address, problems)
    names = ifname_map(ifs)
    netlink, cap_bits = _context(target)
    out = []
    for i in _selected_from(target, ifs, stack, opts, problems):
        moved, jid = _home(target, i.home_vnet) if i.moved else (None, None)
        out.append(interface_record(i, netlink=netlink, cap_bits=cap_bits,
                                    ifname_of=names.get, moved_from=moved,
                                    home_jail=jid))
    return out
