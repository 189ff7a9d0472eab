"""Jails: ``prison0``, the ``allprison`` list, and one ``Prison`` record per jail.

Version differences are decided by asking the kernel's types, never by release number:
- alive/dying: ``pr_state`` (13+) or ``pr_uref == 0`` (12);
- addresses: ``pr_addrs[]`` -> ``struct prison_ip`` (14+) or ``pr_ip4s``/``pr_ip4`` (12, 13);
- ``allow.*``, boolean and jailsys parameter names come from the kernel's own
  ``pr_flag_allow[]``, ``pr_flag_bool[]`` and ``pr_flag_jailsys[]`` arrays, so permissions
  added at run time (``allow.mount.<fs>``, module ``prison_add_allow``) are named too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import FaultError, VnetdbgError
from ..objects import Target, Value
from .queue import list_entries, read_each

# pr_flags bits (kernel-only #defines in sys/jail.h, not in DWARF)
PR_PERSIST = 0x00000001
PR_HOST = 0x00000002
PR_IP4_USER = 0x00000004
PR_IP6_USER = 0x00000008
PR_VNET = 0x00000010

# struct prison_ip address families (pr_family_t, 14+)
PR_INET, PR_INET6 = 0, 1

JAIL_SYS_DISABLE, JAIL_SYS_NEW, JAIL_SYS_INHERIT = 0, 1, 2
JAILSYS_NAMES = {JAIL_SYS_DISABLE: "disable", JAIL_SYS_NEW: "new", JAIL_SYS_INHERIT: "inherit"}


@dataclass
class Prison:
    """What vnetdbg knows about one jail, read once from a ``struct prison``.

    Strings are decoded from kernel bytes with ``surrogateescape`` so that paths which are
    not UTF-8 are printed back byte for byte.
    """

    address: int
    jid: int
    name: str
    path: str
    hostname: str
    domainname: str
    hostuuid: str
    hostid: int
    parent_address: int
    parent_jid: int | None          # None for prison0
    ref: int
    uref: int
    state: str                      # "alive" | "dying" | "invalid"
    has_state: bool                 # the kernel has pr_state (13+)
    cpusetid: int                   # -1 when pr_cpuset is NULL
    vnet: int
    root: int
    first_child: int
    sibling: int
    securelevel: int
    enforce_statfs: int
    devfs_rsnum: int
    childmax: int
    childcount: int
    osrelease: str
    osreldate: int
    flags: int
    allow: int
    ip4: list[str] | None           # None: no list (14+ NULL pr_addrs[PR_INET])
    ip6: list[str] | None
    ip_per_family_counters: bool    # 12/13: pr_ip4s/pr_ip6s always present
    bools: list[tuple[str, str, bool]] = field(default_factory=list)
    jailsys: list[tuple[str, str]] = field(default_factory=list)
    allows: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def alive(self) -> bool:
        return self.state == "alive"

    @property
    def owns_vnet(self) -> bool:
        return bool(self.flags & PR_VNET)


@dataclass
class FlagTables:
    """The kernel's parameter-name tables (``pr_flag_bool``, ``pr_flag_jailsys``,
    ``pr_flag_allow``): (name, noname, bit) and (name, disable bits, new bits)."""

    bools: list[tuple[str, str, int]]
    jailsys: list[tuple[str, int, int]]
    allows: list[tuple[str, str, int]]


def prison0(target: Target) -> Value:
    """The host's own prison (JID 0), a global ``struct prison``."""
    return target.variable("prison0", "struct prison")


def allprison(target: Target) -> Value:
    """The ``allprison`` TAILQ head (every jail except prison0, in JID order)."""
    return target.variable("allprison", "struct prisonlist")


def for_each_prison(target: Target, problems: list[str] | None = None) -> Iterator[Value]:
    """prison0, then every prison on ``allprison``.  Broken links end the walk with a
    message in ``problems`` (see ``queue.list_entries``)."""
    yield prison0(target)
    yield from list_entries(allprison(target), "pr_list", what="allprison", problems=problems)


