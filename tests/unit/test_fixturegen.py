"""The fixture writer's own consistency (tests/fixturegen, not vnetdbg).

- page tables translate what the writer wrote;
- the minidump file, read back by a tiny independent reader and by drgn with
  the kernel's DWARF, shows the scenario recorded in ground-truth.json;
- corruption knobs do what they say;
- regeneration is deterministic and the committed fixtures are current.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixturegen import CORRUPTIONS, build_vmcore, scenario
from tests.fixturegen.info import build_kerneldumpheader, kerneldump_parity
from tests.fixturegen.pagetables import (PG_A, PG_M, PG_NX, PG_RW, PageTables)
from tests.fixturegen.physmem import FrameAllocator, PhysMem, default_segments
from tests.fixturegen.verify import MiniReader

ROOT = Path(__file__).resolve().parents[2]
VMCORES = ROOT / "fixtures" / "vmcores"
COMMITTED = {"amd64-fbsd12": ("fbsd12", 2), "amd64-fbsd13": ("fbsd13", 3),
             "amd64-fbsd14": ("fbsd14", 3)}


def kernel_dir(name: str = "amd64-fbsd14") -> Path:
    d = VMCORES / name
    if not (d / "kernel").exists() or not (d / "kernel.debug").exists():
        pytest.skip(f"no committed fixture kernel in {d}")
    return d


def _layout_copy(tmp_path, name="amd64-fbsd14") -> str:
    """Committed kernel + kernel.debug in a private directory."""
    src = kernel_dir(name)
    dst = tmp_path / COMMITTED[name][0]
    dst.mkdir()
    for f in ("kernel", "kernel.debug"):
        shutil.copyfile(src / f, dst / f)
    return str(dst)


# -- generic parts ---------------------------------------------------------------------

def test_segments_have_holes():
    small = default_segments(256 << 20)
    assert small == [(0x1000, 0x9F000), (0x100000, 0x0FFE0000)]
    big = default_segments(64 << 30)
    assert big[1][1] == 0xBFEE0000 and big[2][0] == 1 << 32
    assert big[2][1] - big[2][0] + 0xBFEE0000 == 64 << 30


def test_pagetables_translate_and_flags():
    mem = PhysMem([(0x1000, 0x9F000), (0x100000, 64 << 20)])
    fa = FrameAllocator(mem, 0x100000)
    pt = PageTables(mem, fa.alloc_low)
    pt.map_4k(0xFFFFFE0000001000, 0x345000, PG_RW | PG_A | PG_M | PG_NX)
    pt.map_2m(0xFFFFFFFF80200000, 0x200000)
    pt.map_1g(0xFFFFF80040000000, 0x40000000)
    assert pt.translate(0xFFFFFE0000001abc) == (0x345ABC, "4k", 4096)
    assert pt.translate(0xFFFFFFFF80212345) == (0x212345, "2m", 1 << 21)
    assert pt.translate(0xFFFFF80040001234) == (0x40001234, "1g", 1 << 30)
    assert pt.translate(0xFFFFFE0000002000) is None
    pte = pt.walk(0xFFFFFE0000001000)["pte"]
    assert pte >> 63 == 1 and pte & PG_A and pte & PG_M      # readers must mask
    # the tables live in the simulated RAM
    assert mem.read_u64(pt.pml4 + 8 * 508) & 1


def test_frame_allocator_non_contiguous_high():
    mem = PhysMem([(0x1000, 0x9F000), (0x100000, 16 << 20)])
    fa = FrameAllocator(mem, 0x100000)
    a, b = fa.alloc_high(stride=2), fa.alloc_high(stride=2)
    assert abs(a - b) > 4096
    lo = fa.alloc_low(3)
    assert lo == 0x100000 and fa.alloc_low() == 0x103000


def test_kerneldumpheader_parity_and_fields():
    h = build_kerneldumpheader(dumplength=123 << 12, dumptime=1700000000,
                               hostname=b"h" * 80, versionstring=b"v" * 300,
                               panicstring=b"boom")
    assert len(h) == 512 and kerneldump_parity(h) == 0
    assert h[:20] == b"FreeBSD Kernel Dump\0"
    assert struct.unpack_from(">II", h, 32) == (4, 2)
    assert struct.unpack_from(">QQ", h, 40) == (123 << 12, 1700000000)
    assert h[64 + 63] == 0 and h[128 + 190] == ord("\n") and h[128 + 191] == 0
    assert struct.unpack_from(">Q", h, 496)[0] == 123 << 12


# -- whole machine ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def fbsd14_builds(tmp_path_factory):
    """v1, v2 and v3 dumps of the default machine on the committed fbsd14 kernel."""
    tmp = tmp_path_factory.mktemp("fg")
    layout = _layout_copy(tmp)
    out = {}
    for v in (1, 2, 3):
        d = tmp / f"v{v}"
        out[v] = (d, build_vmcore(layout, str(d), dump_version=v, layout="fbsd14"))
    return out


@pytest.mark.parametrize("version", [1, 2, 3])
def test_dump_reads_back(fbsd14_builds, version):
    d, truth = fbsd14_builds[version]
    m = truth["_machine"]
    rd = MiniReader(str(d / "vmcore.0"))
    assert rd.version == version
    assert rd.kernbase == (0xFFFFFFFF80000000 if version == 1 else 0xFFFFFE0000000000)
    assert rd.npages == truth["dump"]["present_pages"]
    assert os.path.getsize(d / "vmcore.0") == truth["dump"]["size"] == rd.sparse_off + rd.npages * 4096
    kinds = set()
    for f in truth["translation_facts"]:
        va = int(f["va"], 16)
        assert rd.kva_to_pa(va) == int(f["pa"], 16), f
        assert rd.va_offset(va) == f["file_offset"], f
        kinds.add(f["kind"])
    assert {"dmap", "kernel-2m", "kva-4k"} <= kinds
    assert 15 <= len(truth["translation_facts"]) <= 20
    for a in truth["absent_facts"]:
        assert rd.read(int(a["va"], 16), 8) is None
    # every prison reads back byte-identical to the machine's memory
    size = m.writer.sizeof("struct prison")
    for j in truth["jails"] + [truth["prison0"]]:
        a = int(j["address"], 16)
        assert rd.read(a, size) == m.read(a, size)
    # msgbuf region: ring bytes; ordered text matches ground truth
    ring = rd.msgbuf_ring()
    mb = truth["msgbuf"]
    assert len(ring) == mb["size"] == rd.msgbufsize
    w = mb["wseq"] % mb["size"]
    assert (ring[w:] + ring[:w]).decode("latin-1") == mb["text"]
    assert mb["wrapped"] and "panic: vnetdbg fixture panic\n" in mb["text"]
    # info.0 agrees with the dump
    info = (d / "info.0").read_text()
    assert f"  Dump Length: {truth['dump']['size']}\n" in info
    assert "  Hostname: crashbox.example.org\n" in info


def test_pages_outside_dump_avail_never_dumped(fbsd14_builds):
    d, truth = fbsd14_builds[3]
    rd = MiniReader(str(d / "vmcore.0"))
    assert rd.dump_avail == [(int(a, 16), int(b, 16)) for a, b in truth["dump"]["dump_avail"]]
    lay = truth["_layout"]
    for pa in lay.pages:
        assert any(a <= pa < b for a, b in rd.dump_avail)
    assert 0 not in lay.pages and 0xA0000 not in lay.pages


def test_objects_straddle_noncontiguous_frames(fbsd14_builds):
    _, truth = fbsd14_builds[3]
    m = truth["_machine"]
    j = next(j for j in truth["jails"] if j["placement"] == "kva-straddle")
    a = int(j["address"], 16)
    path_va = a + m.writer.offsetof("struct prison", "pr_path")
    first_pa = m.translate(path_va)
    second_pa = m.translate((path_va | 0xFFF) + 1)
    assert (path_va & 0xFFF) + len(base64.b64decode(j["path_b64"])) > 0x1000
    assert second_pa != (first_pa | 0xFFF) + 1
    placements = {j["placement"] for j in truth["jails"]}
    assert {"dmap", "kva", "kva-straddle"} <= placements


def _drgn_program(kdir: str, reader: MiniReader):
    drgn = pytest.importorskip("drgn")
    from drgn import Architecture, FaultError, Platform, PlatformFlags

    prog = drgn.Program(Platform(Architecture.X86_64,
                                 PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN))

    def read(address, count, offset, physical):
        data = reader.read(address, count)
        if data is None:
            raise FaultError("absent", address)
        return data

    prog.add_memory_segment(0xFFFF800000000000, 1 << 47, read)
    mod = prog.extra_module("kernel", create=True)
    mod.address_ranges = [(0xFFFFFFFF80200000, 0xFFFFFFFF80200000 + (64 << 20))]
    mod.try_file(os.path.join(kdir, "kernel"))
    mod.try_file(os.path.join(kdir, "kernel.debug"))
    return prog


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_fixture_matches_truth_via_drgn(name):
    """Walk the committed dump with drgn + DWARF (not the writer's ObjectWriter)."""
    kdir = kernel_dir(name)
    truth = json.loads((kdir / "ground-truth.json").read_text())
    rd = MiniReader(str(kdir / "vmcore.0"))
    assert rd.version == COMMITTED[name][1] == truth["dump"]["version"]
    prog = _drgn_program(str(kdir), rd)
    feats = truth["features"]
    jails = []
    node = prog["allprison"].tqh_first.read_()
    while node:
        jails.append(node)
        node = node.pr_list.tqe_next.read_()
    assert [j.pr_id.value_() for j in jails] == [t["jid"] for t in truth["jails"]] == [1, 2, 3, 4, 5, 6]
    for pr, t in zip(jails, truth["jails"]):
        assert hex(pr.value_()) == hex(int(t["address"], 16))
        assert pr.pr_name.string_().decode() == t["name"]
        assert pr.pr_path.string_() == base64.b64decode(t["path_b64"])
        assert pr.pr_hostname.string_().decode() == t["hostname"]
        assert pr.pr_parent.pr_id.value_() == t["parent"]
        assert pr.pr_cpuset.cs_id.value_() == t["cpusetid"]
        assert pr.pr_flags.value_() == t["flags"] and pr.pr_allow.value_() == t["allow"]
        assert pr.pr_vnet.value_() == int(t["vnet"], 16)
        if feats["pr_state"]:
            want = "PRISON_STATE_DYING" if t["state"] == "dying" else "PRISON_STATE_ALIVE"
            assert pr.pr_state.value_() == prog[want].value_()
        else:
            assert (pr.pr_uref.value_() == 0) == (t["state"] == "dying")
        if feats["pr_addrs"]:
            ip4, ip6 = [], []
            for idx, out, fam in ((0, ip4, 4), (1, ip6, 16)):
                pip = pr.pr_addrs[idx].read_()
                if pip:
                    pip = pip[0]
                    raw = prog.read(pip.pr_ip.address_, pip.ips.value_() * fam)
                    out += [str(ipaddress.ip_address(raw[i:i + fam])) for i in range(0, len(raw), fam)]
        else:
            n4, n6 = pr.pr_ip4s.value_(), pr.pr_ip6s.value_()
            raw4 = prog.read(pr.pr_ip4.value_(), 4 * n4) if n4 else b""
            raw6 = prog.read(pr.pr_ip6.value_(), 16 * n6) if n6 else b""
            ip4 = [str(ipaddress.ip_address(raw4[i:i + 4])) for i in range(0, len(raw4), 4)]
            ip6 = [str(ipaddress.ip_address(raw6[i:i + 16])) for i in range(0, len(raw6), 16)]
        assert ip4 == t["ip4"] and ip6 == t["ip6"]
    web = truth["jails"][0]
    assert web["ip4"] == ["192.0.2.10", "192.0.2.11", "198.51.100.7"]
    assert web["ip6"] == ["2001:db8::10", "2001:db8::11"]
    assert len(truth["jails"][1]["hostname"]) == 255
    # prison0 and its children (newest first)
    p0 = prog["prison0"]
    assert p0.pr_hostname.string_() == b"crashbox.example.org"
    kids = []
    c = p0.pr_children.lh_first.read_()
    while c:
        kids.append(c.pr_id.value_())
        c = c.pr_sibling.le_next.read_()
    assert kids == truth["prison0"]["children"] == [6, 5, 4, 2, 1]
    assert p0.pr_vnet.value_() == prog["vnet0"].value_() == int(truth["vnet0"], 16)
    # vnets, newest first
    vn = []
    v = prog["vnet_head"].lh_first.read_()
    while v:
        vn.append(v)
        v = v.vnet_le.le_next.read_()
    assert [hex(x.value_()) for x in vn] == [hex(int(t["address"], 16)) for t in truth["vnets"]]
    for x, t in zip(vn, truth["vnets"]):
        assert x.vnet_magic_n.value_() == t["magic"] == truth["vnet_magic_expected"]
        base = x.vnet_data_base.value_()
        assert base == int(t["data_base"], 16)
        assert (x.vnet_data_mem.value_() - prog.symbol("__start_set_vnet").address) % (1 << 64) == base
    assert truth["vnet_magic_expected"] == (0x5E4A6F28 if feats["vnet_shutdown"] else 0x3E0D8F29)
    assert prog["lastprid"].value_() == truth["lastprid"] == 6
    assert prog["panicstr"].string_() == b"vnetdbg fixture panic"
    assert prog["mp_ncpus"].value_() == 2 and prog["mp_maxid"].value_() == 1
    mb = prog["msgbufp"]
    assert mb.msg_magic.value_() == 0x063062
    assert mb.msg_size.value_() == truth["msgbuf"]["size"] == rd.msgbufsize
    assert prog["KPML4phys"].value_() == int(truth["kpml4phys"], 16)


def test_full_page_table_walk_from_kpml4phys(fbsd14_builds):
    """KPML4phys + a 4-level walk through dumped pages (what a full-dump reader
    does) agrees with the pmap-region translation.  Boot-time tables (kernel
    and DMAP) lie inside the kernel's 2 MiB mapping and so are in the dump."""
    d, truth = fbsd14_builds[3]
    rd = MiniReader(str(d / "vmcore.0"))
    kp = int(truth["kpml4phys"], 16)
    FRAME = 0x000FFFFFFFFFF000

    def walk(va):
        e = rd.read_pa_u64(kp + 8 * ((va >> 39) & 511))
        if e is None or not e & 1:
            return None
        e = rd.read_pa_u64((e & FRAME) + 8 * ((va >> 30) & 511))
        if e is None or not e & 1:
            return None
        if e & 0x80:
            return (e & 0x000FFFFFC0000000) + (va & ((1 << 30) - 1))
        e = rd.read_pa_u64((e & FRAME) + 8 * ((va >> 21) & 511))
        if e is None or not e & 1:
            return None
        if e & 0x80:
            return (e & 0x000FFFFFFFE00000) + (va & ((1 << 21) - 1))
        e = rd.read_pa_u64((e & FRAME) + 8 * ((va >> 12) & 511))
        if e is None or not e & 1:
            return None
        return (e & FRAME) | (va & 0xFFF)

    checked = 0
    for f in truth["translation_facts"]:
        if f["kind"] in ("kernel-2m", "dmap"):
            assert walk(int(f["va"], 16)) == int(f["pa"], 16), f
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_corruption_knobs(tmp_path, corrupt):
    layout = _layout_copy(tmp_path)
    truth = build_vmcore(layout, str(tmp_path / "out"), dump_version=3, corrupt=corrupt,
                         layout="fbsd14")
    c = truth["corruption"]
    assert c["kind"] == corrupt
    saved = json.loads((tmp_path / "out" / "ground-truth.json").read_text())
    assert saved["corruption"] == c
    path = tmp_path / "out" / "vmcore.0"
    if corrupt == "truncated":
        assert os.path.getsize(path) == c["truncated_size"] < c["original_size"]
        return
    rd = MiniReader(str(path))
    m = truth["_machine"]
    off = m.writer.offsetof("struct prison", "pr_list.tqe_next")
    first = int(truth["jails"][0]["address"], 16)
    seen = []
    a = first
    while a and len(seen) < 20:
        data = rd.read(a, 8 + off)
        if data is None:
            seen.append("absent")
            break
        seen.append(a)
        a = int.from_bytes(data[off:off + 8], "little")
    if corrupt == "cyclic-allprison":
        assert len(seen) == 20
    elif corrupt in ("bad-link", "absent-link"):
        assert seen[-1] == "absent" and len(seen) == len(c["jails_before_break"]) + 1
    elif corrupt == "null-link":
        assert len(seen) == len(c["jails_before_break"])
    elif corrupt == "freed-vnet":
        va = int(c["vnet"], 16) + m.writer.offsetof("struct vnet", "vnet_magic_n")
        assert rd.read(va, 4) == (0xDEADBEEF).to_bytes(4, "little")
    elif corrupt == "bad-vnet-magic":
        va = int(c["vnet"], 16) + m.writer.offsetof("struct vnet", "vnet_magic_n")
        got = int.from_bytes(rd.read(va, 4), "little")
        assert got == c["magic"] and got not in (0xDEADBEEF, 0x5E4A6F28, 0x3E0D8F29)
    elif corrupt == "cyclic-ifnet":
        off = m.writer.offsetof("struct ifnet", "if_link.cstqe_next")
        first = int(c["bad_address"], 16)
        a, n = first, 0
        while a and n < 20:
            a = int.from_bytes(rd.read(a + off, 8), "little")
            n += 1
        assert n == 20 and len(c["interfaces_before_cycle"]) == 4
    elif corrupt == "absent-inp-link":
        nb_off = m.writer.offsetof("struct inpcb", "inp_list.cle_next")
        a = int(c["pcbs_before_break"][0], 16)
        walked = []
        while a:
            data = rd.read(a, nb_off + 8)
            if data is None:
                walked.append("absent")
                break
            walked.append(hex(a))
            a = int.from_bytes(data[nb_off:nb_off + 8], "little")
        assert walked[-1] == "absent"
        assert walked[:-1] == [hex(int(x, 16)) for x in c["pcbs_before_break"]]
        assert rd.read(int(c["bad_address"], 16), 8) is None


def test_regeneration_is_deterministic(tmp_path):
    layout = _layout_copy(tmp_path)
    a = build_vmcore(layout, str(tmp_path / "a"), layout="fbsd14")
    b = build_vmcore(layout, str(tmp_path / "b"), layout="fbsd14")
    for f in ("vmcore.0", "info.0", "ground-truth.json", "kernel", "kernel.debug"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert a["dump"] == b["dump"]


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_vmcore_rebuilds_from_committed_kernel(tmp_path, name):
    """The writer run on the committed kernel files reproduces the committed dump."""
    kdir = kernel_dir(name)
    layout, version = COMMITTED[name]
    lay = _layout_copy(tmp_path, name)
    build_vmcore(lay, str(tmp_path / "out"), dump_version=version, layout=layout)
    for f in ("vmcore.0", "info.0", "ground-truth.json"):
        assert (tmp_path / "out" / f).read_bytes() == (kdir / f).read_bytes(), f


def test_big_machine_is_sparse(tmp_path):
    layout = _layout_copy(tmp_path)
    scen = scenario.big(jails=600)
    truth = build_vmcore(layout, str(tmp_path / "big"), scenario=scen, layout="fbsd14",
                         write_truth=False)
    path = tmp_path / "big" / "vmcore.0"
    rd = MiniReader(str(path))
    # v3 bitmap covers all of 64 GiB RAM (dump_avail-relative bits)
    slots = sum((b + 4095) // 4096 - a // 4096 for a, b in rd.dump_avail)
    assert slots >= (64 << 30) // 4096 - 0x200 and rd.bitmapsize >= slots // 8
    assert len(truth["jails"]) == 600
    assert os.stat(path).st_blocks * 512 < os.path.getsize(path)
    for f in truth["translation_facts"]:
        assert rd.va_offset(int(f["va"], 16)) == f["file_offset"]


@pytest.mark.skipif(not (shutil.which("clang") and shutil.which("ld.lld")),
                    reason="fixture kernels need clang and ld.lld")
def test_committed_fixtures_are_current():
    kernel_dir()
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_fixture_vmcores.py"), "--check"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr


# -- network state ---------------------------------------------------------------------

def _net_walk(prog, truth):
    """Walk every stack of the dump with drgn + DWARF and compare with the
    ground truth's network section (interfaces, addresses, counters, pcbs,
    sockets, statistics)."""
    import drgn
    from drgn import Object, cast

    U64 = (1 << 64) - 1
    net = truth["network"]
    ncpu = prog["mp_maxid"].value_() + 1
    pcpu_t = prog.type("struct pcpu")
    offs = []
    for c in range(ncpu):
        pc = prog["cpuid_to_pcpu"][c]
        offs.append(pc.pc_zpcpu_offset.value_() if pcpu_t.has_member("pc_zpcpu_offset")
                    else drgn.sizeof(pcpu_t) * c)

    def counter(p):
        p = int(p)
        return sum(prog.read_u64((p + o) & U64) for o in offs) & U64 if p else 0


    def vvar(vnet, name):
        v = prog.object("vnet_entry_" + name)
        base = Object(prog, "struct vnet *", int(vnet, 16)).vnet_data_base.value_()
        return Object(prog, v.type_, address=(v.address_ + base) & U64)

    def ip6(raw):
        return str(ipaddress.IPv6Address(bytes(raw)))

    vnets = []
    v = prog["vnet_head"].lh_first.read_()
    while v:
        vnets.append(hex(v.value_()))
        v = v.vnet_le.le_next.read_()
    assert [int(x, 16) for x in vnets] == [int(s["vnet"], 16) for s in net["stacks"]]
    for vaddr, st in zip(vnets, net["stacks"]):
        vn = Object(prog, "struct vnet *", int(vaddr, 16))
        assert vn.vnet_ifcnt.value_() == st["ifcnt"] == len(st["interfaces"])
        assert vn.vnet_sockcnt.value_() == st["sockcnt"]
        # interfaces
        ifp = vvar(st["vnet"], "ifnet").cstqh_first.read_()
        got = []
        while ifp:
            got.append(ifp)
            ifp = ifp.if_link.cstqe_next.read_()
        assert [i.if_xname.string_().decode() for i in got] == [t["name"] for t in st["interfaces"]]
        for ifp, t in zip(got, st["interfaces"]):
            assert ifp.if_index.value_() == t["index"]
            assert ifp.if_flags.value_() | ifp.if_drv_flags.value_() == t["flags"]
            assert ifp.if_mtu.value_() == t["mtu"] and ifp.if_type.value_() == t["type"]
            assert hex(ifp.if_vnet.value_()) == hex(int(st["vnet"], 16))
            assert hex(ifp.if_home_vnet.value_()) == hex(int(t["home_vnet"], 16))
            gc = ifp.if_get_counter.value_()
            assert prog.symbol(gc).name == t["get_counter"]["symbol"]
            sums = [counter(ifp.if_counters[i]) for i in range(len(ifp.if_counters))]
            assert sums == list(t["counters"].values())
            ifa = ifp.if_addrhead.cstqh_first.read_()
            assert ifa.value_() == ifp.if_addr.value_()
            addrs = []
            while ifa:
                sa = ifa.ifa_addr
                fam = sa.sa_family.value_()
                c = {k: counter(getattr(ifa, "ifa_" + k)) for k in
                     ("ipackets", "opackets", "ibytes", "obytes")}
                if fam == 18:
                    sdl = cast("struct sockaddr_dl *", sa)
                    nl, al = sdl.sdl_nlen.value_(), sdl.sdl_alen.value_()
                    data = prog.read(sdl.sdl_data.address_, nl + al)
                    assert data[:nl].decode() == t["name"] and sdl.sdl_index.value_() == t["index"]
                    mac = ":".join(f"{b:02x}" for b in data[nl:]) or None
                    assert mac == t["mac"]
                    addrs.append({"family": "link"})
                elif fam == 2:
                    ia = cast("struct in_ifaddr *", ifa)
                    a = str(ipaddress.IPv4Address(prog.read(ia.ia_addr.sin_addr.address_, 4)))
                    mask = ipaddress.IPv4Address(prog.read(ia.ia_sockmask.sin_addr.address_, 4))
                    bcs = str(ipaddress.IPv4Address(prog.read(ia.ia_dstaddr.sin_addr.address_, 4))) \
                        if ia.ia_dstaddr.sin_len.value_() else None
                    addrs.append({"family": "inet", "addr": a, "netmask": str(mask), "broadcast": bcs,
                                  "counters": c})
                elif fam == 28:
                    ia = cast("struct in6_ifaddr *", ifa)
                    raw = bytearray(prog.read(ia.ia_addr.sin6_addr.address_, 16))
                    zone = None
                    if raw[0] == 0xFE and raw[1] & 0xC0 == 0x80:
                        zone = int.from_bytes(raw[2:4], "big")
                        raw[2:4] = b"\0\0"
                    addrs.append({"family": "inet6", "addr": ip6(raw), "prefixlen": ia.ia_plen.value_(),
                                  "scope_id": zone, "counters": c})
                ifa = ifa.ifa_link.cstqe_next.read_()
            want = []
            for a in t["addresses"]:
                w = {"family": a["family"]}
                if a["family"] == "inet":
                    w.update(addr=a["addr"], netmask=a["netmask"], broadcast=a["broadcast"],
                             counters=a["counters"])
                elif a["family"] == "inet6":
                    w.update(addr=a["addr"], prefixlen=a["prefixlen"], scope_id=a["scope_id"],
                             counters=a["counters"])
                want.append(w)
            assert addrs == want, t["name"]
        # pcbs
        for info, pt in st["pcbinfo"].items():
            pi = vvar(st["vnet"], info)
            lh = pi.ipi_listhead
            head = lh[0] if lh.type_.unaliased().kind == drgn.TypeKind.POINTER else lh
            inp = head.clh_first.read_()
            seen = []
            while inp:
                seen.append(inp)
                inp = inp.inp_list.cle_next.read_()
            assert len(seen) == pi.ipi_count.value_() == pt["count"]
            assert pi.ipi_gencnt.value_() == pt["gencnt"]
            gens = [i.inp_gencnt.value_() for i in seen]
            assert gens == sorted(gens, reverse=True) and len(set(gens)) == len(gens)
            assert max(gens, default=0) <= pt["gencnt"]
            want = [s for s in st["sockets"] if s["pcbinfo"] == info]
            if st["sockets_complete"]:
                assert [hex(i.value_()) for i in seen] == [hex(int(s["pcb"], 16)) for s in want]
            else:
                first = {hex(int(s["pcb"], 16)) for s in want}
                assert first <= {hex(i.value_()) for i in seen}
                seen = [i for i in seen if hex(i.value_()) in first]
            for inp, s in zip(seen, want):
                inc = inp.inp_inc.inc_ie
                assert int.from_bytes(prog.read(inc.ie_lport.address_, 2), "big") == s["local"]["port"]
                assert int.from_bytes(prog.read(inc.ie_fport.address_, 2), "big") == s["foreign"]["port"]
                vf = inp.inp_vflag.value_()
                assert vf == s["vflag"]
                v4 = vf & 1 and not vf & 2
                lraw = bytearray(prog.read(inc.ie_dependladdr.address_, 16))
                if v4:
                    la = str(ipaddress.IPv4Address(bytes(lraw[12:])))
                    la = "*" if la == "0.0.0.0" else la
                else:
                    if lraw[0] == 0xFE and lraw[1] & 0xC0 == 0x80:
                        assert int.from_bytes(lraw[2:4], "big") == s["local"]["scope_id"]
                        lraw[2:4] = b"\0\0"
                    la = ip6(lraw)
                    la = "*" if la == "::" else la
                assert la == s["local"]["addr"], s
                so = inp.inp_socket.read_()
                assert bool(so) == s["has_socket"]
                if s["protocol"] == "tcp":
                    if s["tcptw"]:
                        assert inp.inp_flags.value_() & 0x01000000
                        assert hex(inp.inp_ppcb.value_()) == hex(int(s["tcptw"], 16))
                        state = "TIME_WAIT"
                    else:
                        if prog.type("struct tcpcb").has_member("t_inpcb") and \
                                prog.type("struct tcpcb").member("t_inpcb").type.unaliased().kind == drgn.TypeKind.STRUCT:
                            tp = cast("struct tcpcb *", inp)
                        else:
                            tp = cast("struct tcpcb *", inp.inp_ppcb)
                            assert tp.t_inpcb.value_() == inp.value_()
                        state = ["CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED",
                                 "CLOSE_WAIT", "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2",
                                 "TIME_WAIT"][tp.t_state.value_()]
                    assert state == s["state"]
                if so:
                    assert so.so_pcb.value_() == inp.value_()
                    assert so.so_vnet.value_() == int(st["vnet"], 16)
                    if so.so_options.value_() & 2:
                        assert s["listen"] == {"qlen": so.sol_qlen.value_(),
                                               "incqlen": so.sol_incqlen.value_(),
                                               "qlimit": so.sol_qlimit.value_()}
                        n = 0
                        q = so.sol_comp.tqh_first.read_()
                        while q:
                            assert q.so_listen.value_() == so.value_()
                            n += 1
                            q = q.so_list.tqe_next.read_()
                        assert n == so.sol_qlen.value_()
                    else:
                        assert so.so_rcv.sb_ccc.value_() == s["recv_q"]
                        assert so.so_snd.sb_ccc.value_() == s["send_q"]
        # tcps_states agree with the TCP pcbs
        if st["sockets_complete"]:
            want_states = {}
            for s in st["sockets"]:
                if s["protocol"] == "tcp":
                    want_states[s["state"]] = want_states.get(s["state"], 0) + 1
            got_states = {k: v for k, v in st["stats"]["tcps_states"]["fields"].items() if v}
            assert got_states == want_states
        # statistics
        for key, sd in st["stats"].items():
            arr = vvar(st["vnet"], sd["var"])
            sums = [counter(arr[i]) for i in range(len(arr))]
            assert sums == list(sd["fields"].values()), key


@pytest.mark.parametrize("name", sorted(COMMITTED))
def test_committed_network_matches_truth_via_drgn(name):
    kdir = kernel_dir(name)
    truth = json.loads((kdir / "ground-truth.json").read_text())
    if "network" not in truth:
        pytest.skip("fixture has no network state")
    rd = MiniReader(str(kdir / "vmcore.0"))
    prog = _drgn_program(str(kdir), rd)
    _net_walk(prog, truth)
    net = truth["network"]
    v0 = next(s for s in net["stacks"] if s["owner_jid"] == 0)
    names = [i["name"] for i in v0["interfaces"]]
    assert names == ["vtnet0", "em0", "lo0", "epair0a"]
    states = {s["state"] for s in v0["sockets"] if s["protocol"] == "tcp"}
    assert states >= {"LISTEN", "ESTABLISHED", "SYN_SENT", "SYN_RCVD", "FIN_WAIT_1",
                      "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT", "CLOSED"}
    assert {s["proto"] for s in v0["sockets"]} >= {"tcp4", "tcp6", "tcp46", "udp4", "udp6",
                                                   "udp46", "udplite4", "udplite6", "icmp4"}
    tw = [s for s in v0["sockets"] if s["state"] == "TIME_WAIT"]
    assert {s["has_socket"] for s in tw} == {True, False}
    j2 = next(s for s in net["stacks"] if s["owner_jid"] == 2)
    ep = next(i for i in j2["interfaces"] if i["name"] == "epair0b")
    assert ep["moved_from"]["owner_jid"] == 0
    assert [s["owner_jid"] for s in net["stacks"]] == [6, 2, 0]


@pytest.mark.parametrize("name", ["amd64-fbsd12", "amd64-fbsd14"])
def test_dying_vnet_jail_keeps_its_stack(tmp_path, name):
    """jail 6 "oldvnet" (part of the committed default scenario): dying, its vnet
    still on vnet_head with a TIME_WAIT pcb; leaving it out moves no other object."""
    layout = _layout_copy(tmp_path, name)
    lay, version = COMMITTED[name]
    truth = build_vmcore(layout, str(tmp_path / "out"), dump_version=version, layout=lay,
                         scenario=scenario.default(dying_vnet_jail=True))
    without = build_vmcore(layout, str(tmp_path / "without"), dump_version=version, layout=lay,
                           scenario=scenario.default(dying_vnet_jail=False))
    base = {k: without[k] for k in ("jails", "vnets")}
    j6 = next(j for j in truth["jails"] if j["jid"] == 6)
    assert j6["state"] == "dying" and j6["vnet_owner"] and j6["name"] == "oldvnet"
    assert truth["vnets"][0]["owner_jid"] == 6
    for a, b in zip(base["jails"], truth["jails"]):
        assert a["address"] == b["address"] and a["ip4_object"] == b["ip4_object"]
    assert [v["address"] for v in base["vnets"]] == [v["address"] for v in truth["vnets"][1:]]
    st = truth["network"]["stacks"][0]
    assert st["owner_jid"] == 6 and st["jail_state"] == "dying" and st["sockcnt"] == 0
    (tw,) = st["sockets"]
    assert tw["state"] == "TIME_WAIT" and not tw["has_socket"]
    assert (tw["tcptw"] is not None) == (lay != "fbsd14")
    rd = MiniReader(str(tmp_path / "out" / "vmcore.0"))
    for f in ("kernel", "kernel.debug"):
        shutil.copyfile(Path(layout) / f, tmp_path / "out" / f)
    _net_walk(_drgn_program(str(tmp_path / "out"), rd), truth)


def test_big_net_small(tmp_path):
    """scenario.big_net at a small scale: counts, list lengths, sparse file."""
    layout = _layout_copy(tmp_path)
    scen = scenario.big_net(jails=12, pcbs=6000, biggest=3000)
    truth = build_vmcore(layout, str(tmp_path / "big"), scenario=scen, layout="fbsd14")
    stacks = truth["network"]["stacks"]
    assert len(stacks) == 13
    counts = [sum(p["count"] for p in s["pcbinfo"].values()) for s in stacks]
    assert sum(counts) == 6000 and max(counts) == 3000
    for s in stacks:
        v = next(v for v in truth["vnets"] if v["address"] == s["vnet"])
        assert (v["ifcnt"], v["sockcnt"]) == (s["ifcnt"], s["sockcnt"])
    rd = MiniReader(str(tmp_path / "big" / "vmcore.0"))
    _net_walk(_drgn_program(str(tmp_path / "big"), rd), truth)
