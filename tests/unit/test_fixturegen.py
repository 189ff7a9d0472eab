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
    assert [j.pr_id.value_() for j in jails] == [t["jid"] for t in truth["jails"]] == [1, 2, 3, 4, 5]
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
    assert kids == truth["prison0"]["children"] == [5, 4, 2, 1]
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
    assert prog["lastprid"].value_() == 5
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
