"""``netstat -i [-b] [-d] [-W] [-n] [-I IF] [-4|-6]`` per network stack.

Rows are what ``getifaddrs(3)`` gives netstat (``usr.bin/netstat/if.c`` ``intpr``): per
interface, in ``V_ifnet`` order, the link row (from ``if_addr``) and then one row per
address after it on ``if_addrhead``.  Every row carries the interface flags
(``if_flags | if_drv_flags``); a link row carries the interface counters, an address
row its per-address packet/byte counters and an MTU of 0 (the routing socket zeroes
the rest of its ``if_data``), which netstat prints as ``-``.

Two layouts, chosen from the dump's ``osreldate`` (>= 1500000: 15) unless ``--style``:

- 12-14 (fixed widths): name ``%-5.5s`` (names truncated to 5, ``*`` appended when the
  interface is down and then truncated too), ``-W`` widens the name to the longest name
  and Network/Address to 18/17, or 24/39 when any IPv6 address is listed, without
  truncating addresses; Mtu ``%6lu``, Network ``%-13.13s``, Address ``%-17.17s``,
  Ipkts ``%8lu``, Ierrs/Idrop ``%5lu``, [-b Ibytes ``%10lu``], Opkts, Oerrs, [-b
  Obytes], Coll ``%5lu``, [-d Drop `` %5lu ``, which leaves a trailing blank].
- 15 (dynamic widths): a first pass measures the name (at least 5, never truncated),
  Network (at least ``len("Network ")``), Address (at least ``len("Address ")``),
  packet (8), error (5) and byte (10) columns, the numbers measured with netstat's own
  ``max_num_len`` (which counts one digit more than needed for some values: kept), and
  two blanks follow the Network column.

Values netstat shows as ``-`` (errors, drops and collisions on address rows; the MTU
of address rows) are absent from JSON, as in libxo.  Names: FreeBSD netstat resolves
addresses and networks unless ``-n``; a dump has no resolver, so vnetdbg always prints
the numeric form (what netstat prints when nothing resolves), ``-n`` or not.

JSON (``--libxo json``): ``{"statistics": {"interface": [...]}}`` with if.c's keys:
``name``, ``flags`` (string ``0x…``), ``mtu``, ``network``, ``address``,
``received-packets``, ``received-errors``, ``dropped-packets``, ``received-bytes``,
``sent-packets``, ``send-errors``, ``sent-bytes``, ``collisions``.  With ``-d`` netstat
emits the output drops under a second ``dropped-packets`` key; a JSON object cannot
hold a key twice, so vnetdbg writes them as ``sent-dropped-packets``.

Driver counters: an interface whose ``if_get_counter`` is a driver method (not
``if_get_counter_default``) keeps its real numbers in the driver's softc, which
vnetdbg cannot interpret generically.  Its row shows the generic ``if_counters`` sums;
after the table one line per such interface says so::

    vnetdbg: note: vtnet0: if_get_counter is vtnet_get_counter (driver method); counts shown are the generic if_counters only

and its JSON link row gets ``"driver-get-counter": "vtnet_get_counter"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..freebsd.ifnet import Interface, ifname_map, interfaces
from ..freebsd.sockaddr import (AF_INET, AF_INET6, AF_LINK, AF_UNSPEC, link_routename,
                                netname, numeric_host)

JSON_PATH = ("statistics", "interface")

#: first osreldate with netstat's dynamic -i layout
DYNAMIC_OSRELDATE = 1500000


@dataclass
class Row:
    """One ``struct ifaddrs`` entry as netstat -i sees it."""

    name: str
    flags: int
    mtu: int
    family: int
    network: str = ""
    address: str = ""
    blank_address: bool = False   # link row with no name/address/selector
    link: bool = False
    net: bool = False
    ipackets: int = 0
    ierrors: int = 0
    iqdrops: int = 0
    ibytes: int = 0
    opackets: int = 0
    oerrors: int = 0
    obytes: int = 0
    collisions: int = 0
    oqdrops: int = 0
    driver_get_counter: str | None = None

    @property
    def up(self) -> bool:
        return bool(self.flags & 0x1)

    @property
    def xname(self) -> str:
        return self.name if self.up else self.name + "*"


def rows(ifs: list[Interface], *, interface: str | None = None,
         family: int = AF_UNSPEC) -> list[Row]:
    """The rows netstat -i prints, filtered like ``-I``/``-4``/``-6``."""
    names = ifname_map(ifs)
    ifname_of = names.get
    out: list[Row] = []
    for i in ifs:
        if interface is not None and i.name != interface:
            continue
        drv = i.get_counter_name if i.driver_counters else None
        if i.lladdr is not None and i.lladdr.family == AF_LINK:
            sdl = i.lladdr
            blank = sdl.sdl_nlen == 0 and sdl.sdl_alen == 0 and sdl.sdl_slen == 0
            r = Row(i.name, i.flags, i.mtu, AF_LINK, network=f"<Link#{sdl.sdl_index}>",
                    address="" if blank else link_routename(sdl), blank_address=blank,
                    link=True, ipackets=i.counter("ipackets"), ierrors=i.counter("ierrors"),
                    iqdrops=i.counter("iqdrops"), ibytes=i.counter("ibytes"),
                    opackets=i.counter("opackets"), oerrors=i.counter("oerrors"),
                    obytes=i.counter("obytes"), collisions=i.counter("collisions"),
                    oqdrops=i.counter("oqdrops"), driver_get_counter=drv)
            if family in (AF_UNSPEC, AF_LINK):
                out.append(r)
        for a in i.addresses:
            fam = a.family
            if family != AF_UNSPEC and fam != family:
                continue
            r = Row(i.name, i.flags, 0, fam, ipackets=a.ipackets, opackets=a.opackets,
                    ibytes=a.ibytes, obytes=a.obytes)
            if fam in (AF_INET, AF_INET6) and a.addr is not None:
                r.network = netname(a.addr, a.netmask, ifname_of)
                r.address = numeric_host(a.addr, ifname_of)
                r.net = True
            elif fam == AF_UNSPEC:
                r.network = r.address = "none"
            out.append(r)
    return out


def _stat(width: int, value: int, show: bool, lsep: str = "", rsep: str = " ") -> str:
    """netstat's ``show_stat``: the value right-aligned, or ``-`` in the same space."""
    if not show:
        return f"{lsep}{'-':>{width}}{rsep}"
    return f"{lsep}{value:{width}d}{rsep}"


