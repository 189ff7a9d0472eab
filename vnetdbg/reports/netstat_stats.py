"""``netstat -s [-s] [-p tcp|udp|ip|icmp|ip6] [-4|-6]``: protocol counters per stack.

The counters are ``VNET_PCPUSTAT_DEFINE`` statistics (``V_tcpstat``, ``V_udpstat``,
``V_ipstat``, ``V_icmpstat``, ``V_ip6stat``): arrays of individually allocated
``counter_u64_t``, one per 8-byte slot of the stats structure.  Field *f* of ``struct
tcpstat`` (names, order and offsets from DWARF) is the per-CPU sum of element
``offsetof(struct tcpstat, f) / 8``; an array field (``icps_outhist[]``) is one counter
per element.

The text is netstat's own (``usr.bin/netstat/inet.c`` ``tcp_stats``/``udp_stats``/
``ip_stats``/``icmp_stats``, ``inet6.c`` ``ip6_stats``, libxo strings reduced to their
text form), kept as data in ``data/netstat_stats.json``: one entry per ``p()``/
``p1a()``/``p2()``... call, in netstat's order, one table per release (12, 13, 14;
``tcp`` differs between them, the others did not change).  Semantics kept from netstat:

- zero counters are hidden unless ``-z`` is given (the behaviour the issue asked for):
  ``vnetdbg netstat -s`` prints what FreeBSD's ``netstat -ss`` prints (lines whose
  counters are all zero left out; the ip6 "Mbuf statistics" lines are unconditional, as
  in netstat), and ``vnetdbg netstat -s -z`` prints every line, as plain ``netstat -s``
  does.  FreeBSD's ``-z`` resets live counters; a core has nothing to reset, so vnetdbg
  gives the flag this meaning;
- protocols in netstat's order (tcp, udp, ip, icmp, then ip6); ``-4``/``-6`` select the
  ``protox``/``ip6protox`` half; igmp, pim, carp, arp, icmp6, rip6 are not printed yet;
- after the tcp counters, "TCP connection count by state" from ``V_tcps_states``.

Which release's table: the dump's ``osreldate`` (the kernel global) picks the newest
table whose ``min_osreldate`` it reaches (15 and later get the 14 table).  Only when
``osreldate`` cannot be read does the DWARF decide: the newest release whose marker
member (``struct tcpstat`` ``tcps_ecn_rcvce`` for 14, ``tcps_tunneled_pkts`` for 13)
exists.

Fields of the DWARF structure that the release's netstat does not print (padding,
``udps_fastout``, 14's ``tcps_tlpresends``...) are left out of the text, as netstat
leaves them out; table lines whose fields the kernel lacks are skipped (netstat built
for that kernel would not have them).  Every DWARF field is in the JSON output.

JSON: one object per protocol, ``{"protocol": "tcp", <DWARF field>: value, ...}`` (array
fields as lists), plus ``tcp-states`` ``{state name: count}`` for TCP.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Iterator

from ..debuginfo.types import Kind
from ..errors import FaultError, VnetdbgError
from ..freebsd.counter import counter_pointers_fetch, cpu_offsets
from ..freebsd.vnet import has_vimage, vnet_var_address

JSON_PATH = ("statistics", "protocol-statistics")

_DATA = os.path.join(os.path.dirname(__file__), "data", "netstat_stats.json")
_TABLE = None

TCPSTATES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT",
             "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT")


def table() -> dict:
    global _TABLE
    if _TABLE is None:
        with open(_DATA, encoding="utf-8") as f:
            _TABLE = json.load(f)
    return _TABLE


def _release_order(name: str):
    return int(name) if name.isdigit() else name


def release_of(target) -> str:
    """The release whose netstat text to print (see the module docstring)."""
    rels = table()["releases"]
    try:
        osrel = int(target.variable("osreldate").value_())
    except Exception:  # no symbol or unreadable: fall back on the DWARF
        osrel = None
    if osrel is not None:
        best = rels[0]["release"]
        for r in rels:
            if osrel >= r["min_osreldate"]:
                best = r["release"]
        return best
    best = rels[0]["release"]
    for r in rels:
        marker = r.get("dwarf_marker")
        try:
            if marker and target.has_type(marker[0]) and any(
                    m.name == marker[1]
                    for m in target.type(marker[0]).strip_typedefs().members):
                best = r["release"]
        except Exception:  # pragma: no cover - DWARF without that struct
            continue
    return best


def lines_of(spec: dict, release: str | None = None) -> list:
    """The protocol's table for ``release`` (None: the newest): its own entry, else the
    nearest older release's."""
    by = spec["lines"]
    keys = sorted(by, key=_release_order)
    if release is None:
        return by[keys[-1]]
    older = [k for k in keys if _release_order(k) <= _release_order(release)]
    return by[older[-1] if older else keys[0]]


