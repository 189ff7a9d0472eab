"""Typed views over kernel memory.

``Target`` ties one memory source to one kernel's symbols and types; ``Value`` is a typed
object at an address.  Every offset comes from the type provider: nothing above this
module computes one by hand.

A ``Value`` reads its bytes once (a snapshot), on first use, so walking a list of large
structs costs one read per element rather than one per member.  If the whole object
cannot be read (it straddles an absent page), members are read one by one instead, so a
partly dumped object still yields whatever is present.
"""

from __future__ import annotations

from typing import Iterable

from .debuginfo.types import Kind, Type, TypeProvider
from .errors import FaultError, VnetdbgError

#: longest C string read through a pointer before giving up (kernel strings are short)
MAX_STRING = 64 * 1024


class Target:
    """One kernel image (symbols + types) over one memory source."""

    def __init__(self, memory, symbols, types: TypeProvider, *, byteorder: str = "little",
                 pointer_size: int | None = None):
        self.memory = memory
        self.symbols = symbols
        self.types = types
        self.byteorder = byteorder
        if pointer_size is None:
            # the kernel's ELF class: 4-byte pointers (and longs) on i386, else 8
            pointer_size = getattr(symbols, "elfclass", 64) // 8
        self.pointer_size = pointer_size
        self._type_cache: dict[str, Type] = {}
        #: (type, member path) -> (byte offset, bitfield, member type, bytes to read)
        self._member_layouts: dict = {}

    # -- raw memory -----------------------------------------------------------------
    def read(self, address: int, size: int) -> bytes:
        if address < 0 or address + size > 1 << (8 * self.pointer_size):
            raise FaultError(address, "address out of range")
        return self.memory.read(address, size)

    def read_uint(self, address: int, size: int) -> int:
        return int.from_bytes(self.read(address, size), self.byteorder)

    def read_pointer(self, address: int) -> int:
        return self.read_uint(address, self.pointer_size)

    def read_cstring(self, address: int, limit: int = MAX_STRING) -> bytes:
        """Bytes of the NUL-terminated string at ``address`` (without the NUL), read a
        page at a time so a string near the end of a present page does not fault."""
        out = bytearray()
        page = getattr(self.memory, "page_size", 4096)
        while len(out) < limit:
            chunk = min(page - (address % page), limit - len(out))
            data = self.read(address, chunk)
            nul = data.find(b"\0")
            if nul >= 0:
                out += data[:nul]
                return bytes(out)
            out += data
            address += chunk
        return bytes(out)

    # -- types and symbols ----------------------------------------------------------
    def type(self, name: str) -> Type:
        t = self._type_cache.get(name)
        if t is None:
            try:
                t = self.types.find_type(name)
            except LookupError:
                raise VnetdbgError(f"kernel debug info has no type {name!r}") from None
            self._type_cache[name] = t
        return t

    def has_type(self, name: str) -> bool:
        try:
            self.type(name)
        except VnetdbgError:
            return False
        return True

    def has_symbol(self, name: str) -> bool:
        try:
            self.symbols.lookup(name)
        except LookupError:
            return False
        return True

    def symbol_address(self, name: str) -> int:
        try:
            return self.symbols.lookup(name).address
        except LookupError:
            raise VnetdbgError(f"kernel has no symbol {name!r}") from None

    def variable(self, name: str, type: Type | str | None = None) -> Value:
        """The kernel global or file-static ``name`` as a typed value."""
        address = self.symbol_address(name)
        if type is None:
            try:
                type = self.types.find_variable_type(name)
            except LookupError:
                raise VnetdbgError(f"kernel debug info has no variable {name!r}") from None
        return self.value(address, type)

    def value(self, address: int, type: Type | str) -> Value:
        if isinstance(type, str):
            type = self.type(type)
        return Value(self, address, type)


