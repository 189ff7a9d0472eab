#!/usr/bin/env python3
"""Benchmark: open and `jls` on a large dump, under each type provider.

Builds (once, under build/bench-jls/, git-ignored) a 64 GiB-RAM machine with 10,000 jails
using the fixture machine writer and the 14.x fixture kernel, then measures in fresh
processes, median of --runs:
  - open: header + bitmap rank index (memory source only), wall time and RSS growth;
  - jls with drgn; jls with the pure-Python DWARF provider, cold cache and cached:
    wall time and peak RSS.
Targets (issue 2): open < 0.2 s and < 50 MB; jls < 2 s with drgn; dwarf cached within
1.5x of drgn.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OPEN_PROBE = r"""
import os, sys, time, resource
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
from vnetdbg.memory import open_core
before = rss(); t = time.perf_counter()
m = open_core(sys.argv[1])
print(time.perf_counter() - t, rss() - before)
"""

JLS_PROBE = r"""
import io, sys, time, resource
from contextlib import redirect_stdout
from vnetdbg.cli import main
t = time.perf_counter()
with redirect_stdout(io.StringIO()) as out:
    code = main(['jls', '--types', sys.argv[2], sys.argv[1]])
assert code == 0
lines = out.getvalue().count('\n')
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, lines)
"""


def build(out: str, jails: int) -> str:
    from tests.fixturegen.build import build_vmcore
    from tests.fixturegen import scenario

    core = os.path.join(out, "vmcore.0")
    stamp = os.path.join(out, f"stamp-{jails}")
    if os.path.exists(stamp):
        return core
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    build_vmcore(os.path.join(ROOT, "fixtures", "vmcores", "amd64-fbsd14"), out,
                 scenario=scenario.big(jails=jails), write_truth=False)
    open(stamp, "w").close()
    print(f"built {core} ({os.path.getsize(core) / 2**20:.1f} MiB apparent, "
          f"{os.stat(core).st_blocks * 512 / 2**20:.1f} MiB on disk) in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    return core


def run(probe: str, *args: str, env=None) -> list[float]:
    out = subprocess.run([sys.executable, "-c", probe, *args], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    return [float(x) for x in out.split()]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jails", type=int, default=10_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "bench-jls"))
    args = ap.parse_args()
    core = build(args.out, args.jails)

    results = {}
    opens = [run(OPEN_PROBE, core) for _ in range(args.runs)]
    results["open"] = (statistics.median(o[0] for o in opens),
                       statistics.median(o[1] for o in opens))

    def jls(provider: str, cache: str | None, fresh: bool):
        env = dict(os.environ)
        if cache:
            env["VNETDBG_CACHE_DIR"] = cache
        samples = []
        for _ in range(args.runs):
            if fresh and cache:
                shutil.rmtree(cache, ignore_errors=True)
            samples.append(run(JLS_PROBE, core, provider, env=env))
        assert len({s[2] for s in samples}) == 1 and samples[0][2] > args.jails / 2, samples
        return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)

    with tempfile.TemporaryDirectory() as cache:
        try:
            import drgn  # noqa: F401
            results["jls drgn"] = jls("drgn", None, False)
        except ImportError:
            print("drgn not installed: skipping the drgn rows", file=sys.stderr)
        results["jls dwarf, cold cache"] = jls("dwarf", os.path.join(cache, "c"), True)
        jls("dwarf", os.path.join(cache, "w"), False)  # warm the cache once
        results["jls dwarf, cached"] = jls("dwarf", os.path.join(cache, "w"), False)

    print(f"{args.jails} jails, 64 GiB machine, median of {args.runs} fresh processes")
    print(f"{'measurement':<24} {'wall (s)':>9} {'memory (MB)':>12}")
    for name, (wall, mem) in results.items():
        label = "RSS growth" if name == "open" else "peak RSS"
        print(f"{name:<24} {wall:9.3f} {mem / 1e6:9.1f} {label}")
    if "jls drgn" in results:
        ratio = results["jls dwarf, cached"][0] / results["jls drgn"][0]
        print(f"dwarf cached / drgn = {ratio:.2f}x")
    print(json.dumps({k: list(v) for k, v in results.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