def _c(fmt: str) -> str:
    """netstat's printf format as Python %-format (%ju/%lu -> %d)."""
    return fmt.replace("%ju", "%d").replace("%lu", "%d")


def plural(n: int) -> str:
    return "" if n == 1 else "s"


def plurales(n: int) -> str:
    return "" if n == 1 else "es"


def pluralies(n: int) -> str:
    return "y" if n == 1 else "ies"


# -- reading -----------------------------------------------------------------------------

def _var_address(target, stack, var: str) -> int | None:
    name = ("vnet_entry_" if has_vimage(target) else "") + var
    if not target.has_symbol(name):
        return None
    return vnet_var_address(target, var, stack.address)


def read_counters(target, stack, struct_name: str, var: str, cpus,
                  problems: list[str]) -> dict | None:
    """DWARF field name -> summed value (list for arrays), or None if absent."""
    if not target.has_type(struct_name):
        return None
    address = _var_address(target, stack, var)
    if address is None:
        return None
    t = target.type(struct_name)
    slots = (t.size or 0) // 8
    try:
        sums = counter_pointers_fetch(target, address, slots, cpus)
    except FaultError as e:
        problems.append(f"V_{var} at {address:#x}: counters unreadable "
                        f"({e.reason} at {e.address:#x})")
        return None
    out: dict = {}
    for m in t.strip_typedefs().members:
        if m.name is None:
            continue
        first = m.bit_offset // 64
        mt = m.type.strip_typedefs()
        if mt.kind is Kind.ARRAY:
            n = (m.type.size or 0) // 8
            out[m.name] = sums[first:first + n]
        else:
            out[m.name] = sums[first] if first < len(sums) else 0
    return out


# -- formatting --------------------------------------------------------------------------

def _nonzero_under(arr, heading: str, out: list[str]) -> Iterator[tuple[int, int]]:
    """(index, count) for each non-zero count of ``arr`` (None: none), appending
    ``heading`` to ``out`` just before the first one."""
    header = False
    for i, n in enumerate(arr or []):
        if not n:
            continue
        if not header:
            out.append(heading)
            header = True
        yield i, n


