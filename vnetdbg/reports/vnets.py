"""``vnetdbg vnets`` (one row per network stack) and DDB's vnet commands.

DDB has two generations of the command, chosen here by the kernel's ``struct vnet``
layout: kernels with ``vnet_shutdown`` have ``show all vnets`` / ``show vnet ADDR`` with
``%#08x`` numbers and the ``vnet_state``/``vnet_shutdown`` lines; older ones have
``show vnets`` with ``0x%x`` and neither line.  (An intermediate tree printed
``vnet_state`` without ``vnet_shutdown``; it cannot be told apart by layout and is
rendered as the newer form.)
"""

from __future__ import annotations

from ..freebsd.vnet import Vnet
from .kprintf import kernel_hex, kernel_p


def _jail(v: Vnet) -> dict | None:
    return None if v.owner is None else {"jid": v.owner.jid, "name": v.owner.name}


def to_json(vnets: list[Vnet]) -> dict:
    return {"vnet-information": {"vnet": [{
        "address": f"{v.address:#x}",
        "magic": f"{v.magic:#x}",
        "magic-ok": v.magic_state == "ok",
        "magic-state": v.magic_state,
        "ifcnt": v.ifcnt,
        "sockcnt": v.sockcnt,
        "state": v.state_name or v.state,
        "shutdown": v.shutdown,
        "data-base": f"{v.data_base:#x}",
        "jail": _jail(v),
    } for v in vnets]}}


HEADER = ("ADDRESS", "JID", "JAIL", "MAGIC", "IFCNT", "SOCKCNT", "STATE", "SHUTDOWN",
          "DATA BASE")


def table_lines(vnets: list[Vnet]) -> list[str]:
    """A column-aligned table, one row per stack (vnet_head order: newest first)."""
    rows = [HEADER]
    for v in vnets:
        rows.append((
            f"{v.address:#x}",
            "-" if v.owner is None else str(v.owner.jid),
            "-" if v.owner is None else v.owner.name,
            v.magic_state if v.magic_state == "ok" else f"{v.magic_state}({v.magic:#x})",
            str(v.ifcnt), str(v.sockcnt),
            v.state_name or ("-" if v.state is None else f"{v.state:#x}"),
            "-" if v.shutdown is None else ("yes" if v.shutdown else "no"),
            f"{v.data_base:#x}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    numeric = {1, 4, 5}
    return ["  ".join(c.rjust(w) if i in numeric else c.ljust(w)
                      for i, (c, w) in enumerate(zip(r, widths))).rstrip() for r in rows]


def ddb_lines(v: Vnet, expected_magic: int, *, new_style: bool) -> list[str]:
    """One vnet as DDB's db_vnet_print (new) or show vnets (old) prints it."""
    status = "ok" if v.magic == expected_magic else "mismatch"
    if new_style:
        magic = (f"{kernel_hex(v.magic, 8, alt=True, zero=True)} ({status}, orig "
                 f"{kernel_hex(expected_magic, 8, alt=True, zero=True)})")
        base = kernel_hex(v.data_base, alt=True)
    else:
        magic = f"0x{v.magic:x} ({status}, orig 0x{expected_magic:x})"
        base = f"0x{v.data_base:x}"
    out = [
        f"vnet            = {kernel_p(v.address)}",
        f" vnet_magic_n   = {magic}",
        f" vnet_ifcnt     = {v.ifcnt}",
        f" vnet_sockcnt   = {v.sockcnt}",
        f" vnet_data_mem  = {kernel_p(v.data_mem)}",
        f" vnet_data_base = {base}",
    ]
    if new_style:
        out.append(f" vnet_state     = {kernel_hex(v.state or 0, 8, alt=True, zero=True)}")
        if v.shutdown is not None:
            out.append(f" vnet_shutdown  = {kernel_hex(int(v.shutdown), 3, alt=True, zero=True)}")
    out.append("")
    return out
