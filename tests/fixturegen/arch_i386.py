"""An i386 FreeBSD machine (12+ layout: the 4/4G split, one kernel for PAE and non-PAE),
its page tables and the i386 minidump writer (version 2, PAE and non-PAE), following
sys/i386/i386/{pmap.c,minidump_machdep_base.c,locore.S}, sys/i386/include/{vmparam.h,
minidump.h,pmap_pae.h,pmap_nopae.h}.  The ELF full dump of the same machine is
rawimage.write_elf_full_dump(machine, path, "i386").  Must not import vnetdbg.

Where things are (as pmap_cold()/pmap_bootstrap() leave them):

- RAM is dump_avail [0x1000, 0x9f000) + [1 MiB, ram - 128 KiB) (physmem.default_segments).
- The kernel is linked and loaded at KERNLOAD = KERNBASE = 0x00800000 and mapped 1:1
  (VA == PA); the boot allocations after it (physfree: IdlePDPT, IdlePTD, early tables,
  and here the small objects the scenario asks for as "dmap") are in that 1:1 region,
  mapped with superpages (PG_PS: 2 MiB under PAE, 4 MiB without).  There is no DMAP.
- PAE: IdlePDPT (4 entries, PG_V) -> IdlePTD_pae (NPGPTD = 4 contiguous pages, 2048
  PDEs indexed by va >> 21) -> 512-entry u64 page tables.  Non-PAE: IdlePTD_nopae (one
  page, 1024 PDEs, va >> 22) -> 1024-entry u32 page tables.
- kmem above the 1:1 region: 4 KiB pages on frames from the top of RAM; the message
  buffer is the top of RAM, mapped into KVA (SYSMAP msgbufp + pmap_kenter).
- kernel_vm_end: the end of that KVA, rounded to NBPDR.
"""

from __future__ import annotations

import os
import struct

from .arch_arm64 import _write
from .archmachine import ArchKernel, ArchMachine, dump_avail_bitmap
from .layout import ObjectWriter
from .physmem import MiB, PhysMem, default_segments

KERNLOAD = 0x00800000
KERNBASE = KERNLOAD
MINIDUMP_MAGIC = b"minidump FreeBSD/i386"
MINIDUMP_VERSION = 2
PAGE_SIZE = 4096

PG_V, PG_RW, PG_A, PG_M, PG_PS = 0x001, 0x002, 0x020, 0x040, 0x080
PG_KERN = PG_V | PG_RW | PG_A | PG_M
PG_FRAME_PAE = 0x000FFFFFFFFFF000
PG_FRAME_NOPAE = 0xFFFFF000


class I386PageTables:
    """PAE (PDPT -> PD[4 pages] -> PT, 2 MiB superpages) or non-PAE (PD -> PT, 4 MiB)."""

    ARCH = "i386"

    def __init__(self, mem: PhysMem, new_table, pae: bool):
        self.mem = mem
        self.new_table = new_table
        self.pae = pae
        self.width = 8 if pae else 4
        self.pdrshift = 21 if pae else 22
        self.NBPDR = 1 << self.pdrshift
        self.nptepg = PAGE_SIZE // self.width
        self.frame = PG_FRAME_PAE if pae else PG_FRAME_NOPAE
        if pae:
            self.pdpt = new_table()                  # IdlePDPT (32-byte aligned)
            self.ptd = new_table()                   # IdlePTD_pae: NPGPTD = 4 pages
            for i in range(1, 4):
                assert new_table() == self.ptd + i * PAGE_SIZE
            for i in range(4):
                self._put(self.pdpt + 8 * i, (self.ptd + i * PAGE_SIZE) | PG_V)
            self.root = self.pdpt
        else:
            self.pdpt = None
            self.ptd = new_table()                   # IdlePTD_nopae
            self.root = self.ptd

    def _get(self, pa: int) -> int:
        return int.from_bytes(self.mem.read(pa, self.width), "little")

    def _put(self, pa: int, v: int) -> None:
        self.mem.write(pa, v.to_bytes(self.width, "little"))

    def pde_address(self, va: int) -> int:
        return self.ptd + (va >> self.pdrshift) * self.width

    def pde(self, va: int) -> int:
        return self._get(self.pde_address(va))

    def map_super(self, va: int, pa: int) -> None:
        assert va % self.NBPDR == 0 and pa % self.NBPDR == 0
        self._put(self.pde_address(va), pa | PG_KERN | PG_PS)

    def map_page(self, va: int, pa: int) -> None:
        assert va % PAGE_SIZE == 0 and pa % PAGE_SIZE == 0
        pde = self.pde(va)
        if not pde & PG_V:
            pt = self.new_table()
            pde = pt | PG_KERN
            self._put(self.pde_address(va), pde)
        elif pde & PG_PS:
            raise ValueError("superpage where a page table was expected")
        i = (va >> 12) & (self.nptepg - 1)
        self._put((pde & self.frame) + i * self.width, pa | PG_KERN)

    def translate(self, va: int):
        """(pa, kind) or None; kind "super" or "page"."""
        if va >> 32:
            return None
        pde = self.pde(va)
        if not pde & PG_V:
            return None
        if pde & PG_PS:
            return (pde & self.frame & ~(self.NBPDR - 1)) | (va & (self.NBPDR - 1)), "super"
        pte = self._get((pde & self.frame) + ((va >> 12) & (self.nptepg - 1)) * self.width)
        if not pte & PG_V:
            return None
        return (pte & self.frame) | (va & 0xFFF), "page"

    def pt_page(self, va: int) -> bytes:
        """The minidump's page for the NBPDR block at ``va`` (minidumpsys()): a fake
        page table for a superpage, the page table itself, or zeros."""
        pde = self.pde(va)
        if pde & (PG_PS | PG_V) == PG_PS | PG_V:
            pa = pde & self.frame & ~(self.NBPDR - 1)
            code = "<Q" if self.pae else "<I"
            return b"".join(struct.pack(code, (pa + k * PAGE_SIZE) | PG_KERN)
                            for k in range(self.nptepg))
        if pde & PG_V:
            return self.mem.read(pde & self.frame, PAGE_SIZE)
        return bytes(PAGE_SIZE)

    def block_pages(self, va: int) -> list[int]:
        """Physical pages the NBPDR block at ``va`` maps."""
        pde = self.pde(va)
        if pde & (PG_PS | PG_V) == PG_PS | PG_V:
            pa = pde & self.frame & ~(self.NBPDR - 1)
            return [pa + k * PAGE_SIZE for k in range(self.nptepg)]
        if not pde & PG_V:
            return []
        raw = self.mem.read(pde & self.frame, PAGE_SIZE)
        code = "Q" if self.pae else "I"
        return [e & self.frame for e in struct.unpack(f"<{self.nptepg}{code}", raw) if e & PG_V]


