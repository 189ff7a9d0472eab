"""ELF symbol table of a FreeBSD kernel (``kernel`` or ``kernel.debug``).

pyelftools reads the headers; the symbol table itself is decoded with ``struct`` in one
go into plain lists and dicts, which keeps loading ~60k symbols well under a second.
Local symbols are kept: FreeBSD's ``static`` arrays (``pr_flag_allow``) and the
``VNET_DEFINE_STATIC`` templates (``vnet_entry_*``) are LOCAL.
"""

from __future__ import annotations

import bisect
import struct
from collections import namedtuple
from typing import Iterable

from ..errors import VnetdbgError

Symbol = namedtuple("Symbol", "name address size binding kind")

_BINDINGS = {0: "local", 1: "global", 2: "weak", 10: "unique"}
_KINDS = {0: "notype", 1: "object", 2: "func", 3: "section", 4: "file", 5: "common",
          6: "tls", 10: "ifunc"}
_BIND_RANK = {"global": 0, "weak": 1, "unique": 1, "local": 2}

SHT_NOBITS = 8
SHT_PROGBITS = 1
SHT_SYMTAB = 2
SHF_ALLOC = 0x2
NT_GNU_BUILD_ID = 3

_MACHINES = {
    "EM_X86_64": "x86_64", "EM_386": "i386", "EM_AARCH64": "aarch64", "EM_ARM": "arm",
    "EM_RISCV": "riscv", "EM_PPC64": "powerpc64", "EM_PPC": "powerpc",
}


