"""build_vmcore(): simulated machine -> vmcore.0 + info.0 + ground-truth.json."""

from __future__ import annotations

import json
import os
import shutil

from .info import write_info
from .kernel import Kernel, find_kernel_files
from .machine import Machine
from .minidump import write_minidump
from .pagetables import DMAP_MAX_ADDRESS, DMAP_MIN_ADDRESS, KERNBASE, VM_MIN_KERNEL_ADDRESS
from .physmem import PAGE_SIZE
from . import scenario as scenario_mod
from .scenario import VNET_MAGIC_FREED, Builder, Scenario, _hex

SCHEMA = "vnetdbg-fixture-truth/1"
CORRUPTIONS = ("cyclic-allprison", "bad-link", "absent-link", "null-link", "freed-vnet",
               "truncated", "cyclic-ifnet", "absent-inp-link", "bad-vnet-magic")
VNET_MAGIC_BAD = 0x5E4A6F29     # not a magic of any release, not the freed pattern


def _apply_corruption(b: Builder, kind: str) -> dict:
    m, w, t = b.m, b.w, b.truth
    jails = t["jails"]
    nextoff = w.offsetof("struct prison", "pr_list.tqe_next")
    addr = lambda j: int(j["address"], 16)  # noqa: E731
    if kind == "cyclic-allprison":
        last, first = jails[-1], jails[0]
        m.write_u64(addr(last) + nextoff, addr(first))
        return {"kind": kind, "jid": last["jid"], "points_to_jid": first["jid"],
                "description": "last jail's pr_list.tqe_next points back to the first jail"}
    mid = jails[min(1, len(jails) - 1)]
    if kind == "bad-link":
        bad = m.unmapped_kva()
        m.write_u64(addr(mid) + nextoff, bad)
        return {"kind": kind, "jid": mid["jid"], "bad_address": _hex(bad),
                "description": "pr_list.tqe_next of this jail points to an unmapped KVA",
                "jails_before_break": [j["jid"] for j in jails[:jails.index(mid) + 1]]}
    if kind == "absent-link":
        bad = m.absent_dmap_address()
        m.write_u64(addr(mid) + nextoff, bad)
        return {"kind": kind, "jid": mid["jid"], "bad_address": _hex(bad),
                "description": "pr_list.tqe_next points to a DMAP page that is not in the dump",
                "jails_before_break": [j["jid"] for j in jails[:jails.index(mid) + 1]]}
    if kind == "null-link":
        m.write_u64(addr(mid) + nextoff, 0)
        return {"kind": kind, "jid": mid["jid"],
                "description": "pr_list.tqe_next is NULL in the middle of allprison",
                "jails_before_break": [j["jid"] for j in jails[:jails.index(mid) + 1]]}
    if kind == "freed-vnet":
        v = next((v for v in t["vnets"] if v["owner_jid"] != 0), t["vnets"][0])
        w.write_field(int(v["address"], 16), "struct vnet", "vnet_magic_n", VNET_MAGIC_FREED)
        return {"kind": kind, "vnet": v["address"], "owner_jid": v["owner_jid"],
                "magic": VNET_MAGIC_FREED,
                "description": "vnet_magic_n overwritten with 0xdeadbeef (freed vnet)"}
    if kind == "truncated":
        return {"kind": kind, "description": "vmcore.0 cut in the middle of the page data"}
    net = t.get("network")
    if kind in ("cyclic-ifnet", "absent-inp-link") and not net:
        raise ValueError(f"corruption {kind!r} needs a scenario with network state")
    if kind == "cyclic-ifnet":
        st = next(x for x in net["stacks"] if x["owner_jid"] == 0)
        ifs = st["interfaces"]
        last, first = ifs[-1], ifs[0]
        off = w.offsetof("struct ifnet", "if_link.cstqe_next")
        m.write_u64(int(last["address"], 16) + off, int(first["address"], 16))
        return {"kind": kind, "vnet": st["vnet"], "owner_jid": 0,
                "ifnet": last["address"], "bad_address": first["address"],
                "name": last["name"], "points_to": first["name"],
                "interfaces_before_cycle": [i["name"] for i in ifs],
                "description": "vnet0's last ifnet's if_link.cstqe_next points back to the first"}
    if kind == "absent-inp-link":
        st = next(x for x in net["stacks"] if x["owner_jid"] == 0)
        tcp = [x for x in st["sockets"] if x["pcbinfo"] == "tcbinfo"]
        victim = tcp[2]
        bad = m.absent_dmap_address()
        nb = b.netbuilder
        m.write_u64(int(victim["pcb"], 16) + w.offsetof("struct inpcb", nb.inp_list), bad)
        return {"kind": kind, "vnet": st["vnet"], "owner_jid": 0, "pcbinfo": "tcbinfo",
                "pcb": victim["pcb"], "bad_address": _hex(bad),
                "pcbs_before_break": [x["pcb"] for x in tcp[:3]],
                "description": "inp_list next pointer of this tcp pcb points into a DMAP "
                               "page that is not in the dump"}
    if kind == "bad-vnet-magic":
        v = next((v for v in t["vnets"] if v["owner_jid"] == 2),
                 next((v for v in t["vnets"] if v["owner_jid"] != 0), t["vnets"][0]))
        w.write_field(int(v["address"], 16), "struct vnet", "vnet_magic_n", VNET_MAGIC_BAD)
        return {"kind": kind, "vnet": v["address"], "bad_address": v["address"],
                "owner_jid": v["owner_jid"], "magic": VNET_MAGIC_BAD,
                "expected": t["vnet_magic_expected"],
                "description": "vnet_magic_n of this vnet overwritten with a wrong value "
                               "(not a release's magic, not 0xdeadbeef)"}
    raise ValueError(f"unknown corruption {kind!r}; choose from {CORRUPTIONS}")


