#!/usr/bin/env python3
"""Benchmark the type providers on a synthetic kernel with >= 100 MB of .debug_info.

    .venv/bin/python scripts/bench_types.py [--cus N] [--jobs J] [--rebuild] [--clean]

Generates C compile units under build/bench-types/ (each with a shared header of many
structs, like kernel headers repeated per CU, plus unique structs and functions with
locals), compiles them with clang (DWARF 5, FreeBSD target, parallel), links at the
kernel address, keeps only ``kernel.debug`` (the objects and the full kernel are deleted)
and reuses it on later runs.  Then, each in a fresh process, it measures:

* drgn provider: cold ``find_type("struct prison")`` (wall, peak RSS)
* dwarf provider, cold cache: index build + the same lookups (wall, peak RSS)
* dwarf provider, warm cache: the same lookups (wall, peak RSS)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build", "bench-types")
GEN_VERSION = 3

LINKER_SCRIPT = """
ENTRY(_start)
SECTIONS {
  . = 0xffffffff80200000;
  .text : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.*) }
  . = ALIGN(0x1000);
  .data : { *(.data .data.*) }
  .bss : { *(.bss .bss.*) *(COMMON) }
}
"""

SCALARS = ["int", "unsigned int", "long", "unsigned long", "char", "unsigned char",
           "short", "unsigned short", "u_int", "uint64_t", "void *", "const char *"]


def gen_header(n_structs: int, seed: int = 1) -> str:
    rnd = random.Random(seed)
    out = ["typedef unsigned int u_int;", "typedef unsigned long uint64_t;",
           "typedef long off_t;",
           "#define TAILQ_ENTRY(type) struct { struct type *tqe_next; struct type **tqe_prev; }",
           "#define LIST_ENTRY(type) struct { struct type *le_next; struct type **le_prev; }",
           "enum prison_state { PRISON_STATE_INVALID, PRISON_STATE_ALIVE, PRISON_STATE_DYING };",
           "struct vnet;",
           "struct prison {",
           "  TAILQ_ENTRY(prison) pr_list; int pr_id; int pr_ref; struct prison *pr_parent;",
           "  struct vnet *pr_vnet; enum prison_state pr_state; u_int pr_flags;",
           "  unsigned int pr_bits:4, pr_more:12; char pr_name[256]; char pr_path[1024];",
           "  union { long pr_l; void *pr_p; }; struct { int pr_x; int pr_y; } pr_pt;",
           "};"]
    def kind_of(i: int) -> str:
        return "union" if i % 17 == 5 else "struct"

    for i in range(n_structs):
        kind = kind_of(i)
        members = []
        for j in range(rnd.randint(6, 16)):
            r = rnd.random()
            if r < 0.55:
                members.append(f"{rnd.choice(SCALARS)} m{j}_{i};")
            elif r < 0.7 and i:
                t = rnd.randrange(i)
                members.append(f"{kind_of(t)} hs{t} *p{j}_{i};")
            elif r < 0.8:
                members.append(f"unsigned int b{j}_{i}:{rnd.randint(1, 12)};")
            elif r < 0.9:
                members.append(f"char a{j}_{i}[{rnd.randint(1, 64)}];")
            else:
                members.append(f"LIST_ENTRY(hs{i}) le{j}_{i};" if kind == "struct"
                               else f"int u{j}_{i};")
        out.append(f"{kind} hs{i} {{ {' '.join(members)} }};")
        if i % 5 == 0:
            out.append(f"typedef {kind} hs{i} hs{i}_t;")
        if i % 23 == 0:
            out.append(f"enum he{i} {{ " + ", ".join(f"HE{i}_{k} = {k * 3}" for k in range(8))
                       + " };")
    return "\n".join(out) + "\n"


def gen_cu(k: int, n_unique: int, n_funcs: int, last: bool) -> str:
    rnd = random.Random(1000 + k)
    out = ['#include "common.h"']
    for i in range(n_unique):
        mem = " ".join(f"{rnd.choice(SCALARS)} f{j};" for j in range(rnd.randint(4, 12)))
        out.append(f"struct cu{k}_s{i} {{ {mem} struct prison *pr; }};")
        out.append(f"struct cu{k}_s{i} cu{k}_v{i};")
    if last:
        out.append("struct needle_softc { int sc_unit; struct prison *sc_pr; "
                   "unsigned long sc_flags; char sc_name[16]; };")
        out.append("struct needle_softc needle0;")
    for f in range(n_funcs):
        out.append(f"long cu{k}_fn{f}(struct prison *pr, int a, long b) {{")
        out.append("  long acc = a; int i;")
        out.append("  for (i = 0; i < a; i++) { long t = b * i; char buf[8]; buf[0] = t; acc += buf[0]; }")
        out.append(f"  {{ struct cu{k}_s{f % n_unique} tmp; tmp.pr = pr; acc += (long)tmp.pr; }}")
        out.append("  return acc + pr->pr_id; }")
    if k == 0:
        out.append("struct prison prison0;")
        out.append("void _start(void) { }")
    return "\n".join(out) + "\n"


def build(n_cus: int, jobs: int, rebuild: bool) -> str:
    debug = os.path.join(BUILD, "kernel.debug")
    stamp = os.path.join(BUILD, "stamp.json")
    want = {"gen": GEN_VERSION, "cus": n_cus}
    if not rebuild and os.path.exists(debug) and os.path.exists(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return debug
    shutil.rmtree(BUILD, ignore_errors=True)
    src = os.path.join(BUILD, "src")
    os.makedirs(src)
    t0 = time.time()
    with open(os.path.join(src, "common.h"), "w") as f:
        f.write(gen_header(1800))
    with open(os.path.join(src, "kernel.ld"), "w") as f:
        f.write(LINKER_SCRIPT)
    for k in range(n_cus):
        with open(os.path.join(src, f"cu{k}.c"), "w") as f:
            f.write(gen_cu(k, 40, 30, k == n_cus - 1))
    cmd = ["clang", "--target=x86_64-unknown-freebsd14.0", "-c", "-g", "-gdwarf-5", "-O0",
           "-ffreestanding", "-fno-pic", "-mcmodel=kernel", "-fno-stack-protector",
           "-fno-eliminate-unused-debug-types", "-w"]

    def compile_one(k: int) -> None:
        subprocess.run(cmd + [f"cu{k}.c", "-o", f"cu{k}.o"], cwd=src, check=True)

    with ThreadPoolExecutor(max_workers=jobs) as ex:
        list(ex.map(compile_one, range(n_cus)))
    print(f"compiled {n_cus} CUs in {time.time() - t0:.1f} s", file=sys.stderr)
    subprocess.run(["ld.lld", "-T", "kernel.ld", "--build-id=sha1", "-nostdlib", "-static",
                    "-o", "kernel"] + [f"cu{k}.o" for k in range(n_cus)], cwd=src, check=True)
    subprocess.run(["llvm-objcopy", "--only-keep-debug", "kernel", debug], cwd=src,
                   check=True)
    shutil.rmtree(src)              # objects, sources and the full kernel
    with open(stamp, "w") as f:
        json.dump(want, f)
    print(f"built {debug} in {time.time() - t0:.1f} s", file=sys.stderr)
    return debug


CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
which, path, cache = sys.argv[1], sys.argv[2], sys.argv[3]
if which == "drgn":
    from vnetdbg.debuginfo.drgn_types import DrgnTypeProvider
    p = DrgnTypeProvider(path)
else:
    from vnetdbg.debuginfo.dwarf_types import DwarfTypeProvider
    p = DwarfTypeProvider(path, cache_dir=cache, progress=False)
t1 = time.perf_counter()
pr = p.find_type("struct prison")
names = [(m.name, m.bit_offset, m.bit_size, str(m.type)) for m in pr.members]
needle = p.find_type("struct needle_softc")
needle_m = [(m.name, m.bit_offset, str(m.type)) for m in needle.members]
v = p.find_variable_type("prison0")
t2 = time.perf_counter()
if which == "dwarf":
    p.save()
def hwm():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"open": t1 - t0, "lookup": t2 - t1, "total": t2 - t0, "rss": hwm(),
                  "members": names, "needle": needle_m, "var": str(v)}}))
"""


