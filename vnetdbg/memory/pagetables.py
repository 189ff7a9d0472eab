"""x86 kernel page-table walks over a physical-read callable: amd64 4-level (1 GiB and
2 MiB pages), i386 PAE (PDPT -> PD -> PT, 2 MiB pages) and i386 non-PAE (PD -> PT,
4 MiB pages).  Used by ELF full dumps, raw physical images and ``/dev/mem``.

``read_phys(pa, size) -> bytes`` must return exactly ``size`` bytes or raise FaultError.
The walks are small pure functions of (read_phys, root, va); each visits a fixed
number of levels, so a table that points back at itself (FreeBSD's recursive PML4/PTD
slot, or a corrupt entry) cannot make a walk loop: it ends after at most four reads.
``walk_steps`` reports such revisits for diagnostics.

The roots come from kernel symbols (``KPML4phys``, ``IdlePDPT``, ``IdlePTD``) whose
physical address libkvm computes as ``symbol - kernbase`` (the kernel image is loaded
at PA = VA - KERNBASE); ``X86KernelPageTables.attach`` does that bootstrap.  i386 from
FreeBSD 12 on is different: KERNBASE == KERNLOAD and the image is mapped 1:1, so the
symbol address is the physical address, and ``pae_mode`` picks IdlePDPT (PAE) or
IdlePTD_nopae.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from vnetdbg.errors import FaultError, VnetdbgError

ReadPhys = Callable[[int, int], bytes]
Lookup = Callable[[str], "int | None"]

PG_V = 0x1
PG_PS = 0x80

AMD64_FRAME = 0x000FFFFFFFFFF000
AMD64_1G_FRAME = 0x000FFFFFC0000000
AMD64_2M_FRAME = 0x000FFFFFFFE00000
AMD64_KERNBASE = 0xFFFFFFFF80000000

PAE_FRAME = 0x000FFFFFFFFFF000
PAE_2M_FRAME = 0x000FFFFFFFE00000
NOPAE_FRAME = 0xFFFFF000
NOPAE_4M_FRAME = 0xFFC00000
I386_OLD_KERNBASE = 0xC0000000

MAX_LEVELS = 4

# (name, shift, index mask, entry width, large-page frame mask or 0)
AMD64_LEVELS = (("PML4", 39, 511, 8, 0), ("PDP", 30, 511, 8, AMD64_1G_FRAME),
                ("PD", 21, 511, 8, AMD64_2M_FRAME), ("PT", 12, 511, 8, 0))
PAE_LEVELS = (("PDPT", 30, 3, 8, 0), ("PD", 21, 511, 8, PAE_2M_FRAME),
              ("PT", 12, 511, 8, 0))
NOPAE_LEVELS = (("PD", 22, 1023, 4, NOPAE_4M_FRAME), ("PT", 12, 1023, 4, 0))

MODES = {"amd64": (AMD64_LEVELS, AMD64_FRAME), "pae": (PAE_LEVELS, PAE_FRAME),
         "nopae": (NOPAE_LEVELS, NOPAE_FRAME)}


def canonical(va: int) -> bool:
    """amd64 4-level: bits 63..47 all equal."""
    top = va >> 47
    return top == 0 or top == (1 << 17) - 1


def read_entry(read_phys: ReadPhys, table_pa: int, index: int, width: int) -> int:
    return int.from_bytes(read_phys(table_pa + index * width, width), "little")


@dataclass(frozen=True)
class Step:
    level: str
    table_pa: int
    index: int
    entry: int


def walk_steps(mode: str, read_phys: ReadPhys, root: int, va: int):
    """(steps, pa or None, revisited): the entries a walk reads, depth-bounded."""
    levels, frame = MODES[mode]
    steps: list[Step] = []
    seen: set[int] = set()
    revisited = False
    table = root
    for name, shift, mask, width, large in levels[:MAX_LEVELS]:
        revisited |= table in seen
        seen.add(table)
        index = (va >> shift) & mask
        try:
            entry = read_entry(read_phys, table, index, width)
        except FaultError:
            return steps, None, revisited
        steps.append(Step(name, table, index, entry))
        if mode == "pae" and name == "PDPT":
            if not entry & PG_V:
                return steps, None, revisited
            table = entry & frame
            continue
        if not entry & PG_V:
            return steps, None, revisited
        if shift == 12:
            return steps, (entry & frame) | (va & 0xFFF), revisited
        if large and entry & PG_PS:
            return steps, (entry & large) | (va & ((1 << shift) - 1)), revisited
        table = entry & frame
    return steps, None, revisited  # pragma: no cover - every mode ends with a PT level


def translate(mode: str, read_phys: ReadPhys, root: int, va: int) -> int:
    """Physical address of ``va``; FaultError naming ``va`` and the failing level."""
    levels, frame = MODES[mode]
    if mode == "amd64" and not canonical(va):
        raise FaultError(va, "non-canonical address")
    if mode != "amd64" and va >> 32:
        raise FaultError(va, "address above 4 GiB on i386")
    table = root
    for name, shift, mask, width, large in levels:
        index = (va >> shift) & mask
        try:
            entry = read_entry(read_phys, table, index, width)
        except FaultError:
            raise FaultError(va, f"{name} page {table:#x} not present") from None
        if not entry & PG_V:
            raise FaultError(va, f"no valid {name} entry")
        if shift == 12:
            return (entry & frame) | (va & 0xFFF)
        if large and entry & PG_PS:
            return (entry & large) | (va & ((1 << shift) - 1))
        table = entry & frame
    raise AssertionError("unreachable")  # pragma: no cover


def amd64_translate(read_phys: ReadPhys, pml4_pa: int, va: int) -> int:
    return translate("amd64", read_phys, pml4_pa, va)


def pae_translate(read_phys: ReadPhys, pdpt_pa: int, va: int) -> int:
    return translate("pae", read_phys, pdpt_pa, va)


def nopae_translate(read_phys: ReadPhys, pd_pa: int, va: int) -> int:
    return translate("nopae", read_phys, pd_pa, va)


class X86KernelPageTables:
    """The kernel's page-table root found through symbols, and translation through it.

    ``arch`` is "amd64" or "i386".  Until ``attach`` has run, ``translate`` faults with
    a reason saying the kernel symbols are missing."""

    def __init__(self, arch: str, read_phys: ReadPhys):
        if arch not in ("amd64", "i386"):
            raise VnetdbgError(f"no page-table walker for {arch}")
        self.arch = arch
        self._read_phys = read_phys
        self.mode: str | None = None
        self.root: int | None = None
        self.kernbase: int | None = None

    def set_root(self, mode: str, root: int, kernbase: int | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown page-table mode {mode!r}")
        self.mode, self.root, self.kernbase = mode, root, kernbase

    def _bootstrap(self, name: str, sym: int, kernbase: int, width: int) -> int:
        pa = sym - kernbase
        how = f"symbol {sym:#x} - kernbase {kernbase:#x}" if kernbase else \
            f"symbol {sym:#x}, the kernel image being mapped 1:1"
        try:
            raw = self._read_phys(pa, width)
        except FaultError:
            raise VnetdbgError(f"cannot read {name} at physical {pa:#x} "
                               f"({how}): not in the memory image") from None
        return int.from_bytes(raw, "little")

    def attach(self, lookup: Lookup) -> None:
        """Find the root from ``lookup(name) -> address | None`` like libkvm does."""
        if self.arch == "amd64":
            kernbase = lookup("kernbase") or AMD64_KERNBASE
            sym = lookup("KPML4phys")
            if sym is None:
                raise VnetdbgError("kernel has no KPML4phys symbol: cannot find the "
                                   "page tables of this amd64 memory image")
            root = self._bootstrap("KPML4phys", sym, kernbase, 8) & AMD64_FRAME
            self.set_root("amd64", root, kernbase)
            return
        kernbase = lookup("kernbase") or I386_OLD_KERNBASE
        # Where the kernel image sits physically.  Up to FreeBSD 11 it is linked at
        # KERNBASE (0xc0000000) + KERNLOAD and loaded at KERNLOAD: PA = VA - KERNBASE,
        # libkvm's bootstrap.  From 12 (the 4/4G split) KERNBASE == KERNLOAD
        # (0x00800000; locore.S: "Compiled KERNBASE location and the kernel load
        # address, now identical") and pmap_cold() maps the image 1:1
        # (pmap_cold_mapident(KERNBASE, ...)): PA = VA.  libkvm's kvm_i386.c still
        # subtracts kernbase there, which reads 8 MiB too low.
        kernload = lookup("kernload")
        identity = (kernload == kernbase) if kernload is not None \
            else kernbase < I386_OLD_KERNBASE
        image_base = 0 if identity else kernbase
        # 12+ kernels carry both pmaps (IdlePTD_pae + IdlePDPT, IdlePTD_nopae) and
        # choose at boot: the int pae_mode says which one ran.
        pae = lookup("IdlePDPT") is not None
        pae_mode = lookup("pae_mode")
        if pae_mode is not None and lookup("IdlePTD_nopae") is not None:
            pae = self._bootstrap("pae_mode", pae_mode, image_base, 4) != 0
        if pae:
            sym = lookup("IdlePDPT")
            root = self._bootstrap("IdlePDPT", sym, image_base, 4) & ~0x1F
            self.set_root("pae", root, kernbase)
            return
        for name in ("IdlePTD_nopae", "IdlePTD"):
            sym = lookup(name)
            if sym is not None:
                root = self._bootstrap(name, sym, image_base, 4) & NOPAE_FRAME
                self.set_root("nopae", root, kernbase)
                return
        raise VnetdbgError("kernel has neither IdlePDPT nor IdlePTD: cannot find the "
                           "page tables of this i386 memory image")

    @property
    def attached(self) -> bool:
        return self.root is not None

    def translate(self, va: int) -> int:
        if self.root is None:
            symbol = "KPML4phys" if self.arch == "amd64" else "IdlePDPT/IdlePTD"
            raise FaultError(va, f"kernel page tables unknown until the kernel symbols "
                                 f"({symbol}) are attached")
        return translate(self.mode, self._read_phys, self.root, va)

    def describe(self) -> dict:
        d: dict = {"page-tables": self.mode or "unknown (no kernel symbols yet)"}
        if self.root is not None:
            d["page-table-root"] = self.root
        if self.kernbase is not None:
            d["kernbase"] = self.kernbase
        return d
