"""FreeBSD ELF full dumps (``debug.minidump=0``; ``sys/kern/kern_dump.c``,
libkvm's ``kvm_amd64.c`` / ``kvm_i386.c``).

``ET_CORE``, ``EI_OSABI`` 255, no notes: one PT_LOAD per dump_avail chunk with
``p_paddr`` = physical address, so the file holds physical memory only.  Virtual reads
walk the kernel's own page tables, whose root comes from kernel symbols: call
``attach_symbols(lookup)`` (vnetdbg.session does, right after loading symbols) before
reading kernel virtual addresses.  Physical reads (``read_phys``) work at once.

amd64 and i386 only, as in libkvm (arm64 and riscv have no full-dump reader there).
"""

from __future__ import annotations

import io
import mmap
import os
import struct
from bisect import bisect_right

from vnetdbg.errors import FaultError, FormatError
from vnetdbg.memory.pagetables import X86KernelPageTables
from vnetdbg.memory.paged import drop_mapped_pages, read_mapped

NAME = "ELF full dump"

ET_CORE = 4
PT_LOAD = 1
ELFOSABI_STANDALONE = 255
PN_XNUM = 0xFFFF
PAGE_SIZE = 4096
PAGE_MASK = PAGE_SIZE - 1

MACHINES = {3: "i386", 62: "amd64", 183: "arm64", 243: "riscv", 40: "arm",
            20: "powerpc", 21: "powerpc64", 8: "mips", 43: "sparc64"}
SUPPORTED = ("amd64", "i386")

# Physical chunks in a real dump: at most 10 on x86 (DUMPSYS_MD_PA_NPAIRS).  Anything
# far above is a corrupt header; refuse before reading the table.
MAX_PHNUM = 4096
_CACHE_LIMIT = 4096


def parse_ehdr(head: bytes) -> dict:
    """ELF header fields needed here; FormatError if this is not a FreeBSD kernel dump."""
    if len(head) < 52 or head[:4] != b"\x7fELF":
        raise FormatError("not an ELF file")
    cls, data = head[4], head[5]
    if cls not in (1, 2) or data not in (1, 2):
        raise FormatError(f"bad ELF class {cls} or data encoding {data}")
    end = "<" if data == 1 else ">"
    e_type, e_machine = struct.unpack_from(end + "HH", head, 16)
    if e_type != ET_CORE:
        raise FormatError("ELF file but not a core dump (a kernel or module?), not a vmcore")
    osabi = head[7]
    if osabi != ELFOSABI_STANDALONE:
        raise FormatError(f"ELF core with OSABI {osabi}, not a FreeBSD kernel dump "
                          f"(FreeBSD writes 255; a Linux or process core?)")
    if cls == 2:
        if len(head) < 64:
            raise FormatError("truncated ELF header")
        phoff, = struct.unpack_from(end + "Q", head, 32)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 54)
    else:
        phoff, = struct.unpack_from(end + "I", head, 28)
        phentsize, phnum = struct.unpack_from(end + "HH", head, 42)
    return {"class": 64 if cls == 2 else 32, "endian": end, "machine": e_machine,
            "arch": MACHINES.get(e_machine, f"machine {e_machine}"), "phoff": phoff,
            "phentsize": phentsize, "phnum": phnum}


def check_phdr_table(eh: dict, file_size: int) -> None:
    want = 56 if eh["class"] == 64 else 32
    if eh["phnum"] == PN_XNUM or eh["phnum"] > MAX_PHNUM:
        raise FormatError(f"implausible ELF program header count {eh['phnum']} "
                          f"(limit {MAX_PHNUM})")
    if eh["phnum"] and eh["phentsize"] != want:
        raise FormatError(f"bad ELF program header size {eh['phentsize']} (want {want})")
    end = eh["phoff"] + eh["phnum"] * want
    if end > file_size:
        raise FormatError(f"truncated ELF dump: program headers need {end} bytes, "
                          f"file has {file_size}")


def parse_loads(table: bytes, eh: dict) -> list[tuple[int, int, int, int]]:
    """PT_LOAD segments as (paddr, memsz, offset, filesz), sorted by paddr."""
    end = eh["endian"]
    loads = []
    if eh["class"] == 64:
        for p_type, _flags, off, _va, pa, filesz, memsz, _al in struct.iter_unpack(
                end + "IIQQQQQQ", table):
            if p_type == PT_LOAD and memsz:
                loads.append((pa, memsz, off, filesz))
    else:
        for p_type, off, _va, pa, filesz, memsz, _flags, _al in struct.iter_unpack(
                end + "IIIIIIII", table):
            if p_type == PT_LOAD and memsz:
                loads.append((pa, memsz, off, filesz))
    loads.sort()
    return loads


