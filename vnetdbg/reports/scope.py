"""Which network stacks a network command reports on, and how each section is headed.

By default every stack, vnet0 first and then by owning jail; ``-j JID|NAME`` picks the
stack that jail uses (a non-VNET jail shares its parent's, and the heading says so);
``--vnet ADDR`` picks one stack by address.  A stack whose magic is wrong or freed is
skipped with a warning naming its address: its data cannot be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import VnetdbgError
from ..freebsd.jail import Prison, all_prisons, find_prison
from ..freebsd.vnet import Vnet, all_vnets, has_vimage


@dataclass
class Stack:
    """One network stack to report on."""

    vnet: Vnet | None        # None: a kernel without VIMAGE (one stack, plain globals)
    jail: Prison | None      # the jail that owns the stack
    note: str = ""           # e.g. 'used by jail 1 "web", which has no stack of its own'

    @property
    def address(self) -> int | None:
        return None if self.vnet is None else self.vnet.address

    def heading(self) -> str:
        where = f"vnet {self.address:#x}" if self.vnet is not None else "single stack (no VIMAGE)"
        if self.jail is not None:
            where += f' (jail {self.jail.jid} "{self.jail.name}")'
        elif self.vnet is not None:
            where += " (no owning jail)"
        return where + (f"; {self.note}" if self.note else "")

    def keys(self) -> dict:
        """The ``vnet``/``jail``/``jail-name`` keys every JSON object of this stack carries."""
        return {"vnet": None if self.vnet is None else f"{self.address:#x}",
                "jail": None if self.jail is None else self.jail.jid,
                "jail-name": None if self.jail is None else self.jail.name}


def _order(v: Vnet) -> tuple:
    return (v.owner is None, v.owner.jid if v.owner else 0, v.address)


def select_stacks(target, *, jail: str | None = None, vnet: str | None = None,
                  problems: list[str]) -> tuple[list[Stack], bool]:
    """The stacks to report and whether the user named exactly one (then no headings)."""
    prisons = all_prisons(target, problems)
    if not has_vimage(target):
        # one stack for the host and every jail
        if vnet is not None:
            raise VnetdbgError(f"--vnet {vnet}: the kernel was built without options VIMAGE "
                               "and has a single network stack")
        if jail is not None and find_prison(prisons, jail) is None:
            raise VnetdbgError(f'jail "{jail}" not found')
        # it is the host's (JSON: jail 0, as vnet0's rows are with VIMAGE)
        return [Stack(None, next((p for p in prisons if p.jid == 0), None))], True
    vnets = sorted(all_vnets(target, prisons, problems), key=_order)
    by_address = {v.address: v for v in vnets}
    if jail is not None:
        p = find_prison(prisons, jail)
        if p is None:
            raise VnetdbgError(f'jail "{jail}" not found')
        v = by_address.get(p.vnet)
        if v is None:
            raise VnetdbgError(f"jail {p.jid} uses vnet {p.vnet:#x}, which is not on vnet_head")
        if v.owner is p:
            return _usable([Stack(v, p)], problems), True
        note = f'used by jail {p.jid} "{p.name}", which has no stack of its own'
        # a jail without its own stack gets the heading, which says whose stack it is
        return _usable([Stack(v, v.owner, note)], problems), False
    if vnet is not None:
        try:
            address = int(vnet, 16)
        except ValueError:
            raise VnetdbgError(f"--vnet {vnet}: not an address") from None
        v = by_address.get(address)
        if v is None:
            raise VnetdbgError(f"no vnet at {address:#x} on vnet_head")
        return _usable([Stack(v, v.owner)], problems), True
    return _usable([Stack(v, v.owner) for v in vnets], problems), False


def _usable(stacks: list[Stack], problems: list[str]) -> list[Stack]:
    keep = []
    for s in stacks:
        if s.vnet is not None and not s.vnet.usable:
            what = "freed (0xdeadbeef)" if s.vnet.magic_state == "freed" else \
                f"bad magic {s.vnet.magic:#x}"
            problems.append(f"vnet {s.address:#x}: {what}; its stack is not shown")
            continue
        keep.append(s)
    return keep
