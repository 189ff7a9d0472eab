#!/usr/bin/env python3
"""Benchmark (not a test): open time, RSS growth and random-read rate of the amd64
minidump reader on a large sparse v3 dump.

Builds, in a temporary directory, a v3 dump whose dump_avail covers 64 GiB (2 MiB
bitmap) with 20,000 present pages scattered at random, written as a sparse file so it
costs almost no disk.  Target: open well under 0.2 s and under 50 MB extra RSS.

Usage: .venv/bin/python scripts/bench_minidump_open.py
"""

from __future__ import annotations

import gc
import random
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vnetdbg.memory import minidump_amd64  # noqa: E402

PS = 4096
RAM = 64 << 30
PRESENT = 20_000
RUNS = 5
READS = 50_000
KERNBASE = 0xFFFFFFFF80000000
DMAPBASE = 0xFFFFF80000000000
DMAPEND = 0xFFFFFC0000000000


def build(path: Path, rng: random.Random) -> list[int]:
    """Write the sparse dump; return the present physical page addresses."""
    nbits = RAM // PS
    bitmapsize = nbits // 8
    pfns = sorted(rng.sample(range(nbits), PRESENT))
    bitmap = bytearray(bitmapsize)
    for pfn in pfns:
        bitmap[pfn >> 3] |= 1 << (pfn & 7)
    header = struct.pack("<24sIIIIQQQI", b"minidump FreeBSD/amd64", 3, 0, bitmapsize, PS,
                         KERNBASE, DMAPBASE, DMAPEND, PS).ljust(PS, b"\0")
    dump_avail = struct.pack("<QQ", 0, RAM).ljust(PS, b"\0")
    sparse_off = 2 * PS + bitmapsize + PS  # header, dump_avail, bitmap, empty pmap page
    with open(path, "wb") as f:
        f.write(header + dump_avail + bitmap)
        for slot, pfn in enumerate(pfns):  # a tag at each page start; the rest is a hole
            f.seek(sparse_off + slot * PS)
            f.write(struct.pack("<Q", pfn << 12))
        f.truncate(sparse_off + PRESENT * PS)
    return [pfn << 12 for pfn in pfns]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PS


def time_open(path: Path) -> tuple[float, int]:
    gc.collect()
    before = rss_bytes()
    t0 = time.perf_counter()
    dump = minidump_amd64.open(path)
    elapsed = time.perf_counter() - t0
    delta = rss_bytes() - before
    dump.close()
    return elapsed, delta


def reads_per_second(path: Path, pas: list[int], rng: random.Random) -> float:
    targets = [DMAPBASE + rng.choice(pas) + 8 * rng.randrange(PS // 8) for _ in range(READS)]
    with minidump_amd64.open(path) as dump:
        t0 = time.perf_counter()
        for va in targets:
            dump.read(va, 8)
        return READS / (time.perf_counter() - t0)


def main() -> None:
    rng = random.Random(42)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vmcore.0"
        pas = build(path, rng)
        with minidump_amd64.open(path) as dump:  # sanity: tags read back through DMAP
            assert dump.read(DMAPBASE + pas[-1], 8) == struct.pack("<Q", pas[-1])
        runs = [time_open(path) for _ in range(RUNS)]
        rate = reads_per_second(path, pas, rng)
    print(f"v3 dump: {RAM >> 30} GiB covered, {PRESENT} present pages, "
          f"bitmap {RAM // PS // 8 >> 10} KiB")
    print(f"open: median {statistics.median(t for t, _ in runs) * 1000:.1f} ms over {RUNS} runs")
    print(f"RSS delta: median {statistics.median(d for _, d in runs) / 2**20:.1f} MiB")
    print(f"random 8-byte DMAP reads: {rate:,.0f}/s (mostly uncached pages)")


if __name__ == "__main__":
    main()
