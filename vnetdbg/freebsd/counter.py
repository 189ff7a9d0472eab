"""counter(9): per-CPU 64-bit counters, summed over CPUs the way the kernel does.

A ``counter_u64_t`` is a per-CPU allocation.  CPU c's slot is at
- ``c + cpuid_to_pcpu[c]->pc_zpcpu_offset`` on kernels whose ``struct pcpu`` has
  ``pc_zpcpu_offset`` (13+; ``zpcpu_get_cpu``),
- ``c + sizeof(struct pcpu) * c`` before that (12; libkvm's ``kvm_read_zpcpu``).
Only CPUs with a ``cpuid_to_pcpu`` entry are counted (``CPU_FOREACH``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import FaultError
from ..objects import Target


@dataclass(frozen=True)
class CpuOffsets:
    """Per-CPU displacement of a counter's slot, one entry per present CPU."""

    offsets: tuple[int, ...]


def cpu_offsets(target: Target) -> CpuOffsets:
    """Read the CPU set once per command; every counter sum then needs only reads."""
    maxid = target.variable("mp_maxid").value_()
    table = target.variable("cpuid_to_pcpu")
    pcpu_type = target.type("struct pcpu")
    zpcpu = pcpu_type.has_member("pc_zpcpu_offset")
    offsets = []
    for cpu in range(min(maxid, 4095) + 1):
        pc = table[cpu].value_()
        if not pc:
            continue
        if zpcpu:
            offsets.append(target.value(pc, pcpu_type).member("pc_zpcpu_offset").value_())
        else:
            offsets.append((pcpu_type.size or 0) * cpu)
    return CpuOffsets(tuple(offsets))


def counter_fetch(target: Target, counter: int, cpus: CpuOffsets) -> int:
    """The sum of counter ``counter`` over all CPUs (0 for a NULL counter)."""
    if not counter:
        return 0
    total = 0
    amask = (1 << (8 * target.pointer_size)) - 1   # counter(9) values are u64 everywhere;
    for off in cpus.offsets:                       # their addresses wrap at pointer width
        total += int.from_bytes(target.read((counter + off) & amask, 8), target.byteorder)
    return total & ((1 << 64) - 1)


def counter_pointers_fetch(target: Target, array: int, count: int,
                           cpus: CpuOffsets) -> list[int]:
    """Sums for an array of ``count`` ``counter_u64_t`` pointers at ``array``: the
    layout of ``VNET_PCPUSTAT_DEFINE`` statistics (tcpstat, ...) and ``if_counters[]``,
    whose elements are allocated one by one (``COUNTER_ARRAY_ALLOC``)."""
    if count <= 0:
        return []
    ps = target.pointer_size
    code = {4: "I", 8: "Q"}[ps]
    order = "<" if target.byteorder == "little" else ">"
    pointers = struct.unpack(f"{order}{count}{code}", target.read(array, ps * count))
    return [counter_fetch(target, p, cpus) for p in pointers]


def try_counter_fetch(target: Target, counter: int, cpus: CpuOffsets,
                      problems: list[str] | None = None) -> int | None:
    """``counter_fetch`` that reports an unreadable slot instead of raising."""
    try:
        return counter_fetch(target, counter, cpus)
    except FaultError as e:
        if problems is not None:
            problems.append(f"counter at {counter:#x}: {e}")
        return None
