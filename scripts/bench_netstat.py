#!/usr/bin/env python3
"""Benchmark: ``netstat -an`` over every stack of a dump with 1,000,000 inpcbs.

Target (issue): >= 100,000 sockets/s end to end and within 5x of reading the same inpcb
bytes raw; 200 VNET jails, one stack with 500,000 pcbs.

Two modes:
- ``--mode vmcore`` (the real thing): builds once under build/bench-netstat/ (git-ignored;
  ~30 s, ~2 GB RAM) a dump from tests/fixturegen with ``scenario.big_net(jails=200,
  pcbs=1_000_000, biggest=500_000)`` on the 14.x fixture kernel, then times
  ``vnetdbg netstat -an`` in fresh processes under each type provider (median of --runs:
  wall, peak RSS, time to the first stack section on stdout, sockets/s) against the raw
  floor: the same inpcb and socket pages, found once with vnetdbg and then read with
  ``os.pread`` alone in a fresh process.
- ``--mode synthetic``: the same number
  of pcbs in 14.x layout (tcpcb embedding the inpcb, socket, protosw), hand-made types
  from tests/unit/test_inet_reports.py, in one flat in-memory image; times the walk +
  netstat text of every stack (``netstat_inet.text_lines``) against the raw floor: the
  same ``target.read`` calls of the same spans, with no decoding or formatting.
  (No DWARF is involved, so the type providers do not matter here.)
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import struct
import sys
import time
from types import SimpleNamespace as NS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


class FlatMemory:
    """One contiguous image [base, base+len): reads are slices (a fast, fair floor)."""

    page_size = 4096

    def __init__(self, base: int, size: int):
        self.base = base
        self.buf = bytearray(size)

    def read(self, address: int, size: int) -> bytes:
        off = address - self.base
        if off < 0 or off + size > len(self.buf):
            from vnetdbg.errors import FaultError
            raise FaultError(address)
        return bytes(self.buf[off:off + size])


def build_synthetic(stacks: int, total: int, big: int):
    from tests.unit.fakes import FakeSymbols, FakeTypes
    from tests.unit.test_inet_reports import kernel_types
    from vnetdbg.objects import Target

    types = kernel_types(14)
    counts = [big] + [(total - big) // (stacks - 1)] * (stacks - 1)
    counts[-1] += total - sum(counts)
    PCB, SO = 0x100, 0x40          # tcpcb(160)+pad, socket(48)+pad
    base = 0xFFFFF80000000000
    size = 0x10000 + total * (PCB + SO)
    mem = FlatMemory(base, size)
    buf = mem.buf
    struct.pack_into("<hh", buf, 0x100, 0, 6)            # protosw (TCP)
    symbols = {}
    cursor = 0x10000
    infos = []
    for s, n in enumerate(counts):
        info = 0x1000 + s * 0x40                         # struct inpcbinfo
        infos.append(base + info)
        prev_link = info + 8                             # embedded head
        for i in range(n):
            inp = cursor
            so = cursor + PCB
            cursor += PCB + SO
            struct.pack_into("<Q", buf, prev_link, base + inp)
            prev_link = inp
            struct.pack_into("<BBxxi", buf, inp + 16, 1, 6, 0)
            struct.pack_into(">HH", buf, inp + 32, 1024 + i % 60000, 22)
            struct.pack_into("4s", buf, inp + 48, bytes((10, s % 256, (i >> 8) & 255, i & 255)))
            struct.pack_into("4s", buf, inp + 64, bytes((10, 0, 0, 1)))
            struct.pack_into("<Q", buf, inp + 72, base + so)
            struct.pack_into("<II", buf, inp + 132, 0, 4)                 # ESTABLISHED
            struct.pack_into("<h", buf, so + 2, 0)
            struct.pack_into("<QQ", buf, so + 8, base + 0x100, base + inp)
            struct.pack_into("<I", buf, so + 36, i % 1000)
    target = Target(mem, FakeSymbols(symbols), FakeTypes(types))
    return target, infos, counts


def run_synthetic(args) -> int:
    from vnetdbg.freebsd import inpcb as P
    from vnetdbg.reports import netstat_inet as NI

    t = time.perf_counter()
    target, infos, counts = build_synthetic(args.stacks, args.pcbs, args.big)
    print(f"built {sum(counts)} pcbs in {len(infos)} stacks in "
          f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
    opts = NI.Options(NS(all=True, numeric=True))
    L = P.pcb_layout(target)
    rec = L.inp_tcp

    def netstat():
        first_section = None
        t0 = time.perf_counter()
        lines = 0
        out = open(os.devnull, "w")
        for info in infos:
            problems: list[str] = []
            fmt = NI.Formatter(opts, dict)
            header = True
            for p in P.walk_pcbs(target, info, tcp=True, what="bench", problems=problems):
                if not NI.keep(p, opts, True, 6):
                    continue
                if header:
                    out.write("\n".join(fmt.header()) + "\n")
                    header = False
                out.write(fmt.row_text(p, "tcp", True) + "\n")
                lines += 1
            if first_section is None:
                first_section = time.perf_counter() - t0
            assert not problems, problems
        return time.perf_counter() - t0, first_section, lines

    def raw():
        t0 = time.perf_counter()
        read = target.read
        n = 0
        for info in infos:
            a = target.read_pointer(info + 8)
            while a:
                b = read(a + rec.start, rec.length)
                so = int.from_bytes(b[72 - rec.start:80 - rec.start], "little")
                read(so + L.so_start, L.so_length)
                a = int.from_bytes(b[-rec.start:8 - rec.start], "little") \
                    if rec.start == 0 else target.read_pointer(a)
                n += 1
        return time.perf_counter() - t0, n

    walls, firsts, raws = [], [], []
    for _ in range(args.runs):
        w, f, lines = netstat()
        walls.append(w)
        firsts.append(f)
        r, n = raw()
        raws.append(r)
    wall, floor = statistics.median(walls), statistics.median(raws)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"netstat -an (synthetic, {lines} rows, {len(infos)} stacks): median wall "
          f"{wall:.2f} s = {lines / wall:,.0f} sockets/s; first section (500k-pcb stack) "
          f"{statistics.median(firsts):.2f} s")
    print(f"raw floor (same reads, no decoding): {floor:.2f} s = {n / floor:,.0f} pcbs/s; "
          f"ratio {wall / floor:.2f}x")
    print(f"peak RSS {rss:.0f} MiB (includes the {len(target.memory.buf) / 2**20:.0f} MiB image)")
    return 0


def _raw_floor_pages(core: str) -> list[int]:
    """File offsets of the dump pages holding the bytes the walk reads (each inpcb's
    decoded span, its socket's span), in walk order, each page once.  Found with
    vnetdbg itself (untimed); the floor then reads them with os.pread alone."""
    from vnetdbg.freebsd import inpcb as P
    from vnetdbg.reports import netstat_inet as NI
    from vnetdbg.reports.scope import select_stacks
    from vnetdbg.session import open_session
    s = open_session(core, None, types="drgn")
    t = s.target
    problems: list[str] = []
    stacks, _ = select_stacks(t, problems=problems)
    L = P.pcb_layout(t)
    mem = t.memory
    seen, out = set(), []

    def add(a: int, n: int) -> None:
        for page in range(a & ~4095, a + n, 4096):
            if page not in seen:
                seen.add(page)
                out.append(mem._va_page_offset(page))
    for st in stacks:
        for name, var, _proto, _fam in NI.PROTOX[:3] + (NI.UDPLITE,):
            a = NI._pcbinfo_address(t, st, var)
            if a is None:
                continue
            tcp = var == "tcbinfo"
            rec = L.inp_tcp if (tcp and L.tcp_embeds) else L.inp
            for p in P.walk_pcbs(t, a, tcp=tcp, what=var, problems=problems):
                add(p.address + rec.start, rec.length)
                if p.socket:
                    add(p.socket + L.so_start, L.so_length)
    s.close()
    return out


RAW_PROBE = r"""
import os, sys, time
offs = [int(x) for x in open(sys.argv[2]).read().split()]
fd = os.open(sys.argv[1], os.O_RDONLY)
t = time.perf_counter()
n = 0
for off in offs:
    n += len(os.pread(fd, 4096, off))
print(time.perf_counter() - t, n)
"""

NETSTAT_PROBE = r"""
import io, sys, time, resource
t = time.perf_counter()
class Out(io.TextIOBase):
    first = None
    n = 0
    def write(self, s):
        if self.first is None and s.startswith('Proto'):
            self.first = time.perf_counter() - t
        if s != chr(10) and not s.startswith(('vnet ', chr(10) + 'vnet ', 'Active',
                                                'Proto')):
            self.n += 1      # one socket row (netcmds writes a row, then its newline)
        return len(s)
    def flush(self):
        pass
from vnetdbg.cli import main
o = Out()
sys.stdout = o
code = main(['netstat', '-an', '--types', sys.argv[2], sys.argv[1]])
w = time.perf_counter() - t
sys.stdout = sys.__stdout__
print(w, o.first or 0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, o.n, code)
"""


def run_vmcore(args) -> int:
    """``vnetdbg netstat -an`` over every stack of a big_net dump, fresh processes."""
    import subprocess
    import shutil
    from tests.fixturegen import scenario
    from tests.fixturegen.build import build_vmcore
    out = os.path.join(ROOT, "build", "bench-netstat")
    core = os.path.join(out, "vmcore.0")
    stamp = os.path.join(out, f"stamp-{args.stacks}-{args.pcbs}-{args.big}")
    if not os.path.exists(stamp):
        shutil.rmtree(out, ignore_errors=True)
        t = time.perf_counter()
        build_vmcore(os.path.join(ROOT, "fixtures", "vmcores", "amd64-fbsd14"), out,
                     scenario=scenario.big_net(jails=args.stacks, pcbs=args.pcbs,
                                               biggest=args.big), write_truth=False)
        open(stamp, "w").close()
        print(f"built {core} in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    # the raw floor: the same pages, read with os.pread in a fresh process
    offs_file = os.path.join(out, "floor-pages.txt")
    if not os.path.exists(offs_file + ".done"):
        with open(offs_file, "w") as f:
            f.write("\n".join(map(str, _raw_floor_pages(core))))
        open(offs_file + ".done", "w").close()
    floors = []
    for _ in range(args.runs):
        r = subprocess.run([sys.executable, "-c", RAW_PROBE, core, offs_file], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
        floors.append(float(r[0]))
        nbytes = int(r[1])
    floor = statistics.median(floors)
    print(f"raw floor: {nbytes / 2**20:.0f} MiB of inpcb/socket pages by os.pread: "
          f"median {floor:.2f} s")
    for prov in ("drgn", "dwarf"):
        rows = []
        for _ in range(args.runs):
            r = subprocess.run([sys.executable, "-c", NETSTAT_PROBE, core, prov], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.split()
            rows.append([float(x) for x in r])
        w = statistics.median(r[0] for r in rows)
        sockets = rows[0][3]
        print(f"{prov}: median wall {w:.2f} s (runs: "
              f"{', '.join(f'{r[0]:.2f}' for r in rows)}), first stack section on stdout "
              f"after {statistics.median(r[1] for r in rows):.2f} s, peak RSS "
              f"{max(r[2] for r in rows):.0f} MiB, {sockets:.0f} sockets = "
              f"{sockets / w:,.0f} sockets/s, {w / floor:.1f}x the raw floor")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("synthetic", "vmcore"), default="vmcore")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stacks", type=int, default=200)
    ap.add_argument("--pcbs", type=int, default=1_000_000)
    ap.add_argument("--big", type=int, default=500_000)
    args = ap.parse_args()
    return run_synthetic(args) if args.mode == "synthetic" else run_vmcore(args)


if __name__ == "__main__":
    sys.exit(main())
