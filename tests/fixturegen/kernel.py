"""The fixture kernel as seen by the simulated machine: PT_LOAD contents,
symbol table (local symbols included) and DWARF types through drgn."""

from __future__ import annotations

import os
from dataclasses import dataclass

from elftools.elf.elffile import ELFFile

from .pagetables import KERNBASE


@dataclass(frozen=True)
class Sym:
    name: str
    value: int
    size: int
    bind: str   # STB_GLOBAL / STB_LOCAL / STB_WEAK
    type: str   # STT_OBJECT / STT_FUNC / STT_NOTYPE / ...


@dataclass(frozen=True)
class Segment:
    vaddr: int
    data: bytes
    memsz: int
    flags: int


def find_kernel_files(layout_dir: str) -> tuple[str, str]:
    """(loadable image, file with DWARF + symtab) inside ``layout_dir``:
    kernel + kernel.debug (the committed fixture form), else kernel.full."""
    full = os.path.join(layout_dir, "kernel.full")
    kern = os.path.join(layout_dir, "kernel")
    dbg = os.path.join(layout_dir, "kernel.debug")
    # kernel + kernel.debug first: the committed form, so a machine built from a
    # build directory and one built from committed files are the same
    if os.path.exists(kern) and os.path.exists(dbg):
        return kern, dbg
    if os.path.exists(full):
        return full, full
    raise FileNotFoundError(f"no kernel.full or kernel+kernel.debug in {layout_dir}")


class Kernel:
    def __init__(self, layout_dir: str):
        self.layout_dir = layout_dir
        self.image_path, self.debug_path = find_kernel_files(layout_dir)
        self.segments = self._read_segments(self.image_path)
        self.symbols = self._read_symbols()
        self._prog = None

    # -- ELF ------------------------------------------------------------------
    @staticmethod
    def _read_segments(path: str) -> list[Segment]:
        segs = []
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_X86_64":
                raise ValueError(f"{path}: not an amd64 kernel")
            for ph in elf.iter_segments():
                if ph["p_type"] != "PT_LOAD" or ph["p_memsz"] == 0:
                    continue
                segs.append(Segment(ph["p_vaddr"], ph.data(), ph["p_memsz"], ph["p_flags"]))
        return segs

    def _read_symbols(self) -> dict[str, list[Sym]]:
        syms: dict[str, list[Sym]] = {}
        for path in dict.fromkeys([self.debug_path, self.image_path]):
            with open(path, "rb") as f:
                elf = ELFFile(f)
                tab = elf.get_section_by_name(".symtab")
                if tab is None:
                    continue
                for s in tab.iter_symbols():
                    if not s.name or s["st_info"]["type"] in ("STT_FILE", "STT_SECTION"):
                        continue
                    shndx = s["st_shndx"]
                    if shndx == "SHN_UNDEF":
                        continue
                    syms.setdefault(s.name, []).append(
                        Sym(s.name, s["st_value"], s["st_size"], s["st_info"]["bind"], s["st_info"]["type"]))
            if syms:
                break
        return syms

    @property
    def image_start(self) -> int:
        return min(s.vaddr for s in self.segments)

    @property
    def image_end(self) -> int:
        return max(s.vaddr + s.memsz for s in self.segments)

    def has_symbol(self, name: str) -> bool:
        return name in self.symbols

    def symbol(self, name: str) -> Sym:
        """The symbol ``name``; a global wins over locals, a unique local is fine."""
        cands = self.symbols.get(name)
        if not cands:
            raise KeyError(f"kernel has no symbol {name!r}")
        glob = [s for s in cands if s.bind in ("STB_GLOBAL", "STB_WEAK")]
        if len(glob) == 1:
            return glob[0]
        if len(cands) == 1:
            return cands[0]
        raise KeyError(f"symbol {name!r} is ambiguous ({len(cands)} definitions)")

    def symbol_address(self, name: str) -> int:
        return self.symbol(name).value

    def symbols_with_prefix(self, prefix: str) -> list[Sym]:
        out = []
        for name, lst in self.symbols.items():
            if name.startswith(prefix):
                out.extend(lst)
        return sorted(out, key=lambda s: (s.value, s.name))

    def read_image(self, va: int, size: int) -> bytes:
        """Initial contents of kernel memory (file data, .bss zero)."""
        for s in self.segments:
            if s.vaddr <= va and va + size <= s.vaddr + s.memsz:
                off = va - s.vaddr
                chunk = s.data[off:off + size]
                return chunk + bytes(size - len(chunk))
        raise ValueError(f"{va:#x}+{size} not inside one PT_LOAD segment")

    def read_cstring(self, name: str) -> bytes:
        s = self.symbol(name)
        size = s.size or 256
        raw = self.read_image(s.value, size)
        return raw.split(b"\0", 1)[0]

    # -- DWARF ----------------------------------------------------------------
    @property
    def prog(self):
        if self._prog is None:
            import drgn
            from drgn import Architecture, Platform, PlatformFlags

            prog = drgn.Program(Platform(Architecture.X86_64,
                                         PlatformFlags.IS_64_BIT | PlatformFlags.IS_LITTLE_ENDIAN))
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

    def type(self, name: str):
        return self.prog.type(name)

    def has_type(self, name: str) -> bool:
        try:
            self.prog.type(name)
            return True
        except LookupError:
            return False

    def has_member(self, type_name: str, member: str) -> bool:
        try:
            return self.prog.type(type_name).has_member(member)
        except LookupError:
            return False

    def enumerator(self, enum_type: str, name: str, default: int | None = None) -> int:
        try:
            for e in self.prog.type(enum_type).enumerators:
                if e.name == name:
                    return e.value
        except LookupError:
            pass
        try:
            return self.prog.constant(name).value_()
        except (LookupError, KeyError):
            pass
        if default is None:
            raise KeyError(f"no enumerator {name}")
        return default

    def variable_type(self, name: str):
        try:
            return self.prog.variable(name).type_
        except (LookupError, KeyError):
            return None


def kernbase() -> int:
    return KERNBASE
