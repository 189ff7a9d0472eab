"""Type provider backed by drgn (Linux x86_64 hosts).

The kernel ELF is loaded into a ``drgn.Program`` as an ExtraModule (the only module kind
that loads a non-Linux kernel with the right bias, see docs/drgn-as-engine.md).  drgn
types are converted to vnetdbg's ``Type`` model lazily and memoised per drgn type.

Importing this module never fails; constructing a provider raises ImportError when drgn
is not installed.
"""

from __future__ import annotations

import os
from typing import Callable, Iterable

from ..errors import FaultError, VnetdbgError
from .types import Kind, Member, Type

try:  # drgn is a dependency on Linux x86_64 only
    import drgn as _drgn
except ImportError as _e:  # pragma: no cover - depends on the host
    _drgn = None
    _DRGN_IMPORT_ERROR: ImportError | None = _e
else:
    _DRGN_IMPORT_ERROR = None

KERNEL_HALF_START = 0xFFFF800000000000
KERNEL_HALF_SIZE = 1 << 47


def drgn_available() -> bool:
    return _drgn is not None


def _require_drgn():
    if _drgn is None:
        raise ImportError(f"drgn is not available on this host ({_DRGN_IMPORT_ERROR})")
    return _drgn


#: ELF e_machine -> drgn Architecture member name
_ARCHITECTURES = {62: "X86_64", 3: "I386", 183: "AARCH64", 243: "RISCV64", 40: "ARM",
                  21: "PPC64"}


def elf_platform(path: str):
    """(drgn Platform, is 64-bit) for the kernel ELF at ``path``, from its ELF class,
    data encoding and machine (drgn's type sizes -- pointers, long -- follow the
    platform, so a 32-bit kernel needs a 32-bit platform)."""
    drgn = _require_drgn()
    try:
        with open(path, "rb") as f:
            ident = f.read(20)
    except OSError as e:
        raise VnetdbgError(f"cannot read {path}: {e.strerror or e}") from None
    if len(ident) < 20 or ident[:4] != b"\x7fELF":
        raise VnetdbgError(f"{path} is not an ELF file")
    is64 = ident[4] == 2
    little = ident[5] != 2
    machine = int.from_bytes(ident[18:20], "little" if little else "big")
    flags = drgn.PlatformFlags(0)
    if is64:
        flags |= drgn.PlatformFlags.IS_64_BIT
    if little:
        flags |= drgn.PlatformFlags.IS_LITTLE_ENDIAN
    name = _ARCHITECTURES.get(machine)
    arch = getattr(drgn.Architecture, name, None) if name else None
    if arch is None:        # drgn without this architecture: generic, flags carry sizes
        arch = drgn.Architecture.UNKNOWN
    return drgn.Platform(arch, flags), is64


