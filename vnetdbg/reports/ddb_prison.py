"""Render a jail record the way DDB's ``show prison`` prints it.

Pure functions (no kernel access).  Source: ``sys/kern/kern_jail.c``
``db_show_prison()``; the three release variants are described in
``docs/formats/jls-and-show-prison.md``:

* 12.x and 13.0: no ``state`` line; ``ip4s``/``ip6s`` always printed.
* 13.1+ (13-stable with ``pr_state``): ``state`` line; counters always.
* 14.0+ (``pr_addrs[]``): ``state`` line; ``ip4s``/``ip6s`` block only when
  the family's address list pointer is non-NULL.

The record's ``has_state`` selects the ``state`` line and
``ip_per_family_counters`` selects "always print the counters".
"""

from __future__ import annotations

from typing import Any, Iterable

__all__ = ["kernel_p", "show_prison_lines", "show_all_prisons_lines"]

from .kprintf import kernel_p

_ENC = "utf-8"
_ERR = "surrogateescape"


def _d(v: int) -> str:
    """``%d`` of a C int (wraps values of unsigned fields such as 13+'s
    ``volatile u_int pr_ref``)."""
    v &= 0xFFFFFFFF
    return "%d" % (v - (1 << 32) if v & 0x80000000 else v)


def _lu(v: int) -> str:
    return "%d" % (v & 0xFFFFFFFFFFFFFFFF)


def _field(label: str) -> str:
    # Every field line is " %-16s= " in effect: one space, the label padded
    # to 16 columns, then "= ".
    return " " + label.ljust(16) + "= "


def show_prison_lines(prison: Any, *, vimage: bool = True, inet: bool = True,
                      inet6: bool = True) -> list[str]:
    """Lines printed by ``db_show_prison(pr)`` (no trailing newlines).

    ``vimage``: kernel built with ``options VIMAGE`` (adds the ``vnet``
    line).  ``inet``/``inet6``: kernel built with INET / INET6.
    """
    pr = prison
    buf: list[str] = []
    w = buf.append
    w("prison %s:\n" % kernel_p(pr.address))
    w(_field("jid") + _d(pr.jid) + "\n")
    w(_field("name") + pr.name + "\n")
    w(_field("parent") + kernel_p(pr.parent_address) + "\n")
    w(_field("ref") + _d(pr.ref) + "\n")
    w(_field("uref") + _d(pr.uref) + "\n")
    if pr.has_state:
        state = pr.state if pr.state in ("alive", "dying") else "invalid"
        w(_field("state") + state + "\n")
    w(_field("path") + pr.path + "\n")
    w(_field("cpuset") + _d(pr.cpusetid) + "\n")
    if vimage:
        w(_field("vnet") + kernel_p(pr.vnet) + "\n")
    w(_field("root") + kernel_p(pr.root) + "\n")
    w(_field("securelevel") + _d(pr.securelevel) + "\n")
    w(_field("devfs_rsnum") + _d(pr.devfs_rsnum) + "\n")
    w(_field("children.max") + _d(pr.childmax) + "\n")
    w(_field("children.cur") + _d(pr.childcount) + "\n")
    w(_field("child") + kernel_p(pr.first_child) + "\n")
    w(_field("sibling") + kernel_p(pr.sibling) + "\n")
    # flags: no newline after the bool names; each jailsys entry is
    # " %-16s= %s\n", so the first one (host) continues the flags line.
    w(_field("flags") + "0x%x" % (pr.flags & 0xFFFFFFFF))
    for name, _noname, isset in pr.bools:
        if isset:
            w(" " + name)
    for name, value in pr.jailsys:
        w(" %s= %s\n" % (name.ljust(16), value))
    w(_field("allow") + "0x%x" % (pr.allow & 0xFFFFFFFF))
    for name, _noname, isset in pr.allows:
        if isset:
            w(" " + name)
    w("\n")
    w(_field("enforce_statfs") + _d(pr.enforce_statfs) + "\n")
    w(_field("host.hostname") + pr.hostname + "\n")
    w(_field("host.domainname") + pr.domainname + "\n")
    w(_field("host.hostuuid") + pr.hostuuid + "\n")
    w(_field("host.hostid") + _lu(pr.hostid) + "\n")
    for enabled, fam, addrs in ((inet, "ip4", pr.ip4), (inet6, "ip6", pr.ip6)):
        if not enabled:
            continue
        if pr.ip_per_family_counters:
            addrs = list(addrs or [])
        elif addrs is None:
            continue
        w(_field(fam + "s") + "%d" % len(addrs) + "\n")
        for i, a in enumerate(addrs):
            lead = (fam + ".addr").ljust(16) + "=" if i == 0 else " " * 17
            w(" %s %s\n" % (lead, a))
    text = "".join(buf)
    if text.endswith("\n"):
        text = text[:-1]
    return text.split("\n")


def show_all_prisons_lines(prison0: Any, prisons: Iterable[Any], **kw: Any) -> list[str]:
    """``show prison`` without an argument: prison0 first, then every prison
    on ``allprison`` in list order (``prisons`` must not contain prison0)."""
    out = show_prison_lines(prison0, **kw)
    for pr in prisons:
        out.extend(show_prison_lines(pr, **kw))
    return out
