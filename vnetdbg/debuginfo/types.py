"""vnetdbg's own small model of C types, and the protocol every type provider implements.

Why our own model: the FreeBSD helpers must give the same answers whether the types came
from drgn (fast, Linux x86_64 only) or from the pure-Python DWARF reader (every host).
Both providers convert into these classes; nothing above ``debuginfo`` sees drgn types.

Types refer to each other lazily (``struct prison`` points to ``struct prison``), so
``Type.target`` and ``Type.members`` may be given as zero-argument callables that are
resolved on first use.  Qualifiers (const, volatile) are dropped by the providers: a
debugger reading memory has no use for them.
"""

from __future__ import annotations

import enum
from typing import Callable, Iterable, Iterator, Protocol, Sequence, Union


class Kind(enum.Enum):
    VOID = "void"
    INT = "int"          # any integer base type, including char
    BOOL = "bool"        # _Bool
    FLOAT = "float"
    POINTER = "pointer"
    STRUCT = "struct"
    UNION = "union"
    ARRAY = "array"
    ENUM = "enum"
    TYPEDEF = "typedef"
    FUNCTION = "function"


Lazy = Union["Type", Callable[[], "Type"]]


class Member:
    """One member of a struct or union.

    ``bit_offset`` counts from the start of the enclosing struct.  ``bit_size`` is None
    for an ordinary member and the width for a bitfield.  ``name`` is None for an
    anonymous struct/union member, whose own members are reachable through the parent
    (see ``Type.find_member``).
    """

    __slots__ = ("name", "bit_offset", "bit_size", "_type")

    def __init__(self, name: str | None, bit_offset: int, type: Lazy,
                 bit_size: int | None = None):
        self.name = name
        self.bit_offset = bit_offset
        self.bit_size = bit_size
        self._type = type

    @property
    def type(self) -> "Type":
        if callable(self._type) and not isinstance(self._type, Type):
            self._type = self._type()
        return self._type  # type: ignore[return-value]

    @property
    def offset(self) -> int:
        """Byte offset of the member (for a bitfield, of the byte holding its first bit)."""
        return self.bit_offset // 8

    def __repr__(self) -> str:
        bits = f":{self.bit_size}" if self.bit_size else ""
        return f"Member({self.name!r} @bit {self.bit_offset}{bits})"