def measure(which: str, debug: str, cache: str) -> dict:
    code = CHILD.format(root=ROOT)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, which, debug, cache],
                       capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        return {"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}
    out = json.loads(r.stdout)
    out["wall"] = wall
    return out


def debug_info_size(path: str) -> int:
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".debug_info")
        return sec.header["sh_size"] if sec is not None else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cus", type=int, default=400)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--clean", action="store_true", help="delete build/bench-types afterwards")
    args = ap.parse_args()
    sys.path.insert(0, ROOT)
    for tool in ("clang", "ld.lld", "llvm-objcopy"):
        if shutil.which(tool) is None:
            print(f"bench_types: {tool} not installed", file=sys.stderr)
            return 1
    debug = build(args.cus, args.jobs, args.rebuild)
    size = debug_info_size(debug)
    print(f"kernel.debug: {os.path.getsize(debug) / 1e6:.1f} MB, "
          f".debug_info {size / 1e6:.1f} MB, {args.cus} CUs")
    rows = []
    cache = tempfile.mkdtemp(prefix="vnetdbg-bench-cache-")
    try:
        results = {}
        for label, which in (("drgn (cold)", "drgn"), ("dwarf, cold cache", "dwarf"),
                             ("dwarf, warm cache", "dwarf")):
            res = measure(which, debug, cache)
            results[label] = res
            if "error" in res:
                rows.append((label, "error: " + res["error"], "", "", ""))
                continue
            rows.append((label, f"{res['wall']:.2f}", f"{res['open'] + res['lookup']:.3f}",
                         f"{res['lookup']:.3f}", f"{res['rss'] / 2**20:.0f}"))
        ok = [r for r in results.values() if "error" not in r]
        agree = all(r["members"] == ok[0]["members"] and r["needle"] == ok[0]["needle"]
                    for r in ok)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    head = ("provider", "process wall s", "in-process s", "lookups s", "peak RSS MiB")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print(f"layouts agree: {agree}")
    if args.clean:
        shutil.rmtree(BUILD, ignore_errors=True)
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
