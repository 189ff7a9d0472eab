"""queue(3) walkers: every macro family, bounds, cycles and broken links."""

import struct

import pytest

from vnetdbg.debuginfo.types import Kind, Member, Type
from vnetdbg.freebsd.queue import ListError, list_entries

from .fakes import INT, make_target, ptr

# struct node { int id; TAILQ_ENTRY/LIST_ENTRY... link; }  id @0, link.next @8, link.prev @16
NODE = Type(Kind.STRUCT, "node", 24)


def entry(next_name, prev_name):
    members = [Member(next_name, 0, lambda: ptr(NODE))]
    if prev_name:
        members.append(Member(prev_name, 64, lambda: ptr(ptr(NODE))))
    return Type(Kind.STRUCT, None, 16, members=members)


def head(first, last):
    members = [Member(first, 0, lambda: ptr(NODE))]
    if last:
        members.append(Member(last, 64, lambda: ptr(ptr(NODE))))
    return Type(Kind.STRUCT, None, 16, members=members)


FAMILIES = {
    "TAILQ": (("tqh_first", "tqh_last"), ("tqe_next", "tqe_prev")),
    "LIST": (("lh_first", None), ("le_next", "le_prev")),
    "STAILQ": (("stqh_first", "stqh_last"), ("stqe_next", None)),
    "CK_LIST": (("clh_first", None), ("cle_next", "cle_prev")),
    "CK_STAILQ": (("cstqh_first", "cstqh_last"), ("cstqe_next", None)),
}


def build(family, ids, *, links=None, tail=None):
    (first, last), (nxt, prev) = FAMILIES[family]
    NODE._members = [Member("id", 0, INT), Member("link", 64, entry(nxt, prev))]
    NODE._member_index = None
    H = head(first, last)
    mem, target = make_target({"struct node": NODE, "head": H})
    addrs = [0x10000 + 0x100 * i for i in range(len(ids))]
    links = links if links is not None else addrs[1:] + [0]
    for a, i, n in zip(addrs, ids, links):
        mem.write(a, struct.pack("<iIQQ", i, 0, n, 0))
    tail_addr = tail if tail is not None else (addrs[-1] + 8 if addrs else 0x100)
    mem.write(0x100, struct.pack("<QQ", addrs[0] if addrs else 0, tail_addr))
    return target.value(0x100, H), addrs


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_walks_in_order(family):
    h, _ = build(family, [1, 2, 3])
    assert [e.id.value_() for e in list_entries(h, "link")] == [1, 2, 3]


def test_empty_list():
    h, _ = build("TAILQ", [])
    assert list(list_entries(h, "link")) == []


def test_cycle_is_reported_with_address():
    ids = [1, 2, 3]
    h, addrs = build("TAILQ", ids, links=[0x10100, 0x10200, 0x10000])
    problems = []
    got = [e.id.value_() for e in list_entries(h, "link", what="allprison", problems=problems)]
    assert got == [1, 2, 3]
    assert problems and "cycle" in problems[0] and "0x10000" in problems[0]
    with pytest.raises(ListError):
        list(list_entries(h, "link"))


def test_link_into_absent_page():
    h, _ = build("LIST", [1, 2], links=[0xDEAD000, 0])
    problems = []
    got = [e.id.value_() for e in list_entries(h, "link", what="vnet_head", problems=problems)]
    assert got == [1]
    assert "0xdead000" in problems[0]


def test_null_link_mid_tailq_is_caught_by_tail_pointer():
    h, addrs = build("TAILQ", [1, 2, 3], links=[0x10100, 0, 0], tail=0x10208)
    problems = []
    got = [e.id.value_() for e in list_entries(h, "link", what="allprison", problems=problems)]
    assert got == [1, 2]
    assert "ends early" in problems[0] and "0x10208" in problems[0]


def test_bound():
    h, _ = build("STAILQ", list(range(10)))
    problems = []
    assert len(list(list_entries(h, "link", problems=problems, limit=4))) == 4
    assert "more than 4" in problems[0]
