"""A simulated amd64 FreeBSD machine: RAM, boot page tables laid out the way
``create_pagetables()`` does, the kernel image, and a kernel heap."""

from __future__ import annotations

from .kernel import Kernel
from .layout import ObjectWriter
from .pagetables import (DMAP_MAX_ADDRESS, DMAP_MIN_ADDRESS, KERNBASE, NBPDP, NBPDR,
                         PG_A, PG_G, PG_M, PG_NX, PG_PS, PG_RW, PG_V, PageTables,
                         VM_MIN_KERNEL_ADDRESS, pml4_index)
from .physmem import (GiB, MiB, PAGE_MASK, PAGE_SIZE, FrameAllocator, PhysMem,
                      default_segments, round_page, trunc_page)

NKPML4E = 4            # PDP pages for KVA (VM_MIN_KERNEL_ADDRESS .. top)
KPML4BASE = 512 - NKPML4E
NKPT_DEFAULT = 32
U64 = 0xFFFFFFFFFFFFFFFF


def round_2m(x: int) -> int:
    return (x + NBPDR - 1) & ~(NBPDR - 1)


class Machine:
    """RAM + page tables + kernel image + heap.

    kva_mode:
      'vm_min'   - kmem heap at VM_MIN_KERNEL_ADDRESS (v2/v3-era layout)
      'kernbase' - kmem heap right above the kernel image, inside the
                   nkpt PT pages of KERNBASE (the only KVA a v1 dump covers)
    """

    def __init__(self, kernel: Kernel, ram_size: int = 256 * MiB, *,
                 segments: list[tuple[int, int]] | None = None,
                 kva_mode: str = "vm_min", msgbuf_size: int = 96 * 1024,
                 use_1g_dmap: bool = True, nkpt: int | None = None):
        if kva_mode not in ("vm_min", "kernbase"):
            raise ValueError(kva_mode)
        self.kernel = kernel
        self.ram_size = ram_size
        self.kva_mode = kva_mode
        self.mem = PhysMem(segments or default_segments(ram_size))
        self.dump_avail = list(self.mem.segments)
        self.dump_added: set[int] = set()          # dump_add_page()
        self.msgbuf_region_size = round_page(msgbuf_size)

        # 1. kernel image at PA = VA - KERNBASE
        for seg in kernel.segments:
            if seg.vaddr < KERNBASE:
                raise ValueError(f"PT_LOAD at {seg.vaddr:#x} below KERNBASE")
            self.mem.write(seg.vaddr - KERNBASE, seg.data)
        physfree = round_page(kernel.image_end - KERNBASE)

        # 2. boot allocations from physfree (all become part of KERNend)
        self._physfree = physfree

        def boot_alloc(npages: int = 1) -> int:
            pa = self._physfree
            self._physfree += npages * PAGE_SIZE
            if not self.mem.is_ram(self._physfree - 1):
                raise MemoryError("boot allocation outside RAM")
            return pa

        self.pt = PageTables(self.mem, boot_alloc)
        self.kpml4phys = self.pt.pml4
        maxpa = self.mem.maxpa
        self.nkpt = nkpt or (NKPT_DEFAULT if kva_mode == "vm_min" else 64)
        kpdp = boot_alloc(NKPML4E)
        kpd = boot_alloc(1)
        kpt = boot_alloc(self.nkpt)
        ndmpdp = max(4, (maxpa + NBPDP - 1) // NBPDP)
        ndm1g = (maxpa // NBPDP) if use_1g_dmap else 0
        ndmpdpphys = (ndmpdp + 511) // 512
        dmpdp = boot_alloc(ndmpdpphys)
        # GiB 0 (holds the kernel) and GiBs >= ndm1g use 2 MiB pages
        dm_2m_gibs = [g for g in range(ndmpdp) if g == 0 or g >= ndm1g]
        dmpd = boot_alloc(len(dm_2m_gibs))
        # dpcpu area of CPU 0 is carved from physfree too (pmap_bootstrap)
        self.dpcpu_size = 0
        if kernel.has_symbol("__start_set_pcpu") and kernel.has_symbol("__stop_set_pcpu"):
            self.dpcpu_size = round_page(kernel.symbol_address("__stop_set_pcpu")
                                         - kernel.symbol_address("__start_set_pcpu"))
        self.dpcpu0_pa = boot_alloc(max(1, self.dpcpu_size // PAGE_SIZE)) if self.dpcpu_size else None
        self.kernend = self._physfree
        self.pt.new_table = self._no_table  # boot tables are complete

        # PML4 entries
        for i in range(NKPML4E):
            self.pt.set_pml4e(KPML4BASE + i, (kpdp + i * PAGE_SIZE) | PG_V | PG_RW | PG_A | PG_M)
        for i in range(ndmpdpphys):
            self.pt.set_pml4e(pml4_index(DMAP_MIN_ADDRESS) + i,
                              (dmpdp + i * PAGE_SIZE) | PG_V | PG_RW | PG_A | PG_M)
        # KERNBASE GiB -> kpd (pml4 slot 511, pdp slot 510)
        kpdp_top = kpdp + (NKPML4E - 1) * PAGE_SIZE
        self.mem.write_u64(kpdp_top + 8 * ((KERNBASE >> 30) & 511), kpd | PG_V | PG_RW | PG_A | PG_M)
        # nkpt PT pages, then 2 MiB kernel mappings over [0, KERNend)
        for i in range(self.nkpt):
            self.mem.write_u64(kpd + 8 * i, (kpt + i * PAGE_SIZE) | PG_V | PG_RW | PG_A | PG_M)
        text_end = max((s.vaddr + s.memsz for s in kernel.segments if s.flags & 1), default=0)
        self.kernel_2m_end = round_2m(self.kernend)
        for i in range(self.kernel_2m_end // NBPDR):
            flags = PG_V | PG_RW | PG_A | PG_M | PG_G | PG_PS
            if KERNBASE + i * NBPDR >= text_end:
                flags |= PG_NX
            self.mem.write_u64(kpd + 8 * i, (i * NBPDR) | flags)
        if self.kernel_2m_end // NBPDR >= self.nkpt:
            raise ValueError("nkpt too small for the kernel image")
        # DMAP
        dm_flags = PG_V | PG_RW | PG_A | PG_M | PG_G | PG_NX
        for g in range(ndmpdp):
            pdpe_pa = dmpdp + 8 * g
            if g in dm_2m_gibs:
                pd = dmpd + PAGE_SIZE * dm_2m_gibs.index(g)
                self.mem.write_u64(pdpe_pa, pd | PG_V | PG_RW | PG_A)
                for j in range(512):
                    self.mem.write_u64(pd + 8 * j, (g * NBPDP + j * NBPDR) | dm_flags | PG_PS)
            else:
                self.mem.write_u64(pdpe_pa, (g * NBPDP) | dm_flags | PG_PS)
        self.pt._tcache.clear()
        self.dmap_limit = ndmpdp * NBPDP

        # 3. msgbuf at the top of RAM, removed from phys_avail
        last_a, last_b = self.mem.segments[-1]
        self.msgbuf_pa = last_b - self.msgbuf_region_size
        for off in range(0, self.msgbuf_region_size, PAGE_SIZE):
            self.dump_added.add(self.msgbuf_pa + off)

        # 4. VM allocator
        self.frames = FrameAllocator(self.mem, self.kernend,
                                     reserved=[(0, self.kernend),
                                               (self.msgbuf_pa, last_b)])
        self.pt.new_table = lambda: self.frames.alloc_high()
        if kva_mode == "vm_min":
            self._kva_cursor = VM_MIN_KERNEL_ADDRESS + 0x200000
            self._kva_limit = VM_MIN_KERNEL_ADDRESS + 512 * NBPDP
        else:
            self._kva_cursor = KERNBASE + self.kernel_2m_end
            self._kva_limit = KERNBASE + self.nkpt * NBPDR
        self._slab_pa = None
        self._slab_off = PAGE_SIZE
        self.kva_pages: list[tuple[int, int]] = []   # (va, pa) of heap pages
        self.arenas: dict[str, dict] = {"main": None}
        self.writer = ObjectWriter(kernel, self)

    @staticmethod
    def _no_table():
        raise RuntimeError("page table allocation during boot layout")

    # -- geometry used by the dump writer ------------------------------------------
    @property
    def kva_end(self) -> int:
        """max(KERNBASE + nkpt * NBPDR, kernel_vm_end); kernel_vm_end never
        passes the first term here (kmem is below KERNBASE, or inside nkpt)."""
        return KERNBASE + self.nkpt * NBPDR

    def is_dumpable(self, pa: int) -> bool:
        for a, b in self.dump_avail:
            if a <= pa < b:
                return True
        return False

    @staticmethod
    def dmap(pa: int) -> int:
        return DMAP_MIN_ADDRESS + pa

    # -- virtual memory ----------------------------------------------------------------
    def translate(self, va: int) -> int | None:
        r = self.pt.translate(va)
        return None if r is None else r[0]

    def va_kind(self, va: int) -> str | None:
        r = self.pt.translate(va)
        if r is None:
            return None
        if DMAP_MIN_ADDRESS <= va < DMAP_MAX_ADDRESS:
            return "dmap"
        return {"4k": "kva-4k", "2m": "kernel-2m", "1g": "kva-1g"}[r[1]]

    def write(self, va: int, data: bytes) -> None:
        data = bytes(data)
        off = 0
        while off < len(data):
            cur = va + off
            n = min(len(data) - off, PAGE_SIZE - (cur & PAGE_MASK))
            pa = self.translate(cur)
            if pa is None:
                raise ValueError(f"write to unmapped VA {cur:#x}")
            self.mem.write(pa, data[off:off + n])
            off += n

    def read(self, va: int, size: int) -> bytes:
        out = bytearray()
        while size > 0:
            n = min(size, PAGE_SIZE - (va & PAGE_MASK))
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

    # -- heap -------------------------------------------------------------------------
    def dump_add_page(self, pa: int) -> None:
        self.dump_added.add(trunc_page(pa))

    # -- allocation arenas --------------------------------------------------------------
    def open_arena(self, name: str) -> None:
        """A separate allocation arena: its own physical cursor (DMAP slabs and
        KVA frames) and its own KVA window.  Objects added later (the network
        state) live there, so adding them never moves what the main arena hands
        out (jail and vnet objects keep their addresses)."""
        if name in self.arenas:
            return
        idx = len(self.arenas)
        span = max(self.ram_size // 4, 16 * MiB)
        start = max(round_2m(self.kernend) + 16 * MiB, min(span * idx, GiB * idx))
        self.frames.add_cursor(name, start)
        if self.kva_mode == "vm_min":
            kva = VM_MIN_KERNEL_ADDRESS + 64 * GiB * idx
            limit = kva + 64 * GiB
        else:
            kva = KERNBASE + (self.nkpt * NBPDR) // 2
            limit = KERNBASE + self.nkpt * NBPDR
            if kva < KERNBASE + self.kernel_2m_end + 8 * MiB:
                raise MemoryError("nkpt too small for a second arena")
        self.arenas[name] = {"slab_pa": None, "slab_off": PAGE_SIZE, "kva": kva, "limit": limit}

    def _arena_frame(self, name: str, npages: int = 1, gap: bool = False) -> int:
        pa = self.frames.alloc_low(npages, cursor=name)
        if gap:   # never physically adjacent to the next frame
            self.frames.cursors[name] += PAGE_SIZE
        return pa

    def _arena_alloc(self, arena: str, size: int, where: str, align: int,
                     page_offset: int | None) -> int:
        st = self.arenas[arena]
        if where == "dmap":
            if page_offset is not None:
                raise ValueError("page_offset is only for kva")
            if size <= PAGE_SIZE:
                off = (st["slab_off"] + align - 1) & ~(align - 1)
                if st["slab_pa"] is None or off + size > PAGE_SIZE:
                    st["slab_pa"] = self._arena_frame(arena)
                    self.dump_add_page(st["slab_pa"])
                    off = 0
                st["slab_off"] = off + size
                return self.dmap(st["slab_pa"] + off)
            n = round_page(size) // PAGE_SIZE
            pa = self._arena_frame(arena, n)
            for i in range(n):
                self.dump_add_page(pa + i * PAGE_SIZE)
            return self.dmap(pa)
        if where == "kva":
            po = 0 if page_offset is None else page_offset
            npages = round_page(po + size) // PAGE_SIZE
            return self.arena_kva_pages(arena, npages) + po
        raise ValueError(f"unknown placement {where!r}")

    def arena_kva_pages(self, arena: str, npages: int, guard: bool = True) -> int:
        """``npages`` fresh 4K-mapped KVA pages of ``arena`` (separate frames)."""
        st = self.arenas[arena]
        base = st["kva"]
        if base + npages * PAGE_SIZE > st["limit"]:
            raise MemoryError("arena KVA exhausted")
        st["kva"] = base + (npages + (1 if guard else 0)) * PAGE_SIZE
        saved = self.pt.new_table
        self.pt.new_table = lambda: self._arena_frame(arena)
        try:
            for i in range(npages):
                pa = self._arena_frame(arena, gap=True)
                va = base + i * PAGE_SIZE
                self.pt.map_4k(va, pa, PG_RW | PG_A | PG_M | PG_G | PG_NX)
                self.kva_pages.append((va, pa))
        finally:
            self.pt.new_table = saved
        return base

    def arena_dmap_run(self, arena: str, npages: int) -> int:
        """PA of ``npages`` contiguous frames of ``arena``, dump_add_page'd
        (UMA slabs of a bulk zone)."""
        pa = self._arena_frame(arena, npages)
        for i in range(npages):
            self.dump_added.add(pa + i * PAGE_SIZE)
        return pa

    def alloc(self, size: int, where: str = "dmap", align: int = 16,
              page_offset: int | None = None, arena: str | None = None) -> int:
        """Allocate a kernel object and return its VA.

        dmap: UMA-style; small objects packed into slab pages, larger ones get
              physically contiguous pages; all pages dump_add_page'd.
        kva:  kmem_malloc-style; fresh 4K-mapped pages, each backed by a
              separate, non-adjacent frame.  ``page_offset`` places the object
              at that offset in its first page (to make it straddle pages).
        """
        if size <= 0:
            raise ValueError("size must be positive")
        if arena is not None:
            return self._arena_alloc(arena, size, where, align, page_offset)
        if where == "dmap":
            if page_offset is not None:
                raise ValueError("page_offset is only for kva")
            if size <= PAGE_SIZE:
                off = (self._slab_off + align - 1) & ~(align - 1)
                if self._slab_pa is None or off + size > PAGE_SIZE:
                    self._slab_pa = self.frames.alloc_low()
                    self.dump_add_page(self._slab_pa)
                    off = 0
                self._slab_off = off + size
                return self.dmap(self._slab_pa + off)
            n = round_page(size) // PAGE_SIZE
            pa = self.frames.alloc_low(n)
            for i in range(n):
                self.dump_add_page(pa + i * PAGE_SIZE)
            return self.dmap(pa)
        if where == "kva":
            po = 0 if page_offset is None else page_offset
            if not 0 <= po < PAGE_SIZE:
                raise ValueError("page_offset out of range")
            npages = round_page(po + size) // PAGE_SIZE
            base = self.kva_map_pages(npages)
            return base + po
        raise ValueError(f"unknown placement {where!r}")

    def kva_map_pages(self, npages: int) -> int:
        base = self._kva_cursor
        if base + npages * PAGE_SIZE > self._kva_limit:
            raise MemoryError("KVA heap exhausted")
        self._kva_cursor += npages * PAGE_SIZE
        # leave an unmapped guard page between allocations
        self._kva_cursor += PAGE_SIZE
        for i in range(npages):
            pa = self.frames.alloc_high(stride=2)
            va = base + i * PAGE_SIZE
            self.pt.map_4k(va, pa, PG_RW | PG_A | PG_M | PG_G | PG_NX)
            self.kva_pages.append((va, pa))
        return base

    def unmapped_kva(self) -> int:
        """A KVA inside the heap range that is certainly not mapped."""
        va = self._kva_cursor + 16 * PAGE_SIZE
        assert self.translate(va) is None
        return va

    def absent_dmap_address(self) -> int:
        """DMAP VA of a RAM page that will not be in the dump."""
        pa = self.frames.alloc_high()   # far above the kernel's 2 MiB mappings
        assert pa not in self.dump_added and pa >= self.kernel_2m_end
        return self.dmap(pa) + 0x100