class I386Machine(ArchMachine):
    """The Builder-facing machine API of ``ArchMachine`` on i386 page tables."""

    def __init__(self, kernel: ArchKernel, ram_size: int = 256 * MiB, *, pae: bool = True,
                 msgbuf_size: int = 96 * 1024, ident_size: int = 16 * MiB,
                 kva_size: int = 64 * MiB):
        if kernel.arch != "i386":
            raise ValueError(f"{kernel.image_path} is a {kernel.arch} kernel, not i386")
        self.kernel = kernel
        self.arch = "i386"
        self.pae = pae
        self.ram_size = ram_size
        self.page_size = ps = PAGE_SIZE
        self.mem = PhysMem(default_segments(ram_size))
        self.dump_avail = list(self.mem.segments)
        self.dump_added: set[int] = set()
        self.vm_min = self.kernbase = KERNBASE
        self.dmap_min = self.dmap_max_va = None           # no direct map on i386
        ram_top = self.mem.maxpa
        # kernel image 1:1 at KERNLOAD
        for seg in kernel.segments:
            self.mem.write(seg.vaddr, seg.data)
        self._cursor = self._round(kernel.image_end, ps)  # physfree
        self.pt = I386PageTables(self.mem, self._alloc_table, pae)
        self.kpml4phys = self.pt.root                      # page-table root (truth only)
        nbpdr = self.pt.NBPDR
        self.ident_end = self._round(self._cursor + ident_size, nbpdr)
        for va in range(KERNBASE, self.ident_end, nbpdr):
            self.pt.map_super(va, va)
        self.kernel_map_end = self.ident_end
        self._high = ram_top - ps
        # kmem KVA above the 1:1 region (one NBPDR gap)
        self._kva_cursor = self.ident_end + nbpdr
        self.kernel_vm_end = self._round(self._kva_cursor + kva_size, nbpdr)
        # msgbuf: top of RAM, mapped in KVA page by page.  msgbuf_size need not be a
        # page multiple (the ring is msgbuf_size - sizeof(struct msgbuf), header last)
        self.msgbuf_region_size = msgbuf_size
        mapped = self._round(msgbuf_size, ps)
        self.msgbuf_pa = ram_top - mapped
        self._high = self.msgbuf_pa - ps
        self.msgbuf_va = self._kva_cursor
        for off in range(0, mapped, ps):
            self.pt.map_page(self.msgbuf_va + off, self.msgbuf_pa + off)
        self._kva_cursor += mapped + ps
        self._slab_pa = None
        self._slab_off = ps
        self.dpcpu0_pa = None
        self.arenas: dict[str, dict] = {}
        self.writer = ObjectWriter(kernel, self)

    def _frame_low(self, n: int = 1) -> int:
        pa = super()._frame_low(n)
        if self._cursor > self.ident_end:
            raise MemoryError("1:1 boot region exhausted")
        return pa

    def dmap(self, pa: int) -> int:
        """The KVA of physical ``pa``: itself in the 1:1 region, the msgbuf mapping for
        the message buffer (i386 has no direct map of the rest of RAM)."""
        if KERNBASE <= pa < self.ident_end:
            return pa
        if self.msgbuf_pa <= pa < self.msgbuf_pa + self._round(self.msgbuf_region_size,
                                                              PAGE_SIZE):
            return self.msgbuf_va + pa - self.msgbuf_pa
        raise ValueError(f"physical {pa:#x} has no fixed kernel mapping on i386")

    def translate(self, va: int) -> int | None:
        r = self.pt.translate(va)
        return None if r is None else r[0]

    def va_kind(self, va: int) -> str | None:
        r = self.pt.translate(va)
        return None if r is None else {"super": "kernel-1:1", "page": "kva-pte"}[r[1]]

    def absent_dmap_address(self) -> int:
        """A mapped KVA whose physical page the dump leaves out: not expressible here
        (every mapped page below kernel_vm_end is dumped); an unmapped one instead."""
        return self.unmapped_kva() + 0x100

    def write_md_globals(self) -> None:
        """What pmap_cold()/pmap_bootstrap() leave in the pmap globals (only the pmap
        that was chosen at boot is initialised)."""
        w = self.writer
        pt = self.pt
        values = {"pae_mode": 1 if self.pae else 0,
                  "IdlePDPT": pt.pdpt if self.pae else 0,
                  "IdlePTD_pae": pt.ptd if self.pae else 0,
                  "IdlePTD_nopae": 0 if self.pae else pt.ptd,
                  "kernel_vm_end": self.kernel_vm_end,
                  "virtual_avail": self._kva_cursor,
                  "virtual_end": 0xFFC00000}
        for name, value in values.items():
            if self.kernel.has_symbol(name):
                w.write_global(name, value)


