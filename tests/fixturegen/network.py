"""Network state in kernel memory: interfaces, addresses, sockets / pcbs,
counter(9) statistics — laid out from the fixture kernel's DWARF.

Layout questions are answered by the DWARF, never by the release number:
``ipi_listhead`` pointer (12/13: points at V_tcb...) vs embedded head (14);
``inp_ppcb`` + separate tcpcb (12/13) vs tcpcb embedding the inpcb (14);
``struct tcptw`` + INP_TIMEWAIT (12/13); ``t_state`` int or bitfield;
``ie6_zoneid``; ``if_idxgen`` (14's global interface index);
``pc_zpcpu_offset`` (per-CPU counter slots).

Everything is allocated in the machine's "net" arena so the jail/vnet
objects of the main arena keep their addresses.

Writes go through ``Packer.put``: member offsets resolved once per (type,
member) by the ObjectWriter, bytes poked straight into the simulated page
(objects never straddle a page in the DMAP zones).  That keeps a million
pcbs (scenario.big_net) at a few tens of microseconds each.
"""

from __future__ import annotations

import ipaddress
import struct

from .netspec import (IFCOUNTER_NAMES, IFF_DRV_RUNNING, IFF_FLAG_NAMES, IFF_BROADCAST,
                      IFT_ETHER, IFT_LOOP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP,
                      IPPROTO_UDPLITE, TCP_STATES, TCPS, BULK_MIX, IfSpec, NetStack,
                      SockSpec, plausible_stats)
from .pagetables import DMAP_MAX_ADDRESS, DMAP_MIN_ADDRESS
from .physmem import PAGE_MASK, PAGE_SIZE

U64 = 0xFFFFFFFFFFFFFFFF
ARENA = "net"
AF_INET, AF_LINK, AF_INET6 = 2, 18, 28
SOCK_STREAM, SOCK_DGRAM, SOCK_RAW = 1, 2, 3
SO_ACCEPTCONN, SO_REUSEADDR, SO_KEEPALIVE = 0x2, 0x4, 0x8
SS_ISCONNECTED, SS_ISCONNECTING, SS_ISDISCONNECTING = 0x2, 0x4, 0x8
SS_NBIO, SS_ISDISCONNECTED = 0x100, 0x2000
SQ_INCOMP, SQ_COMP = 0x0800, 0x1000
INP_IPV4, INP_IPV6, INP_IPV6PROTO = 0x1, 0x2, 0x4
INP_ANONPORT = 0x40
IN6P_IPV6_V6ONLY = 0x8000
INP_TIMEWAIT = 0x01000000
INC_ISIPV6 = 0x01
IFA_ROUTE = 0x1
ND6_INFINITE_LIFETIME = 0xFFFFFFFF
SBS_CANTRCVMORE = 0x0020
IN6_IFF_NOTREADY_NONE = 0

PCBINFOS = {"tcp": ("tcbinfo", "tcb"), "udp": ("udbinfo", "udb"),
            "udplite": ("ulitecbinfo", "ulitecb"), "raw": ("ripcbinfo", "ripcb")}
STATS = [("tcp", "tcpstat", "struct tcpstat"), ("udp", "udpstat", "struct udpstat"),
         ("ip", "ipstat", "struct ipstat"), ("icmp", "icmpstat", "struct icmpstat"),
         ("ip6", "ip6stat", "struct ip6stat")]
#: sockets listed in full in the ground truth only up to this many per stack
TRUTH_SOCKET_LIMIT = 2000


def _hex(x):
    return None if x is None else f"{x & U64:#018x}"


def _bswap16(x: int) -> int:
    return ((x & 0xFF) << 8) | ((x >> 8) & 0xFF)


def _mix(*xs: int) -> int:
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h ^= (x + 0x632BE59BD9B4E019 + (h << 6) + (h >> 2)) & U64
        h = (h * 0xBF58476D1CE4E5B9) & U64
    return h ^ (h >> 31)


class Packer:
    """Member writes into simulated pages, offsets cached per (type, path)."""

    def __init__(self, machine):
        self.m = machine
        self.w = machine.writer
        self.mem = machine.mem
        self._sizes: dict[str, int] = {}

    def sizeof(self, tname: str) -> int:
        s = self._sizes.get(tname)
        if s is None:
            s = self._sizes[tname] = self.w.sizeof(tname)
        return s

    def put(self, va: int, tname: str, fields: dict) -> None:
        if DMAP_MIN_ADDRESS <= va < DMAP_MAX_ADDRESS:
            pa = va - DMAP_MIN_ADDRESS
        else:
            pa = self.m.translate(va)
            if pa is None:
                raise ValueError(f"write to unmapped VA {va:#x}")
        base = pa & PAGE_MASK
        if base + self.sizeof(tname) > PAGE_SIZE:
            self.w.write_struct(va, tname, fields)
            return
        pg = self.mem.page(pa)
        field = self.w.field
        for path, v in fields.items():
            f = field(tname, path)
            o = base + f.offset
            if f.bit_size is None:
                enc = f.encode(v)
                pg[o:o + len(enc)] = enc
            else:
                nbytes = (f.bit_offset + f.bit_size + 7) // 8
                cur = int.from_bytes(pg[o:o + nbytes], "little")
                mask = ((1 << f.bit_size) - 1) << f.bit_offset
                cur = (cur & ~mask) | ((int(v) << f.bit_offset) & mask)
                pg[o:o + nbytes] = cur.to_bytes(nbytes, "little")

    def u64(self, va: int, value: int) -> None:
        self.m.write_u64(va, value)


class Zone:
    """UMA-like zone in the net arena: items packed into DMAP pages, never
    straddling a page; pages come in physically contiguous chunks."""

    def __init__(self, machine, size: int, align: int = 16, chunk_pages: int = 64):
        self.m = machine
        self.size = (size + align - 1) & ~(align - 1)
        self.big = self.size > PAGE_SIZE
        self.per_page = 1 if self.big else PAGE_SIZE // self.size
        self.chunk_pages = chunk_pages
        self._pages: list[int] = []
        self._slot = self.per_page
        self.count = 0

    def alloc(self) -> int:
        self.count += 1
        if self.big:
            return self.m.alloc(self.size, "dmap", arena=ARENA)
        if self._slot >= self.per_page:
            if not self._pages:
                pa = self.m.arena_dmap_run(ARENA, self.chunk_pages)
                self._pages = [pa + i * PAGE_SIZE for i in range(self.chunk_pages)][::-1]
            self._page = self._pages.pop()
            self._slot = 0
        va = DMAP_MIN_ADDRESS + self._page + self._slot * self.size
        self._slot += 1
        return va


class PcpuCounters:
    """counter(9) allocations: per-CPU slots of one UMA pcpu zone.

    A run is ncpus KVA pages (CPU c's page at base + c * PAGE_SIZE, each backed
    by its own frame); a counter is 8 bytes at the same offset in every page,
    so CPU c's slot is base + c * UMA_PCPU_ALLOC_SIZE, which is both
    base + pc_zpcpu_offset (13/14: zpcpu_offset_cpu(c) = PAGE_SIZE * c) and
    base + sizeof(struct pcpu) * c (12: libkvm's kvm_read_zpcpu)."""

    def __init__(self, machine, ncpus: int):
        self.m = machine
        self.ncpus = ncpus
        self._base = None
        self._used = PAGE_SIZE
        self._pages: list[bytearray] = []
        self.count = 0

    def alloc(self, values: list[int]) -> int:
        if len(values) != self.ncpus:
            raise ValueError("one value per CPU")
        if self._used + 8 > PAGE_SIZE:
            self._base = self.m.arena_kva_pages(ARENA, self.ncpus, guard=True)
            self._pages = [self.m.mem.page(self.m.translate(self._base + c * PAGE_SIZE))
                           for c in range(self.ncpus)]
            for c in range(self.ncpus):
                self.m.dump_add_page(self.m.translate(self._base + c * PAGE_SIZE))
            self._used = 0
        off = self._used
        self._used += 8
        for c, v in enumerate(values):
            struct.pack_into("<Q", self._pages[c], off, v & U64)
        self.count += 1
        return self._base + off


