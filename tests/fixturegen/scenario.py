"""The simulated machine's state as data, and the builder that lays it out
in kernel memory through DWARF-derived layouts.

Layout differences (12/13/14) are decided by asking the DWARF: members
pr_state, pr_addrs, vnet_shutdown, pc_zpcpu_offset, ...
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import dataclass, field, replace

from .machine import Machine
from .pagetables import KERNBASE
from .physmem import GiB, MiB, PAGE_SIZE, round_page

U64 = 0xFFFFFFFFFFFFFFFF

# pr_flags (sys/sys/jail.h; #defines, not in DWARF)
PR_PERSIST = 0x00000001
PR_HOST = 0x00000002
PR_IP4_USER = 0x00000004
PR_IP6_USER = 0x00000008
PR_VNET = 0x00000010
PR_IP4_SADDRSEL = 0x00000080
PR_IP6_SADDRSEL = 0x00000100
PR_IP4 = 0x02000000
PR_IP6 = 0x04000000
PR_FLAG_NAMES = [
    (PR_PERSIST, "PR_PERSIST"), (PR_HOST, "PR_HOST"), (PR_IP4_USER, "PR_IP4_USER"),
    (PR_IP6_USER, "PR_IP6_USER"), (PR_VNET, "PR_VNET"), (PR_IP4_SADDRSEL, "PR_IP4_SADDRSEL"),
    (PR_IP6_SADDRSEL, "PR_IP6_SADDRSEL"), (PR_IP4, "PR_IP4"), (PR_IP6, "PR_IP6"),
]
# static allow bits, used only when the kernel has no pr_flag_allow[] to read
FALLBACK_ALLOW = {
    "allow.set_hostname": 0x1, "allow.sysvipc": 0x2, "allow.raw_sockets": 0x4,
    "allow.chflags": 0x8, "allow.mount": 0x10, "allow.quotas": 0x20,
    "allow.socket_af": 0x40, "allow.mlock": 0x80, "allow.read_msgbuf": 0x100,
    "allow.unprivileged_proc_debug": 0x200, "allow.reserved_ports": 0x8000,
}
MSG_MAGIC = 0x063062
VNET_MAGIC_OLD = 0x3E0D8F29
VNET_MAGIC_NEW = 0x5E4A6F28
VNET_MAGIC_FREED = 0xDEADBEEF
SI_SUB_VNET_DONE_FALLBACK = 0xDC00000
HOSTUUID0 = "00000000-0000-0000-0000-000000000000"


@dataclass
class JailSpec:
    jid: int
    name: str
    path: bytes
    hostname: str
    parent: int = 0
    vnet: bool = False              # PR_VNET: owns a struct vnet
    ip4: list[str] = field(default_factory=list)   # as given by the user; [0] primary
    ip6: list[str] = field(default_factory=list)
    persist: bool = True
    state: str = "alive"            # alive | dying
    allow: list[str] = field(default_factory=list)  # names without "allow."
    cpuset: int = 0
    placement: str = "dmap"         # dmap | kva | kva-straddle
    securelevel: int = -1
    enforce_statfs: int = 2
    devfs_rsnum: int = 4
    childmax: int = 0
    domainname: str = ""
    hostid: int = 0
    ref: int | None = None
    uref: int | None = None
    ifcnt: int = 1
    sockcnt: int = 0
    arena: str | None = None        # "net": allocated in the machine's second arena
    boot: bool = True               # started at boot (listed in the msgbuf's "Starting jails")


@dataclass
class Scenario:
    name: str
    ram_size: int
    jails: list[JailSpec]
    ncpus: int = 2
    hostname: str = "crashbox.example.org"
    panic: str = "vnetdbg fixture panic"
    dumptime: int = 1700000000          # 2023-11-14 22:13:20 UTC
    dumptid: int = 100123
    msgbuf_size: int = 96 * 1024        # region; msg_size = this - sizeof(struct msgbuf)
    msgbuf_fill: float = 1.6            # text written / msg_size (> 1 => wrapped)
    vnet0_ifcnt: int = 3
    vnet0_sockcnt: int = 41
    lastprid: int | None = None
    translation_samples: int = 20
    net: dict | None = None             # owner JID -> netspec.NetStack (None: no network state)


def default(network: bool = True, dying_vnet_jail: bool = True,
            vimage: bool = True) -> Scenario:
    """The demo machine: 256 MiB, 2 CPUs, five jails; with ``network`` the
    stacks of netspec.default_network() (vnet0 and the VNET jail 2).

    ``vimage=False`` is the same machine for a kernel built without ``options
    VIMAGE`` (layout fbsd14-novimage): jail 2 "vnetjail" is an ordinary non-VNET
    jail (a jail cannot have ``vnet`` there), there is no dying VNET jail 6, and the
    only network stack is the host's (vnet0's objects, at the plain globals).

    ``dying_vnet_jail`` adds jail 6 "oldvnet": a removed VNET jail kept dying by
    a TIME_WAIT connection, its vnet still on vnet_head.  Off for the committed
    fixtures because ``jls -d`` lists dying jails and the jls goldens must not
    change; tests build it on the fly (all its objects live in the "net" arena,
    so every other address is the same with and without it)."""
    host255 = ".".join(["vnetjail-host-label-%02d-abcdefghijklmnopqrstuvwxyz0123456789abcdefgh" % i
                        for i in range(4)])
    host255 = (host255 + ".example")[:255]
    assert len(host255) == 255
    jails = [
        JailSpec(1, "web", b"/jails/web", "web.example.org",
                 ip4=["192.0.2.10", "198.51.100.7", "192.0.2.11"],
                 ip6=["2001:db8::10", "2001:db8::11"],
                 allow=["set_hostname", "raw_sockets", "mlock", "reserved_ports"],
                 cpuset=2, placement="dmap", securelevel=2, devfs_rsnum=4, ref=4, uref=3,
                 hostid=0x1234abcd),
        JailSpec(2, "vnetjail", b"/jails/vnetjail", host255, vnet=True,
                 allow=["raw_sockets"], cpuset=3, placement="kva", childmax=10,
                 enforce_statfs=1, devfs_rsnum=5, ref=3, uref=2, ifcnt=2, sockcnt=3),
        JailSpec(3, "vnetjail.child", b"/jails/vnetjail/jails/child", "child.vnetjail.example.org",
                 parent=2, cpuset=4, placement="dmap", ref=2, uref=1),
        JailSpec(4, "dying", b"/jails/caf\xc3\xa9/d\xfcrer", "dying.example.org",
                 persist=False, state="dying", cpuset=5, placement="kva-straddle"),
        JailSpec(5, "db", b"/jails/db", "db.example.org", ip4=["203.0.113.5"],
                 allow=["sysvipc"], cpuset=6, placement="dmap", ref=2, uref=1),
    ]
    if not vimage:
        jails[1] = replace(jails[1], vnet=False)
        dying_vnet_jail = False
    if network and dying_vnet_jail:
        # a VNET jail removed by the user, kept dying by a TIME_WAIT connection
        # whose credential still references it; its vnet is still on vnet_head
        jails.append(JailSpec(6, "oldvnet", b"/jails/oldvnet", "oldvnet.example.org", vnet=True,
                              persist=False, state="dying", cpuset=7, ref=1, uref=0,
                              allow=["raw_sockets"], arena="net", boot=False))
    from .netspec import default_network
    dying = network and dying_vnet_jail
    net = default_network(dying_vnet_jail=dying) if network else None
    if net is not None and not vimage:
        net = {0: net[0]}
    name = "default-dying-vnet" if dying else "default" if vimage else "default-novimage"
    return Scenario(name, 256 * MiB, jails, lastprid=6 if dying else 5, net=net)


def big(jails: int = 10000) -> Scenario:
    """A 64 GiB benchmark machine with ``jails`` jails (every 50th owns a VNET
    and has one child; every 97th is dying)."""
    specs: list[JailSpec] = []
    jid = 0
    cs = 2
    while len(specs) < jails:
        jid += 1
        owner = jid % 50 == 1
        n = jid
        ip4 = [f"198.18.{(n >> 8) & 255}.{n & 255}"] if not owner else []
        ip6 = [f"2001:db8:{n >> 16:x}:{n & 0xffff:x}::1"] if n % 7 == 0 and not owner else []
        specs.append(JailSpec(jid, f"j{jid}", f"/jails/j{jid}".encode(), f"j{jid}.bench.example",
                              vnet=owner, ip4=ip4, ip6=ip6, cpuset=cs,
                              state="dying" if jid % 97 == 0 else "alive",
                              persist=jid % 97 != 0, allow=["raw_sockets"] if owner else [],
                              childmax=5 if owner else 0))
        cs += 1
        if owner and len(specs) < jails:
            parent = jid
            jid += 1
            specs.append(JailSpec(jid, f"j{parent}.c", f"/jails/j{parent}/c".encode(),
                                  f"c.j{parent}.bench.example", parent=parent, cpuset=cs))
            cs += 1
    return Scenario(f"big{jails}", 64 * GiB, specs, msgbuf_fill=1.3, lastprid=jid)


def big_net(jails: int = 200, pcbs: int = 1_000_000, biggest: int = 500_000,
            ram_size: int = 16 * GiB) -> Scenario:
    """Network benchmark machine: ``jails`` VNET jails (each with lo0 and an
    epair B side moved in from vnet0), ``pcbs`` inpcbs in total, ``biggest`` of
    them in the first jail's stack."""
    from .netspec import big_network
    specs = [JailSpec(j, f"v{j}", f"/jails/v{j}".encode(), f"v{j}.bench.example", vnet=True,
                      cpuset=1 + j, allow=["raw_sockets"]) for j in range(1, jails + 1)]
    owners = [0] + [j.jid for j in specs]
    return Scenario(f"big_net{jails}", ram_size, specs, msgbuf_fill=1.1, lastprid=jails,
                    net=big_network(owners, pcbs, biggest))


