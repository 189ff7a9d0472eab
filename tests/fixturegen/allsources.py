"""One machine state, every memory source: builds the arm64/riscv minidumps of a
scenario on the per-arch fixture kernels (``build_arch_vmcore``) and the amd64
containers derived from an amd64 machine (``write_amd64_variants``).  Must not import
vnetdbg.
"""

from __future__ import annotations

import os
import shutil

from . import arch_arm64, arch_riscv
from . import scenario as scenario_mod
from .archmachine import ArchKernel, ArchMachine
from .kernel import find_kernel_files
from .scenario import Builder

ARCHES = {"arm64": (arch_arm64.ARM64PageTables, arch_arm64.write_minidump),
          "riscv": (arch_riscv.RISCVPageTables, arch_riscv.write_minidump)}


def copy_kernel(layout_dir: str, out_dir: str) -> None:
    img, dbg = find_kernel_files(layout_dir)
    if img == dbg:
        shutil.copyfile(img, os.path.join(out_dir, "kernel.full"))
    else:
        shutil.copyfile(img, os.path.join(out_dir, "kernel"))
        shutil.copyfile(dbg, os.path.join(out_dir, "kernel.debug"))


def build_arch_vmcore(layout_dir: str, out_dir: str, arch: str, *, page_size: int = 4096,
                      scenario=None, layout: str | None = None) -> dict:
    """Simulate ``scenario`` on an ``arch`` machine and write out_dir/vmcore.0 (the
    arch's minidump) plus kernel and kernel.debug beside it."""
    pt_class, writer = ARCHES[arch]
    scen = scenario or scenario_mod.default()
    kernel = ArchKernel(layout_dir)
    if kernel.arch != arch:
        raise ValueError(f"{layout_dir} holds a {kernel.arch} kernel, not {arch}")
    machine = ArchMachine(kernel, pt_class, scen.ram_size, msgbuf_size=scen.msgbuf_size,
                          page_size=page_size)
    b = Builder(machine, scen, layout or os.path.basename(os.path.normpath(layout_dir)))
    truth = b.build()
    machine.write_md_globals()
    os.makedirs(out_dir, exist_ok=True)
    dl = writer(machine, os.path.join(out_dir, "vmcore.0"), msgbuf_ring=b.msgbuf_ring,
                msg_size=b.msg_size)
    copy_kernel(layout_dir, out_dir)
    return {"truth": truth, "dump": dl, "machine": machine, "builder": b}


def kmem_offset_function(machine):
    """/dev/kmem stand-in over a raw physical image: the offset of a KVA is the
    physical address the machine's page tables give (far past the end if unmapped)."""
    def offset(kva: int) -> int:
        pa = machine.translate(kva)
        return (1 << 52) if pa is None else pa
    return offset