def format_lines(name: str, spec: dict, values: dict, sflag: int, names: dict,
                 states: list[int] | None, ifnames, release: str | None = None) -> list[str]:
    """netstat's text for one protocol (a list of complete lines), as ``release``'s
    netstat printed it (None: the newest table)."""
    out: list[str] = [f"{name}:\n"]
    hide = sflag > 1

    def v(f):
        return values.get(f, 0)

    for entry in lines_of(spec, release):
        kind, fields, fmt = entry[0], entry[1], entry[2]
        if any(f not in values for f in fields):
            continue
        if kind in ("p", "p1a", "p3", "pes"):
            n = v(fields[0])
            if n or not hide:
                if kind == "p1a":
                    out.append(_c(fmt) % n)
                else:
                    pl = {"p": plural, "p3": pluralies, "pes": plurales}[kind](n)
                    out.append(_c(fmt) % (n, pl))
        elif kind in ("p2", "p2a"):
            a, b = v(fields[0]), v(fields[1])
            if a or b or not hide:
                args = (a, plural(a), b, plural(b)) if kind == "p2" else (a, plural(a), b)
                out.append(_c(fmt) % args)
        elif kind == "nl":
            if v(fields[0]) or not hide:
                out.append(fmt)
        elif kind == "delivered":
            n = v(fields[0]) - sum(v(f) for f in fields[1:])
            n &= (1 << 64) - 1
            if n or not hide:
                out.append(_c(fmt) % n)
        elif kind == "always":
            out.append(_c(fmt) % v(fields[0]))
        elif kind == "hist":
            labels = names.get(entry[3])
            for i, n in _nonzero_under(values[fields[0]], fmt, out):
                if entry[3] == "ifname":
                    label = ifnames().get(i, "(null)")
                elif labels is not None and i < len(labels):
                    label = labels[i]
                else:
                    label = f"#{i}"
                if entry[3] == "srcrule":
                    out.append(_c(entry[4]) % (n, label))
                else:
                    out.append(_c(entry[4]) % (label, n))
        elif kind == "scopes":
            for i, n in _nonzero_under(values[fields[0]], fmt, out):
                sfmt = names["scopes"].get(str(i))
                if sfmt is None:
                    out.append(_c(names["scopes"]["default"]) % (n, i))
                elif n or not hide:
                    out.append(_c(sfmt) % (n, plural(n)))
        elif kind == "tcp_states":
            continue   # printed last, below
    if spec.get("var") == "tcpstat" and states is not None:
        out.append("TCP connection count by state:\n")
        for i, n in enumerate(states[:len(TCPSTATES)]):
            if hide and n == 0:
                continue
            word = "connection " if n == 1 else "connections"
            out.append(f"\t{n} {word} in {TCPSTATES[i]} state\n")
    return out


def _selected(opts) -> list[str]:
    t = table()
    proto = getattr(opts, "protocol", None)
    v4, v6 = bool(getattr(opts, "inet4", False)), bool(getattr(opts, "inet6", False))
    if proto:
        if proto not in t["protocols"]:
            raise VnetdbgError(f"{proto}: no stats routine")
        return [proto]
    fams = {"inet", "inet6"}
    if v4 and not v6:
        fams = {"inet"}
    elif v6 and not v4:
        fams = {"inet6"}
    return [p for p in t["order"] if t["protocols"][p]["family"] in fams]


def _collect(target, stack, opts, problems):
    t = table()
    cpus = cpu_offsets(target)
    release = release_of(target)
    for name in _selected(opts):
        spec = t["protocols"][name]
        values = read_counters(target, stack, spec["struct"], spec["var"], cpus, problems)
        if values is None:
            continue
        states = None
        if spec["var"] == "tcpstat":
            address = _var_address(target, stack, "tcps_states")
            if address is not None:
                try:
                    states = counter_pointers_fetch(target, address, len(TCPSTATES), cpus)
                except FaultError as e:
                    problems.append(f"V_tcps_states at {address:#x}: unreadable "
                                    f"({e.reason} at {e.address:#x})")
        yield name, spec, values, states, release


def text_lines(target, stack, opts, problems: list[str]) -> Iterator[str]:
    # netstat's sflag: 1 prints every line, 2 hides all-zero ones (see the docstring)
    sflag = 1 if getattr(opts, "zero", False) else 2
    t = table()
    cache: dict = {}

    def ifnames():
        if "m" not in cache:
            from ..freebsd.inpcb import interface_names
            cache["m"] = interface_names(target, stack.address, problems)
        return cache["m"]

    for name, spec, values, states, release in _collect(target, stack, opts, problems):
        text = "".join(format_lines(name, spec, values, sflag, t["names"], states, ifnames,
                                    release))
        yield from text.rstrip("\n").split("\n")


def records(target, stack, opts, problems: list[str]) -> Iterator[dict]:
    for name, spec, values, states, _release in _collect(target, stack, opts, problems):
        rec = {"protocol": name}
        rec.update(values)
        if states is not None:
            rec["tcp-states"] = {TCPSTATES[i]: n for i, n in enumerate(states)}
        yield rec


if __name__ == "__main__":  # pragma: no cover - print the table's field names
    json.dump({k: {r: [e[1] for e in ls] for r, ls in v["lines"].items()}
               for k, v in table()["protocols"].items()}, sys.stdout, indent=1)