def split(total: int, ncpus: int, salt: int) -> list[int]:
    """``total`` spread over CPUs (CPU 0 gets 55-85 %)."""
    if ncpus == 1:
        return [total]
    first = total * (55 + salt % 31) // 100
    rest = total - first
    out = [first]
    for c in range(1, ncpus):
        share = rest // (ncpus - c) if c < ncpus - 1 else rest
        out.append(share)
        rest -= share
    return out


def _sockaddr_in(addr: str, port: int = 0, length: int = 16) -> bytes:
    """struct sockaddr_in: sin_len, sin_family, sin_port (network order),
    sin_addr, sin_zero."""
    return (bytes([length, AF_INET]) + port.to_bytes(2, "big")
            + ipaddress.IPv4Address(addr).packed + bytes(8))


def embed_scope(addr: str, zone: int) -> bytes:
    """KAME: a link-local / interface-local address carries its zone (the
    interface index) in bytes 2-3 inside the kernel."""
    raw = bytearray(ipaddress.IPv6Address(addr).packed)
    a = ipaddress.IPv6Address(addr)
    if zone and (a.is_link_local or (a.is_multicast and raw[1] & 0x0F in (1, 2))):
        raw[2:4] = zone.to_bytes(2, "big")
    return bytes(raw)


def _sockaddr_in6(addr: str, port: int = 0, zone: int = 0, flowinfo: int = 0) -> bytes:
    """struct sockaddr_in6 as the kernel keeps it: embedded scope, sin6_scope_id 0."""
    return (bytes([28, AF_INET6]) + port.to_bytes(2, "big") + flowinfo.to_bytes(4, "little")
            + embed_scope(addr, zone) + bytes(4))


def _mask6(plen: int) -> bytes:
    v = ((1 << 128) - 1) ^ ((1 << (128 - plen)) - 1) if plen else 0
    return v.to_bytes(16, "big")


def _sockaddr_dl(index: int, iftype: int, name: str, lladdr: bytes, size: int,
                 alen: int | None = None) -> bytes:
    """struct sockaddr_dl: len, family, index(u16), type, nlen, alen, slen, data."""
    nb = name.encode()
    alen = len(lladdr) if alen is None else alen
    b = bytes([size & 0xFF, AF_LINK]) + index.to_bytes(2, "little") + bytes(
        [iftype, len(nb), alen, 0]) + nb + lladdr
    return b + bytes(max(0, size - len(b)))


def _mac(s: str | None) -> bytes:
    return bytes(int(x, 16) for x in s.split(":")) if s else b""


