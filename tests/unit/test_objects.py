"""The object layer over hand-made types and memory (offsets written down by hand)."""

import struct

import pytest

from vnetdbg.debuginfo.types import Kind, Member, Type
from vnetdbg.errors import FaultError, VnetdbgError
from vnetdbg.objects import container_of

from .fakes import CHAR, INT, U8, UINT, make_target, ptr

# struct thing {                     offset
#     int id;                          0
#     union { unsigned int a; int b; };  4   (anonymous)
#     unsigned char state:4, kind:3;   8   (bitfields: state bits 0-3, kind bits 4-6)
#     char name[8];                    9
#     struct thing *next;             24 (after padding to 8 ... placed at 24 by hand)
#     enum colour colour;             32
# }  size 40
COLOUR = Type(Kind.ENUM, "colour", 4, enumerators=[("RED", 0), ("GREEN", 7)])
ANON = Type(Kind.UNION, None, 4, members=[Member("a", 0, UINT), Member("b", 0, INT)])
THING = Type(Kind.STRUCT, "thing", 40)
THING._members = lambda: [
    Member("id", 0, INT),
    Member(None, 32, ANON),
    Member("state", 64, U8, bit_size=4),
    Member("kind", 68, INT, bit_size=3),
    Member("name", 72, Type(Kind.ARRAY, None, 8, target=CHAR, length=8)),
    Member("next", 192, lambda: ptr(THING)),
    Member("colour", 256, COLOUR),
]


def thing_bytes(id, a, state, kind, name, nxt, colour):
    return (struct.pack("<iI", id, a) + bytes([state | (kind << 4)]) + name.ljust(8, b"\0")
            + b"\0" * 7 + struct.pack("<QI", nxt, colour) + b"\0" * 4)


@pytest.fixture
def world():
    mem, target = make_target({"struct thing": THING})
    mem.write(0x1000, thing_bytes(3, 0xFFFFFFFE, 0xA, 5, b"web", 0x2000, 7))
    mem.write(0x2000, thing_bytes(-1, 1, 0, 0x7, b"12345678", 0, 0))
    return mem, target


def test_members_anonymous_bitfields_enums(world):
    _, target = world
    t = target.value(0x1000, "struct thing")
    assert len(THING.members) == 7
    assert t.id.value_() == 3
    assert t.a.value_() == 0xFFFFFFFE          # through the anonymous union
    assert t.b.value_() == -2                  # same bytes, signed
    assert t.state.value_() == 0xA
    assert t.kind.value_() == -3               # 3-bit signed field holding 0b101
    assert t.colour.enum_name() == "GREEN"
    assert t.name.string() == "web"
    nxt = t.next.deref()
    assert nxt.address == 0x2000 and nxt.id.value_() == -1
    assert nxt.name.string() == "12345678"     # no NUL: the whole array
    assert nxt.kind.value_() == -1
    assert not nxt.next


def test_has_member_and_dotted_paths(world):
    assert THING.has_member("a") and THING.has_member("next")
    assert not THING.has_member("pr_state")
    assert THING.find_member("next")[0] == 192


def test_container_of(world):
    _, target = world
    t = target.value(0x1000, "struct thing")
    back = container_of(t.member("colour"), THING, "colour")
    assert back.address == 0x1000


def test_fault_names_address(world):
    _, target = world
    bad = target.value(0x5000, "struct thing")
    with pytest.raises(FaultError) as e:
        bad.id.value_()
    assert e.value.address == 0x5000
    assert "0x5000" in str(e.value)


def test_partly_present_object_reads_members(world):
    mem, target = world
    # an object whose tail lies on an absent page: members on the present page still read
    mem.write(0x3FF8, struct.pack("<iI", 42, 9))
    t = target.value(0x3FF8, "struct thing")
    assert t.id.value_() == 42 and t.a.value_() == 9
    with pytest.raises(FaultError) as e:
        t.next.value_()
    assert e.value.address == 0x3FF8 + 24  # the member itself, on the absent page


def test_cstring_through_pointer_stops_at_absent_page():
    mem, target = make_target()
    mem.write(0x7FFC, b"abc\0")
    assert target.read_cstring(0x7FFC) == b"abc"
    mem.write(0x9FFC, b"abcd")  # no NUL before the absent page
    with pytest.raises(FaultError):
        target.read_cstring(0x9FFC)


def test_non_integer_value_is_an_error(world):
    _, target = world
    with pytest.raises(VnetdbgError):
        target.value(0x1000, "struct thing").value_()