class DrgnTypeProvider:
    """``TypeProvider`` over drgn.  ``.program`` is the drgn Program (kernel loaded, memory
    read through ``read`` when given)."""

    name = "drgn"

    def __init__(self, debug_path, *, read: Callable[[int, int], bytes] | None = None,
                 address_ranges: Iterable[tuple[int, int]] = ()):
        drgn = _require_drgn()
        self.path = os.fspath(debug_path)
        self._check_file()
        platform, is64 = elf_platform(self.path)
        prog = drgn.Program(platform)
        if read is not None:
            def segment_read(address, count, offset, physical, _read=read):
                try:
                    return _read(address, count)
                except FaultError as e:
                    raise drgn.FaultError(e.reason, e.address) from None
            if is64:
                prog.add_memory_segment(KERNEL_HALF_START, KERNEL_HALF_SIZE, segment_read)
            else:   # i386 12+: the kernel lives low (KERNBASE 0x00800000)
                prog.add_memory_segment(0, 1 << 32, segment_read)
        mod = prog.extra_module("kernel", create=True)
        ranges = [(int(a), int(b)) for a, b in address_ranges]
        if ranges:
            mod.address_ranges = ranges
        try:
            mod.try_file(self.path)
        except Exception as e:   # drgn raises plain Exception subclasses for bad files
            raise VnetdbgError(f"drgn cannot load {self.path}: {e}") from None
        if mod.debug_file_status != drgn.ModuleFileStatus.HAVE:
            raise VnetdbgError(f"{self.path} has no DWARF debug information "
                               "(need kernel.debug)")
        self.program = prog
        self.module = mod
        self._memo: dict[tuple, Type] = {}
        self._void = Type(Kind.VOID, "void")

    def _check_file(self) -> None:
        try:
            with open(self.path, "rb") as f:
                magic = f.read(4)
        except OSError as e:
            raise VnetdbgError(f"cannot read {self.path}: {e.strerror or e}") from None
        if magic != b"\x7fELF":
            raise VnetdbgError(f"{self.path} is not an ELF file")

    # -- the protocol --------------------------------------------------------------------
    def find_type(self, name: str) -> Type:
        drgn = _drgn
        try:
            t = self.program.type(name)
        except (LookupError, SyntaxError, ValueError) as e:
            raise LookupError(f"could not find type {name!r}") from e
        except drgn.MissingDebugInfoError as e:  # pragma: no cover
            raise LookupError(str(e)) from e
        return self.convert(t)

    def find_variable_type(self, name: str) -> Type:
        drgn = _drgn
        try:
            obj = self.program.object(name, drgn.FindObjectFlags.VARIABLE)
        except (LookupError, ValueError) as e:
            raise LookupError(f"could not find variable {name!r}") from e
        return self.convert(obj.type_)

    def pointer_type(self, target: Type) -> Type:
        key = ("ptr", id(target))
        p = self._memo.get(key)
        if p is None or p.target is not target:
            p = Type(Kind.POINTER, None, self.program.address_size(), target=target)
            self._memo[key] = p
        return p

    # -- conversion ----------------------------------------------------------------------
    def convert(self, t) -> Type:
        """Our ``Type`` for a drgn type (qualifiers dropped)."""
        key = (t._ptr,)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        out = self._convert(t)
        self._memo[key] = out
        return out

    def _lazy(self, get):
        return lambda: self.convert(get())

    def _convert(self, t) -> Type:
        TK = _drgn.TypeKind
        k = t.kind
        if k == TK.VOID:
            return self._void
        if k == TK.INT:
            return Type(Kind.INT, t.name, t.size, signed=t.is_signed)
        if k == TK.BOOL:
            return Type(Kind.BOOL, t.name, t.size)
        if k == TK.FLOAT:
            return Type(Kind.FLOAT, t.name, t.size)
        if k == TK.POINTER:
            return Type(Kind.POINTER, None, t.size, target=self._lazy(lambda: t.type))
        if k == TK.TYPEDEF:
            return Type(Kind.TYPEDEF, t.name, None, target=self._lazy(lambda: t.type))
        if k == TK.ARRAY:
            return Type(Kind.ARRAY, None, None, target=self._lazy(lambda: t.type),
                        length=t.length)
        if k == TK.FUNCTION:
            return Type(Kind.FUNCTION, None, None, target=self._lazy(lambda: t.type))
        if k == TK.ENUM:
            if not t.is_complete():
                return Type(Kind.ENUM, t.tag, None)
            compat = t.type
            return Type(Kind.ENUM, t.tag, compat.size, signed=compat.is_signed,
                        enumerators=[(e.name, e.value) for e in t.enumerators])
        if k in (TK.STRUCT, TK.UNION, TK.CLASS):
            kind = Kind.UNION if k == TK.UNION else Kind.STRUCT
            if not t.is_complete():
                return Type(kind, t.tag, None, members=())

            def members(t=t):
                out = []
                for m in t.members:
                    out.append(Member(m.name, m.bit_offset,
                                      self._lazy(lambda m=m: m.type),
                                      m.bit_field_size or None))
                return out
            return Type(kind, t.tag, t.size, members=members)
        raise VnetdbgError(f"unsupported drgn type kind {k} ({t})")
