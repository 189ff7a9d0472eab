"""Network interfaces (``struct ifnet``) and their addresses, per network stack.

Helpers in the style of drgn's, one job each:

- ``for_each_ifnet(target, vnet, problems)``: every ``struct ifnet`` on the stack's
  ``V_ifnet`` list (a CK_STAILQ linked through ``if_link``, in attach order: the order
  ``getifaddrs(3)`` and so netstat/ifconfig list them).
- ``if_addresses(ifp, problems)``: every ``struct ifaddr`` on ``if_addrhead``
  (CK_STAILQ through ``ifa_link``; the AF_LINK address comes first).
- ``counter_indices(target)``: ``enum ift_counter`` from DWARF, name -> index; nothing
  about the counter order is assumed.
- ``interface_info(ifp, cpus, problems)``: everything the reports print, as a plain
  ``Interface`` record (with ``IfAddress`` records), so renderers never touch memory.
- ``interfaces(target, vnet, problems)``: ``interface_info`` for every interface.

Counters.  Userland reads ``if_data`` built by ``if_data_copy()``, which calls
``ifp->if_get_counter(ifp, IFCOUNTER_*)``.  The generic method,
``if_get_counter_default``, returns the counter(9) sum of ``if_counters[cnt]``; that
is what ``Interface.counters`` holds.  A driver may install its own method whose
numbers live in the driver's softc; ``Interface.driver_counters`` is then True and
``get_counter_name`` names the method (the symbol at the function pointer), so the
reports can say that the numbers shown are only the generic ones.

Addresses as ``getifaddrs`` returns them: the routing socket starts at ``if_addr`` (the
link-level address) and continues with the entries after it on ``if_addrhead``;
``Interface.lladdr`` is the first, ``Interface.addresses`` the others.  Per-address
counters (``ifa_ipackets``, ``ifa_opackets``, ``ifa_ibytes``, ``ifa_obytes``) are read
for every address; the kernel keeps no per-address errors or drops.

An interface moved into another stack (``ifconfig epair0b vnet JAIL``) has ``if_vnet``
(where it is now) different from ``if_home_vnet`` (where it was created);
``Interface.moved`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from ..errors import FaultError, VnetdbgError
from ..objects import Target, Value
from .counter import CpuOffsets, counter_fetch, cpu_offsets
from .queue import list_entries, read_each
from .sockaddr import AF_LINK, Sockaddr, try_read_sockaddr
from .vnet import vnet_var

#: the generic if_get_counter method (sys/net/if.c)
GENERIC_GET_COUNTER = "if_get_counter_default"

#: enum ift_counter names -> Interface.counters keys
COUNTER_PREFIX = "IFCOUNTER_"


@dataclass
class IfAddress:
    """One ``struct ifaddr`` of an interface."""

    address: int                      # struct ifaddr *
    family: int                       # ifa_addr->sa_family (-1 if unreadable)
    addr: Sockaddr | None
    netmask: Sockaddr | None = None
    dstaddr: Sockaddr | None = None   # broadcast address, or the peer on a p2p link
    ipackets: int = 0
    opackets: int = 0
    ibytes: int = 0
    obytes: int = 0
    flags6: int | None = None         # in6_ifaddr.ia6_flags (IN6_IFF_*) for AF_INET6


@dataclass
class Interface:
    """One ``struct ifnet`` as the reports need it."""

    address: int                      # struct ifnet *
    name: str                         # if_xname
    index: int                        # if_index
    if_flags: int
    drv_flags: int
    mtu: int
    metric: int
    type: int                         # IFT_* (if_type)
    link_state: int                   # 0 unknown, 1 down, 2 up
    baudrate: int
    capabilities: int
    capenable: int
    capenable2: int | None            # 14+
    counters: dict[str, int] | None   # "ipackets", "ierrors", ... (None: unreadable)
    get_counter: int                  # if_get_counter function pointer
    get_counter_name: str | None      # its symbol
    lladdr: Sockaddr | None           # if_addr->ifa_addr (sockaddr_dl)
    addresses: list[IfAddress] = field(default_factory=list)
    vnet: int | None = None           # if_vnet
    home_vnet: int | None = None      # if_home_vnet
    description: str | None = None
    hwaddr: bytes | None = None       # if_hw_addr (the address the NIC came with)

    @property
    def flags(self) -> int:
        """What userland sees: ``if_flags | if_drv_flags`` (rtsock ``ifm_flags``)."""
        return (self.if_flags | self.drv_flags) & 0xFFFFFFFF

    @property
    def up(self) -> bool:
        return bool(self.flags & 0x1)

    @property
    def driver_counters(self) -> bool:
        """True when the driver overrides ``if_get_counter``: its real numbers are in
        the driver's softc, not (only) in ``if_counters``."""
        return bool(self.get_counter) and self.get_counter_name != GENERIC_GET_COUNTER

    @property
    def moved(self) -> bool:
        return (self.home_vnet is not None and self.vnet is not None
                and self.home_vnet != self.vnet)

    def counter(self, name: str) -> int:
        """Counter ``name`` ("ipackets", ...), 0 when unknown."""
        return (self.counters or {}).get(name, 0)


