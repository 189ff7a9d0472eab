"""Write kernel objects at DWARF-derived offsets (no typed-in offsets).

``ObjectWriter.write_struct(addr, 'struct prison', {'pr_id': 3,
'pr_list.tqe_next': other, 'pr_addrs[0]': ip4obj, 'pr_name': b'web'})``
"""

from __future__ import annotations

import re
from typing import Any, Callable, Protocol

_PATH_RE = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


class VirtualMemory(Protocol):
    def write(self, va: int, data: bytes) -> None: ...
    def read(self, va: int, size: int) -> bytes: ...


def _split_path(path: str) -> list[str | int]:
    out: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _PATH_RE.match(path, pos)
        if not m:
            raise ValueError(f"bad member path {path!r}")
        out.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    return out


class Field:
    """Resolved member: byte offset, optional bitfield, and an encoder."""

    __slots__ = ("offset", "bit_offset", "bit_size", "type", "size", "encode", "kind")

    def __init__(self, offset, bit_offset, bit_size, type_, encode, kind):
        self.offset = offset
        self.bit_offset = bit_offset
        self.bit_size = bit_size
        self.type = type_
        self.size = _sizeof(type_)
        self.encode = encode
        self.kind = kind


def _sizeof(t) -> int:
    import drgn
    try:
        return drgn.sizeof(t)
    except (TypeError, ValueError):
        return 0


def _strip(t):
    return t.unaliased()


def make_encoder(t) -> tuple[Callable[[Any], bytes], str]:
    """Encoder turning a Python value into the bytes of DWARF type ``t``."""
    from drgn import TypeKind

    t = _strip(t)
    kind = t.kind
    if kind in (TypeKind.INT, TypeKind.BOOL, TypeKind.ENUM, TypeKind.POINTER):
        size = _sizeof(t)
        if kind == TypeKind.ENUM:
            enumerators = {e.name: e.value for e in (t.enumerators or ())}
        else:
            enumerators = {}
        mask = (1 << (8 * size)) - 1

        def enc_int(v, size=size, mask=mask, enumerators=enumerators):
            if isinstance(v, str):
                if v not in enumerators:
                    raise ValueError(f"unknown enumerator {v!r}")
                v = enumerators[v]
            if isinstance(v, bool):
                v = int(v)
            if not isinstance(v, int):
                raise TypeError(f"integer expected, got {type(v).__name__}")
            return (v & mask).to_bytes(size, "little")

        return enc_int, "int"
    if kind == TypeKind.ARRAY:
        elem = _strip(t.type)
        length = t.length or 0
        esize = _sizeof(elem)
        total = length * esize
        elem_enc, _ = make_encoder(elem) if elem.kind in (
            TypeKind.INT, TypeKind.BOOL, TypeKind.ENUM, TypeKind.POINTER) else (None, None)

        def enc_array(v, total=total, elem_enc=elem_enc, length=length):
            if isinstance(v, str):
                v = v.encode()
            if isinstance(v, (bytes, bytearray, memoryview)):
                v = bytes(v)
                if len(v) > total and total:
                    raise ValueError(f"{len(v)} bytes do not fit in {total}")
                return v + bytes(max(0, total - len(v)))
            if isinstance(v, (list, tuple)):
                if elem_enc is None:
                    raise TypeError("list value for an array of non-scalars")
                if length and len(v) > length:
                    raise ValueError("too many elements")
                raw = b"".join(elem_enc(x) for x in v)
                return raw + bytes(max(0, total - len(raw)))
            raise TypeError("bytes or list expected for an array")

        return enc_array, "array"
    if kind in (TypeKind.STRUCT, TypeKind.UNION, TypeKind.CLASS):
        size = _sizeof(t)

        def enc_raw(v, size=size):
            v = bytes(v)
            if len(v) > size:
                raise ValueError("raw bytes larger than the member")
            return v + bytes(size - len(v))

        return enc_raw, "raw"
    raise TypeError(f"cannot encode a value of type {t}")