# --------------------------------------------------------------------------------------

def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _hex(x: int | None) -> str | None:
    return None if x is None else f"{x & U64:#018x}"


def kernel_order_v4(addrs: list[str]) -> list[str]:
    if not addrs:
        return []
    rest = sorted(addrs[1:], key=lambda a: int(ipaddress.IPv4Address(a)))
    return [addrs[0]] + rest


def kernel_order_v6(addrs: list[str]) -> list[str]:
    if not addrs:
        return []
    rest = sorted(addrs[1:], key=lambda a: ipaddress.IPv6Address(a).packed)
    return [str(ipaddress.IPv6Address(addrs[0]))] + [str(ipaddress.IPv6Address(a)) for a in rest]


class Builder:
    """Creates the scenario's objects in a Machine."""

    def __init__(self, machine: Machine, scenario: Scenario, layout: str = ""):
        self.m = machine
        self.k = machine.kernel
        self.w = machine.writer
        self.s = scenario
        self.layout = layout
        self.truth: dict = {}
        # pointer width of the kernel (ELF class): 8, or 4 on i386
        self.ptr_size = getattr(self.k, "elfclass", 64) // 8
        self.ptr_mask = (1 << (8 * self.ptr_size)) - 1
        w = self.w
        self.features = {
            "pr_state": w.has_member("struct prison", "pr_state"),
            "pr_addrs": w.has_member("struct prison", "pr_addrs"),
            "pr_proclist": w.has_member("struct prison", "pr_proclist"),
            "vnet_shutdown": w.has_member("struct vnet", "vnet_shutdown"),
            "vnet_state": w.has_member("struct vnet", "vnet_state"),
            "pc_zpcpu_offset": w.has_member("struct pcpu", "pc_zpcpu_offset"),
        }
        self.vnet_magic = VNET_MAGIC_NEW if self.features["vnet_shutdown"] else VNET_MAGIC_OLD
        # options VIMAGE: net/vnet.c's vnet_head is there (without it VNET_DEFINE
        # variables are plain globals and no struct vnet exists)
        self.vimage = self.k.has_symbol("vnet_head")
        # names as the kernel's pr_flag_allow[] has them (what readers will print)
        self.kernel_allow = self._read_bool_flags("pr_flag_allow")
        self.allow_bits = dict(FALLBACK_ALLOW)
        self.allow_bits.update(self.kernel_allow)

    def _wp(self, va: int, value: int) -> None:
        """Store a pointer (or pointer-sized word) at ``va``."""
        if self.ptr_size == 8:
            self.m.write_u64(va, value)
        else:
            self.m.write(va, (value & self.ptr_mask).to_bytes(self.ptr_size, "little"))

    def _rp(self, va: int) -> int:
        return int.from_bytes(self.m.read(va, self.ptr_size), "little")

    # -- kernel static data -------------------------------------------------------------
    def _read_bool_flags(self, sym: str) -> dict[str, int]:
        if not self.k.has_symbol(sym):
            return {}
        try:
            s = self.k.symbol(sym)
            esz = self.w.sizeof("struct bool_flags")
            f_name = self.w.field("struct bool_flags", "name")
            f_flag = self.w.field("struct bool_flags", "flag")
        except (LookupError, KeyError, ValueError):
            return {}
        out = {}
        n = s.size // esz if s.size else 32
        for i in range(n):
            raw = self.k.read_image(s.value + i * esz, esz)
            flag = int.from_bytes(raw[f_flag.offset:f_flag.offset + f_flag.size], "little")
            ptr = int.from_bytes(raw[f_name.offset:f_name.offset + f_name.size], "little")
            if flag == 0 or ptr == 0:
                break
            try:
                name = self._image_cstring(ptr)
            except ValueError:
                continue
            out[name] = flag
        return out

    def _image_cstring(self, va: int) -> str:
        out = bytearray()
        while True:
            chunk = self.k.read_image(va + len(out), 1)
            if chunk == b"\0":
                return out.decode("latin-1")
            out += chunk
            if len(out) > 4096:
                raise ValueError("unterminated")

    def image_int(self, name: str, size: int = 4, signed: bool = True) -> int:
        raw = self.k.read_image(self.k.symbol_address(name), size)
        return int.from_bytes(raw, "little", signed=signed)

    # -- building ------------------------------------------------------------------------
    def build(self) -> dict:
        s, m, w = self.s, self.m, self.w
        jails = {j.jid: j for j in s.jails}
        for j in s.jails:
            if j.parent and j.parent not in jails:
                raise ValueError(f"jail {j.jid}: unknown parent {j.parent}")
        if s.net or any(j.arena for j in s.jails):
            m.open_arena("net")
        self.net_counts = {}
        from .netspec import stack_counts
        for jid, st in (s.net or {}).items():
            self.net_counts[jid] = stack_counts(st)
        self.osrelease = self.k.read_cstring("osrelease").decode()
        self.osreldate = self.image_int("osreldate")
        self.version = self.k.read_cstring("version")

        self._build_pcpu()
        cpusets = self._build_cpusets()
        self.prison0 = self.k.symbol_address("prison0")
        addrs = {0: self.prison0}
        # allocate prisons
        size = w.sizeof("struct prison")
        name_off = w.offsetof("struct prison", "pr_path")
        for j in s.jails:
            if j.arena:
                addrs[j.jid] = m.alloc(size, "dmap", align=16, arena=j.arena)
            elif j.placement == "dmap":
                addrs[j.jid] = m.alloc(size, "dmap", align=16)
            elif j.placement == "kva":
                addrs[j.jid] = m.alloc(size, "kva")
            elif j.placement == "kva-straddle":
                # pr_path starts 6 bytes before a page boundary
                po = (PAGE_SIZE - 6 - name_off) % PAGE_SIZE
                po &= ~7
                addrs[j.jid] = m.alloc(size, "kva", page_offset=po)
            else:
                raise ValueError(j.placement)
        self.addrs = addrs
        vnets = self._build_vnets(addrs) if self.vimage else self._no_vnets()
        jail_vnet = {0: vnets[0]["address"] if vnets else None}
        for j in s.jails:  # parents precede children in JID order
            if j.vnet:
                jail_vnet[j.jid] = vnets[j.jid]["address"]
            else:
                jail_vnet[j.jid] = jail_vnet[j.parent]
        self.jail_vnet = jail_vnet

        # children lists, newest first (LIST_INSERT_HEAD)
        children: dict[int, list[int]] = {0: []}
        for j in s.jails:
            children.setdefault(j.jid, [])
            children[j.parent].insert(0, j.jid)
        desc: dict[int, int] = {0: 0}
        for j in s.jails:
            desc.setdefault(j.jid, 0)
            p = j.parent
            while True:
                desc[p] = desc.get(p, 0) + 1
                if p == 0:
                    break
                p = jails[p].parent
        truth_jails = []
        all_allow = 0
        for v in (self.kernel_allow or self.allow_bits).values():
            all_allow |= v
        p0 = JailSpec(0, "0", b"/", s.hostname, parent=-1, vnet=True, cpuset=1,
                      securelevel=-1, enforce_statfs=0, devfs_rsnum=0, childmax=999999,
                      persist=True, ref=150, uref=150)
        truth_p0 = self._write_prison(p0, addrs, children, desc, cpusets, allow_value=all_allow,
                                      flags=PR_HOST | PR_VNET if self.vimage else PR_HOST)
        for j in s.jails:
            truth_jails.append(self._write_prison(j, addrs, children, desc, cpusets))
        # allprison TAILQ in ascending JID order
        order = sorted(j.jid for j in s.jails)
        head = self.k.symbol_address("allprison")
        f_first = w.global_field_address("allprison", "tqh_first")
        f_last = w.global_field_address("allprison", "tqh_last")
        nextoff = w.offsetof("struct prison", "pr_list.tqe_next")
        prevoff = w.offsetof("struct prison", "pr_list.tqe_prev")
        prev_next_ptr = f_first
        for jid in order:
            a = addrs[jid]
            self._wp(prev_next_ptr, a)
            self._wp(a + prevoff, prev_next_ptr)
            prev_next_ptr = a + nextoff
        self._wp(prev_next_ptr, 0)
        self._wp(f_last, prev_next_ptr)
        w.write_global("lastprid", s.lastprid if s.lastprid is not None else max(order, default=0))

        self._build_misc()
        msg = self._build_msgbuf()
        network = None
        if s.net:
            from .network import NetBuilder
            self.netbuilder = NetBuilder(self, s.net)
            network = self.netbuilder.build()
            self.netbuilder.finish()

        by_jid = {t["jid"]: t for t in truth_jails}
        self.truth = {
            "layout": self.layout,
            "features": self.features,
            "prison0": truth_p0,
            "allprison_address": _hex(head),
            "jails": [by_jid[j] for j in order],
            "lastprid": s.lastprid if s.lastprid is not None else max(order, default=0),
            "vnets": [vnets[k] for k in self.vnet_order if k in vnets],
            "vnet_head_address": _hex(self.k.symbol_address("vnet_head")) if self.vimage
            else None,
            "vnet0": vnets[0]["address"] if vnets else None,
            "vnet_magic_expected": self.vnet_magic,
            "cpusets": [{"id": cid, "address": _hex(a)} for cid, a in sorted(cpusets.items())],
            "pcpu": self.pcpu_truth,
            "mp_maxid": s.ncpus - 1,
            "mp_ncpus": s.ncpus,
            "panic_string": s.panic,
            "panicstr_address": _hex(self.panicstr_va),
            "dumptid": s.dumptid,
            "hostname": s.hostname,
            "version": self.version.decode("latin-1"),
            "ostype": self.k.read_cstring("ostype").decode(),
            "osrelease": self.osrelease,
            "osreldate": self.osreldate,
            "dumptime": s.dumptime,
            "msgbuf": msg,
            "kpml4phys": _hex(m.kpml4phys),
        }
        if network is not None:
            self.truth["network"] = network
            self._refresh_vnet_vars()
        return self.truth

    def _refresh_vnet_vars(self):
        """VNET variables the network builder filled: ground truth shows what
        is in memory now (values, and heads no longer empty)."""
        for v in self.truth["vnets"]:
            for name, e in v["vars"].items():
                a = int(e["address"], 16)
                if "value" in e:
                    size = e["size"] if e["size"] in (4, 8) else 4
                    e["value"] = int.from_bytes(self.m.read(a, size), "little")
                if "empty_queue_head" in e and self._rp(a) != 0:
                    del e["empty_queue_head"]
                    e["queue_head_first"] = _hex(self._rp(a))

    def _build_pcpu(self):
        s, m, w = self.s, self.m, self.w
        k = self.k
        psize = w.sizeof("struct pcpu")
        start = k.symbol_address("__start_set_pcpu") if k.has_symbol("__start_set_pcpu") else None
        stop = k.symbol_address("__stop_set_pcpu") if k.has_symbol("__stop_set_pcpu") else None
        tmpl = k.read_image(start, stop - start) if start is not None and stop > start else b""
        # struct pcpu areas (one KVA allocation, like the amd64 __pcpu pages)
        if k.has_symbol("__pcpu") and k.symbol("__pcpu").size >= psize * s.ncpus:
            pcpu_base = k.symbol_address("__pcpu")
        else:
            pcpu_base = m.alloc(psize * s.ncpus, "kva")
        self.pcpu_truth = []
        for cpu in range(s.ncpus):
            pc = pcpu_base + cpu * psize
            if start is not None:
                if cpu == 0 and m.dpcpu0_pa is not None:
                    area = KERNBASE + m.dpcpu0_pa
                else:
                    area = m.alloc(max(len(tmpl), 1), "kva")
                if tmpl:
                    m.write(area, tmpl)
                off = (area - start) & self.ptr_mask
            else:
                area, off = None, 0
            fields = {"pc_cpuid": cpu}
            if w.has_member("struct pcpu", "pc_dynamic"):
                fields["pc_dynamic"] = off
            if w.has_member("struct pcpu", "pc_prvspace"):
                fields["pc_prvspace"] = pc
            if self.features["pc_zpcpu_offset"]:
                fields["pc_zpcpu_offset"] = cpu * PAGE_SIZE  # zpcpu_offset_cpu(): UMA_PCPU_ALLOC_SIZE * cpu
            w.write_struct(pc, "struct pcpu", fields)
            self._wp(w.global_field_address("cpuid_to_pcpu", f"[{cpu}]"), pc)
            self._wp(w.global_field_address("dpcpu_off", f"[{cpu}]"), off)
            self.pcpu_truth.append({"cpu": cpu, "address": _hex(pc), "dpcpu_area": _hex(area),
                                    "dpcpu_off": _hex(off),
                                    "zpcpu_offset": cpu * PAGE_SIZE if self.features["pc_zpcpu_offset"] else None})
        w.write_global("mp_maxid", s.ncpus - 1)
        w.write_global("mp_ncpus", s.ncpus)

    def _build_cpusets(self) -> dict[int, int]:
        s, m, w = self.s, self.m, self.w
        ids = sorted({1} | {j.cpuset for j in s.jails if j.cpuset and not j.arena})
        late = sorted({j.cpuset for j in s.jails if j.cpuset and j.arena} - set(ids))
        size = w.sizeof("struct cpuset")
        out = {}
        mask = (1 << s.ncpus) - 1
        mask_path = None
        for cand in ("cs_mask.__bits[0]", "cs_mask"):
            if w.has_member("struct cpuset", cand):
                mask_path = cand
                break
        for cid in ids:
            a = m.alloc(size, "dmap", align=64)
            fields = {"cs_id": cid}
            if w.has_member("struct cpuset", "cs_ref"):
                fields["cs_ref"] = 2
            if mask_path == "cs_mask.__bits[0]":
                fields[mask_path] = mask
            if cid != 1 and w.has_member("struct cpuset", "cs_parent"):
                fields["cs_parent"] = out[1]
            w.write_struct(a, "struct cpuset", fields)
            out[cid] = a
        for cid in late:   # cpusets of jails in the second arena
            a = m.alloc(size, "dmap", align=64, arena="net")
            fields = {"cs_id": cid}
            if w.has_member("struct cpuset", "cs_ref"):
                fields["cs_ref"] = 1
            if mask_path == "cs_mask.__bits[0]":
                fields[mask_path] = mask
            if w.has_member("struct cpuset", "cs_parent"):
                fields["cs_parent"] = out[1]
            w.write_struct(a, "struct cpuset", fields)
            out[cid] = a
        return out

    def _no_vnets(self) -> dict[int, dict]:
        """A kernel without VIMAGE: no struct vnet; the host's stack is the plain
        globals (base 0: NetBuilder.vnet_var reads the symbols themselves) and every
        if_vnet / so_vnet / ipi_vnet / pr_vnet is curvnet, NULL."""
        bad = [j.jid for j in self.s.jails if j.vnet]
        if bad:
            raise ValueError(f"jails {bad} want a vnet, but the kernel has no VIMAGE")
        self.vnet_bases = {0: 0}
        self.vnet_vas = {0: 0}
        self.vnet_order = [0]
        return {}

    def _build_vnets(self, addrs) -> dict[int, dict]:
        s, m, w, k = self.s, self.m, self.w, self.k
        start = k.symbol_address("__start_set_vnet")
        stop = k.symbol_address("__stop_set_vnet")
        tmpl = k.read_image(start, stop - start)
        vsize = w.sizeof("struct vnet")
        state = k.enumerator("enum sysinit_sub_id", "SI_SUB_VNET_DONE", SI_SUB_VNET_DONE_FALLBACK)
        vars_ = [sy for sy in k.symbols_with_prefix("vnet_entry_") if start <= sy.value < stop]
        owners = [0] + [j.jid for j in s.jails if j.vnet]
        arenas = {j.jid: j.arena for j in s.jails}
        out = {}
        self.vnet_bases: dict[int, int] = {}
        self.vnet_vas: dict[int, int] = {}
        for idx, jid in enumerate(owners):
            va = m.alloc(vsize, "dmap", align=64, arena=arenas.get(jid))
            dsize = round_page(len(tmpl)) if len(tmpl) > PAGE_SIZE // 2 else max(len(tmpl), 16)
            mem = m.alloc(dsize, "kva" if dsize > PAGE_SIZE // 2 else "dmap", arena=arenas.get(jid))
            m.write(mem, tmpl)
            base = (mem - start) & self.ptr_mask
            self.vnet_bases[jid] = base
            self.vnet_vas[jid] = va
            vt = {}
            for sy in vars_:
                copy = (base + sy.value) & self.ptr_mask
                entry = {"template": _hex(sy.value), "address": _hex(copy), "size": sy.size}
                t = k.variable_type(sy.name)
                kind = None
                if t is not None:
                    from drgn import TypeKind
                    ut = t.unaliased()
                    kind = ut.kind
                    if kind == TypeKind.INT and ut.size in (4, 8):
                        v = int.from_bytes(tmpl[sy.value - start:sy.value - start + ut.size], "little")
                        v = v + 100 * (idx + 1)
                        m.write(copy, v.to_bytes(ut.size, "little"))
                        entry["value"] = v
                    elif kind == TypeKind.STRUCT:
                        # empty (CK_)(S)TAILQ head in this vnet's copy:
                        # *_last = &*_first, as TAILQ_INIT/STAILQ_INIT leave it
                        from drgn import offsetof
                        for pre in ("tqh", "stqh", "cstqh"):
                            if ut.has_member(pre + "_first") and ut.has_member(pre + "_last"):
                                fo = offsetof(ut, pre + "_first")
                                lo = offsetof(ut, pre + "_last")
                                self._wp(copy + fo, 0)
                                self._wp(copy + lo, copy + fo)
                                entry["empty_queue_head"] = pre
                                break
                vt[sy.name] = entry
            if jid == 0:
                ifcnt, sockcnt = s.vnet0_ifcnt, s.vnet0_sockcnt
            else:
                j = next(x for x in s.jails if x.jid == jid)
                ifcnt, sockcnt = j.ifcnt, j.sockcnt
            if jid in self.net_counts:   # consistent with the network objects
                ifcnt, sockcnt = self.net_counts[jid]
            fields = {"vnet_magic_n": self.vnet_magic, "vnet_ifcnt": ifcnt,
                      "vnet_sockcnt": sockcnt, "vnet_data_mem": mem, "vnet_data_base": base}
            if self.features["vnet_state"]:
                fields["vnet_state"] = state
            if self.features["vnet_shutdown"]:
                fields["vnet_shutdown"] = 0
            w.write_struct(va, "struct vnet", fields)
            out[jid] = {"address": _hex(va), "owner_jid": jid, "magic": self.vnet_magic,
                        "ifcnt": ifcnt, "sockcnt": sockcnt,
                        "state": state if self.features["vnet_state"] else None,
                        "state_name": "SI_SUB_VNET_DONE" if self.features["vnet_state"] else None,
                        "shutdown": False if self.features["vnet_shutdown"] else None,
                        "data_mem": _hex(mem), "data_base": _hex(base), "data_size": dsize,
                        "vars": vt, "_va": va}
        # vnet_head: LIST_INSERT_HEAD in creation order => newest first
        order = list(reversed(owners))
        self.vnet_order = order
        head_first = w.global_field_address("vnet_head", "lh_first")
        nextoff = w.offsetof("struct vnet", "vnet_le.le_next")
        prevoff = w.offsetof("struct vnet", "vnet_le.le_prev")
        prev = head_first
        for jid in order:
            va = out[jid]["_va"]
            self._wp(prev, va)
            self._wp(va + prevoff, prev)
            prev = va + nextoff
        self._wp(prev, 0)
        w.write_global("vnet0", out[0]["_va"])
        for v in out.values():
            del v["_va"]
        return out

    def _prison_ips(self, j: JailSpec) -> dict:
        """Write address objects; return struct prison fields and truth."""
        m, w = self.m, self.w
        ip4 = kernel_order_v4(j.ip4)
        ip6 = kernel_order_v6(j.ip6)
        fields = {}
        t = {"ip4": ip4, "ip6": ip6, "ip4_object": None, "ip6_object": None}
        raw4 = b"".join(ipaddress.IPv4Address(a).packed for a in ip4)
        raw6 = b"".join(ipaddress.IPv6Address(a).packed for a in ip6)
        if self.features["pr_addrs"]:
            hdr = w.offsetof("struct prison_ip", "pr_ip")
            for idx, (raw, n, key) in enumerate(((raw4, len(ip4), "ip4_object"),
                                                 (raw6, len(ip6), "ip6_object"))):
                if not n:
                    continue
                a = m.alloc(hdr + len(raw), "dmap", align=16)
                w.write_struct(a, "struct prison_ip", {"ips": n, "pr_ip": raw})
                fields[f"pr_addrs[{idx}]"] = a
                t[key] = _hex(a)
        else:
            if ip4:
                a = m.alloc(len(raw4), "dmap", align=16)
                m.write(a, raw4)
                fields["pr_ip4"] = a
                t["ip4_object"] = _hex(a)
            if ip6:
                a = m.alloc(len(raw6), "dmap", align=16)
                m.write(a, raw6)
                fields["pr_ip6"] = a
                t["ip6_object"] = _hex(a)
            fields["pr_ip4s"] = len(ip4)
            fields["pr_ip6s"] = len(ip6)
        return fields, t

    def _write_prison(self, j: JailSpec, addrs, children, desc, cpusets, *,
                      allow_value: int | None = None, flags: int | None = None) -> dict:
        w = self.w
        a = addrs[j.jid]
        if flags is None:
            flags = PR_HOST
            if j.persist:
                flags |= PR_PERSIST
            if j.vnet:
                flags |= PR_VNET
            if j.ip4:
                flags |= PR_IP4_USER | PR_IP4
            if j.ip6:
                flags |= PR_IP6_USER | PR_IP6
        if allow_value is None:
            allow_value = 0
            for name in j.allow:
                key = name if name.startswith("allow.") else "allow." + name
                if key not in self.allow_bits:
                    raise KeyError(f"kernel has no {key}")
                allow_value |= self.allow_bits[key]
        dying = j.state == "dying"
        ref = j.ref if j.ref is not None else (1 if dying else 2)
        uref = j.uref if j.uref is not None else (0 if dying else 1)
        if dying:
            uref = 0
        ipf, ipt = self._prison_ips(j) if j.jid else ({}, {"ip4": [], "ip6": [], "ip4_object": None,
                                                           "ip6_object": None})
        kids = children.get(j.jid, [])
        fields = {
            "pr_id": j.jid, "pr_ref": ref, "pr_uref": uref, "pr_flags": flags,
            "pr_children.lh_first": addrs[kids[0]] if kids else 0,
            "pr_parent": addrs[j.parent] if j.jid else 0,
            "pr_cpuset": cpusets[j.cpuset] if j.cpuset else 0,
            "pr_vnet": int(self.jail_vnet[j.jid], 16) if self.jail_vnet[j.jid] else 0,
            "pr_childcount": desc.get(j.jid, 0), "pr_childmax": j.childmax,
            "pr_allow": allow_value, "pr_securelevel": j.securelevel,
            "pr_enforce_statfs": j.enforce_statfs, "pr_devfs_rsnum": j.devfs_rsnum,
            "pr_osreldate": self.osreldate, "pr_hostid": j.hostid,
            "pr_name": j.name.encode(), "pr_path": j.path, "pr_hostname": j.hostname.encode(),
            "pr_domainname": j.domainname.encode(), "pr_hostuuid": HOSTUUID0.encode(),
            "pr_osrelease": self.osrelease.encode(),
        }
        fields.update(ipf)
        if self.features["pr_state"]:
            fields["pr_state"] = "PRISON_STATE_DYING" if dying else "PRISON_STATE_ALIVE"
        if j.jid:
            # pr_sibling in the parent's children list
            sibs = children[j.parent]
            i = sibs.index(j.jid)
            fields["pr_sibling.le_next"] = addrs[sibs[i + 1]] if i + 1 < len(sibs) else 0
            if i == 0:
                parent_head = addrs[j.parent] + w.offsetof("struct prison", "pr_children.lh_first")
                fields["pr_sibling.le_prev"] = parent_head
            else:
                fields["pr_sibling.le_prev"] = addrs[sibs[i - 1]] + w.offsetof(
                    "struct prison", "pr_sibling.le_next")
        w.write_struct(a, "struct prison", fields, zero=bool(j.jid))
        vnet_addr = self.jail_vnet[j.jid]
        owner = self.vimage and (j.jid == 0 or j.vnet)
        return {
            "address": _hex(a), "jid": j.jid, "name": j.name,
            "path_b64": _b64(j.path),
            "path_text": j.path.decode("utf-8", "backslashreplace"),
            "hostname": j.hostname, "domainname": j.domainname, "hostuuid": HOSTUUID0,
            "hostid": j.hostid,
            "parent": j.parent if j.jid else None,
            "parent_address": _hex(addrs[j.parent]) if j.jid else None,
            "state": j.state, "ref": ref, "uref": uref,
            "cpusetid": j.cpuset, "cpuset_address": _hex(cpusets[j.cpuset]) if j.cpuset else None,
            "ip4": ipt["ip4"], "ip6": ipt["ip6"],
            "ip4_object": ipt["ip4_object"], "ip6_object": ipt["ip6_object"],
            "flags": flags, "flag_names": [n for b, n in PR_FLAG_NAMES if flags & b],
            "allow": allow_value,
            "allow_names": sorted(n for n, b in (self.kernel_allow or self.allow_bits).items()
                                  if allow_value & b),
            "vnet": vnet_addr, "vnet_owner": owner,
            "securelevel": j.securelevel, "enforce_statfs": j.enforce_statfs,
            "devfs_rsnum": j.devfs_rsnum, "childcount": desc.get(j.jid, 0),
            "childmax": j.childmax, "children": kids,
            "osrelease": self.osrelease, "osreldate": self.osreldate,
            "placement": "global" if j.jid == 0 else j.placement,
        }

    def _build_misc(self):
        m, w, s = self.m, self.w, self.s
        ps = s.panic.encode() + b"\0"
        self.panicstr_va = m.alloc(256, "dmap", align=16)
        m.write(self.panicstr_va, ps)
        w.write_global("panicstr", self.panicstr_va)
        w.write_global("dumptid", s.dumptid)
        if self.k.has_symbol("KPML4phys"):   # amd64 only (other arches: archmachine)
            w.write_global("KPML4phys", m.kpml4phys)
        if self.k.has_symbol("dumping"):
            w.write_global("dumping", 1)

    def _build_msgbuf(self) -> dict:
        m, w = self.m, self.w
        msz = w.sizeof("struct msgbuf")
        region_va = m.dmap(m.msgbuf_pa)
        size = m.msgbuf_region_size - msz
        hdr_va = region_va + size
        stream = make_msgbuf_stream(self, size)
        wseq = len(stream)
        seqmod = size * 16
        assert wseq < seqmod
        ring = bytearray(size)
        # last `size` bytes of the stream, each at position seq % size
        tail_start = max(0, wseq - size)
        for seq in range(tail_start, wseq):
            ring[seq % size] = stream[seq]
        m.write(region_va, bytes(ring))
        cksum = sum(ring) & 0xFFFFFFFF
        fields = {"msg_ptr": region_va, "msg_magic": MSG_MAGIC, "msg_size": size,
                  "msg_wseq": wseq % seqmod, "msg_rseq": wseq % seqmod, "msg_cksum": cksum,
                  "msg_seqmod": seqmod, "msg_lastpri": -1, "msg_flags": 0}
        fields = {k: v for k, v in fields.items() if w.has_member("struct msgbuf", k)}
        w.write_struct(hdr_va, "struct msgbuf", fields)
        w.write_global("msgbufp", hdr_va)
        self.msg_size = size
        self.msgbuf_ring = bytes(ring)
        text = bytes(stream[tail_start:])
        return {"address": _hex(hdr_va), "ring_address": _hex(region_va), "size": size,
                "wseq": wseq % seqmod, "rseq": wseq % seqmod, "seqmod": seqmod,
                "wrapped": wseq > size, "cksum": cksum,
                "text": text.decode("latin-1")}


BOOT_LINES = """---<<BOOT>>---
Copyright (c) 1992-2023 The FreeBSD Project.
Copyright (c) 1979, 1980, 1983, 1986, 1988, 1989, 1991, 1992, 1993, 1994
\tThe Regents of the University of California. All rights reserved.
FreeBSD is a registered trademark of The FreeBSD Foundation.
{version}VT(vga): text 80x25
CPU: QEMU Virtual CPU version 2.5+ (2394.45-MHz K8-class CPU)
  Origin="GenuineIntel"  Id=0x663  Family=0x6  Model=0x6  Stepping=3
real memory  = {ram} ({ram_mb} MB)
avail memory = {avail} ({avail_mb} MB)
Event timer "LAPIC" quality 100
ACPI APIC Table: <BOCHS  BXPC    >
FreeBSD/SMP: Multiprocessor System Detected: {ncpus} CPUs
random: unblocking device.
ioapic0 <Version 1.1> irqs 0-23
Launching APs: 1
ACPI: Enabled 2 GPE blocks
vtnet0: <VirtIO Networking Adapter> on virtio_pci0
vtnet0: Ethernet address: 52:54:00:12:34:56
ada0 at ata0 bus 0 scbus0 target 0 lun 0
ada0: <QEMU HARDDISK 2.5+> ATA-7 device
Trying to mount root from ufs:/dev/ada0p2 [rw]...
Setting hostuuid: 5a1a3d6c-0000-4000-8000-00000000c0de.
Setting hostid: 0x2b8e1f42.
Starting file system checks:
/dev/ada0p2: FILE SYSTEM CLEAN; SKIPPING CHECKS
Setting hostname: {hostname}.
vtnet0: link state changed to UP
Starting jails:
"""


def make_msgbuf_stream(builder: Builder, size: int) -> bytearray:
    s = builder.s
    ver = builder.version.decode("latin-1")
    if not ver.endswith("\n"):
        ver += "\n"
    avail = s.ram_size - 24 * MiB
    out = bytearray(BOOT_LINES.format(version=ver, ram=s.ram_size, ram_mb=s.ram_size // MiB,
                                      avail=avail, avail_mb=avail // MiB, ncpus=s.ncpus,
                                      hostname=s.hostname).encode())
    boot = [j for j in s.jails if j.boot]
    for j in boot[:50]:
        out += f" {j.name}".encode()
    out += b".\n"
    epair = 0
    for j in boot[:200]:
        if j.vnet:
            out += (f"epair{epair}a: Ethernet address: 02:{epair:02x}:00:00:00:0a\n"
                    f"epair{epair}b: Ethernet address: 02:{epair:02x}:00:00:00:0b\n"
                    f"epair{epair}a: link state changed to UP\n"
                    f"epair{epair}b: link state changed to UP\n").encode()
            epair += 1
    target = int(size * s.msgbuf_fill)
    tail = (f"panic: {s.panic}\n"
            "cpuid = 1\n"
            f"time = {s.dumptime - 12}\n"
            "KDB: stack backtrace:\n"
            "#0 0xffffffff80b9f6ad at kdb_backtrace+0x5d\n"
            "#1 0xffffffff80b52f12 at vpanic+0x132\n"
            "#2 0xffffffff80b52dd3 at panic+0x43\n"
            "#3 0xffffffff80b1b6a9 at sysctl_debug_kdb_panic+0x29\n"
            "#4 0xffffffff80ae27c1 at sysctl_root_handler_locked+0x91\n"
            "#5 0xffffffff80ae1c14 at sysctl_root+0x244\n"
            "#6 0xffffffff80ae2d23 at userland_sysctl+0x173\n"
            "#7 0xffffffff80ae2b4c at sys___sysctl+0x5c\n"
            "#8 0xffffffff810251e9 at amd64_syscall+0x109\n"
            "#9 0xffffffff80ffc8cb at fast_syscall_common+0xf8\n"
            "Uptime: 3d4h5m6s\n"
            f"Dumping {s.ram_size // MiB // 8} out of {s.ram_size // MiB - 17} MB:"
            "..2%..11%..21%..31%..41%..51%..61%..71%..81%..91%\n").encode()
    n = 0
    while len(out) + len(tail) < target:
        n += 1
        j = boot[n % len(boot)] if boot else None
        jid = j.jid if j else 0
        pid = 1000 + n * 7
        if n % 3 == 0:
            line = f"pid {pid} (httpd), jid {jid}, uid 80: exited on signal 11 (core dumped)\n"
        elif n % 3 == 1:
            line = f"sonewconn: pcb 0xfffff80003{n & 0xffff:04x}00 (0.0.0.0:80 (proto 6)): Listen queue overflow: 193 already in queue awaiting acceptance ({n} occurrences), euid 80, rgid 80, jail {jid}\n"
        else:
            line = f"<6>arp: 192.0.2.{n % 250 + 1} moved from 52:54:00:00:{n >> 8 & 255:02x}:{n & 255:02x} to 52:54:00:01:{n >> 8 & 255:02x}:{n & 255:02x} on vtnet0\n"
        out += line.encode()
    out += tail
    return out