def _translation_facts(b: Builder, layout, n: int) -> list[dict]:
    """~n samples of {va, pa, kind, file_offset}, picked from the objects the
    writer created (kernel globals, DMAP heap, KVA heap, page straddles)."""
    m, k, t = b.m, b.k, b.truth
    cands: list[int] = []
    for name in ("prison0", "allprison", "vnet_head", "msgbufp", "version", "KPML4phys",
                 "lastprid", "cpuid_to_pcpu", "__start_set_vnet"):
        if k.has_symbol(name):
            cands.append(k.symbol_address(name))
    cands.append(k.symbol_address("prison0") + b.w.offsetof("struct prison", "pr_hostname") + 3)
    for j in t["jails"]:
        cands.append(int(j["address"], 16))
        if j["placement"] == "kva-straddle":
            pa_off = b.w.offsetof("struct prison", "pr_path")
            cands.append(int(j["address"], 16) + pa_off + 6)   # first byte on page 2
    for v in t["vnets"]:
        cands.append(int(v["address"], 16))
        cands.append(int(v["data_mem"], 16) + 0x18)
    for p in t["pcpu"]:
        cands.append(int(p["address"], 16))
    cands.append(int(t["msgbuf"]["ring_address"], 16) + 0x1234)
    cands.append(int(t["msgbuf"]["address"], 16))
    cands.append(int(t["panicstr_address"], 16))
    seen = set()
    facts = []
    for va in cands:
        if va in seen:
            continue
        seen.add(va)
        pa = m.translate(va)
        kind = m.va_kind(va)
        if pa is None:
            continue
        facts.append({"va": _hex(va), "pa": _hex(pa), "kind": kind,
                      "file_offset": layout.file_offset(pa)})
    # keep at most n, but keep every kind represented
    if len(facts) > n:
        by_kind: dict[str, list] = {}
        for f in facts:
            by_kind.setdefault(f["kind"], []).append(f)
        keep = []
        i = 0
        while len(keep) < n:
            progressed = False
            for lst in by_kind.values():
                if i < len(lst) and len(keep) < n:
                    keep.append(lst[i])
                    progressed = True
            if not progressed:
                break
            i += 1
        facts = sorted(keep, key=lambda f: int(f["va"], 16))
    return facts


