#!/usr/bin/env python3
"""Generate the committed fixture vmcores from the simulated machine.

    python scripts/gen_fixture_vmcores.py [--out fixtures/vmcores] [--layout fbsd14 ...]
    python scripts/gen_fixture_vmcores.py --check

Builds the fixture kernels with scripts/build_fixture_kernels.py into a
temporary directory, then writes OUT/amd64-<layout>/ with vmcore.0, kernel,
kernel.debug, info.0 and ground-truth.json (scenario.default(): jails, vnets
and the network stacks of vnet0 and jail 2).  With --check, regenerates into a
temporary directory and exits 1 (naming the differing files) unless the result
is byte-identical to what is in OUT.  Deterministic: no clock, no randomness.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.fixturegen import build_vmcore  # noqa: E402

#: layout -> (fixture directory, amd64 minidump version)
FIXTURES = {
    "fbsd12": ("amd64-fbsd12", 2),
    "fbsd13": ("amd64-fbsd13", 3),
    "fbsd14": ("amd64-fbsd14", 3),
}
FILES = ("vmcore.0", "kernel", "kernel.debug", "info.0", "ground-truth.json")


def _load_kernel_builder():
    path = os.path.join(ROOT, "scripts", "build_fixture_kernels.py")
    spec = importlib.util.spec_from_file_location("build_fixture_kernels", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def generate(out_root: str, layouts: list[str], work: str) -> list[str]:
    kb = _load_kernel_builder()
    written = []
    for layout in layouts:
        dirname, version = FIXTURES[layout]
        kdir = os.path.join(work, "kernels")
        os.makedirs(kdir, exist_ok=True)
        paths = kb.build(layout, kdir)
        layout_dir = paths["dir"] if isinstance(paths, dict) and "dir" in paths \
            else os.path.join(kdir, layout)
        out = os.path.join(out_root, dirname)
        if os.path.isdir(out):
            for name in FILES:
                p = os.path.join(out, name)
                if os.path.exists(p):
                    os.unlink(p)
        os.makedirs(out, exist_ok=True)
        truth = build_vmcore(layout_dir, out, dump_version=version, layout=layout)
        written.append(out)
        net = truth.get("network", {}).get("stacks", [])
        print(f"{out}: minidump v{version}, {truth['dump']['size']} bytes, "
              f"{truth['dump']['present_pages']} pages, {len(truth['jails'])} jails, "
              f"{len(net)} network stacks, "
              f"{sum(len(s['interfaces']) for s in net)} interfaces, "
              f"{sum(sum(p['count'] for p in s['pcbinfo'].values()) for s in net)} pcbs")
    return written


def check(out_root: str, layouts: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="vnetdbg-fixture-check-") as tmp:
        fresh = os.path.join(tmp, "vmcores")
        generate(fresh, layouts, tmp)
        bad = []
        for layout in layouts:
            dirname, _ = FIXTURES[layout]
            for name in FILES:
                a = os.path.join(fresh, dirname, name)
                b = os.path.join(out_root, dirname, name)
                rel = os.path.relpath(b, ROOT)
                if not os.path.exists(b):
                    bad.append(f"{rel}: missing")
                elif not filecmp.cmp(a, b, shallow=False):
                    bad.append(f"{rel}: differs from a fresh build")
        if bad:
            print("fixture vmcores are stale; run scripts/gen_fixture_vmcores.py", file=sys.stderr)
            for line in bad:
                print("  " + line, file=sys.stderr)
            return 1
        print(f"fixture vmcores up to date ({', '.join(layouts)})")
        return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "fixtures", "vmcores"))
    ap.add_argument("--layout", action="append", choices=sorted(FIXTURES),
                    help="only this layout (repeatable); default all")
    ap.add_argument("--check", action="store_true",
                    help="verify the committed fixtures are byte-identical to a fresh build")
    args = ap.parse_args(argv)
    layouts = args.layout or list(FIXTURES)
    if args.check:
        return check(args.out, layouts)
    with tempfile.TemporaryDirectory(prefix="vnetdbg-fixture-gen-") as tmp:
        generate(args.out, layouts, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