def dumpable_pages(machine: I386Machine) -> list[int]:
    """minidumpsys(): every page mapped from KERNBASE to kernel_vm_end (superpages
    whole), plus dump_add_page()'d ones, restricted to dump_avail, ascending."""
    pages: set[int] = set()
    va = KERNBASE
    while va < machine.kernel_vm_end:
        pages.update(machine.pt.block_pages(va))
        va += machine.pt.NBPDR
    pages |= machine.dump_added
    return sorted(p for p in pages if machine.is_dumpable(p))


def write_minidump(machine: I386Machine, path: str, *, msgbuf_ring: bytes, msg_size: int,
                   version: int = MINIDUMP_VERSION) -> dict:
    """i386 minidump v2: header page, msgbuf, dump_avail page, bitmap, one pte page per
    NBPDR of KVA from KERNBASE, then the pages."""
    ps = PAGE_SIZE
    rnd = lambda n: -(-n // ps) * ps  # noqa: E731
    pages = dumpable_pages(machine)
    bitmap, nbytes = dump_avail_bitmap(machine, pages)
    pmap = []
    va = KERNBASE
    while va < machine.kernel_vm_end:
        pmap.append(machine.pt.pt_page(va))
        va += machine.pt.NBPDR
    dumpavailsize = ps                        # round_page(sizeof(dump_avail))
    hdr = bytearray(ps)
    struct.pack_into("<24sIIIIIII", hdr, 0, MINIDUMP_MAGIC, version, msg_size, rnd(nbytes),
                     len(pmap) * ps, KERNBASE, 1 if machine.pae else 0, dumpavailsize)
    return _write(machine, path, hdr, msgbuf_ring, msg_size, dumpavailsize, bitmap, pmap,
                  pages)


def build_i386_vmcore(layout_dir: str, out_dir: str, *, pae: bool, scenario=None,
                      layout: str | None = None, msg_size: int | None = None) -> dict:
    """Simulate ``scenario`` on an i386 machine and write out_dir/vmcore.0 (the i386
    minidump) plus kernel and kernel.debug beside it.

    ``msg_size``: the message-buffer ring size to give the machine (MSGBUF_SIZE is then
    that plus i386's smaller ``struct msgbuf``); pass an LP64 machine's ring size to
    get the same ring, hence the same dmesg, as there."""
    from . import scenario as scenario_mod
    from .allsources import copy_kernel
    from .scenario import Builder

    scen = scenario or scenario_mod.default(network=False)
    kernel = ArchKernel(layout_dir)
    msgbuf_size = scen.msgbuf_size
    if msg_size is not None:
        import drgn
        msgbuf_size = msg_size + drgn.sizeof(kernel.type("struct msgbuf"))
    machine = I386Machine(kernel, scen.ram_size, pae=pae, msgbuf_size=msgbuf_size)
    b = Builder(machine, scen, layout or os.path.basename(os.path.normpath(layout_dir)))
    truth = b.build()
    machine.write_md_globals()
    os.makedirs(out_dir, exist_ok=True)
    dl = write_minidump(machine, os.path.join(out_dir, "vmcore.0"),
                        msgbuf_ring=b.msgbuf_ring, msg_size=b.msg_size)
    copy_kernel(layout_dir, out_dir)
    return {"truth": truth, "dump": dl, "machine": machine, "builder": b}