class SymbolTable:
    """Symbols, sections, build-id and static bytes of one kernel ELF file."""

    def __init__(self, path):
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile

        self.path = str(path)
        try:
            with open(self.path, "rb") as f:
                elf = ELFFile(f)
                self._load(f, elf)
        except OSError as e:
            raise VnetdbgError(f"cannot read {self.path}: {e.strerror or e}") from None
        except (ELFError, struct.error, ValueError, IndexError) as e:
            raise VnetdbgError(f"{self.path} is not a readable ELF file ({e})") from None

    # -- loading ---------------------------------------------------------------------
    def _load(self, f, elf) -> None:
        self.elfclass = elf.elfclass
        self.little_endian = elf.little_endian
        self.machine = _MACHINES.get(elf["e_machine"], str(elf["e_machine"]).lower()
                                     .removeprefix("em_"))
        self.elf_type = elf["e_type"]
        end = "<" if elf.little_endian else ">"

        self.sections: dict[str, tuple[int, int, str, int]] = {}
        self._alloc: list[tuple[int, int, int, int]] = []   # (addr, size, file offset, nobits)
        self.build_id: str | None = None
        self.has_debug_info = False
        symtab = None
        for sec in elf.iter_sections():
            h = sec.header
            stype = h["sh_type"]
            stype_name = stype if isinstance(stype, str) else str(stype)
            self.sections.setdefault(sec.name, (h["sh_addr"], h["sh_size"], stype_name,
                                                h["sh_flags"]))
            if h["sh_flags"] & SHF_ALLOC and h["sh_size"]:
                self._alloc.append((h["sh_addr"], h["sh_size"], h["sh_offset"],
                                    stype_name == "SHT_NOBITS"))
            if sec.name == ".debug_info" and stype_name != "SHT_NOBITS" and h["sh_size"]:
                self.has_debug_info = True
            if stype_name == "SHT_SYMTAB" and symtab is None:
                symtab = sec
            if stype_name == "SHT_NOTE" and self.build_id is None:
                self.build_id = _note_build_id(f, h["sh_offset"], h["sh_size"], end)
        self._alloc.sort()

        names: list[str] = []
        addrs: list[int] = []
        sizes: list[int] = []
        binds: list[str] = []
        kinds: list[str] = []
        if symtab is not None:
            h = symtab.header
            strsec = elf.get_section(h["sh_link"])
            f.seek(strsec.header["sh_offset"])
            strtab = f.read(strsec.header["sh_size"])
            f.seek(h["sh_offset"])
            raw = f.read(h["sh_size"])
            if elf.elfclass == 64:
                fmt, esz = end + "IBBHQQ", 24
                n = len(raw) // esz
                rows = ((a, b, c, d, e, g) for a, b, c, d, e, g in
                        struct.iter_unpack(fmt, raw[:n * esz]))
            else:
                # Elf32_Sym: st_name, st_value, st_size, st_info, st_other, st_shndx,
                # put in Elf64_Sym order (name, info, other, shndx, value, size)
                fmt, esz = end + "IIIBBH", 16
                n = len(raw) // esz
                rows = ((r[0], r[3], r[4], r[5], r[1], r[2])
                        for r in struct.iter_unpack(fmt, raw[:n * esz]))
            strcache: dict[int, str] = {}
            first = True
            for st_name, st_info, _other, _shndx, st_value, st_size in rows:
                if first:           # index 0 is the null symbol
                    first = False
                    continue
                name = strcache.get(st_name)
                if name is None:
                    e = strtab.find(b"\0", st_name)
                    name = strtab[st_name:e if e >= 0 else None].decode("utf-8", "replace")
                    strcache[st_name] = name
                names.append(name)
                addrs.append(st_value)
                sizes.append(st_size)
                binds.append(_BINDINGS.get(st_info >> 4, str(st_info >> 4)))
                kinds.append(_KINDS.get(st_info & 0xF, str(st_info & 0xF)))
        self._names, self._addrs, self._sizes = names, addrs, sizes
        self._binds, self._kinds = binds, kinds
        by_name: dict[str, list[int]] = {}
        for i, name in enumerate(names):
            if name:
                by_name.setdefault(name, []).append(i)
        self._by_name = by_name
        # Address index over object and function symbols, sorted by address; among
        # symbols at the same address prefer global, then sized ones.
        order = [i for i, k in enumerate(kinds) if k in ("object", "func", "tls", "ifunc")
                 and addrs[i]]
        order.sort(key=lambda i: (addrs[i], _BIND_RANK.get(binds[i], 3), -sizes[i]))
        dedup: list[int] = []
        for i in order:
            if dedup and addrs[dedup[-1]] == addrs[i]:
                continue
            dedup.append(i)
        self._sorted = dedup
        self._sorted_addrs = [addrs[i] for i in dedup]

    # -- symbols ---------------------------------------------------------------------
    def _sym(self, i: int) -> Symbol:
        return Symbol(self._names[i], self._addrs[i], self._sizes[i], self._binds[i],
                      self._kinds[i])

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self):
        return (self._sym(i) for i in range(len(self._names)))

    def __contains__(self, name: str) -> bool:
        return name in self._by_name

    def lookup_all(self, name: str) -> list[Symbol]:
        """Every symbol called ``name`` (duplicate file-static names give several)."""
        return [self._sym(i) for i in self._by_name.get(name, ())]

    def lookup(self, name: str) -> Symbol:
        """The symbol ``name``: global before weak before local; among equals, a
        defined one (non-zero address) and then the first.  Raises LookupError."""
        idx = self._by_name.get(name)
        if not idx:
            raise LookupError(f"no symbol {name!r} in {self.path}")
        best = min(idx, key=lambda i: (_BIND_RANK.get(self._binds[i], 3),
                                       self._addrs[i] == 0, i))
        return self._sym(best)

    def address_of(self, name: str) -> int:
        return self.lookup(name).address

    def symbolize(self, address: int) -> tuple[Symbol, int] | None:
        """(symbol, offset) of the object or function containing ``address``.

        A symbol with size 0 matches only its own address."""
        k = bisect.bisect_right(self._sorted_addrs, address) - 1
        while k >= 0:
            i = self._sorted[k]
            start, size = self._addrs[i], self._sizes[i]
            off = address - start
            if off == 0 or off < size:
                return self._sym(i), off
            # an earlier, larger symbol may still cover the address (rare); look back a bit
            if k > 0 and address - self._sorted_addrs[k - 1] < self._sizes[self._sorted[k - 1]]:
                k -= 1
                continue
            return None
        return None

    # -- sections and bytes ----------------------------------------------------------
    def section_bounds(self, name: str) -> tuple[int, int]:
        """(start, end) addresses of section ``name`` (e.g. "set_vnet").  Uses the
        section header, or ``__start_NAME``/``__stop_NAME`` symbols.  Raises LookupError."""
        sec = self.sections.get(name)
        if sec is not None:
            return sec[0], sec[0] + sec[1]
        try:
            return self.address_of("__start_" + name), self.address_of("__stop_" + name)
        except LookupError:
            raise LookupError(f"no section {name!r} in {self.path}") from None

    def read_static(self, address: int, size: int) -> bytes | None:
        """The file's own bytes at ``address`` (inside one allocated PROGBITS section),
        or None (NOBITS such as .bss, or .rodata in a ``--only-keep-debug`` file)."""
        if size < 0:
            return None
        for start, ssize, off, nobits in self._alloc:
            if nobits or not (start <= address and address + size <= start + ssize):
                continue
            with open(self.path, "rb") as f:
                f.seek(off + address - start)
                data = f.read(size)
            return data if len(data) == size else None
        return None

    @property
    def version_string(self) -> str | None:
        """The kernel's ``version`` string (NUL-terminated), or None."""
        try:
            sym = self.lookup("version")
        except LookupError:
            return None
        size = sym.size or 1024
        data = self.read_static(sym.address, size)
        if data is None and not sym.size:
            for n in (256, 64):
                data = self.read_static(sym.address, n)
                if data is not None:
                    break
        if data is None:
            return None
        return data.split(b"\0", 1)[0].decode("utf-8", "replace")

    def iter_symbols(self, kinds: Iterable[str] | None = None):
        ks = set(kinds) if kinds else None
        for i in range(len(self._names)):
            if ks is None or self._kinds[i] in ks:
                yield self._sym(i)


def _note_build_id(f, offset: int, size: int, end: str) -> str | None:
    f.seek(offset)
    data = f.read(size)
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from(end + "III", data, pos)
        pos += 12
        name = data[pos:pos + namesz]
        pos += (namesz + 3) & ~3
        desc = data[pos:pos + descsz]
        pos += (descsz + 3) & ~3
        if ntype == NT_GNU_BUILD_ID and name.rstrip(b"\0") == b"GNU":
            return desc.hex()
    return None
