#!/usr/bin/env python3
"""Memory-layer benchmark: (a) warm random 8-byte KVA reads per translator, (b) a
sequential read of every present page of a 1 GiB minidump against ``cat FILE >
/dev/null``, (c) first open of a 1 GiB .zst vmcore against ``zstd -d``, and the second
(cached) open.  Builds its own synthetic dumps under build/bench-memory/ and removes
them afterwards.  Takes one to three minutes.

    .venv/bin/python scripts/bench_memory.py [--gib N] [--reads N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vnetdbg.memory import (compressed, elfcore, minidump_amd64,  # noqa: E402
                            minidump_arm64, minidump_i386)

PS = 4096
WORK = ROOT / "build" / "bench-memory"
AMD64_KB = 0xFFFFFFFF80000000
DMAPBASE = 0xFFFFF80000000000


def pad(b: bytes) -> bytes:
    return b + bytes(-len(b) % PS)


def page(i: int) -> bytes:
    """A recognisable, moderately compressible page: 512 random bytes then a tag."""
    return os.urandom(512) + struct.pack("<Q", i) * ((PS - 512) // 8)


def write_pages(f, n: int, first: int = 0, batch: int = 4096) -> None:
    for s in range(0, n, batch):
        k = min(batch, n - s)
        rnd = os.urandom(512 * k)
        f.write(b"".join(rnd[j * 512:(j + 1) * 512]
                         + struct.pack("<Q", first + s + j) * ((PS - 512) // 8)
                         for j in range(k)))


def bitmap_bits(bits, size: int) -> bytes:
    bm = bytearray(size)
    for b in bits:
        bm[b >> 3] |= 1 << (b & 7)
    return bytes(bm)


def amd64_minidump(path: Path, n: int, *, mapped: bool) -> list[int]:
    """v2: data pages at PA 0x100000 + i*4K (bits absolute); with ``mapped``, VA
    kernbase + i*4K -> that page through PDEs and PT pages at PA 0x80000000 + k*4K."""
    data0 = 0x100000 >> 12
    npt = -(-n // 512) if mapped else 0
    pt0 = 0x80000000 >> 12
    top = (pt0 + npt) if mapped else data0 + n
    bitmapsize = -(-(top + 1) // 8)
    bits = list(range(data0, data0 + n)) + list(range(pt0, pt0 + npt))
    pdes = bytearray(PS * max(1, -(-npt // 512)))
    for k in range(npt):
        struct.pack_into("<Q", pdes, k * 8, ((pt0 + k) << 12) | 3)
    hdr = struct.pack("<24sIIIIQQQI", b"minidump FreeBSD/amd64", 2, 0, bitmapsize,
                      len(pdes), AMD64_KB, DMAPBASE, 0xFFFFFC0000000000, 0)
    with open(path, "wb") as f:
        f.write(pad(hdr) + pad(bitmap_bits(bits, bitmapsize)) + bytes(pdes))
        write_pages(f, n)
        for k in range(npt):
            pt = bytearray(PS)
            for j in range(min(512, n - k * 512)):
                struct.pack_into("<Q", pt, j * 8, ((data0 + k * 512 + j) << 12) | 3)
            f.write(pt)
    return [AMD64_KB + i * PS for i in range(n)] if mapped else \
        [DMAPBASE + (data0 + i) * PS for i in range(n)]


def arm64_minidump(path: Path, n: int) -> list[int]:
    kb = 0xFFFF000000000000
    base = 0x40000000
    bitmapsize = -(-n // 8)
    da = pad(struct.pack("<QQ", base, base + n * PS) + bytes(16))
    l3 = b"".join(struct.pack("<Q", (base + i * PS) | 0x403) for i in range(n))
    hdr = struct.pack("<24sIIIIQQQQII", b"minidump FreeBSD/arm64", 3, 0, bitmapsize,
                      len(pad(l3)), kb, base, 0xFFFFA00000000000, 0xFFFFFF0000000000,
                      len(da), 0)
    with open(path, "wb") as f:
        f.write(pad(hdr) + da + pad(bitmap_bits(range(n), bitmapsize)) + pad(l3))
        write_pages(f, n)
    return [kb + i * PS for i in range(n)]


def i386_pae_minidump(path: Path, n: int) -> list[int]:
    kb = 0x00800000
    bitmapsize = -(-n // 8)
    da = pad(struct.pack("<QQ", 0, n * PS) + bytes(16))
    ptes = b"".join(struct.pack("<Q", (i * PS) | 3) for i in range(n))
    hdr = struct.pack("<24sIIIIIII", b"minidump FreeBSD/i386", 2, 0, bitmapsize,
                      len(pad(ptes)), kb, 1, len(da))
    with open(path, "wb") as f:
        f.write(pad(hdr) + da + pad(bitmap_bits(range(n), bitmapsize)) + pad(ptes))
        write_pages(f, n)
    return [kb + i * PS for i in range(n)]


def amd64_elf(path: Path, n: int) -> tuple[list[int], dict]:
    """Physical memory [0, end): PML4 0x1000, PDP 0x2000, PD 0x3000, PTs from 0x4000,
    data pages from 0x400000; KPML4phys at VA kernbase + 0x800 (PA 0x800)."""
    npt = -(-n // 512)
    mem_pages = 0x400 + n
    low = bytearray((0x4000 >> 12) * PS + npt * PS)
    struct.pack_into("<Q", low, 0x800, 0x1000)
    struct.pack_into("<Q", low, 0x1000 + 8 * 511, 0x2000 | 3)
    struct.pack_into("<Q", low, 0x2000 + 8 * 510, 0x3000 | 3)
    for k in range(npt):
        struct.pack_into("<Q", low, 0x3000 + 8 * k, (0x4000 + k * PS) | 3)
        for j in range(min(512, n - k * 512)):
            struct.pack_into("<Q", low, 0x4000 + k * PS + j * 8,
                             (0x400000 + (k * 512 + j) * PS) | 3)
    low = bytes(low).ljust(0x400000, b"\0")
    eh = (b"\x7fELF" + bytes([2, 1, 1, 255]) + bytes(8)
          + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, 0, 0, 64, 56, 1, 0, 0, 0))
    ph = struct.pack("<IIQQQQQQ", 1, 4, PS, 0, 0, mem_pages * PS, mem_pages * PS, PS)
    with open(path, "wb") as f:
        f.write(pad(eh + ph) + low)
        write_pages(f, n)
    return ([AMD64_KB + i * PS for i in range(n)],
            {"kernbase": AMD64_KB, "KPML4phys": AMD64_KB + 0x800})


def random_reads(src, vas: list[int], count: int) -> float:
    rng = random.Random(1)
    picks = [rng.choice(vas) + rng.randrange(0, PS - 8, 8) for _ in range(count)]
    read = src.read
    for va in picks[:20000]:          # warm the translation caches
        read(va, 8)
    t = time.perf_counter()
    for va in picks:
        read(va, 8)
    return count / (time.perf_counter() - t)


def timed(cmd: str) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0, help="size of the big dump")
    ap.add_argument("--reads", type=int, default=200000)
    ap.add_argument("--pages", type=int, default=16384,
                    help="mapped pages in the random-read dumps (16384 = 64 MiB)")
    args = ap.parse_args()
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    try:
        print(f"(a) random 8-byte KVA reads, warm, {args.pages} mapped pages, "
              f"{args.reads} reads")
        n = args.pages
        p = WORK / "amd64.mini"
        vas = amd64_minidump(p, n, mapped=True)
        with minidump_amd64.open(p) as d:
            print(f"    amd64 minidump v2 (PDE->PT)   {random_reads(d, vas, args.reads):>10,.0f} reads/s")
        p = WORK / "arm64.mini"
        vas = arm64_minidump(p, n)
        with minidump_arm64.open(p) as d:
            print(f"    arm64 minidump v3 (L3)        {random_reads(d, vas, args.reads):>10,.0f} reads/s")
        p = WORK / "i386.mini"
        vas = i386_pae_minidump(p, n)
        with minidump_i386.open(p) as d:
            print(f"    i386 PAE minidump v2          {random_reads(d, vas, args.reads):>10,.0f} reads/s")
        p = WORK / "amd64.elf"
        vas, syms = amd64_elf(p, n)
        with elfcore.open(p) as d:
            d.attach_symbols(syms.get)
            print(f"    amd64 ELF full dump (4-level) {random_reads(d, vas, args.reads):>10,.0f} reads/s")
        for f in WORK.iterdir():
            f.unlink()

        big_pages = int(args.gib * (1 << 30)) // PS
        big = WORK / "big.mini"
        t = time.perf_counter()
        dmap = amd64_minidump(big, big_pages, mapped=False)
        size = big.stat().st_size
        print(f"\n(b) sequential read of all {big_pages} present pages "
              f"({size / (1 << 30):.2f} GiB file, built in {time.perf_counter() - t:.1f} s)")
        cat = timed(f"cat {big} > /dev/null")
        with minidump_amd64.open(big) as d:
            t = time.perf_counter()
            step = 16 * PS
            for i in range(0, big_pages, 16):
                d.read(dmap[i], step if i + 16 <= big_pages else (big_pages - i) * PS)
            ours = time.perf_counter() - t
        print(f"    cat FILE > /dev/null          {cat:6.2f} s  {size / cat / (1 << 20):8.0f} MiB/s")
        print(f"    vnetdbg DMAP reads (64 KiB)   {ours:6.2f} s  "
              f"{big_pages * PS / ours / (1 << 20):8.0f} MiB/s")

        zst = WORK / "big.mini.zst"
        t = time.perf_counter()
        subprocess.run(["zstd", "-q", "-1", "-T0", "--no-content-size", str(big), "-o",
                        str(zst)], check=True)
        print(f"\n(c) open of a {size / (1 << 30):.2f} GiB vmcore as .zst "
              f"({zst.stat().st_size / (1 << 20):.0f} MiB compressed in "
              f"{time.perf_counter() - t:.1f} s)")
        big.unlink()
        ref = timed(f"zstd -d -q -f {zst} -o {WORK / 'ref.core'}")
        (WORK / "ref.core").unlink()
        cache = WORK / "cache"
        mod = "zstandard module" if compressed.have_zstandard() else "zstd command"
        t = time.perf_counter()
        with compressed.open(zst, cache_dir=str(cache)) as d:
            first = time.perf_counter() - t
            assert d.describe()["cache-reused"] is False
        t = time.perf_counter()
        with compressed.open(zst, cache_dir=str(cache)) as d:
            second = time.perf_counter() - t
            assert d.describe()["cache-reused"] is True
        shutil.rmtree(cache)
        t = time.perf_counter()
        compressed.materialize(zst, "zstd", cache_dir=str(cache), use_module=False)
        cli = time.perf_counter() - t
        print(f"    zstd -d FILE -o OUT           {ref:6.2f} s")
        print(f"    first open ({mod:16s}) {first:6.2f} s")
        print(f"    first open (zstd command)     {cli:6.2f} s")
        print(f"    second open (cache reused)    {second:6.3f} s")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