def build_vmcore(layout_dir: str, out_dir: str, *, dump_version: int = 3,
                 corrupt: str | None = None, scenario: Scenario | None = None,
                 layout: str | None = None, copy_kernel: bool = True,
                 write_truth: bool = True, info_device: str = "/dev/ada0p3") -> dict:
    """Simulate the machine described by ``scenario`` (default: scenario.default())
    on the kernel in ``layout_dir`` (kernel.full, or kernel + kernel.debug) and
    write ``out_dir``/{vmcore.0, info.0, ground-truth.json[, kernel, kernel.debug]}.

    dump_version: amd64 minidump version 1, 2 or 3.
    corrupt: None or one of CORRUPTIONS.
    Returns the ground truth dict (also written as ground-truth.json).
    """
    if corrupt is not None and corrupt not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {corrupt!r}; choose from {CORRUPTIONS}")
    scen = scenario or scenario_mod.default()
    kernel = Kernel(layout_dir)
    layout = layout or os.path.basename(os.path.normpath(layout_dir))
    kva_mode = "kernbase" if dump_version == 1 else "vm_min"
    machine = Machine(kernel, scen.ram_size, kva_mode=kva_mode, msgbuf_size=scen.msgbuf_size)
    b = Builder(machine, scen, layout)
    truth = b.build()
    corruption = _apply_corruption(b, corrupt) if corrupt else None

    os.makedirs(out_dir, exist_ok=True)
    vmcore = os.path.join(out_dir, "vmcore.0")
    dl = write_minidump(machine, vmcore, dump_version, msgbuf_ring=b.msgbuf_ring,
                        msg_size=b.msg_size)
    size = dl.size
    if corrupt == "truncated":
        keep_pages = len(dl.pages) // 2
        cut = dl.sparse_off + keep_pages * PAGE_SIZE + PAGE_SIZE // 2
        with open(vmcore, "r+b") as f:
            f.truncate(cut)
        corruption.update({"original_size": size, "truncated_size": cut,
                           "first_missing_page_rank": keep_pages})
    hdr, info_text = write_info(os.path.join(out_dir, "info.0"), device=info_device,
                                dumplength=size, dumptime=scen.dumptime,
                                hostname=scen.hostname.encode(), versionstring=b.version,
                                panicstring=scen.panic.encode())
    if copy_kernel:
        img, dbg = find_kernel_files(layout_dir)
        if img == dbg:  # kernel.full only
            shutil.copyfile(img, os.path.join(out_dir, "kernel.full"))
        else:
            if os.path.abspath(os.path.dirname(img)) != os.path.abspath(out_dir):
                shutil.copyfile(img, os.path.join(out_dir, "kernel"))
                shutil.copyfile(dbg, os.path.join(out_dir, "kernel.debug"))

    facts = _translation_facts(b, dl, scen.translation_samples)
    absent = [{"va": _hex(machine.unmapped_kva()), "reason": "unmapped"}]
    if dump_version != 1:
        absent.append({"va": _hex(VM_MIN_KERNEL_ADDRESS + 0x40000000 * 7 + 0x1000),
                       "reason": "unmapped"})
    out = {
        "schema": SCHEMA,
        "scenario": scen.name,
        "encoding_notes": {
            "addresses": "hex strings '0x%016x'",
            "path_b64": "raw pr_path bytes, base64 (not necessarily UTF-8)",
            "path_text": "pr_path decoded as UTF-8 with backslashreplace, for humans",
            "msgbuf.text": "ring contents in write order, latin-1",
            "jails": "allprison order (ascending JID); prison0 separate",
            "children": "JIDs in pr_children list order (newest first)",
            "network": "per struct vnet in vnet_head order: interfaces in V_ifnet order, "
                       "addresses in if_addrhead order (link-level first), sockets per "
                       "pcbinfo (tcp, udp, udplite, raw) in inp_list order (newest first); "
                       "counters are sums over CPUs modulo 2^64; ports in host order; "
                       "link-local addresses without the KAME embedded zone (scope_id = "
                       "the interface index embedded in bytes 2-3 in the kernel)",
        },
        **truth,
        "corruption": corruption,
        "dump": {
            "format": "amd64-minidump",
            "version": dump_version,
            "file": "vmcore.0",
            "size": size,
            "header": {"magic": "minidump FreeBSD/amd64", "version": dump_version,
                       "msgbufsize": dl.msgbufsize, "bitmapsize": dl.bitmapsize,
                       "pmapsize": dl.pmapsize, "kernbase": _hex(dl.kernbase),
                       "dmapbase": _hex(DMAP_MIN_ADDRESS), "dmapend": _hex(DMAP_MAX_ADDRESS),
                       "dumpavailsize": dl.dumpavailsize if dump_version == 3 else None},
            "offsets": {"msgbuf": PAGE_SIZE, "dump_avail": dl.dump_avail_off if dump_version == 3 else None,
                        "bitmap": dl.bitmap_off, "pmap": dl.pmap_off, "pages": dl.sparse_off},
            "dump_avail": [[_hex(a), _hex(b_)] for a, b_ in machine.dump_avail],
            "ram_size": scen.ram_size,
            "present_pages": len(dl.pages),
            "kernbase_symbol": _hex(KERNBASE),
            "kva_end": _hex(machine.kva_end),
            "kpml4phys": _hex(machine.kpml4phys),
            "kernel_2m_mapped_end_pa": _hex(machine.kernel_2m_end),
        },
        "info": {"file": "info.0", "dumplength": size, "dumptime": scen.dumptime,
                 "parity": int.from_bytes(hdr[508:512], "little"), "text": info_text},
        "translation_facts": facts,
        "absent_facts": absent,
    }
    if write_truth:
        with open(os.path.join(out_dir, "ground-truth.json"), "w") as f:
            json.dump(out, f, indent=1, sort_keys=False)
            f.write("\n")
    out["_machine"] = machine
    out["_layout"] = dl
    return out