# -- walkers -----------------------------------------------------------------------------

def ifnet_head(target: Target, vnet: int | None) -> Value:
    """``V_ifnet`` of stack ``vnet`` (a struct vnet address; None without VIMAGE)."""
    return vnet_var(target, "ifnet", vnet)


def for_each_ifnet(target: Target, vnet: int | None,
                   problems: list[str] | None = None) -> Iterator[Value]:
    """Every ``struct ifnet`` on ``V_ifnet`` of stack ``vnet``, in list order."""
    head = ifnet_head(target, vnet)
    what = "V_ifnet" if vnet is None else f"V_ifnet of vnet {vnet:#x}"
    try:
        walker = list_entries(head, "if_link", what=what, problems=problems)
        first = next(walker, None)
    except LookupError as e:
        raise VnetdbgError(f"kernel debug info does not describe the interface list: {e}") \
            from None
    if first is not None:
        yield first
        yield from walker


def if_addresses(ifp: Value, problems: list[str] | None = None) -> Iterator[Value]:
    """Every ``struct ifaddr`` on ``ifp->if_addrhead``, in list order."""
    name = _ifname(ifp)
    yield from list_entries(ifp.member("if_addrhead"), "ifa_link",
                            what=f"{name} if_addrhead", problems=problems)


def counter_indices(target: Target) -> dict[str, int]:
    """``enum ift_counter`` from DWARF as {"ipackets": 0, ...} (lower-case names
    without the ``IFCOUNTER_`` prefix)."""
    for tname in ("ift_counter", "enum ift_counter"):
        if target.has_type(tname):
            enum = target.type(tname).strip_typedefs()
            return {n[len(COUNTER_PREFIX):].lower(): v for n, v in enum.enumerators
                    if n.startswith(COUNTER_PREFIX) and n != "IFCOUNTERS"}
    raise VnetdbgError("kernel debug info has no enum ift_counter")


# -- records -----------------------------------------------------------------------------

def _ifname(ifp: Value) -> str:
    try:
        return ifp.member("if_xname").string()
    except FaultError:
        return f"ifnet@{ifp.address:#x}"


def _opt(v: Value, name: str) -> int | None:
    return v.member(name).value_() if v.has_member(name) else None


def _symbol_name(target: Target, address: int) -> str | None:
    if not address:
        return None
    try:
        hit = target.symbols.symbolize(address)
    except Exception:  # symbol tables differ by provider; a miss is not an error
        return None
    if hit is None:
        return None
    sym, off = hit
    return sym.name if off == 0 else f"{sym.name}+{off:#x}"


def _counters(ifp: Value, cpus: CpuOffsets, indices: dict[str, int],
              problems: list[str] | None) -> dict[str, int] | None:
    target = ifp.target
    arr = ifp.member("if_counters")
    out = {}
    try:
        for name, i in indices.items():
            out[name] = counter_fetch(target, arr[i].value_(), cpus)
    except (FaultError, IndexError) as e:
        if problems is not None:
            problems.append(f"{_ifname(ifp)}: if_counters cannot be read ({e})")
        return None
    return out


def _addr_counter(ifa: Value, name: str, cpus: CpuOffsets) -> int:
    if not ifa.has_member(name):
        return 0
    return counter_fetch(ifa.target, ifa.member(name).value_(), cpus)


def address_info(ifa: Value, cpus: CpuOffsets, problems: list[str] | None = None,
                 ifname: str = "") -> IfAddress:
    """One ``struct ifaddr`` as an ``IfAddress``."""
    target = ifa.target
    what = f"{ifname} ifaddr {ifa.address:#x}"
    addr = try_read_sockaddr(target, ifa.member("ifa_addr").value_(), what, problems)
    rec = IfAddress(address=ifa.address, family=addr.family if addr else -1, addr=addr)
    rec.netmask = try_read_sockaddr(target, ifa.member("ifa_netmask").value_(), what,
                                    problems)
    if ifa.has_member("ifa_dstaddr"):
        rec.dstaddr = try_read_sockaddr(target, ifa.member("ifa_dstaddr").value_(), what,
                                        problems)
    try:
        rec.ipackets = _addr_counter(ifa, "ifa_ipackets", cpus)
        rec.opackets = _addr_counter(ifa, "ifa_opackets", cpus)
        rec.ibytes = _addr_counter(ifa, "ifa_ibytes", cpus)
        rec.obytes = _addr_counter(ifa, "ifa_obytes", cpus)
    except FaultError as e:
        if problems is not None:
            problems.append(f"{what}: counters cannot be read ({e})")
    if rec.family == 28 and target.has_type("struct in6_ifaddr"):
        # ia_ifa is the first member of struct in6_ifaddr
        try:
            ia6 = target.value(ifa.address, "struct in6_ifaddr")
            if ia6.has_member("ia6_flags"):
                rec.flags6 = ia6.member("ia6_flags").value_()
        except FaultError:
            pass
    return rec


