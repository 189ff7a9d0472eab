"""Real amd64 4-level page tables built inside simulated physical memory."""

from __future__ import annotations

from typing import Callable

from .physmem import PAGE_SIZE, PAGE_MASK, PhysMem

# amd64 4-level constants (sys/amd64/include/vmparam.h, pmap.h)
KERNBASE = 0xFFFFFFFF80000000
DMAP_MIN_ADDRESS = 0xFFFFF80000000000
DMAP_MAX_ADDRESS = 0xFFFFFC0000000000
VM_MIN_KERNEL_ADDRESS = 0xFFFFFE0000000000
VM_MAX_KERNEL_ADDRESS = 0xFFFFFFFFFFFFFFFF

NBPDR = 1 << 21   # 2 MiB
NBPDP = 1 << 30   # 1 GiB
NBPML4 = 1 << 39
NPTEPG = 512

PG_V = 0x001
PG_RW = 0x002
PG_U = 0x004
PG_A = 0x020
PG_M = 0x040
PG_PS = 0x080
PG_G = 0x100
PG_NX = 1 << 63
PG_FRAME = 0x000FFFFFFFFFF000
PG_PS_FRAME = 0x000FFFFFFFE00000
PG_1G_FRAME = 0x000FFFFFC0000000

U64 = 0xFFFFFFFFFFFFFFFF


def pml4_index(va: int) -> int:
    return (va >> 39) & 511


def pdp_index(va: int) -> int:
    return (va >> 30) & 511


def pd_index(va: int) -> int:
    return (va >> 21) & 511


def pt_index(va: int) -> int:
    return (va >> 12) & 511


class PageTables:
    """A kernel pmap: PML4 root plus helpers to map and translate.

    ``new_table()`` returns the PA of a fresh (zero) page for intermediate
    tables; it is swappable so boot-time tables come from the boot
    allocator and later ones from the VM allocator.
    """

    # intermediate entries: V|RW|A (accessed set so readers must mask it)
    TABLE_FLAGS = PG_V | PG_RW | PG_A

    def __init__(self, mem: PhysMem, new_table: Callable[[], int]):
        self.mem = mem
        self.new_table = new_table
        self.pml4 = new_table()
        self._tcache: dict[int, tuple[int, str, int]] = {}

    # -- low level ----------------------------------------------------------
    def _entry_pa(self, table_pa: int, index: int) -> int:
        return table_pa + 8 * index

    def _get(self, table_pa: int, index: int) -> int:
        return self.mem.read_u64(self._entry_pa(table_pa, index))

    def _set(self, table_pa: int, index: int, value: int) -> None:
        self.mem.write_u64(self._entry_pa(table_pa, index), value)
        self._tcache.clear()

    def _next(self, table_pa: int, index: int, create: bool) -> int | None:
        e = self._get(table_pa, index)
        if e & PG_V:
            if e & PG_PS:
                raise ValueError("superpage where a table was expected")
            return e & PG_FRAME
        if not create:
            return None
        pa = self.new_table()
        self._set(table_pa, index, pa | self.TABLE_FLAGS)
        return pa

    def set_pml4e(self, index: int, value: int) -> None:
        self._set(self.pml4, index, value)

    def set_pdpe(self, va: int, value: int) -> None:
        pdp = self._next(self.pml4, pml4_index(va), True)
        self._set(pdp, pdp_index(va), value)

    def set_pde(self, va: int, value: int) -> None:
        pdp = self._next(self.pml4, pml4_index(va), True)
        pd = self._next(pdp, pdp_index(va), True)
        self._set(pd, pd_index(va), value)

    # -- mapping --------------------------------------------------------------
    def map_1g(self, va: int, pa: int, flags: int = PG_RW | PG_A | PG_M | PG_G) -> None:
        assert va % NBPDP == 0 and pa % NBPDP == 0
        self.set_pdpe(va, pa | flags | PG_V | PG_PS)

    def map_2m(self, va: int, pa: int, flags: int = PG_RW | PG_A | PG_M | PG_G) -> None:
        assert va % NBPDR == 0 and pa % NBPDR == 0
        self.set_pde(va, pa | flags | PG_V | PG_PS)

    def map_4k(self, va: int, pa: int, flags: int = PG_RW | PG_A | PG_M | PG_G) -> None:
        assert va % PAGE_SIZE == 0 and pa % PAGE_SIZE == 0
        pdp = self._next(self.pml4, pml4_index(va), True)
        pd = self._next(pdp, pdp_index(va), True)
        pt = self._next(pd, pd_index(va), True)
        self._set(pt, pt_index(va), pa | flags | PG_V)

    # -- lookup ---------------------------------------------------------------
    def walk(self, va: int) -> dict:
        """Entries seen on the way to ``va``: keys pml4e, pdpe, pde, pte."""
        out = {}
        e = self._get(self.pml4, pml4_index(va))
        out["pml4e"] = e
        if not e & PG_V:
            return out
        e = self._get(e & PG_FRAME, pdp_index(va))
        out["pdpe"] = e
        if not e & PG_V or e & PG_PS:
            return out
        e = self._get(e & PG_FRAME, pd_index(va))
        out["pde"] = e
        if not e & PG_V or e & PG_PS:
            return out
        out["pte"] = self._get(e & PG_FRAME, pt_index(va))
        return out

    def translate(self, va: int) -> tuple[int, str, int] | None:
        """(pa, leaf kind '4k'|'2m'|'1g', leaf size) or None when unmapped."""
        page = va & ~PAGE_MASK
        hit = self._tcache.get(page)
        if hit is not None:
            pa, kind, size = hit
            return pa + (va & PAGE_MASK), kind, size
        w = self.walk(va)
        res = None
        if "pte" in w:
            if w["pte"] & PG_V:
                res = ((w["pte"] & PG_FRAME) | (va & PAGE_MASK), "4k", PAGE_SIZE)
        elif "pde" in w:
            if w["pde"] & PG_V:  # PS
                res = ((w["pde"] & PG_PS_FRAME) + (va & (NBPDR - 1)), "2m", NBPDR)
        elif "pdpe" in w:
            if w["pdpe"] & PG_V:
                res = ((w["pdpe"] & PG_1G_FRAME) + (va & (NBPDP - 1)), "1g", NBPDP)
        if res is not None:
            self._tcache[page] = (res[0] & ~PAGE_MASK, res[1], res[2])
        return res

    def pd_page(self, va: int) -> tuple[str, int]:
        """For the 1 GiB slot holding ``va``: ('invalid', 0), ('1g', pdpe) or
        ('pd', pa of the PD page)."""
        e = self._get(self.pml4, pml4_index(va))
        if not e & PG_V:
            return "invalid", 0
        pdpe = self._get(e & PG_FRAME, pdp_index(va))
        if not pdpe & PG_V:
            return "invalid", 0
        if pdpe & PG_PS:
            return "1g", pdpe
        return "pd", pdpe & PG_FRAME