class Value:
    """A typed object in kernel memory (an lvalue: it has an address)."""

    __slots__ = ("target", "address", "type", "_buf", "_bitfield")

    def __init__(self, target: Target, address: int, type: Type,
                 buf: memoryview | None = None, bitfield: tuple[int, int] | None = None):
        self.target = target
        self.address = address
        self.type = type
        self._buf = buf
        self._bitfield = bitfield  # (bit offset within the first byte, bit size)

    # -- reading ----------------------------------------------------------------------
    @property
    def size(self) -> int:
        size = self.type.size
        if size is None:
            raise VnetdbgError(f"{self.type} has no size (incomplete type)")
        return size

    def _bytes(self) -> memoryview:
        if self._buf is None:
            self._buf = memoryview(self.target.read(self.address, self.size))
        return self._buf

    def bytes_(self) -> bytes:
        """The object's raw bytes."""
        return bytes(self._bytes())

    def __int__(self) -> int:
        return self.value_()

    def __index__(self) -> int:
        return self.value_()

    def value_(self) -> int:
        """The integer value of an integer, enum, bool or pointer object."""
        scalar = self.type.scalar()
        if scalar is None:
            raise VnetdbgError(f"{self.type} is not an integer or pointer")
        signed, size = scalar
        if self._bitfield is not None:
            start, bits = self._bitfield
            nbytes = (start + bits + 7) // 8
            raw = int.from_bytes(self._load(nbytes), self.target.byteorder)
            v = (raw >> start) & ((1 << bits) - 1)
            if signed and v >> (bits - 1):
                v -= 1 << bits
            return v
        return int.from_bytes(self._load(size), self.target.byteorder, signed=signed)

    def _load(self, nbytes: int) -> memoryview:
        if self._buf is not None:
            return self._buf[:nbytes]
        return memoryview(self.target.read(self.address, nbytes))

    def __bool__(self) -> bool:
        return self.value_() != 0

    def enum_name(self) -> str | None:
        """The enumerator naming this enum value (from DWARF), or None."""
        return self.type.enumerator_name(self.value_())

    # -- navigation -------------------------------------------------------------------
    def member(self, name: str) -> Value:
        """Member ``name`` (dotted paths and anonymous struct/union members work)."""
        layouts = self.target._member_layouts
        key = (self.type, name)
        layout = layouts.get(key)
        if layout is None:
            bit_offset, m = self.type.find_member(name)
            bitfield = (bit_offset % 8, m.bit_size) if m.bit_size else None
            size = (bitfield[0] + bitfield[1] + 7) // 8 if bitfield else m.type.size
            layout = layouts[key] = (bit_offset // 8, bitfield, m.type, size)
        offset, bitfield, mtype, size = layout
        buf = None
        if self._buf is None:
            try:
                self._bytes()
            except (FaultError, VnetdbgError):
                pass  # partly present object: read members individually
        if self._buf is not None and size is not None and offset + size <= len(self._buf):
            buf = self._buf[offset:offset + size]
        return Value(self.target, self.address + offset, mtype, buf, bitfield)

    def __getattr__(self, name: str) -> Value:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.member(name)
        except LookupError as e:
            raise AttributeError(str(e)) from None

    def has_member(self, name: str) -> bool:
        return self.type.has_member(name)

    def deref(self) -> Value:
        """The object a pointer points to."""
        t = self.type.strip_typedefs()
        if t.kind is not Kind.POINTER:
            raise VnetdbgError(f"{self.type} is not a pointer")
        return Value(self.target, self.value_(), t.target)

    def __getitem__(self, i: int) -> Value:
        """Element ``i`` of an array, or ``p[i]`` through a pointer."""
        t = self.type.strip_typedefs()
        if t.kind is Kind.ARRAY:
            if t.length is not None and not 0 <= i < t.length:
                raise IndexError(f"index {i} out of range for {self.type}")
            elem = t.target
            es = elem.size or 0
            buf = None
            if self._buf is not None and (i + 1) * es <= len(self._buf):
                buf = self._buf[i * es:(i + 1) * es]
            return Value(self.target, self.address + i * es, elem, buf)
        if t.kind is Kind.POINTER:
            elem = t.target
            return Value(self.target, self.value_() + i * (elem.size or 0), elem)
        raise VnetdbgError(f"{self.type} is not an array or pointer")

    def elements(self, count: int | None = None) -> Iterable[Value]:
        t = self.type.strip_typedefs()
        n = t.length if count is None else count
        if n is None:
            raise VnetdbgError(f"{self.type} has no length; give a count")
        return (self[i] for i in range(n))

    # -- strings ----------------------------------------------------------------------
    def string_bytes(self) -> bytes:
        """A C string: the bytes of a char array up to its first NUL, or the
        NUL-terminated string a ``char *`` points to."""
        t = self.type.strip_typedefs()
        if t.kind is Kind.ARRAY:
            data = self.bytes_()
            nul = data.find(b"\0")
            return data if nul < 0 else data[:nul]
        if t.kind is Kind.POINTER:
            p = self.value_()
            return b"" if p == 0 else self.target.read_cstring(p)
        raise VnetdbgError(f"{self.type} is not a string")

    def string(self) -> str:
        """``string_bytes`` decoded as UTF-8; undecodable bytes survive as surrogates so
        the CLI can write them back unchanged (FreeBSD paths are bytes)."""
        return self.string_bytes().decode("utf-8", "surrogateescape")

    def __repr__(self) -> str:
        return f"<Value {self.type} at {self.address:#x}>"


def container_of(pointer: int | Value, type: Type, member: str) -> Value:
    """The ``type`` object whose member ``member`` lives at ``pointer``."""
    if isinstance(pointer, Value):
        target = pointer.target
        address = pointer.value_() if pointer.type.is_pointer() else pointer.address
    else:
        raise TypeError("container_of needs a Value (for its target)")
    offset, _ = type.find_member(member)
    return Value(target, address - offset // 8, type)
