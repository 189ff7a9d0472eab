"""A simulated FreeBSD machine of another architecture (arm64 with 4 KiB or 16 KiB
pages, riscv Sv39), with the same interface the scenario Builder uses on the amd64
``Machine``: ``alloc``/``write``/``read``/``write_u64``/``translate``/``dmap``, the
allocation arenas, ``dump_added``, ``dump_avail``, the message-buffer placement.

Where things are (as pmap_bootstrap() leaves them):

- RAM is one dump_avail segment at the platform's base (QEMU virt: arm64 0x40000000,
  riscv 0x80000000).
- The kernel image is linked at KERNBASE (= VM_MIN_KERNEL_ADDRESS) and loaded at
  ``kernstart`` (RAM base + one L2 block); KERNBASE.. is mapped with L2 blocks onto it.
- The DMAP maps RAM from ``dmap_phys_base`` (RAM base rounded down to an L1 block, 0
  for the 16 KiB granule whose L1 block is 64 GiB) with block entries.
- Kernel heap (kmem) pages are L3 pages in KVA above the kernel, ``kernel_vm_end`` is
  the end of that KVA rounded to L2; UMA-style small objects come from DMAP pages that
  are ``dump_add_page``'d.

Must not import vnetdbg.
"""

from __future__ import annotations

import os

from elftools.elf.elffile import ELFFile

from .kernel import Kernel, Segment
from .layout import ObjectWriter
from .physmem import MiB, PhysMem

U64 = 0xFFFFFFFFFFFFFFFF

#: e_machine -> (arch, drgn architecture name)
ELF_MACHINES = {"EM_AARCH64": ("arm64", "AARCH64"), "EM_RISCV": ("riscv", "RISCV64"),
                "EM_X86_64": ("amd64", "X86_64"), "EM_386": ("i386", "I386")}


class ArchKernel(Kernel):
    """The fixture kernel of any architecture (the amd64 ``Kernel`` accepts only
    EM_X86_64 and builds its drgn program for x86_64)."""

    def __init__(self, layout_dir: str):
        super().__init__(layout_dir)
        with open(self.image_path, "rb") as f:
            elf = ELFFile(f)
            self.arch, self._drgn_arch = ELF_MACHINES[elf["e_machine"]]
            self.elfclass = elf.elfclass

    @staticmethod
    def _read_segments(path: str) -> list[Segment]:
        segs = []
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] not in ELF_MACHINES:
                raise ValueError(f"{path}: unknown machine {elf['e_machine']}")
            for ph in elf.iter_segments():
                if ph["p_type"] != "PT_LOAD" or ph["p_memsz"] == 0:
                    continue
                segs.append(Segment(ph["p_vaddr"], ph.data(), ph["p_memsz"], ph["p_flags"]))
        return segs

    @property
    def prog(self):
        if self._prog is None:
            import drgn
            from drgn import Architecture, Platform, PlatformFlags

            flags = PlatformFlags.IS_LITTLE_ENDIAN
            if self.elfclass == 64:
                flags |= PlatformFlags.IS_64_BIT
            prog = drgn.Program(Platform(getattr(Architecture, self._drgn_arch), flags))
            try:
                prog.set_enabled_debug_info_finders([])
            except Exception:
                pass
            mod = prog.extra_module("kernel", create=True)
            mod.address_ranges = [(self.image_start, self.image_end)]
            mod.try_file(self.image_path)
            if self.debug_path != self.image_path:
                mod.try_file(self.debug_path)
            if mod.debug_file_status != drgn.ModuleFileStatus.HAVE:
                raise RuntimeError(f"no DWARF loaded from {self.debug_path}")
            self._prog = prog
        return self._prog