class Type:
    """A C type.

    Fields by kind:
    - INT/BOOL/FLOAT: ``name`` ("unsigned int"), ``size``, ``signed``.
    - POINTER: ``size``, ``target``.
    - STRUCT/UNION: ``name`` (tag, or None if anonymous), ``size`` (None if incomplete),
      ``members``.
    - ARRAY: ``target`` (element type), ``length`` (None for a flexible array), ``size``.
    - ENUM: ``name`` (tag or None), ``size``, ``signed``, ``enumerators`` ((name, value), ...).
    - TYPEDEF: ``name``, ``target``; ``size`` is the target's.
    - VOID/FUNCTION: ``size`` None.
    """

    __slots__ = ("kind", "name", "_size", "signed", "_target", "length", "_members",
                 "enumerators", "_member_index", "_path_cache", "_scalar")

    def __init__(self, kind: Kind, name: str | None = None, size: int | None = None, *,
                 signed: bool = False, target: Lazy | None = None,
                 length: int | None = None,
                 members: Sequence[Member] | Callable[[], Sequence[Member]] | None = None,
                 enumerators: Iterable[tuple[str, int]] = ()):
        self.kind = kind
        self.name = name
        self._size = size
        self.signed = signed
        self._target = target
        self.length = length
        self._members = members
        self.enumerators = tuple(enumerators)
        self._member_index: dict[str, tuple[int, Member]] | None = None
        # lookups repeated for every object of a walk are answered from these
        self._path_cache: dict[str, tuple[int, Member]] = {}
        self._scalar: tuple[bool, int] | None = None

    # -- lazy parts -------------------------------------------------------------------
    @property
    def target(self) -> "Type":
        t = self._target
        if t is None:
            raise TypeError(f"{self} has no target type")
        if not isinstance(t, Type):
            t = self._target = t()
        return t

    @property
    def members(self) -> tuple[Member, ...]:
        m = self._members
        if m is None:
            return ()
        if callable(m):
            m = m()
        if not isinstance(m, tuple):
            m = tuple(m)
        self._members = m
        return m

    @property
    def size(self) -> int | None:
        if self._size is None and self.kind is Kind.TYPEDEF:
            return self.target.size
        if self._size is None and self.kind is Kind.ARRAY and self.length is not None:
            es = self.target.size
            return None if es is None else es * self.length
        return self._size

    # -- queries ----------------------------------------------------------------------
    def strip_typedefs(self) -> "Type":
        t = self
        while t.kind is Kind.TYPEDEF:
            t = t.target
        return t

    def scalar(self) -> tuple[bool, int] | None:
        """(signed, size) for integers, enums, bools and pointers, None otherwise;
        computed once, since values of one type are decoded many times."""
        if self._scalar is None:
            t = self.strip_typedefs()
            if t.kind in (Kind.INT, Kind.BOOL, Kind.ENUM, Kind.POINTER) and t.size:
                self._scalar = (t.signed and t.kind is not Kind.POINTER, t.size)
            else:
                self._scalar = (False, 0)
        return self._scalar if self._scalar[1] else None

    def is_integer(self) -> bool:
        return self.strip_typedefs().kind in (Kind.INT, Kind.BOOL, Kind.ENUM)

    def is_pointer(self) -> bool:
        return self.strip_typedefs().kind is Kind.POINTER

    def _index(self) -> dict[str, tuple[int, Member]]:
        """Member name -> (bit offset from this type's start, Member), anonymous
        struct/union members flattened in declaration order (first name wins, as in C)."""
        if self._member_index is None:
            index: dict[str, tuple[int, Member]] = {}
            for m in self.strip_typedefs().members:
                if m.name is None:
                    inner = m.type.strip_typedefs()
                    for name, (off, im) in inner._index().items():
                        index.setdefault(name, (m.bit_offset + off, im))
                else:
                    index.setdefault(m.name, (m.bit_offset, m))
            self._member_index = index
        return self._member_index

    def find_member(self, name: str) -> tuple[int, Member]:
        """(bit offset, Member) of ``name``; dotted paths ("pr_list.tqe_next") and
        members of anonymous structs/unions are found.  Raises LookupError."""
        hit = self._path_cache.get(name)
        if hit is not None:
            return hit
        t: Type = self
        total = 0
        member: Member | None = None
        for part in name.split("."):
            st = t.strip_typedefs()
            if st.kind not in (Kind.STRUCT, Kind.UNION):
                raise LookupError(f"{t} is not a struct or union (looking for {name!r})")
            try:
                off, member = st._index()[part]
            except KeyError:
                raise LookupError(f"{t} has no member {part!r}") from None
            total += off
            t = member.type
        assert member is not None
        self._path_cache[name] = (total, member)
        return total, member

    def has_member(self, name: str) -> bool:
        """Version detection: does this struct (or union) have member ``name``?"""
        try:
            self.find_member(name)
        except LookupError:
            return False
        return True

    def member_names(self) -> Iterator[str]:
        """Names of all members, anonymous ones flattened."""
        return iter(self.strip_typedefs()._index())

    def enumerator_name(self, value: int) -> str | None:
        for name, v in self.strip_typedefs().enumerators:
            if v == value:
                return name
        return None

    def enumerator_value(self, name: str) -> int:
        for n, v in self.strip_typedefs().enumerators:
            if n == name:
                return v
        raise LookupError(f"{self} has no enumerator {name!r}")

    # -- spelling ---------------------------------------------------------------------
    def __str__(self) -> str:
        k = self.kind
        if k in (Kind.STRUCT, Kind.UNION, Kind.ENUM):
            return f"{k.value} {self.name or '<anonymous>'}"
        if k is Kind.POINTER:
            return f"{self.target} *"
        if k is Kind.ARRAY:
            n = "" if self.length is None else str(self.length)
            return f"{self.target}[{n}]"
        if k is Kind.FUNCTION:
            return "function"
        return self.name or k.value

    def __repr__(self) -> str:
        return f"<Type {self}>"


class TypeProvider(Protocol):
    """What the object layer needs from debug information.

    Implementations: ``drgn_types.DrgnTypeProvider`` and ``dwarf_types.DwarfTypeProvider``.
    Both must return equal layouts for every name (the test suite compares them).
    """

    #: short name for messages and ``vnetdbg info`` ("drgn", "dwarf")
    name: str

    def find_type(self, name: str) -> Type:
        """Look a type up by C spelling: "struct prison", "union foo", "enum prison_state",
        a typedef name ("u_int", "counter_u64_t") or a base type ("unsigned int").
        Raises LookupError when the debug info has no such type."""

    def find_variable_type(self, name: str) -> Type:
        """The declared type of a global or file-static variable ("pr_flag_allow",
        "vnet_entry_ifnet", "prison0").  Raises LookupError."""

    def pointer_type(self, target: Type) -> Type:
        """A pointer to ``target`` with the kernel's pointer size."""