def pa_to_offset(starts, loads, pa: int, file_size: int) -> int | None:
    """File offset of physical ``pa``; None if no PT_LOAD holds it in the file."""
    i = bisect_right(starts, pa) - 1
    if i < 0:
        return None
    paddr, memsz, off, filesz = loads[i]
    rel = pa - paddr
    if rel >= memsz or rel >= filesz or off + rel >= file_size:
        return None
    return off + rel


class ELFFullDump:
    page_size = PAGE_SIZE

    def __init__(self, path):
        self.path = os.fspath(path)
        with io.open(self.path, "rb") as f:
            self.file_size = os.fstat(f.fileno()).st_size
            head = f.read(64)
            try:
                eh = parse_ehdr(head)
                if eh["arch"] not in SUPPORTED:
                    raise FormatError(f"ELF full dumps of {eh['arch']} are not supported "
                                      f"(libkvm reads only minidumps there)")
                if eh["endian"] != "<":
                    raise FormatError("big-endian ELF full dump on an x86 machine type")
                check_phdr_table(eh, self.file_size)
            except FormatError as exc:
                raise FormatError(f"{exc}: {self.path}") from None
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.elf = eh
        self.arch = eh["arch"]
        want = 56 if eh["class"] == 64 else 32
        table = self._mm[eh["phoff"]:eh["phoff"] + eh["phnum"] * want]
        self._loads = parse_loads(table, eh)
        self._starts = [ld[0] for ld in self._loads]
        self.tables = X86KernelPageTables(self.arch, self.read_phys)
        self._cache: dict[int, int] = {}

    @property
    def format_name(self) -> str:
        return f"{self.arch} ELF full dump"

    # -- physical ---------------------------------------------------------------------

    def _phys_offset(self, pa: int) -> int | None:
        return pa_to_offset(self._starts, self._loads, pa, self.file_size)

    def _phys_page(self, page: int) -> int:
        off = self._phys_offset(page)
        if off is None or off + PAGE_SIZE > self.file_size:
            raise FaultError(page, "physical page not in dump")
        return off

    def read_phys(self, pa: int, size: int) -> bytes:
        return read_mapped(self._mm, pa, size, PAGE_SIZE, self._phys_page)

    # -- virtual ----------------------------------------------------------------------

    def attach_symbols(self, lookup) -> None:
        self.tables.attach(lookup)
        self._cache.clear()

    def translate(self, va: int) -> int:
        return self.tables.translate(va)

    def _va_page(self, va_page: int) -> int:
        off = self._cache.get(va_page)
        if off is None:
            pa = self.tables.translate(va_page) & ~PAGE_MASK
            off = self._phys_offset(pa)
            if off is None or off + PAGE_SIZE > self.file_size:
                raise FaultError(va_page, f"physical page {pa:#x} not in dump")
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[va_page] = off
        return off

    def read(self, address: int, size: int) -> bytes:
        return read_mapped(self._mm, address, size, PAGE_SIZE, self._va_page)

    # -- metadata ---------------------------------------------------------------------

    def segments(self) -> list[tuple[int, int]]:
        """Physical [start, end) ranges the dump holds."""
        return [(pa, pa + memsz) for pa, memsz, _, _ in self._loads]

    def msgbuf_region(self) -> None:
        return None

    def describe(self) -> dict:
        d = {"format": self.format_name, "arch": self.arch, "page-size": PAGE_SIZE,
             "elf-class": self.elf["class"], "segments": len(self._loads),
             "physical-bytes": sum(ld[1] for ld in self._loads)}
        d.update(self.tables.describe())
        return d

    def drop_cached_pages(self) -> None:
        drop_mapped_pages(self._mm)

    def close(self) -> None:
        if not self._mm.closed:
            self._mm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def probe(first_bytes: bytes) -> bool:
    return (first_bytes[:4] == b"\x7fELF" and len(first_bytes) >= 18
            and int.from_bytes(first_bytes[16:18],
                               "big" if first_bytes[5:6] == b"\x02" else "little") == ET_CORE)


def open(path) -> ELFFullDump:  # noqa: A001 - registry protocol name
    return ELFFullDump(path)