class NetBuilder:
    def __init__(self, builder, stacks: dict[int, NetStack]):
        self.b = builder
        self.m = builder.m
        self.k = builder.k
        self.w = builder.w
        self.s = builder.s
        self.stacks = stacks
        self.m.open_arena(ARENA)
        self.p = Packer(self.m)
        self.ctr = PcpuCounters(self.m, self.s.ncpus)
        w, k = self.w, self.k
        tcpcb_inp = None
        if k.has_type("struct tcpcb"):
            try:
                from drgn import TypeKind
                tcpcb_inp = w.type("struct tcpcb").unaliased().member("t_inpcb").type.unaliased().kind
                tcpcb_inp = "embedded" if tcpcb_inp == TypeKind.STRUCT else "pointer"
            except (LookupError, KeyError):
                tcpcb_inp = None
        self.features = {
            "tcpcb_embeds_inpcb": tcpcb_inp == "embedded",
            "inp_ppcb": w.has_member("struct inpcb", "inp_ppcb"),
            "tcptw": k.has_type("struct tcptw"),
            "ipi_listhead_pointer": self._is_pointer("struct inpcbinfo", "ipi_listhead"),
            "t_state_bitfield": w.field("struct tcpcb", "t_state").bit_size is not None
            if k.has_type("struct tcpcb") else None,
            "ie6_zoneid": w.has_member("struct inpcb", "inp_inc.inc_ie.ie6_zoneid"),
            "if_idxgen": w.has_member("struct ifnet", "if_idxgen"),
            "pc_zpcpu_offset": w.has_member("struct pcpu", "pc_zpcpu_offset"),
            "so_rcv_mtx": w.has_member("struct socket", "so_rcv_mtx"),
        }
        self.global_index = self.features["if_idxgen"]
        self.inp_list = "inp_list.cle_next" if w.has_member("struct inpcb", "inp_list.cle_next") \
            else "inp_list.le_next"
        self.inp_list_prev = self.inp_list.replace("next", "prev")
        self.zones: dict[str, Zone] = {}
        self._strings: dict[bytes, int] = {}
        self._protosw: dict[tuple, int] = {}
        self._creds: dict[int, int] = {}
        self.so_gencnt = 0
        self._deferred_links: list[tuple[int, int]] = []
        self._bulk_lists: dict[str, list[int]] = {}
        self._cur_jid = 0

    # -- helpers ------------------------------------------------------------------
    def _is_pointer(self, tname: str, member: str) -> bool:
        from drgn import TypeKind
        try:
            return self.w.field(tname, member).type.kind == TypeKind.POINTER
        except (LookupError, KeyError, ValueError, TypeError):
            return False

    def zone(self, tname: str) -> Zone:
        z = self.zones.get(tname)
        if z is None:
            import drgn
            try:
                align = max(8, min(64, drgn.alignof(self.w.type(tname))))
            except (TypeError, ValueError):
                align = 16
            z = self.zones[tname] = Zone(self.m, self.p.sizeof(tname), align)
        return z

    def cstring(self, s: str) -> int:
        raw = s.encode() + b"\0"
        a = self._strings.get(raw)
        if a is None:
            a = self.m.alloc(len(raw), "dmap", align=8, arena=ARENA)
            self.m.write(a, raw)
            self._strings[raw] = a
        return a

    def sym(self, name: str) -> int:
        return self.k.symbol_address(name) if self.k.has_symbol(name) else 0

    def vsym(self, name: str) -> str:
        """The symbol of VNET variable ``name``: ``vnet_entry_<name>`` with VIMAGE,
        the plain global ``<name>`` without."""
        return "vnet_entry_" + name if self.b.vimage else name

    def vnet_var(self, jid: int, name: str) -> int | None:
        full = self.vsym(name)
        if not self.k.has_symbol(full):
            return None
        return (self.b.vnet_bases[jid] + self.k.symbol_address(full)) & U64

    def counter(self, total: int, salt: int) -> int:
        return self.ctr.alloc(split(total, self.s.ncpus, salt))

    def cred(self, jid: int) -> int:
        """A struct ucred whose cr_prison is jail ``jid`` (if the kernel has the type)."""
        if jid in self._creds:
            return self._creds[jid]
        a = 0
        if self.k.has_type("struct ucred"):
            a = self.m.alloc(self.p.sizeof("struct ucred"), "dmap", align=16, arena=ARENA)
            f = {}
            if self.w.has_member("struct ucred", "cr_prison"):
                f["cr_prison"] = self.b.addrs[jid]
            if self.w.has_member("struct ucred", "cr_ref"):
                f["cr_ref"] = 3
            self.p.put(a, "struct ucred", f)
        self._creds[jid] = a
        return a

    def protosw(self, proto: str, v6: bool, ip_p: int | None) -> int:
        """The protosw a socket of this kind points at: the kernel's own
        (inetsw[]/inet6sw[] entry on 12/13, tcp_protosw & co on 14), else one
        made in the heap."""
        stype = {"tcp": SOCK_STREAM, "udp": SOCK_DGRAM, "udplite": SOCK_DGRAM, "raw": SOCK_RAW}[proto]
        pnum = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP, "udplite": IPPROTO_UDPLITE,
                "raw": ip_p or 0}[proto]
        key = (stype, pnum, v6)
        if key in self._protosw:
            return self._protosw[key]
        a = self._find_protosw(stype, pnum, v6, proto)
        if not a:
            a = self.m.alloc(self.p.sizeof("struct protosw"), "dmap", align=16, arena=ARENA)
            f = {"pr_type": stype}
            if self.w.has_member("struct protosw", "pr_protocol"):
                f["pr_protocol"] = pnum
            dom = self.sym("inet6domain" if v6 else "inetdomain")
            if dom:
                f["pr_domain"] = dom
            self.p.put(a, "struct protosw", f)
        self._protosw[key] = a
        return a

    def _find_protosw(self, stype: int, pnum: int, v6: bool, proto: str) -> int:
        k, w = self.k, self.w
        if not k.has_type("struct protosw"):
            return 0
        size = self.p.sizeof("struct protosw")
        ft = w.field("struct protosw", "pr_type")
        fp = w.field("struct protosw", "pr_protocol") if w.has_member(
            "struct protosw", "pr_protocol") else None
        names14 = {"tcp": "tcp", "udp": "udp", "udplite": "udplite", "raw": "rip"}
        named = f"{names14[proto]}6_protosw" if v6 else f"{names14[proto]}_protosw"
        if k.has_symbol(named):
            return k.symbol_address(named)
        arr = "inet6sw" if v6 else "inetsw"
        if not k.has_symbol(arr):
            return 0
        s = k.symbol(arr)
        wildcard = 0
        for i in range(max(1, s.size // size)):
            raw = k.read_image(s.value + i * size, size)
            t = int.from_bytes(raw[ft.offset:ft.offset + 2], "little", signed=True)
            p = int.from_bytes(raw[fp.offset:fp.offset + 2], "little", signed=True) if fp else -1
            if t == stype and p == pnum:
                return s.value + i * size
            if t == stype == SOCK_RAW and p == 0 and not wildcard:
                wildcard = s.value + i * size
        return wildcard

    # -- build ---------------------------------------------------------------------
    def build(self) -> dict:
        order = self.b.vnet_order          # vnet_head order
        jails = {j.jid: j for j in self.s.jails}
        self.index_of: dict[tuple[int, str], int] = {}
        for jid, st in self.stacks.items():
            for ifs in st.ifaces:
                self.index_of[(jid, ifs.name)] = ifs.index14 if self.global_index else ifs.index12
        # interfaces first (in creation order of the stacks), then sockets
        ifp_truth = {}
        for jid in sorted(self.stacks):
            ifp_truth[jid] = self._build_ifnets(jid, self.stacks[jid])
        self._index_tables()
        sock_truth = {}
        for jid in sorted(self.stacks):
            sock_truth[jid] = self._build_pcbs(jid, self.stacks[jid])
        stats_truth = {}
        for jid in sorted(self.stacks):
            stats_truth[jid] = self._build_stats(jid, self.stacks[jid], sock_truth[jid])
        if self.k.has_symbol("so_gencnt"):
            self.w.write_global("so_gencnt", self.so_gencnt + 11)
        stacks = []
        for jid in order:
            if jid not in self.stacks:
                continue
            st = self.stacks[jid]
            j = jails.get(jid)
            stacks.append({
                "vnet": _hex(self.b.vnet_vas[jid]) if self.b.vimage else None,
                "owner_jid": jid,
                "jail_name": j.name if j else "0",
                "jail_state": j.state if j else "alive",
                "ifnet_head": _hex(self.vnet_var(jid, "ifnet")),
                "ifcnt": len(st.ifaces),
                "sockcnt": sum(1 for s in st.sockets if s.socket) + (
                    st.bulk["sockets"] if st.bulk else 0),
                "interfaces": ifp_truth[jid],
                **sock_truth[jid],
                "stats": stats_truth[jid],
            })
        return {
            "features": self.features,
            "ncpus": self.s.ncpus,
            "counter_slot_rule": ("base + cpuid_to_pcpu[c]->pc_zpcpu_offset"
                                  if self.features["pc_zpcpu_offset"]
                                  else "base + sizeof(struct pcpu) * c"),
            "interface_index": "global (14)" if self.global_index else "per vnet (12/13)",
            "stacks": stacks,
        }

    # -- interfaces ----------------------------------------------------------------
    def _build_ifnets(self, jid: int, st: NetStack) -> list[dict]:
        w, m, p = self.w, self.m, self.p
        vnet = self.b.vnet_vas[jid]
        ifsize = p.sizeof("struct ifnet")
        ifps = [m.alloc(ifsize, "dmap", align=64, arena=ARENA) for _ in st.ifaces]
        self._ifps = getattr(self, "_ifps", {})
        truth = []
        in_list: list[int] = []      # in_ifaddr for V_in_ifaddrhead
        in6_list: list[int] = []
        ncount = len(IFCOUNTER_NAMES)
        if w.has_member("struct ifnet", "if_counters"):
            ncount = w.field("struct ifnet", "if_counters").type.length or ncount
        for n, (ifs, ifp) in enumerate(zip(st.ifaces, ifps)):
            index = self.index_of[(jid, ifs.name)]
            self._ifps[(jid, ifs.name)] = ifp
            mac = _mac(ifs.mac)
            f = {
                "if_link.cstqe_next": ifps[n + 1] if n + 1 < len(ifps) else 0,
                "if_xname": ifs.name.encode(), "if_dname": self.cstring(ifs.dname),
                "if_dunit": ifs.dunit, "if_index": index,
                "if_flags": ifs.flags & ~IFF_DRV_RUNNING,
                "if_drv_flags": ifs.flags & IFF_DRV_RUNNING,
                "if_refcount": 1, "if_type": ifs.type, "if_alloctype": ifs.type,
                "if_addrlen": len(mac), "if_hdrlen": 14 if ifs.type == IFT_ETHER else 0,
                "if_link_state": ifs.link_state, "if_mtu": ifs.mtu, "if_metric": ifs.metric,
                "if_baudrate": ifs.baudrate, "if_epoch": 1699700000 + n,
                "if_vnet": vnet,
                "if_home_vnet": self.b.vnet_vas[ifs.home] if ifs.home is not None else vnet,
                "if_fib": 0,
            }
            if self.features["if_idxgen"]:
                f["if_idxgen"] = ifs.idxgen
            gc_sym = ifs.get_counter
            gc = self.sym(gc_sym)
            if not gc and gc_sym != "if_get_counter_default":
                gc_sym = "if_get_counter_default"
                gc = self.sym(gc_sym)
            if w.has_member("struct ifnet", "if_get_counter"):
                f["if_get_counter"] = gc
            if mac:
                hw = m.alloc(len(mac), "dmap", align=8, arena=ARENA)
                m.write(hw, mac)
                f["if_hw_addr"] = hw
                bc = self.sym("etherbroadcastaddr")
                if bc:
                    f["if_broadcastaddr"] = bc
            counters = {}
            for i in range(ncount):
                name = IFCOUNTER_NAMES[i] if i < len(IFCOUNTER_NAMES) else f"IFCOUNTER_{i}"
                total = ifs.counters.get(name, 0)
                f[f"if_counters[{i}]"] = self.counter(total, _mix(jid, n, i) & 0xFFFF)
                counters[name] = total
            # addresses: link-level ifaddr first, then inet/inet6 in configuration order
            ifas, atruth = self._build_addrs(jid, ifs, ifp, index, mac, in_list, in6_list)
            f["if_addr"] = ifas[0]
            first_link = w.offsetof("struct ifaddr", "ifa_link.cstqe_next")
            f["if_addrhead.cstqh_first"] = ifas[0]
            f["if_addrhead.cstqh_last"] = ifas[-1] + first_link
            f = {k_: v for k_, v in f.items() if w.has_member("struct ifnet", k_.split("[")[0])}
            p.put(ifp, "struct ifnet", f)
            truth.append({
                "name": ifs.name, "index": index, "address": _hex(ifp),
                "index_per_vnet": ifs.index12, "index_global": ifs.index14,
                "idxgen": ifs.idxgen if self.features["if_idxgen"] else None,
                "flags": ifs.flags, "flag_names": [nm for b_, nm in IFF_FLAG_NAMES if ifs.flags & b_],
                "if_flags": ifs.flags & ~IFF_DRV_RUNNING, "drv_flags": ifs.flags & IFF_DRV_RUNNING,
                "mtu": ifs.mtu, "metric": ifs.metric, "type": ifs.type,
                "type_name": {IFT_ETHER: "ether", IFT_LOOP: "loop"}.get(ifs.type, str(ifs.type)),
                "link_state": ifs.link_state, "baudrate": ifs.baudrate,
                "mac": ifs.mac, "driver": ifs.dname, "unit": ifs.dunit,
                "vnet": _hex(vnet),
                "home_vnet": _hex(self.b.vnet_vas[ifs.home] if ifs.home is not None else vnet),
                "moved_from": None if ifs.home is None else {
                    "vnet": _hex(self.b.vnet_vas[ifs.home]), "owner_jid": ifs.home},
                "get_counter": {"symbol": gc_sym, "address": _hex(gc) if gc else None},
                "driver_counter_method": gc_sym != "if_get_counter_default",
                "counters": counters,
                "addresses": atruth,
            })
        # V_ifnet: CK_STAILQ, attach order
        head = self.vnet_var(jid, "ifnet")
        if head is not None:
            last_next = ifps[-1] + w.offsetof("struct ifnet", "if_link.cstqe_next") if ifps else head
            m.write_u64(head, ifps[0] if ifps else 0)
            m.write_u64(head + 8, last_next)
        self._stailq(jid, "in_ifaddrhead", in_list, "struct in_ifaddr", "ia_link.cstqe_next")
        self._stailq(jid, "in6_ifaddrhead", in6_list, "struct in6_ifaddr", "ia_link.cstqe_next")
        lo = next((ifp for ifs, ifp in zip(st.ifaces, ifps) if ifs.type == IFT_LOOP), 0)
        a = self.vnet_var(jid, "loif")
        if a is not None and lo:
            m.write_u64(a, lo)
        self._ifs_by_jid = getattr(self, "_ifs_by_jid", {})
        self._ifs_by_jid[jid] = list(zip(st.ifaces, ifps))
        return truth

    def _stailq(self, jid, var, items, tname, link):
        head = self.vnet_var(jid, var)
        if head is None or not self.k.has_type(tname) or not self.w.has_member(tname, link):
            return
        off = self.w.offsetof(tname, link)
        for i, a in enumerate(items):
            self.m.write_u64(a + off, items[i + 1] if i + 1 < len(items) else 0)
        self.m.write_u64(head, items[0] if items else 0)
        self.m.write_u64(head + 8, items[-1] + off if items else head)

    def _ifa_common(self, ifp, addr_ptr, mask_ptr, dst_ptr, counters, salt, flags=0):
        f = {"ifa_addr": addr_ptr, "ifa_netmask": mask_ptr, "ifa_dstaddr": dst_ptr,
             "ifa_ifp": ifp, "ifa_refcnt": 2, "ifa_flags": flags}
        for i, nm in enumerate(("ifa_ipackets", "ifa_opackets", "ifa_ibytes", "ifa_obytes")):
            if self.w.has_member("struct ifaddr", nm):
                f[nm] = self.counter(counters[i], salt + i)
        return f

    def _build_addrs(self, jid, ifs: IfSpec, ifp, index, mac, in_list, in6_list):
        w, m, p = self.w, self.m, self.p
        ifa_size = p.sizeof("struct ifaddr")
        sdl_data = w.offsetof("struct sockaddr_dl", "sdl_data")
        namelen = len(ifs.name)
        masklen = sdl_data + namelen
        socksize = max(masklen + len(mac), p.sizeof("struct sockaddr_dl"))
        socksize = (socksize + 7) & ~7
        # if_attach: ifa + sockaddr_dl address + sockaddr_dl mask in one malloc
        link = m.alloc(ifa_size + 2 * socksize, "dmap", align=16, arena=ARENA)
        sdl = link + ifa_size
        sdlm = sdl + socksize
        m.write(sdl, _sockaddr_dl(index, ifs.type, ifs.name, mac, socksize))
        m.write(sdlm, bytes([masklen & 0xFF, 0]) + bytes(sdl_data - 2) + b"\xff" * namelen)
        ifas = [link]
        fields = {link: ("struct ifaddr", self._ifa_common(ifp, sdl, sdlm, 0, (0, 0, 0, 0),
                                                           _mix(jid, index) & 0xFFF))}
        truth = [{"family": "link", "ifaddr": _hex(link), "sockaddr": _hex(sdl),
                  "sdl_index": index, "sdl_type": ifs.type, "sdl_nlen": namelen,
                  "sdl_alen": len(mac), "name": ifs.name, "mac": ifs.mac,
                  "counters": {"ipackets": 0, "opackets": 0, "ibytes": 0, "obytes": 0}}]
        bcast_if = bool(ifs.flags & IFF_BROADCAST)
        for n, a in enumerate(ifs.addrs):
            salt = _mix(jid, index, n) & 0xFFF
            ctr = dict(zip(("ipackets", "opackets", "ibytes", "obytes"), a.counters))
            if a.family == "inet":
                ia = m.alloc(p.sizeof("struct in_ifaddr"), "dmap", align=16, arena=ARENA)
                net = ipaddress.IPv4Network(f"{a.addr}/{a.prefixlen}", strict=False)
                mask = int(net.netmask)
                addr_i = int(ipaddress.IPv4Address(a.addr))
                bcast = None
                if bcast_if:
                    bcast = str(ipaddress.IPv4Address((addr_i & mask) | (~mask & 0xFFFFFFFF)))
                fa = {"ia_addr": _sockaddr_in(a.addr), "ia_sockmask": _sockaddr_in(str(net.netmask)),
                      "ia_dstaddr": _sockaddr_in(bcast) if bcast else bytes(16),
                      "ia_subnet": addr_i & mask, "ia_subnetmask": mask}
                o = lambda mem: ia + w.offsetof("struct in_ifaddr", mem)  # noqa: E731
                common = self._ifa_common(ifp, o("ia_addr"), o("ia_sockmask"), o("ia_dstaddr"),
                                          a.counters, salt, IFA_ROUTE)
                fa.update({f"ia_ifa.{k_}": v for k_, v in common.items()})
                fields[ia] = ("struct in_ifaddr", fa)
                in_list.append(ia)
                ifas.append(ia)
                truth.append({"family": "inet", "ifaddr": _hex(ia), "addr": a.addr,
                              "prefixlen": a.prefixlen, "netmask": str(net.netmask),
                              "netmask_hex": f"{mask:#010x}", "broadcast": bcast,
                              "alias": a.alias, "counters": ctr})
            else:
                ia = m.alloc(p.sizeof("struct in6_ifaddr"), "dmap", align=16, arena=ARENA)
                a6 = ipaddress.IPv6Address(a.addr)
                zone = index if a6.is_link_local else 0
                net = ipaddress.IPv6Network(f"{a.addr}/{a.prefixlen}", strict=False)
                mask = _mask6(a.prefixlen)
                fa = {"ia_addr": _sockaddr_in6(a.addr, zone=zone),
                      "ia_net": _sockaddr_in6(str(net.network_address), zone=zone),
                      "ia_prefixmask": bytes([28, AF_INET6]) + bytes(6) + mask + bytes(4),
                      "ia_plen": a.prefixlen, "ia6_flags": a.flags6}
                for k_ in ("ia6_lifetime.ia6t_vltime", "ia6_lifetime.ia6t_pltime"):
                    fa[k_] = ND6_INFINITE_LIFETIME
                o = lambda mem: ia + w.offsetof("struct in6_ifaddr", mem)  # noqa: E731
                common = self._ifa_common(ifp, o("ia_addr"), o("ia_prefixmask"), o("ia_dstaddr"),
                                          a.counters, salt, IFA_ROUTE)
                fa.update({f"ia_ifa.{k_}": v for k_, v in common.items()})
                fa = {k_: v for k_, v in fa.items()
                      if w.has_member("struct in6_ifaddr", k_)}
                fields[ia] = ("struct in6_ifaddr", fa)
                in6_list.append(ia)
                ifas.append(ia)
                truth.append({"family": "inet6", "ifaddr": _hex(ia), "addr": str(a6),
                              "zone": ifs.name if zone else None, "scope_id": zone or None,
                              "addr_in_kernel": str(ipaddress.IPv6Address(embed_scope(a.addr, zone))),
                              "prefixlen": a.prefixlen,
                              "netmask": str(ipaddress.IPv6Address(mask)),
                              "flags6": a.flags6, "alias": a.alias, "counters": ctr})
        # if_addrhead linkage (CK_STAILQ_INSERT_TAIL)
        for i, a in enumerate(ifas):
            tname, fa = fields[a]
            pre = "" if tname == "struct ifaddr" else "ia_ifa."
            fa[pre + "ifa_link.cstqe_next"] = ifas[i + 1] if i + 1 < len(ifas) else 0
            p.put(a, tname, fa)
        return ifas, truth

    def _index_tables(self):
        """ifindex_table / if_index: per vnet on 12/13, global on 14."""
        if self.global_index:
            every = {}
            for (jid, name), idx in self.index_of.items():
                every[idx] = self._ifps[(jid, name)]
            self._write_index_table(None, every)
        else:
            for jid in self.stacks:
                tab = {idx: self._ifps[(j, n)] for (j, n), idx in self.index_of.items() if j == jid}
                self._write_index_table(jid, tab)

    def _write_index_table(self, jid, tab: dict[int, int]):
        k, m = self.k, self.m
        top = max(tab, default=0)
        lim = 8
        while lim <= top:
            lim *= 2
        if jid is None:
            tab_addr = self.sym("ifindex_table")
            idx_addr = self.sym("if_index")
            lim_addr = self.sym("if_indexlim")
            tvar = "ifindex_table"
        else:
            tab_addr = self.vnet_var(jid, "ifindex_table") or 0
            idx_addr = self.vnet_var(jid, "if_index") or 0
            lim_addr = self.vnet_var(jid, "if_indexlim") or 0
            tvar = self.vsym("ifindex_table")
        if not tab_addr:
            return
        t = k.variable_type(tvar)
        if t is None:
            return
        from drgn import TypeKind
        pt = t.unaliased()
        if pt.kind != TypeKind.POINTER:
            return
        target = pt.type.unaliased()
        esize = 8
        if target.kind == TypeKind.STRUCT:
            import drgn
            esize = drgn.sizeof(target)
        arr = m.alloc(esize * lim, "dmap", align=16, arena=ARENA)
        for idx, ifp in tab.items():
            m.write_u64(arr + esize * idx, ifp)   # ife_ifp / the pointer is first
        m.write_u64(tab_addr, arr)
        if idx_addr:
            isz = k.symbol("if_index" if jid is None else self.vsym("if_index")).size or 4
            m.write(idx_addr, top.to_bytes(min(isz, 8), "little"))
        if lim_addr:
            lsz = k.symbol("if_indexlim" if jid is None else self.vsym("if_indexlim")).size or 4
            m.write(lim_addr, lim.to_bytes(min(lsz, 8), "little"))

    # -- sockets and pcbs -----------------------------------------------------------
    def _sock_family(self, s: SockSpec):
        v6 = s.family in ("6", "46")
        vflag = {"4": INP_IPV4, "6": INP_IPV6, "46": INP_IPV4 | INP_IPV6}[s.family]
        return v6, vflag

    def _addr_bytes(self, jid: int, addr: str, v6: bool) -> tuple[bytes, int, str, str | None]:
        """(16-byte in_dependaddr, zone, printable address, zone name)."""
        zone_name = None
        if "%" in addr:
            addr, zone_name = addr.split("%", 1)
        if addr == "*":
            return bytes(16), 0, "*", None
        if v6:
            zone = self.index_of[(jid, zone_name)] if zone_name else 0
            return embed_scope(addr, zone), zone, str(ipaddress.IPv6Address(addr)), zone_name
        return bytes(12) + ipaddress.IPv4Address(addr).packed, 0, addr, None

    def _build_pcbs(self, jid: int, st: NetStack) -> dict:
        """Allocate then write every pcb of the stack; lists newest first."""
        w, p, m = self.w, self.p, self.m
        vnet = self.b.vnet_vas[jid]
        feats = self.features
        self._cur_jid = jid
        self._bulk_lists = {}
        plan = []   # (spec, dict of addresses)
        by_info: dict[str, list[int]] = {k_: [] for k_ in PCBINFOS}
        for i, s in enumerate(st.sockets):
            plan.append(self._alloc_pcb(s))
        # listen queues: socket addresses of queued connections per listener
        queues: dict[int, dict[str, list[int]]] = {}
        for i, s in enumerate(st.sockets):
            if s.queued_on is not None:
                queues.setdefault(s.queued_on, {"comp": [], "incomp": []})[s.queue].append(i)
        # generation counts per pcbinfo, with gaps for freed pcbs; the bulk
        # (big_net) pcbs were created first
        gens: dict[str, int] = {k_: 0 for k_ in PCBINFOS}
        bulk_truth = self._plan_bulk(jid, st, gens) if st.bulk else None
        freed_left = st.freed_pcbs
        states = [0] * len(TCP_STATES)
        for i, (s, a) in enumerate(zip(st.sockets, plan)):
            info = s.proto
            if freed_left and i % 3 == 1:
                gens[info] += 2
                freed_left -= 1
            gens[info] += 1
            a["gen"] = gens[info]
            by_info[info].append(i)
        gens["tcp"] += 2 * freed_left
        # write pcbs
        info_addr = {k_: self.vnet_var(jid, v[0]) for k_, v in PCBINFOS.items()}
        for i, (s, a) in enumerate(zip(st.sockets, plan)):
            q = queues.get(i)
            self._write_pcb(jid, vnet, s, a, info_addr[s.proto], q and {
                k_: [plan[x]["so"] for x in v] for k_, v in q.items()},
                plan[s.queued_on]["so"] if s.queued_on is not None else 0, i, st)
            if s.proto == "tcp":
                states[TCPS[s.state]] += 1
            if s.socket:
                self.so_gencnt += 1
        if st.bulk:
            self._write_bulk(jid, vnet, st, info_addr, states)
        # lists and pcbinfos
        pcbinfo_truth = {}
        for info, (ivar, hvar) in PCBINFOS.items():
            order = [plan[i]["inp"] for i in by_info[info]]
            if st.bulk and info in self._bulk_lists:
                order = self._bulk_lists[info] + order   # bulk created first
            order = order[::-1]                          # CK_LIST_INSERT_HEAD
            ia = info_addr[info]
            if ia is None:
                continue
            if feats["ipi_listhead_pointer"]:
                head = self.vnet_var(jid, hvar)
                if head is None:   # no V_tcb in this kernel: a heap head
                    head = m.alloc(8, "dmap", align=8, arena=ARENA)
                listhead_field = {"ipi_listhead": head}
            else:
                head = ia + w.offsetof("struct inpcbinfo", "ipi_listhead")
                listhead_field = {}
            self._link_list(head, order)
            count = len(order)
            f = {"ipi_count": count, "ipi_gencnt": gens[info], "ipi_vnet": vnet,
                 "ipi_lastport": 0, "ipi_lastlow": 0, "ipi_lasthi": 0}
            f.update(listhead_field)
            if info == "tcp" or info == "udp":
                f["ipi_lastport"] = 49152 + (_mix(jid, len(order)) % 10000)
            f = {k_: v for k_, v in f.items() if w.has_member("struct inpcbinfo", k_)}
            p.put(ia, "struct inpcbinfo", f)
            pcbinfo_truth[ivar] = {"address": _hex(ia), "count": count, "gencnt": gens[info],
                                   "listhead": _hex(head),
                                   "listhead_kind": "pointer" if feats["ipi_listhead_pointer"]
                                   else "embedded",
                                   "first": _hex(order[0]) if order else None}
        self._states_by_jid = getattr(self, "_states_by_jid", {})
        self._states_by_jid[jid] = states
        # ground truth: per pcbinfo in list order (newest first)
        sockets = []
        for info in ("tcp", "udp", "udplite", "raw"):
            for i in reversed(by_info[info]):
                sockets.append(self._sock_truth(jid, st.sockets[i], plan[i], queues.get(i)))
        out = {"pcbinfo": pcbinfo_truth, "socket_order": "per pcbinfo (tcp, udp, udplite, raw), "
               "each in inp_list order (newest first)"}
        if bulk_truth:
            out["bulk"] = bulk_truth
            out["sockets_complete"] = False
            out["sockets"] = sockets   # only the named ones
        else:
            out["sockets_complete"] = True
            out["sockets"] = sockets
        return out

    def _alloc_pcb(self, s: SockSpec) -> dict:
        feats = self.features
        a = {"so": 0, "inp": 0, "tp": 0, "tw": 0}
        if s.proto == "tcp" and feats["tcpcb_embeds_inpcb"]:
            a["inp"] = a["tp"] = self.zone("struct tcpcb").alloc()
        else:
            a["inp"] = self.zone("struct inpcb").alloc()
            if s.proto == "tcp":
                if s.state == "TIME_WAIT" and feats["tcptw"]:
                    a["tw"] = self.zone("struct tcptw").alloc()
                else:
                    a["tp"] = self.zone("struct tcpcb").alloc()
        if s.socket:
            a["so"] = self.zone("struct socket").alloc()
        return a

    def _link_list(self, head: int, order: list[int]) -> None:
        off_n = self.w.offsetof("struct inpcb", self.inp_list)
        off_p = self.w.offsetof("struct inpcb", self.inp_list_prev)
        mem = self.m.mem
        self.m.write_u64(head, order[0] if order else 0)
        prev = head
        for i, inp in enumerate(order):
            pa = inp - DMAP_MIN_ADDRESS
            nxt = order[i + 1] if i + 1 < len(order) else 0
            pg = mem.page(pa)
            o = pa & PAGE_MASK
            if o + max(off_n, off_p) + 8 <= PAGE_SIZE:
                struct.pack_into("<Q", pg, o + off_n, nxt)
                struct.pack_into("<Q", pg, o + off_p, prev)
            else:
                self.m.write_u64(inp + off_n, nxt)
                self.m.write_u64(inp + off_p, prev)
            prev = inp + off_n

    def _pcb_fields(self, jid, s: SockSpec, a: dict, info_addr: int, so: int):
        """inpcb members for one pcb; also returns truth bits."""
        v6, vflag = self._sock_family(s)
        lraw, lzone, ltxt, lzname = self._addr_bytes(jid, s.laddr, v6)
        fraw, fzone, ftxt, _ = self._addr_bytes(jid, s.faddr, v6)
        flags = 0
        if s.family == "6":      # net.inet6.ip6.v6only=1 (default)
            flags |= IN6P_IPV6_V6ONLY
        if s.lport >= 49152 or (s.lport >= 10000 and s.fport and s.fport < 1024):
            flags |= INP_ANONPORT
        tw = s.proto == "tcp" and s.state == "TIME_WAIT" and self.features["tcptw"]
        if tw:
            flags |= INP_TIMEWAIT
        ip_p = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP, "udplite": IPPROTO_UDPLITE}.get(
            s.proto, s.ip_p or 0)
        if v6:
            vflag |= INP_IPV6PROTO      # in_pcballoc(): every AF_INET6 socket
        pre = "t_inpcb." if a["inp"] == a["tp"] and a["tp"] else ""
        f = {
            "inp_refcount": 1, "inp_flags": flags, "inp_vflag": vflag,
            "inp_ip_ttl": 64, "inp_ip_p": ip_p, "inp_socket": so,
            "inp_pcbinfo": info_addr or 0, "inp_cred": self.cred(s.cred_jid if s.cred_jid is not None else jid),
            "inp_inc.inc_flags": INC_ISIPV6 if s.family == "6" else 0,
            "inp_inc.inc_ie.ie_fport": _bswap16(s.fport),
            "inp_inc.inc_ie.ie_lport": _bswap16(s.lport),
            "inp_inc.inc_ie.ie_dependfaddr": fraw,
            "inp_inc.inc_ie.ie_dependladdr": lraw,
            "inp_gencnt": a["gen"],
        }
        if v6:
            f["in6p_hops"] = -1
        if self.features["ie6_zoneid"]:
            f["inp_inc.inc_ie.ie6_zoneid"] = lzone
        if self.features["inp_ppcb"]:
            f["inp_ppcb"] = a["tw"] or a["tp"]
        f = {pre + k_: v for k_, v in f.items()}
        return f, (ltxt, lzone, lzname, ftxt, vflag, flags, ip_p)

    def _write_pcb(self, jid, vnet, s: SockSpec, a, info_addr, queue, listener_so, idx, st):
        p = self.p
        f, _ = self._pcb_fields(jid, s, a, info_addr, a["so"])
        v6 = s.family in ("6", "46")
        if a["tp"] and a["tp"] == a["inp"]:
            f.update(self._tcpcb_fields(s, a, jid, vnet))
            p.put(a["tp"], "struct tcpcb", f)
        else:
            p.put(a["inp"], "struct inpcb", f)
            if a["tp"]:
                p.put(a["tp"], "struct tcpcb", self._tcpcb_fields(s, a, jid, vnet))
            if a["tw"]:
                p.put(a["tw"], "struct tcptw", self._tcptw_fields(s, a, jid))
        if a["so"]:
            p.put(a["so"], "struct socket",
                  self._socket_fields(s, a, vnet, v6, queue, listener_so, idx))

    def _tcpcb_fields(self, s: SockSpec, a, jid, vnet) -> dict:
        w = self.w
        emb = a["tp"] == a["inp"]
        iss = (_mix(jid, s.lport, s.fport) & 0xFFFFFFFF)
        f = {"t_state": TCPS[s.state], "snd_una": iss + 1, "snd_nxt": iss + 1 + s.sendq,
             "snd_max": iss + 1 + s.sendq, "iss": iss, "irs": iss ^ 0x5A5A5A5A,
             "rcv_nxt": (iss ^ 0x5A5A5A5A) + 1 + s.recvq, "t_maxseg": 1460 if s.family == "4" else 1440,
             "snd_wnd": 65535, "rcv_wnd": 65535, "t_flags": 0}
        if not emb:
            f["t_inpcb"] = a["inp"]
        if w.has_member("struct tcpcb", "t_vnet"):
            f["t_vnet"] = vnet
        return {k_: v for k_, v in f.items() if w.has_member("struct tcpcb", k_)}

    def _tcptw_fields(self, s: SockSpec, a, jid) -> dict:
        iss = (_mix(jid, s.lport, s.fport) & 0xFFFFFFFF)
        f = {"tw_inpcb": a["inp"], "snd_nxt": iss + 1, "rcv_nxt": (iss ^ 0x5A5A5A5A) + 1,
             "iss": iss, "irs": iss ^ 0x5A5A5A5A, "last_win": 1026, "tw_so_options": 0,
             "tw_cred": self.cred(s.cred_jid if s.cred_jid is not None else jid),
             "t_recent": 0x1234567, "tw_time": 60000 + s.lport}
        return {k_: v for k_, v in f.items() if self.w.has_member("struct tcptw", k_)}

    def _socket_fields(self, s: SockSpec, a, vnet, v6, queue, listener_so, idx) -> dict:
        w = self.w
        so = a["so"]
        stype = {"tcp": SOCK_STREAM, "udp": SOCK_DGRAM, "udplite": SOCK_DGRAM, "raw": SOCK_RAW}[s.proto]
        opts = 0
        state = 0
        if s.listen:
            opts |= SO_ACCEPTCONN | SO_REUSEADDR
        if s.proto == "tcp" and s.state in ("ESTABLISHED", "CLOSE_WAIT", "FIN_WAIT_1", "FIN_WAIT_2",
                                              "CLOSING", "LAST_ACK"):
            state |= SS_ISCONNECTED
            if s.state == "ESTABLISHED" and s.lport == 22:
                opts |= SO_KEEPALIVE
        if s.proto == "tcp" and s.state in ("SYN_SENT",):
            state |= SS_ISCONNECTING
        if s.proto == "tcp" and s.state in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "LAST_ACK"):
            state |= SS_ISDISCONNECTING
        if s.proto == "tcp" and s.state == "TIME_WAIT":
            state |= SS_ISDISCONNECTED
        if s.proto != "tcp" and s.faddr != "*":
            state |= SS_ISCONNECTED
        self.so_gencnt_next = getattr(self, "so_gencnt_next", 0) + 1
        f = {"so_count": 1, "so_type": stype, "so_options": opts, "so_state": state,
             "so_pcb": a["inp"], "so_vnet": vnet,
             "so_proto": self.protosw(s.proto, v6, s.ip_p),
             "so_cred": self.cred(s.cred_jid if s.cred_jid is not None else self._cur_jid),
             "so_gencnt": self.so_gencnt_next, "so_fibnum": 0}
        if s.listen:
            qlen, incq, qlimit = s.listen
            f.update({"sol_qlen": qlen, "sol_incqlen": incq, "sol_qlimit": qlimit,
                      "sol_sbrcv_hiwat": 65536, "sol_sbsnd_hiwat": 32768})
            self._queue_fields(f, so, queue or {"comp": [], "incomp": []})
        else:
            hi_r, hi_s = (65536, 32768) if stype == SOCK_STREAM else (42080, 9216)
            f.update({"so_rcv.sb_ccc": s.recvq, "so_rcv.sb_acc": s.recvq,
                      "so_rcv.sb_hiwat": hi_r, "so_rcv.sb_lowat": 1,
                      "so_rcv.sb_mbmax": hi_r * 8, "so_rcv.sb_mbcnt": 256 * (s.recvq > 0),
                      "so_snd.sb_ccc": s.sendq, "so_snd.sb_acc": s.sendq,
                      "so_snd.sb_hiwat": hi_s, "so_snd.sb_lowat": 2048,
                      "so_snd.sb_mbmax": hi_s * 8, "so_snd.sb_mbcnt": 2304 * (s.sendq > 0)})
            if w.has_member("struct socket", "so_rcv.sb_sel"):
                f["so_rcv.sb_sel"] = so + w.offsetof("struct socket", "so_rdsel")
                f["so_snd.sb_sel"] = so + w.offsetof("struct socket", "so_wrsel")
            if self.features["so_rcv_mtx"] and w.has_member("struct socket", "so_rcv.sb_mtx"):
                f["so_rcv.sb_mtx"] = so + w.offsetof("struct socket", "so_rcv_mtx")
                f["so_snd.sb_mtx"] = so + w.offsetof("struct socket", "so_snd_mtx")
            if s.queued_on is not None:
                f["so_listen"] = listener_so
                f["so_qstate"] = SQ_COMP if s.queue == "comp" else SQ_INCOMP
        return {k_: v for k_, v in f.items() if w.has_member("struct socket", k_)}

    def _queue_fields(self, f, so, queue):
        """sol_comp / sol_incomp TAILQs of the queued sockets (so_list linkage)."""
        w = self.w
        nxt = w.offsetof("struct socket", "so_list.tqe_next")
        prv = w.offsetof("struct socket", "so_list.tqe_prev")
        for qname in ("incomp", "comp"):
            items = queue.get(qname, [])
            head_first = so + w.offsetof("struct socket", f"sol_{qname}.tqh_first")
            f[f"sol_{qname}.tqh_first"] = items[0] if items else 0
            prev = head_first
            for i, q in enumerate(items):
                self._deferred_links.append((q + nxt, items[i + 1] if i + 1 < len(items) else 0))
                self._deferred_links.append((q + prv, prev))
                prev = q + nxt
            f[f"sol_{qname}.tqh_last"] = prev

    def _sock_truth(self, jid, s: SockSpec, a, queue) -> dict:
        v6, vflag = self._sock_family(s)
        _, lzone, _, lzname = self._addr_bytes(jid, s.laddr, v6)
        laddr = s.laddr.split("%")[0]
        tw = s.proto == "tcp" and s.state == "TIME_WAIT" and self.features["tcptw"]
        name = {"tcp": "tcp", "udp": "udp", "udplite": "udplite",
                "raw": {IPPROTO_ICMP: "icmp"}.get(s.ip_p, "ip")}[s.proto]
        fam = s.family
        ip_p = {"tcp": IPPROTO_TCP, "udp": IPPROTO_UDP, "udplite": IPPROTO_UDPLITE}.get(
            s.proto, s.ip_p or 0)

        def norm(x):
            if x == "*":
                return "*"
            return str(ipaddress.ip_address(x))
        return {
            "proto": name + fam, "protocol": s.proto, "ip_p": ip_p,
            "pcbinfo": PCBINFOS[s.proto][0],
            "local": {"addr": norm(laddr), "port": s.lport, "zone": lzname,
                      "scope_id": lzone or None},
            "foreign": {"addr": norm(s.faddr), "port": s.fport},
            "state": TCP_STATES[TCPS[s.state]] if s.proto == "tcp" else None,
            "state_num": TCPS[s.state] if s.proto == "tcp" else None,
            "recv_q": 0 if s.listen or not s.socket else s.recvq,
            "send_q": 0 if s.listen or not s.socket else s.sendq,
            "listen": {"qlen": s.listen[0], "incqlen": s.listen[1], "qlimit": s.listen[2]}
            if s.listen else None,
            "pcb": _hex(a["inp"]), "tcpcb": _hex(a["tp"]) if a["tp"] else None,
            "tcptw": _hex(a["tw"]) if a["tw"] else None,
            "socket": _hex(a["so"]) if a["so"] else None, "has_socket": bool(a["so"]),
            "timewait_via": ("tcptw" if tw else "tcpcb") if s.state == "TIME_WAIT" else None,
            "vflag": vflag | (INP_IPV6PROTO if v6 else 0), "v6only": s.family == "6",
            "gencnt": a["gen"],
            "queued_on_listener": s.queue, "note": s.note,
            **self._proto_truth(s, v6),
        }

    def _proto_truth(self, s: SockSpec, v6: bool) -> dict:
        """The protosw the socket points at and its pr_protocol as written in
        memory (14's rip_protosw is a wildcard: pr_protocol 0 for a raw ICMP
        socket whose inp_ip_p is 1)."""
        if not s.socket:
            return {"protosw": None, "pr_protocol": None}
        a = self.protosw(s.proto, v6, s.ip_p)
        pr = None
        if self.w.has_member("struct protosw", "pr_protocol"):
            f = self.w.field("struct protosw", "pr_protocol")
            pr = int.from_bytes(self.m.read(a + f.offset, f.size), "little", signed=True)
        return {"protosw": _hex(a), "pr_protocol": pr}

    # -- bulk (big_net) --------------------------------------------------------------
    BULK_MIX = BULK_MIX

    def _plan_bulk(self, jid, st: NetStack, gens):
        """Allocate the bulk pcbs (created before the named ones)."""
        n = st.bulk["count"]
        self._bulk_lists = {"tcp": [], "udp": []}
        self._bulk = []
        counts = {"tcp": 0, "udp": 0}
        states = {}
        nsock = 0
        for i in range(n):
            proto, state, has_so = self.BULK_MIX[i % len(self.BULK_MIX)]
            s = SockSpec(proto, "4", state=state, socket=has_so)
            a = self._alloc_pcb(s)
            self._bulk.append((proto, state, has_so, a))
            self._bulk_lists[proto].append(a["inp"])
            counts[proto] += 1
            nsock += has_so
            if state:
                states[state] = states.get(state, 0) + 1
        for info in ("tcp", "udp"):
            gens[info] += counts[info]
        st.bulk["sockets"] = nsock
        return {"count": n, "tcp": counts["tcp"], "udp": counts["udp"], "sockets": nsock,
                "tcp_states": states,
                "mix": [list(x) for x in self.BULK_MIX],
                "addresses": "local 10.H.L.2:(1024 + i % 60000) / foreign 198.18.X.Y:(i % 50000 + 10000)"}

    def _write_bulk(self, jid, vnet, st, info_addr, states):
        """Precomputed offsets + struct.pack_into; one pass per pcb."""
        w, mem = self.w, self.m.mem
        feats = self.features
        emb = feats["tcpcb_embeds_inpcb"]
        O = {k_: w.offsetof("struct inpcb", k_) for k_ in (
            "inp_refcount", "inp_flags", "inp_vflag", "inp_ip_ttl", "inp_ip_p", "inp_socket",
            "inp_pcbinfo", "inp_cred", "inp_inc.inc_ie.ie_fport", "inp_inc.inc_ie.ie_lport",
            "inp_inc.inc_ie.ie_dependfaddr", "inp_inc.inc_ie.ie_dependladdr", "inp_gencnt")}
        o_ppcb = w.offsetof("struct inpcb", "inp_ppcb") if feats["inp_ppcb"] else None
        ts = w.field("struct tcpcb", "t_state")
        o_tinp = None if emb else w.offsetof("struct tcpcb", "t_inpcb")
        o_tvnet = w.offsetof("struct tcpcb", "t_vnet") if w.has_member("struct tcpcb", "t_vnet") else None
        o_tw_inp = w.offsetof("struct tcptw", "tw_inpcb") if feats["tcptw"] else None
        SO = {k_: w.offsetof("struct socket", k_) for k_ in (
            "so_count", "so_type", "so_state", "so_pcb", "so_vnet", "so_proto", "so_cred",
            "so_gencnt", "so_rcv.sb_ccc", "so_rcv.sb_hiwat", "so_snd.sb_ccc", "so_snd.sb_hiwat")}
        so_state_sz = w.field("struct socket", "so_state").size
        cred = self.cred(jid)
        proto_tcp = self.protosw("tcp", False, None)
        proto_udp = self.protosw("udp", False, None)
        k = jid
        lo_ip = bytes(12) + bytes([10, k >> 8 & 255, k & 255, 2])
        gens = {"tcp": 0, "udp": 0}

        def page_of(va):
            pa = va - DMAP_MIN_ADDRESS
            return mem.page(pa), pa & PAGE_MASK

        pk = struct.pack_into
        for i, (proto, state, has_so, a) in enumerate(self._bulk):
            gens[proto] += 1
            inp, so = a["inp"], a["so"]
            pg, o = page_of(inp)
            tw = state == "TIME_WAIT" and feats["tcptw"]
            pk("<I", pg, o + O["inp_refcount"], 1)
            pk("<i", pg, o + O["inp_flags"], INP_TIMEWAIT if tw else 0)
            pg[o + O["inp_vflag"]] = INP_IPV4
            pg[o + O["inp_ip_ttl"]] = 64
            pg[o + O["inp_ip_p"]] = IPPROTO_TCP if proto == "tcp" else IPPROTO_UDP
            pk("<Q", pg, o + O["inp_socket"], so)
            pk("<Q", pg, o + O["inp_pcbinfo"], info_addr[proto] or 0)
            pk("<Q", pg, o + O["inp_cred"], cred)
            lport = 1024 + i % 60000
            fport = 10000 + i % 50000
            pk(">HH", pg, o + O["inp_inc.inc_ie.ie_fport"], fport, lport)
            fo = O["inp_inc.inc_ie.ie_dependfaddr"]
            pg[o + fo + 12:o + fo + 16] = bytes([198, 18 + (i >> 16 & 1), i >> 8 & 255, i & 255])
            lo = O["inp_inc.inc_ie.ie_dependladdr"]
            pg[o + lo:o + lo + 16] = lo_ip
            pk("<Q", pg, o + O["inp_gencnt"], gens[proto])
            if proto == "tcp":
                states[TCPS[state]] += 1
                tp = a["tp"]
                if tp:
                    tpg, to = page_of(tp)
                    nb = (ts.bit_offset + (ts.bit_size or 32) + 7) // 8
                    if ts.bit_size is None:
                        pk("<i", tpg, to + ts.offset, TCPS[state])
                    else:
                        cur = int.from_bytes(tpg[to + ts.offset:to + ts.offset + nb], "little")
                        msk = ((1 << ts.bit_size) - 1) << ts.bit_offset
                        cur = (cur & ~msk) | (TCPS[state] << ts.bit_offset)
                        tpg[to + ts.offset:to + ts.offset + nb] = cur.to_bytes(nb, "little")
                    if o_tinp is not None:
                        pk("<Q", tpg, to + o_tinp, inp)
                    if o_tvnet is not None:
                        pk("<Q", tpg, to + o_tvnet, vnet)
                    if o_ppcb is not None:
                        pk("<Q", pg, o + o_ppcb, tp)
                elif a["tw"]:
                    twg, two = page_of(a["tw"])
                    pk("<Q", twg, two + o_tw_inp, inp)
                    pk("<Q", pg, o + o_ppcb, a["tw"])
            if so:
                sg, so_o = page_of(so)
                self.so_gencnt += 1
                pk("<I", sg, so_o + SO["so_count"], 1)
                sg[so_o + SO["so_type"]] = SOCK_STREAM if proto == "tcp" else SOCK_DGRAM
                pk("<h" if so_state_sz == 2 else "<i", sg, so_o + SO["so_state"],
                   SS_ISCONNECTED if proto == "tcp" else 0)
                pk("<Q", sg, so_o + SO["so_pcb"], inp)
                pk("<Q", sg, so_o + SO["so_vnet"], vnet)
                pk("<Q", sg, so_o + SO["so_proto"], proto_tcp if proto == "tcp" else proto_udp)
                pk("<Q", sg, so_o + SO["so_cred"], cred)
                pk("<Q", sg, so_o + SO["so_gencnt"], self.so_gencnt)
                pk("<I", sg, so_o + SO["so_rcv.sb_hiwat"], 65536)
                pk("<I", sg, so_o + SO["so_snd.sb_hiwat"], 32768)
                if i % 7 == 0:
                    pk("<I", sg, so_o + SO["so_rcv.sb_ccc"], i % 1000)
        del self._bulk

    # -- statistics -------------------------------------------------------------------
    def _stat_names(self, tname: str, n: int) -> list[str]:
        """Names of the uint64_t slots of a statistics struct, from DWARF
        (array members as name[i])."""
        from drgn import TypeKind
        import drgn
        names = [f"[{i}]" for i in range(n)]
        t = self.w.type(tname).unaliased()
        for mb in t.members:
            off = mb.bit_offset // 8
            mt = mb.type.unaliased()
            if mt.kind == TypeKind.ARRAY:
                es = drgn.sizeof(mt.type)
                for j in range(mt.length or 0):
                    slot = (off + j * es) // 8
                    if slot < n:
                        names[slot] = f"{mb.name}[{j}]"
            else:
                slot = off // 8
                if slot < n:
                    names[slot] = mb.name
        return names

    def _build_stats(self, jid: int, st: NetStack, socks: dict) -> dict:
        out = {}
        for key, var, tname in STATS:
            addr = self.vnet_var(jid, var)
            if addr is None or not self.k.has_type(tname):
                continue
            t = self.k.variable_type(self.vsym(var))
            n = t.unaliased().length if t is not None else self.p.sizeof(tname) // 8
            names = self._stat_names(tname, n)
            fields = {}
            ptrs = []
            drawn = {}
            for i, nm in enumerate(names):
                h = _mix(st.stats_seed, sum(map(ord, key)), i)
                if h % 4 == 0:
                    drawn[nm] = 0
                else:
                    scale = (10, 1000, 100000, 10000000)[h >> 8 & 3]
                    drawn[nm] = (h >> 16) % scale + 1
            drawn = plausible_stats(key, drawn)
            for i, nm in enumerate(names):
                h = _mix(st.stats_seed, sum(map(ord, key)), i)
                total = drawn[nm]
                ptrs.append(self.counter(total, h & 0xFF))
                fields[nm] = total
            self.m.write(addr, struct.pack(f"<{n}Q", *ptrs))
            out[key] = {"var": var, "struct": tname, "address": _hex(addr),
                        "count": n, "fields": fields}
        addr = self.vnet_var(jid, "tcps_states")
        if addr is not None:
            t = self.k.variable_type(self.vsym("tcps_states"))
            n = t.unaliased().length if t is not None else len(TCP_STATES)
            ptrs = []
            vals = {}
            for i in range(n):
                states = self._states_by_jid[jid]
                total = states[i] if i < len(states) else 0
                per = split(total, self.s.ncpus, i + jid)
                if jid == 0 and i == TCPS["ESTABLISHED"] and self.s.ncpus > 1:
                    # incremented on one CPU, decremented on another: slots wrap
                    per = [total + 3] + [0] * (self.s.ncpus - 2) + [(-3) & U64]
                ptrs.append(self.ctr.alloc(per))
                vals[TCP_STATES[i] if i < len(TCP_STATES) else str(i)] = total
            self.m.write(addr, struct.pack(f"<{n}Q", *ptrs))
            out["tcps_states"] = {"var": "tcps_states", "address": _hex(addr), "count": n,
                                  "fields": vals,
                                  "note": "sums are modulo 2^64; vnet0's ESTABLISHED slots "
                                          "wrap (CPU 0 = n + 3, CPU 1 = -3)" if jid == 0 else ""}
        return out

    def finish(self):
        for addr, val in self._deferred_links:
            self.m.write_u64(addr, val)
        self._deferred_links = []