class ObjectWriter:
    def __init__(self, kernel, mem: VirtualMemory):
        self.kernel = kernel
        self.mem = mem
        self._types: dict[str, Any] = {}
        self._fields: dict[tuple[str, str], Field] = {}

    # -- type info --------------------------------------------------------------
    def type(self, tname: str):
        t = self._types.get(tname)
        if t is None:
            t = self.kernel.type(tname)
            self._types[tname] = t
        return t

    def sizeof(self, tname: str) -> int:
        return _sizeof(_strip(self.type(tname)))

    def has_member(self, tname: str, member: str) -> bool:
        try:
            self.field(tname, member)
            return True
        except (LookupError, ValueError, TypeError):
            return False

    def offsetof(self, tname: str, path: str) -> int:
        return self.field(tname, path).offset

    def field(self, tname: str, path: str) -> Field:
        key = (tname, path)
        f = self._fields.get(key)
        if f is not None:
            return f
        t = _strip(self.type(tname))
        bit = 0
        bit_size = None
        from drgn import TypeKind
        for comp in _split_path(path):
            if isinstance(comp, int):
                if t.kind != TypeKind.ARRAY:
                    raise TypeError(f"{path}: subscript on non-array")
                if t.length is not None and comp >= t.length:
                    raise IndexError(f"{path}: index {comp} out of range")
                elem = _strip(t.type)
                bit += comp * _sizeof(elem) * 8
                t = elem
                bit_size = None
            else:
                if t.kind not in (TypeKind.STRUCT, TypeKind.UNION, TypeKind.CLASS):
                    raise TypeError(f"{path}: member of non-struct")
                m = t.member(comp)  # searches anonymous members too
                bit += m.bit_offset
                bit_size = m.bit_field_size
                t = _strip(m.type)
        enc, kind = make_encoder(t)
        if bit_size is None:
            if bit % 8:
                raise ValueError(f"{path}: unaligned non-bitfield member")
            f = Field(bit // 8, 0, None, t, enc, kind)
        else:
            f = Field(bit // 8, bit % 8, bit_size, t, enc, kind)
        self._fields[key] = f
        return f

    # -- writing ----------------------------------------------------------------
    def write_field(self, addr: int, tname: str, path: str, value) -> None:
        f = self.field(tname, path)
        if f.bit_size is None:
            self.mem.write(addr + f.offset, f.encode(value))
            return
        nbytes = (f.bit_offset + f.bit_size + 7) // 8
        cur = int.from_bytes(self.mem.read(addr + f.offset, nbytes), "little")
        mask = ((1 << f.bit_size) - 1) << f.bit_offset
        cur = (cur & ~mask) | ((int(value) << f.bit_offset) & mask)
        self.mem.write(addr + f.offset, cur.to_bytes(nbytes, "little"))

    def write_struct(self, addr: int, tname: str, fields: dict, zero: bool = False) -> None:
        if zero:
            self.mem.write(addr, bytes(self.sizeof(tname)))
        for path, value in fields.items():
            self.write_field(addr, tname, path, value)

    def write_global(self, name: str, fields: dict | Any, tname: str | None = None) -> int:
        """Write a kernel global by symbol name.  ``fields`` is a dict of member
        paths for struct variables, or a scalar / bytes for plain variables;
        the type comes from the variable's DWARF unless ``tname`` is given."""
        addr = self.kernel.symbol_address(name)
        if tname is None:
            t = self.kernel.variable_type(name)
            if t is None:
                raise LookupError(f"no DWARF variable {name}")
        else:
            t = self.type(tname)
        if isinstance(fields, dict):
            for path, value in fields.items():
                self._write_typed_path(addr, t, path, value)
        else:
            enc, _ = make_encoder(t)
            self.mem.write(addr, enc(fields))
        return addr

    def _write_typed_path(self, addr, t, path, value):
        key = f"<{id(t)}>"
        self._types.setdefault(key, t)
        self.write_field(addr, key, path, value)

    def global_field_address(self, name: str, path: str) -> int:
        addr = self.kernel.symbol_address(name)
        t = self.kernel.variable_type(name)
        key = f"<{id(t)}>"
        self._types.setdefault(key, t)
        return addr + self.field(key, path).offset

    def read_field(self, addr: int, tname: str, path: str) -> int | bytes:
        f = self.field(tname, path)
        if f.kind == "int":
            if f.bit_size is None:
                return int.from_bytes(self.mem.read(addr + f.offset, f.size), "little")
            nbytes = (f.bit_offset + f.bit_size + 7) // 8
            cur = int.from_bytes(self.mem.read(addr + f.offset, nbytes), "little")
            return (cur >> f.bit_offset) & ((1 << f.bit_size) - 1)
        return self.mem.read(addr + f.offset, f.size)
