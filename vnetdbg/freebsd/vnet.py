"""VNET: the list of virtual network stacks, their owners, and per-stack variables.

``VNET_DEFINE(t, name)`` makes a symbol ``vnet_entry_<name>`` in the ``set_vnet`` linker
set; that copy holds only initial values.  Each stack (vnet0 included) has its own
malloc'd copy, so the live variable of stack V is at ``V->vnet_data_base +
&vnet_entry_<name>``.  Kernels built without ``options VIMAGE`` have one stack and the
variable is the plain global ``<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ..errors import VnetdbgError
from ..objects import Target, Value
from .jail import Prison
from .queue import list_entries, read_each

VNET_MAGIC_OLD = 0x3E0D8F29   # struct vnet without vnet_shutdown (12-era)
VNET_MAGIC_NEW = 0x5E4A6F28   # struct vnet with vnet_shutdown
VNET_MAGIC_FREED = 0xDEADBEEF  # written by vnet_destroy() before the free
VNET_SYMPREFIX = "vnet_entry_"


def has_vimage(target: Target) -> bool:
    """Was the kernel built with ``options VIMAGE``?  (FEATURE(vimage) leaves this
    sysctl OID; FreeBSD's own gdb scripts test the same symbol.)"""
    return target.has_symbol("sysctl___kern_features_vimage")


def expected_magic(target: Target) -> int:
    """The VNET_MAGIC_N this kernel writes, told apart by the structure's layout."""
    return VNET_MAGIC_NEW if target.type("struct vnet").has_member("vnet_shutdown") \
        else VNET_MAGIC_OLD


def magic_state(target: Target, magic: int) -> str:
    """"ok", "freed" or "mismatch"."""
    if magic == expected_magic(target):
        return "ok"
    return "freed" if magic == VNET_MAGIC_FREED else "mismatch"


def vnet0(target: Target) -> Value:
    """The host's stack (``vnet0`` is a pointer variable)."""
    return target.variable("vnet0", "struct vnet *").deref()


def for_each_vnet(target: Target, problems: list[str] | None = None) -> Iterator[Value]:
    """Every ``struct vnet`` on ``vnet_head`` (newest first, as vnet_alloc inserts)."""
    head = target.variable("vnet_head")
    yield from list_entries(head, "vnet_le", what="vnet_head", problems=problems)


def vnet_var_address(target: Target, name: str, vnet: Value | int | None) -> int:
    """Address of VNET variable ``name`` (without the ``V_``/``vnet_entry_`` prefix)
    in stack ``vnet`` (a struct vnet value or address; ignored without VIMAGE)."""
    name = name[2:] if name.startswith("V_") else name
    if not has_vimage(target):
        return target.symbol_address(name)
    sym = VNET_SYMPREFIX + name
    address = target.symbol_address(sym)
    start = target.symbol_address("__start_set_vnet")
    stop = target.symbol_address("__stop_set_vnet")
    if not start <= address < stop:
        raise VnetdbgError(f"{sym} at {address:#x} is outside set_vnet "
                           f"[{start:#x}, {stop:#x}); module VNET variables are not supported")
    if vnet is None:
        raise VnetdbgError(f"VNET variable {name} needs a vnet")
    v = vnet if isinstance(vnet, Value) else target.value(vnet, "struct vnet")
    mask = (1 << (8 * v.target.pointer_size)) - 1
    return (v.member("vnet_data_base").value_() + address) & mask


def vnet_var(target: Target, name: str, vnet: Value | int | None) -> Value:
    """The live VNET variable ``name`` of stack ``vnet``, typed from DWARF."""
    name = name[2:] if name.startswith("V_") else name
    typed = VNET_SYMPREFIX + name if has_vimage(target) else name
    try:
        vtype = target.types.find_variable_type(typed)
    except LookupError:
        raise VnetdbgError(f"kernel debug info has no variable {typed}") from None
    return target.value(vnet_var_address(target, name, vnet), vtype)


@dataclass
class Vnet:
    """One network stack as DDB and ``vnetdbg vnets`` describe it."""

    address: int
    magic: int
    magic_state: str            # ok | mismatch | freed
    ifcnt: int
    sockcnt: int
    state: int | None           # SI_SUB_* of the sysinit running (None if no member)
    state_name: str | None      # from DWARF's enum sysinit_sub_id
    shutdown: bool | None       # None when the kernel has no vnet_shutdown
    data_mem: int
    data_base: int
    owner: Prison | None = None  # the jail that created this stack (prison0 for vnet0)

    @property
    def usable(self) -> bool:
        return self.magic_state == "ok"


def vnet_info(v: Value, owner: Prison | None = None) -> Vnet:
    target = v.target
    magic = v.member("vnet_magic_n").value_()
    state = v.member("vnet_state").value_() if v.has_member("vnet_state") else None
    state_name = None
    if state is not None and target.has_type("enum sysinit_sub_id"):
        state_name = target.type("enum sysinit_sub_id").enumerator_name(state)
    return Vnet(
        address=v.address, magic=magic, magic_state=magic_state(target, magic),
        ifcnt=v.member("vnet_ifcnt").value_(), sockcnt=v.member("vnet_sockcnt").value_(),
        state=state, state_name=state_name,
        shutdown=bool(v.member("vnet_shutdown").value_()) if v.has_member("vnet_shutdown")
        else None,
        data_mem=v.member("vnet_data_mem").value_(),
        data_base=v.member("vnet_data_base").value_(), owner=owner)


def owners(prisons: list[Prison]) -> dict[int, Prison]:
    """vnet address -> the prison that owns it (``PR_VNET`` set and ``pr_vnet`` = it);
    prison0 owns vnet0.  Non-VNET jails share their parent's stack and own none."""
    out: dict[int, Prison] = {}
    for p in prisons:
        if p.vnet and (p.owns_vnet or p.parent_jid is None) and p.vnet not in out:
            out[p.vnet] = p
    return out


def all_vnets(target: Target, prisons: list[Prison],
              problems: list[str] | None = None) -> list[Vnet]:
    """Every stack on ``vnet_head`` with its owner; an unreadable one is reported in
    ``problems`` and left out."""
    owner_of = owners(prisons)
    return read_each(for_each_vnet(target, problems),
                     lambda v: vnet_info(v, owner_of.get(v.address)), "vnet", problems)