def _trunc(s: str, width: int) -> str:
    """printf ``%-*.*s``."""
    return s[:width].ljust(width)


def _stats(r: Row, opts, npkt: int, nerr: int, nbyte: int) -> str:
    both = r.link or r.net
    s = _stat(npkt, r.ipackets, both)
    s += _stat(nerr, r.ierrors, r.link)
    s += _stat(nerr, r.iqdrops, r.link)
    if opts.bytes:
        s += _stat(nbyte, r.ibytes, both)
    s += _stat(npkt, r.opackets, both)
    s += _stat(nerr, r.oerrors, r.link)
    if opts.bytes:
        s += _stat(nbyte, r.obytes, both)
    s += _stat(nerr, r.collisions, r.link, rsep="")
    if opts.drops:
        s += _stat(nerr, r.oqdrops, r.link, lsep=" ")
    return s


def _mtu(r: Row) -> str:
    return _stat(6, r.mtu, bool(r.mtu))


def fixed_lines(rs: list[Row], opts) -> list[str]:
    """The 12-14 layout."""
    name_w, net_w, addr_w = 5, 13, 17
    if opts.wide:
        for r in rs:
            name_w = max(name_w, len(r.xname))
        if any(r.family == AF_INET6 for r in rs):
            net_w, addr_w = 24, 39
        else:
            net_w = 18
    return _layout(rs, opts, name_w, net_w, addr_w, " ", 8, 5, 10,
                   clip_net=not opts.wide)


def max_num_len(max_len: int, num: int) -> int:
    """netstat 15's ``max_num_len`` as written (``for (; num > 10; len++) num /= 10``
    starting from 2, the column's blank included)."""
    n = 2
    while num > 10:
        n += 1
        num //= 10
    return max(max_len, n)


def dynamic_lines(rs: list[Row], opts) -> list[str]:
    """The 15 layout."""
    name_w = 5
    net_w, addr_w = len("Network "), len("Address ")
    npkt, nbyte, nerr = 8, 10, 5
    for r in rs:
        name_w = max(name_w, len(r.xname))
        if r.family == AF_UNSPEC:
            nl, al = 4, 4
        elif r.net:
            nl, al = len(r.network), len(r.address)
        elif r.link:
            nl, al = len(r.network), 1 if r.blank_address else len(r.address)
        else:
            nl = al = 0
        net_w, addr_w = max(net_w, nl), max(addr_w, al)
        npkt = max_num_len(npkt, r.ipackets)
        npkt = max_num_len(npkt, r.opackets)
        nerr = max_num_len(nerr, r.ierrors)
        nerr = max_num_len(nerr, r.iqdrops)
        nerr = max_num_len(nerr, r.collisions)
        if opts.drops:
            nerr = max_num_len(nerr, r.oqdrops)
        if opts.bytes:
            nbyte = max_num_len(nbyte, r.ibytes)
            nbyte = max_num_len(nbyte, r.obytes)
    return _layout(rs, opts, name_w, net_w, addr_w, "  ", npkt, nerr, nbyte,
                   clip_net=False)