def _counter_indices_or_empty(target: Target, problems: list[str] | None) -> dict[str, int]:
    """``counter_indices``, or {} with the reason added to ``problems``."""
    try:
        return counter_indices(target)
    except VnetdbgError as e:
        if problems is not None:
            problems.append(str(e))
        return {}


def interface_info(ifp: Value, cpus: CpuOffsets | None = None,
                   problems: list[str] | None = None,
                   indices: dict[str, int] | None = None) -> Interface:
    """``ifp`` (a struct ifnet value) as an ``Interface`` record."""
    target = ifp.target
    cpus = cpus if cpus is not None else cpu_offsets(target)
    if indices is None:
        indices = _counter_indices_or_empty(target, problems)
    name = _ifname(ifp)
    get_counter = ifp.member("if_get_counter").value_() if ifp.has_member(
        "if_get_counter") else 0
    rec = Interface(
        address=ifp.address, name=name, index=ifp.member("if_index").value_(),
        if_flags=ifp.member("if_flags").value_() & 0xFFFFFFFF,
        drv_flags=(_opt(ifp, "if_drv_flags") or 0) & 0xFFFFFFFF,
        mtu=ifp.member("if_mtu").value_(), metric=ifp.member("if_metric").value_(),
        type=ifp.member("if_type").value_(), link_state=_opt(ifp, "if_link_state") or 0,
        baudrate=_opt(ifp, "if_baudrate") or 0,
        capabilities=_opt(ifp, "if_capabilities") or 0,
        capenable=_opt(ifp, "if_capenable") or 0,
        capenable2=_opt(ifp, "if_capenable2"),
        counters=_counters(ifp, cpus, indices, problems) if indices else None,
        get_counter=get_counter, get_counter_name=_symbol_name(target, get_counter),
        lladdr=None, vnet=_opt(ifp, "if_vnet"), home_vnet=_opt(ifp, "if_home_vnet"))
    if ifp.has_member("if_description"):
        try:
            d = ifp.member("if_description")
            rec.description = d.string() if d.value_() else None
        except FaultError:
            pass
    if ifp.has_member("if_hw_addr") and rec.type == 0x6:
        try:
            hw = ifp.member("if_hw_addr").value_()
            if hw:
                rec.hwaddr = target.read(hw, 6)
        except FaultError:
            pass
    link = ifp.member("if_addr").value_() if ifp.has_member("if_addr") else 0
    entries = list(if_addresses(ifp, problems))
    after = [e.address for e in entries]
    start = after.index(link) + 1 if link in after else 0
    if link:
        ifa = target.value(link, "struct ifaddr")
        try:
            rec.lladdr = try_read_sockaddr(target, ifa.member("ifa_addr").value_(),
                                           f"{name} if_addr", problems)
        except FaultError as e:
            if problems is not None:
                problems.append(f"{name}: if_addr at {link:#x} cannot be read ({e})")
    for ifa in entries[start:]:
        try:
            a = address_info(ifa, cpus, problems, name)
        except FaultError as e:
            if problems is not None:
                problems.append(f"{name}: ifaddr at {ifa.address:#x} cannot be read ({e})")
            continue
        if start == 0 and a.family == AF_LINK:
            continue  # no if_addr: do not show a link address twice
        rec.addresses.append(a)
    return rec


def interfaces(target: Target, vnet: int | None,
               problems: list[str] | None = None) -> list[Interface]:
    """``interface_info`` for every interface of stack ``vnet``."""
    cpus = cpu_offsets(target)
    indices = _counter_indices_or_empty(target, problems)
    def read(ifp: Value) -> Interface:
        try:
            return interface_info(ifp, cpus, problems, indices)
        except LookupError as e:
            raise VnetdbgError(f"kernel debug info lacks what ifnet needs: {e}") from None

    return read_each(for_each_ifnet(target, vnet, problems), read, "ifnet", problems)


def ifname_map(ifs: list[Interface]) -> dict[int, str]:
    """if_index -> name, for ``if_indextoname`` when printing IPv6 scopes."""
    return {i.index: i.name for i in ifs}
