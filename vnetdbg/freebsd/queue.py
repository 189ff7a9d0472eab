"""Walkers for queue(3) and ck_queue lists: LIST, TAILQ, STAILQ, CK_LIST, CK_STAILQ.

The macros differ only in member names, so one walker serves all five: it finds the
head's first-pointer and the entry's next-pointer by trying each macro's names.

A crash dump is exactly where lists are broken, so every walk is bounded, detects
cycles, and stops at a link it cannot follow.  What went wrong is reported through the
``problems`` list the caller passes in (a partial report with a warning beats no report);
without one, the walker raises ``ListError``.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, TypeVar

from ..errors import FaultError, VnetdbgError
from ..objects import Value

#: (head first-pointer, entry next-pointer) names per macro family
_NAMES = (
    ("tqh_first", "tqe_next"),     # TAILQ
    ("lh_first", "le_next"),       # LIST
    ("stqh_first", "stqe_next"),   # STAILQ
    ("clh_first", "cle_next"),     # CK_LIST
    ("cstqh_first", "cstqe_next"),  # CK_STAILQ
)

#: tail-pointer names checked after a TAILQ/STAILQ walk ends (catches lists cut short)
_TAILS = {"tqh_first": ("tqh_last", "tqe_next"), "stqh_first": ("stqh_last", "stqe_next"),
          "cstqh_first": ("cstqh_last", "cstqe_next")}

T = TypeVar("T")

#: default bound on elements; a real kernel list longer than this is a corrupted list
DEFAULT_LIMIT = 10_000_000


class ListError(VnetdbgError):
    """A list could not be walked to its end (cycle, bad link, or over the bound)."""


def _head_names(head: Value) -> tuple[str, str]:
    for first, nxt in _NAMES:
        if head.has_member(first):
            return first, nxt
    raise VnetdbgError(f"{head.type} is not a queue(3) head")


def list_entries(head: Value, field: str, *, what: str = "list",
                 problems: list[str] | None = None,
                 limit: int = DEFAULT_LIMIT) -> Iterator[Value]:
    """Yield each element linked from ``head`` through entry member ``field``.

    ``head`` is a LIST/TAILQ/STAILQ/CK_LIST/CK_STAILQ head object; elements are typed
    from the head's first-pointer.  ``what`` names the list in problem messages
    ("allprison").
    """
    first_name, next_name = _head_names(head)
    elem_type = head.member(first_name).type.strip_typedefs().target
    next_offset = elem_type.find_member(f"{field}.{next_name}")[0] // 8
    target = head.target
    seen: set[int] = set()
    last_link = head.address + head.type.find_member(first_name)[0] // 8
    try:
        address = head.member(first_name).value_()
    except FaultError as e:
        _problem(problems, f"{what}: cannot read list head at {e.address:#x}")
        return
    while address:
        if address in seen:
            _problem(problems, f"{what}: cycle: element at {address:#x} appears twice; "
                               f"stopped after {len(seen)} elements")
            return
        if len(seen) >= limit:
            _problem(problems, f"{what}: more than {limit} elements; stopped")
            return
        seen.add(address)
        element = target.value(address, elem_type)
        try:
            element._bytes()
        except FaultError as e:
            _problem(problems, f"{what}: element at {address:#x} cannot be read "
                               f"({e.reason} at {e.address:#x}); list cut short")
            return
        yield element
        last_link = address + next_offset
        try:
            address = element.member(f"{field}.{next_name}").value_()
        except FaultError as e:
            _problem(problems, f"{what}: link at {e.address:#x} cannot be read")
            return
    tail = _TAILS.get(first_name)
    if tail and head.has_member(tail[0]):
        try:
            recorded = head.member(tail[0]).value_()
        except FaultError:
            return
        if recorded != last_link:
            _problem(problems, f"{what}: list ends early: last link read at {last_link:#x}"
                               f" but the head's {tail[0]} is {recorded:#x}")


def read_each(elements: Iterable[Value], read: Callable[[Value], T], what: str,
              problems: list[str] | None) -> list[T]:
    """``read(e)`` for every element of a walk.  An element whose own fields cannot be
    read is left out with a message naming its address (or, without ``problems``,
    raises), so one damaged object does not cost the whole report."""
    out = []
    for element in elements:
        try:
            out.append(read(element))
        except FaultError as e:
            message = f"{what} at {element.address:#x}: {e}"
            if problems is None:
                raise VnetdbgError(message) from None
            problems.append(message)
    return out


def _problem(problems: list[str] | None, message: str) -> None:
    if problems is None:
        raise ListError(message)
    problems.append(message)