def prison_children(pr: Value, problems: list[str] | None = None) -> Iterator[Value]:
    """The jail's direct children, in ``pr_children`` order (newest first)."""
    yield from list_entries(pr.member("pr_children"), "pr_sibling",
                            what=f"pr_children of prison {pr.address:#x}", problems=problems)


def _array_entries(target: Target, name: str, elem_type: str) -> list[Value]:
    """Entries of a static array of structs, counted from the kernel's ``<name>_size``
    variable (exported "for kvm"), else from the symbol size, else the DWARF length."""
    array = target.symbol_address(name)
    etype = target.type(elem_type)
    esize = etype.size or 1
    try:
        # `const size_t`: its width is the kernel's (4 bytes on i386), so take the type
        # from DWARF; a kernel without DWARF for it is read as unsigned long
        try:
            total = target.variable(f"{name}_size").value_()
        except VnetdbgError:
            total = target.variable(f"{name}_size", "unsigned long").value_()
    except (VnetdbgError, FaultError):
        sym = target.symbols.lookup(name)
        total = sym.size
        if not total:
            length = target.types.find_variable_type(name).strip_typedefs().length or 0
            total = length * esize
    count = min(total // esize, 4096)
    return [target.value(array + i * esize, etype) for i in range(count)]


def flag_tables(target: Target) -> FlagTables:
    """Read the kernel's jail parameter-name tables (once per command is enough)."""
    bools = [(e.member("name").string(), e.member("noname").string(), e.member("flag").value_())
             for e in _array_entries(target, "pr_flag_bool", "struct bool_flags")]
    jailsys = [(e.member("name").string(), e.member("disable").value_(), e.member("new").value_())
               for e in _array_entries(target, "pr_flag_jailsys", "struct jailsys_flags")]
    allows = []
    for e in _array_entries(target, "pr_flag_allow", "struct bool_flags"):
        bit = e.member("flag").value_()
        if bit == 0:  # the kernel's own loop stops at the first unused slot
            break
        allows.append((e.member("name").string(), e.member("noname").string(), bit))
    return FlagTables(bools, jailsys, allows)


def jailsys_value(flags: int, disable: int, new: int) -> str:
    """A jailsys parameter's value exactly as jail_get(2) computes it.  For ip4/ip6 the
    kernel's disable and new bits are the same, so a restricted jail reads "disable"."""
    f = flags & (disable | new)
    if f != 0 and f == disable:
        return JAILSYS_NAMES[JAIL_SYS_DISABLE]
    if f == new:
        return JAILSYS_NAMES[JAIL_SYS_NEW]
    return JAILSYS_NAMES[JAIL_SYS_INHERIT]


def prison_state(pr: Value) -> str:
    """"alive", "dying" or "invalid": ``pr_state`` where the kernel has it (13+),
    else 12's rule (no user references left = dying)."""
    if pr.has_member("pr_state"):
        name = pr.member("pr_state").enum_name() or ""
        return {"PRISON_STATE_ALIVE": "alive", "PRISON_STATE_DYING": "dying"}.get(
            name, "invalid")
    if pr.member("pr_ref").value_() <= 0:
        return "invalid"
    return "alive" if pr.member("pr_uref").value_() > 0 else "dying"


def _format_addresses(raw: bytes, family: int) -> list[str]:
    width = 4 if family == PR_INET else 16
    make = ipaddress.IPv4Address if family == PR_INET else ipaddress.IPv6Address
    return [str(make(raw[i:i + width])) for i in range(0, len(raw) - width + 1, width)]


#: more addresses than any kernel allows per family (jail_max_af_ips defaults to 255)
MAX_ADDRESSES = 65536


def prison_addresses(pr: Value, family: int) -> list[str] | None:
    """The jail's IPv4 (PR_INET) or IPv6 (PR_INET6) addresses in kernel order (the
    primary first).  None when the kernel keeps no list for that family (14+)."""
    target = pr.target
    if pr.has_member("pr_addrs"):
        pip = pr.member("pr_addrs")[family]
        if not pip:
            return None
        ip = target.value(pip.value_(), "struct prison_ip")
        count = min(ip.member("ips").value_(), MAX_ADDRESSES)
        width = 4 if family == PR_INET else 16
        start = ip.address + ip.type.find_member("pr_ip")[0] // 8
        return _format_addresses(target.read(start, count * width), family)
    count_name, list_name = ("pr_ip4s", "pr_ip4") if family == PR_INET else ("pr_ip6s", "pr_ip6")
    if not pr.has_member(count_name):
        return None  # kernel built without INET/INET6
    count = min(max(pr.member(count_name).value_(), 0), MAX_ADDRESSES)
    pointer = pr.member(list_name).value_()
    if count == 0 or pointer == 0:
        return []
    width = 4 if family == PR_INET else 16
    return _format_addresses(target.read(pointer, count * width), family)


def prison_info(pr: Value, tables: FlagTables | None = None) -> Prison:
    """Read one ``struct prison`` into a ``Prison`` record."""
    target = pr.target
    tables = tables or flag_tables(target)

    def num(name: str) -> int:
        return pr.member(name).value_()

    parent = num("pr_parent")
    parent_jid = None
    if parent:
        parent_jid = target.value(parent, pr.type).member("pr_id").value_()
    cpuset = num("pr_cpuset")
    cpusetid = target.value(cpuset, "struct cpuset").member("cs_id").value_() if cpuset else -1
    flags = num("pr_flags")
    allow = num("pr_allow")
    return Prison(
        address=pr.address,
        jid=num("pr_id"),
        name=pr.member("pr_name").string(),
        path=pr.member("pr_path").string(),
        hostname=pr.member("pr_hostname").string(),
        domainname=pr.member("pr_domainname").string(),
        hostuuid=pr.member("pr_hostuuid").string(),
        hostid=num("pr_hostid"),
        parent_address=parent,
        parent_jid=parent_jid,
        ref=num("pr_ref"),
        uref=num("pr_uref"),
        state=prison_state(pr),
        has_state=pr.has_member("pr_state"),
        cpusetid=cpusetid,
        vnet=num("pr_vnet") if pr.has_member("pr_vnet") else 0,
        root=num("pr_root"),
        first_child=num("pr_children.lh_first"),
        sibling=num("pr_sibling.le_next"),
        securelevel=num("pr_securelevel"),
        enforce_statfs=num("pr_enforce_statfs"),
        devfs_rsnum=num("pr_devfs_rsnum"),
        childmax=num("pr_childmax"),
        childcount=num("pr_childcount"),
        osrelease=pr.member("pr_osrelease").string(),
        osreldate=num("pr_osreldate"),
        flags=flags,
        allow=allow,
        ip4=prison_addresses(pr, PR_INET),
        ip6=prison_addresses(pr, PR_INET6),
        ip_per_family_counters=not pr.has_member("pr_addrs"),
        bools=[(n, no, bool(flags & bit)) for n, no, bit in tables.bools],
        jailsys=[(n, jailsys_value(flags, d, nw)) for n, d, nw in tables.jailsys],
        allows=[(n, no, bool(allow & bit)) for n, no, bit in tables.allows],
    )


def all_prisons(target: Target, problems: list[str] | None = None) -> list[Prison]:
    """Records for prison0 and every jail.  A jail whose own fields cannot be read is
    skipped with a message in ``problems`` rather than ending the report."""
    tables = flag_tables(target)
    return read_each(for_each_prison(target, problems), lambda pr: prison_info(pr, tables),
                     "prison", problems)


def find_prison(prisons: list[Prison], spec: str) -> Prison | None:
    """The jail named by ``spec`` the way jls -j and DDB take it: a number is a JID, else
    a name; alive jails win over dying ones with the same name."""
    if spec.lstrip("-").isdigit():
        jid = int(spec)
        return next((p for p in prisons if p.jid == jid), None)
    matches = [p for p in prisons if p.name == spec]
    matches.sort(key=lambda p: not p.alive)
    return matches[0] if matches else None
