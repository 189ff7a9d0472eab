"""Hand-made memory and types for testing the object layer and the walkers without a
kernel: every offset here is written down by hand, independently of any provider."""

from __future__ import annotations

from vnetdbg.debuginfo.types import Kind, Type
from vnetdbg.errors import FaultError
from vnetdbg.objects import Target

PAGE = 4096

INT = Type(Kind.INT, "int", 4, signed=True)
UINT = Type(Kind.INT, "unsigned int", 4)
U8 = Type(Kind.INT, "unsigned char", 1)
CHAR = Type(Kind.INT, "char", 1, signed=True)
ULONG = Type(Kind.INT, "unsigned long", 8)


def ptr(t):
    return Type(Kind.POINTER, None, 8, target=t)


class PageMemory:
    """Sparse memory: only pages written to exist; others fault like an absent page."""

    page_size = PAGE

    def __init__(self):
        self.pages: dict[int, bytearray] = {}

    def write(self, address: int, data: bytes) -> None:
        for i, b in enumerate(data):
            a = address + i
            self.pages.setdefault(a // PAGE, bytearray(PAGE))[a % PAGE] = b

    def read(self, address: int, size: int) -> bytes:
        out = bytearray()
        a = address
        while len(out) < size:
            page = self.pages.get(a // PAGE)
            if page is None:
                raise FaultError(a)
            n = min(PAGE - a % PAGE, size - len(out))
            out += page[a % PAGE:a % PAGE + n]
            a += n
        return bytes(out)


class FakeTypes:
    name = "fake"

    def __init__(self, types: dict[str, Type], variables: dict[str, Type] | None = None):
        self.types = types
        self.variables = variables or {}

    def find_type(self, name):
        return self.types[name]

    def find_variable_type(self, name):
        return self.variables[name]

    def pointer_type(self, target):
        return ptr(target)


class FakeSymbols:
    def __init__(self, table: dict[str, int]):
        self.table = table

    def lookup(self, name):
        from collections import namedtuple
        Sym = namedtuple("Sym", "name address size")
        if name not in self.table:
            raise LookupError(name)
        return Sym(name, self.table[name], 0)


def make_target(types=None, variables=None, symbols=None):
    mem = PageMemory()
    return mem, Target(mem, FakeSymbols(symbols or {}), FakeTypes(types or {}, variables))