class ArchMachine:
    """RAM + page tables (``pt``: an arch page-table object) + kernel + heap."""

    def __init__(self, kernel: ArchKernel, pt_class, ram_size: int = 256 * MiB, *,
                 msgbuf_size: int = 96 * 1024, page_size: int = 4096):
        self.kernel = kernel
        self.arch = pt_class.ARCH
        self.ram_size = ram_size
        self.page_size = ps = page_size
        base = pt_class.RAM_BASE
        self.mem = PhysMem([(base, base + ram_size)])
        self.dump_avail = list(self.mem.segments)
        self.dump_added: set[int] = set()
        self.vm_min = pt_class.VM_MIN_KERNEL_ADDRESS
        self.kernbase = self.vm_min
        self.dmap_min = pt_class.DMAP_MIN_ADDRESS
        self.dmap_max_va = pt_class.DMAP_MAX_ADDRESS
        self._cursor = base            # low physical cursor (boot, slabs, tables)
        self._high = base + ram_size - ps
        self.pt = pt_class(self.mem, self._alloc_table, page_size)
        l2 = self.pt.L2_SIZE
        l1 = self.pt.L1_SIZE
        self.dmap_phys_base = base & ~(l1 - 1)
        self.dmap_phys_max = base + ram_size
        self.dmap_max_addr = self.dmap_min + (self.dmap_phys_max - self.dmap_phys_base)

        # kernel image at kernstart, mapped from KERNBASE with L2 blocks
        self.kernstart = base + l2
        for seg in kernel.segments:
            self.mem.write(self.kernstart + seg.vaddr - self.kernbase, seg.data)
        self._cursor = self._round(self.kernstart + kernel.image_end - self.kernbase, ps)
        self.pt.root = self._alloc_table()
        self.kpml4phys = self.pt.root          # the page-table root (truth only)
        kern_len = self._round(self._cursor - self.kernstart + 8 * MiB, l2)
        for off in range(0, kern_len, l2):
            self.pt.map_block(self.kernbase + off, self.kernstart + off, 2)
        self.kernel_map_end = self.kernbase + kern_len
        # DMAP with the largest blocks that fit
        blk_level = 1 if self.pt.DMAP_L1 else 2
        blk = l1 if blk_level == 1 else l2
        pa = self.dmap_phys_base
        while pa < self.dmap_phys_max:
            self.pt.map_block(self.dmap_min + pa - self.dmap_phys_base, pa, blk_level)
            pa += blk
        # msgbuf at the top of RAM (its pages are dumped)
        self.msgbuf_region_size = self._round(msgbuf_size, 4096)
        self.msgbuf_pa = base + ram_size - self._round(self.msgbuf_region_size, ps)
        for p in range(self.msgbuf_pa, base + ram_size, ps):
            self.dump_added.add(p)
        self._high = self.msgbuf_pa - ps
        # kmem heap above the kernel mapping
        self._kva_cursor = self.kernel_map_end + l2
        self.kernel_vm_end = self._kva_cursor + 64 * MiB
        self._slab_pa = None
        self._slab_off = ps
        self.dpcpu0_pa = None                 # dpcpu areas come from kmem here
        self.arenas: dict[str, dict] = {}
        self.writer = ObjectWriter(kernel, self)

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def _round(x: int, a: int) -> int:
        return (x + a - 1) // a * a

    def _alloc_table(self) -> int:
        pa = self._cursor
        self._cursor += self.page_size
        return pa

    def _frame_low(self, n: int = 1) -> int:
        pa = self._cursor
        self._cursor += n * self.page_size
        if self._cursor > self._high:
            raise MemoryError("out of physical memory")
        return pa

    def _frame_high(self) -> int:
        pa = self._high
        self._high -= 2 * self.page_size          # never physically adjacent
        if self._high <= self._cursor:
            raise MemoryError("out of physical memory")
        return pa

    def dmap(self, pa: int) -> int:
        return self.dmap_min + pa - self.dmap_phys_base

    def is_dumpable(self, pa: int) -> bool:
        return any(a <= pa < b for a, b in self.dump_avail)

    def dump_add_page(self, pa: int) -> None:
        self.dump_added.add(pa - pa % self.page_size)

    @property
    def kva_end(self) -> int:
        return self.kernel_vm_end

    # -- virtual memory ------------------------------------------------------------------
    def translate(self, va: int) -> int | None:
        r = self.pt.translate(va)
        return None if r is None else r[0]

    def va_kind(self, va: int) -> str | None:
        r = self.pt.translate(va)
        if r is None:
            return None
        if self.dmap_min <= va < self.dmap_max_va:
            return "dmap"
        return {3: "kva-l3", 2: "kernel-l2", 1: "kva-l1"}[r[1]]

    def write(self, va: int, data: bytes) -> None:
        data = bytes(data)
        off = 0
        while off < len(data):
            cur = va + off
            n = min(len(data) - off, 4096 - (cur & 4095))
            pa = self.translate(cur)
            if pa is None:
                raise ValueError(f"write to unmapped VA {cur:#x}")
            self.mem.write(pa, data[off:off + n])
            off += n

    def read(self, va: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            n = min(size, 4096 - (va & 4095))
            pa = self.translate(va)
            if pa is None:
                raise ValueError(f"read of unmapped VA {va:#x}")
            out += self.mem.read(pa, n)
            va += n
            size -= n
        return bytes(out)

    def write_u64(self, va: int, value: int) -> None:
        self.write(va, (value & U64).to_bytes(8, "little"))

    def read_u64(self, va: int) -> int:
        return int.from_bytes(self.read(va, 8), "little")

    # -- heap ------------------------------------------------------------------------------
    def kva_map_pages(self, npages4k: int) -> int:
        """``npages4k`` bytes/4096 of fresh KVA on separate, non-adjacent frames."""
        ps = self.page_size
        size = self._round(npages4k * 4096, ps)
        base = self._kva_cursor
        self._kva_cursor += size + ps            # unmapped guard page
        if self._kva_cursor > self.kernel_vm_end:
            raise MemoryError("KVA heap exhausted")
        for off in range(0, size, ps):
            self.pt.map_page(base + off, self._frame_high())
        return base

    def alloc(self, size: int, where: str = "dmap", align: int = 16,
              page_offset: int | None = None, arena: str | None = None) -> int:
        if size <= 0:
            raise ValueError("size must be positive")
        ps = self.page_size
        if where == "dmap":
            if page_offset is not None:
                raise ValueError("page_offset is only for kva")
            if size <= ps:
                off = (self._slab_off + align - 1) & ~(align - 1)
                if self._slab_pa is None or off + size > ps:
                    self._slab_pa = self._frame_low()
                    self.dump_add_page(self._slab_pa)
                    off = 0
                self._slab_off = off + size
                return self.dmap(self._slab_pa + off)
            n = self._round(size, ps) // ps
            pa = self._frame_low(n)
            for i in range(n):
                self.dump_add_page(pa + i * ps)
            return self.dmap(pa)
        if where == "kva":
            po = page_offset or 0
            return self.kva_map_pages(self._round(po + size, 4096) // 4096) + po
        raise ValueError(f"unknown placement {where!r}")

    # allocation arenas (amd64 Machine API): one allocator here, nothing to keep stable
    def open_arena(self, name: str) -> None:
        self.arenas.setdefault(name, {})

    def arena_kva_pages(self, arena: str, npages: int, guard: bool = True) -> int:
        return self.kva_map_pages(npages)

    def arena_dmap_run(self, arena: str, npages: int) -> int:
        n = self._round(npages * 4096, self.page_size) // self.page_size
        pa = self._frame_low(n)
        for i in range(n):
            self.dump_add_page(pa + i * self.page_size)
        return pa

    def unmapped_kva(self) -> int:
        va = self._kva_cursor + 16 * self.page_size
        assert self.translate(va) is None
        return va

    def absent_dmap_address(self) -> int:
        pa = self._frame_high()
        return self.dmap(pa) + 0x100

    # -- MD globals ------------------------------------------------------------------------
    def write_md_globals(self) -> None:
        """What pmap_bootstrap() leaves in the pmap.c globals of the fixture kernel."""
        w = self.writer
        for name, value in (("dmap_phys_base", self.dmap_phys_base),
                            ("dmap_phys_max", self.dmap_phys_max),
                            ("dmap_max_addr", self.dmap_max_addr),
                            ("kernel_vm_end", self.kernel_vm_end),
                            ("virtual_avail", self._kva_cursor),
                            ("virtual_end", self.vm_min + (1 << 38))):
            if self.kernel.has_symbol(name):
                w.write_global(name, value)


def dumpable_pages_from_pmap(machine) -> list[int]:
    """Pages a minidump holds: every page mapped in [VM_MIN_KERNEL_ADDRESS,
    kernel_vm_end) (L2 blocks whole, L3 pages one by one) plus the dump_add_page'd
    ones, restricted to dump_avail, ascending (arm64/riscv minidumpsys())."""
    ps = machine.page_size
    pages: set[int] = set()
    pt = machine.pt
    va = machine.vm_min
    while va < machine.kernel_vm_end:
        kind, value = pt.l2_entry(va)
        if kind == "block":
            for i in range(pt.L2_SIZE // ps):
                pages.add(value + i * ps)
        elif kind == "table":
            for i, e in enumerate(pt.l3_entries(value)):
                pa = pt.l3_pa(e)
                if pa is not None:
                    pages.add(pa)
        va += pt.L2_SIZE
    pages |= machine.dump_added
    return sorted(p for p in pages if machine.is_dumpable(p))


def dump_avail_bitmap(machine, pages: list[int]) -> tuple[bytes, int]:
    """vm_page_dump bitset over dump_avail (v2+ minidumps): bit = page index within
    its segment plus the pages of the segments before it; size in bytes (u64s)."""
    ps = machine.page_size
    slots = []
    total = 0
    for a, b in machine.dump_avail:
        slots.append((a, b, total))
        total += -(-b // ps) - a // ps
    nbytes = (total + 63) // 64 * 8
    bm = bytearray(nbytes)
    for pa in pages:
        for a, b, first in slots:
            if a <= pa < b:
                bit = pa // ps - a // ps + first
                bm[bit >> 3] |= 1 << (bit & 7)
                break
    return bytes(bm), nbytes


def write_sparse(path: str, chunks) -> int:
    """Write (offset, bytes) chunks into a sparse file (zero pages skipped); returns
    the file size given by the last chunk's end."""
    end = 0
    with open(path, "wb") as f:
        for off, data in chunks:
            end = max(end, off + len(data))
            if any(data):
                f.seek(off)
                f.write(data)
        f.truncate(end)
    return end


def file_size(path: str) -> int:
    return os.stat(path).st_size