def _layout(rs: list[Row], opts, name_w: int, net_w: int, addr_w: int, gap: str,
            npkt: int, nerr: int, nbyte: int, *, clip_net: bool) -> list[str]:
    """Heading and rows for both layouts: ``gap`` goes between the Network and Address
    columns; ``clip_net`` truncates inet/inet6 network and address to their columns."""
    head = _trunc("Name", name_w)
    head += f" {'Mtu':>5.5} {_trunc('Network', net_w)}{gap}{_trunc('Address', addr_w)}"
    head += f" {_rtrunc('Ipkts', npkt)} {_rtrunc('Ierrs', nerr)} {_rtrunc('Idrop', nerr)}"
    if opts.bytes:
        head += f" {_rtrunc('Ibytes', nbyte)}"
    head += f" {_rtrunc('Opkts', npkt)} {_rtrunc('Oerrs', nerr)}"
    if opts.bytes:
        head += f" {_rtrunc('Obytes', nbyte)}"
    head += f" {'Coll':>{nerr}}"
    if opts.drops:
        head += f" {_rtrunc('Drop', nerr)}"
    out = [head]
    for r in rs:
        line = _trunc(r.xname, name_w) + _mtu(r)
        if r.family == AF_UNSPEC:
            line += _trunc("none", net_w) + gap + _trunc("none", addr_w) + " "
        elif r.net:
            if clip_net:
                line += _trunc(r.network, net_w) + gap + _trunc(r.address, addr_w) + " "
            else:
                line += f"{r.network:<{net_w}}{gap}{r.address:<{addr_w}} "
        elif r.link:
            line += _trunc(r.network, net_w) + gap
            line += (" " * addr_w if r.blank_address else _trunc(r.address, addr_w)) + " "
        line += _stats(r, opts, npkt, nerr, nbyte)
        out.append(line)
    return out


def _rtrunc(s: str, width: int) -> str:
    """printf ``%*.*s``."""
    return s[:width].rjust(width)


def note_lines(rs: list[Row]) -> list[str]:
    seen, out = set(), []
    for r in rs:
        if r.driver_get_counter and r.name not in seen:
            seen.add(r.name)
            out.append(f"vnetdbg: note: {r.name}: if_get_counter is {r.driver_get_counter}"
                       " (driver method); counts shown are the generic if_counters only")
    return out


def json_record(r: Row, opts, link_addr_width: int | None = None) -> dict:
    """One row with libxo's keys; fields printed as ``-`` are left out.  A link row's
    address is cut to ``link_addr_width`` as netstat's ``%-*.*s`` cuts it (12-14)."""
    d: dict = {"name": r.name, "flags": f"0x{r.flags:x}"}
    if r.mtu:
        d["mtu"] = r.mtu
    if r.family == AF_UNSPEC:
        d["network"] = "none"
        d["address"] = "none"
    elif r.net:
        d["network"] = r.network
        d["address"] = r.address
    elif r.link:
        d["network"] = r.network
        if not r.blank_address:
            w = link_addr_width
            d["address"] = r.address if w is None else r.address[:w]
    both = r.link or r.net
    if both:
        d["received-packets"] = r.ipackets
    if r.link:
        d["received-errors"] = r.ierrors
        d["dropped-packets"] = r.iqdrops
    if opts.bytes and both:
        d["received-bytes"] = r.ibytes
    if both:
        d["sent-packets"] = r.opackets
    if r.link:
        d["send-errors"] = r.oerrors
    if opts.bytes and both:
        d["sent-bytes"] = r.obytes
    if r.link:
        d["collisions"] = r.collisions
        if opts.drops:
            d["sent-dropped-packets"] = r.oqdrops
    if r.driver_get_counter and r.link:
        d["driver-get-counter"] = r.driver_get_counter
    return d


def json_records(rs: list[Row], opts, style: str) -> list[dict]:
    width = None
    if style != "15":
        width = 39 if opts.wide and any(r.family == AF_INET6 for r in rs) else 17
    return [json_record(r, opts, width) for r in rs]


def layout_style(target, opts) -> str:
    """"12" (fixed widths, 12-14) or "15" (dynamic), from ``--style`` or ``osreldate``."""
    style = getattr(opts, "style", "auto") or "auto"
    if style != "auto":
        return style
    try:
        rel = target.variable("osreldate").value_()
    except Exception:  # a kernel without the symbol: assume the long-lived layout
        return "12"
    return "15" if rel >= DYNAMIC_OSRELDATE else "12"


def _family(opts) -> int:
    if getattr(opts, "inet4", False) and not getattr(opts, "inet6", False):
        return AF_INET
    if getattr(opts, "inet6", False) and not getattr(opts, "inet4", False):
        return AF_INET6
    return AF_UNSPEC


def stack_rows(target, stack, opts, problems) -> list[Row]:
    ifs = interfaces(target, stack.address, problems)
    return rows(ifs, interface=getattr(opts, "interface", None), family=_family(opts))


def render(rs: list[Row], opts, style: str) -> list[str]:
    lines = dynamic_lines(rs, opts) if style == "15" else fixed_lines(rs, opts)
    return lines + note_lines(rs)


def records(target, stack, opts, problems) -> list[dict]:
    style = layout_style(target, opts)
    return json_records(stack_rows(target, stack, opts, problems), opts, style)


def text_lines(target, stack, opts, problems):
    style = layout_style(target, opts)
    yield from render(stack_rows(target, stack, opts, problems), opts, style)
