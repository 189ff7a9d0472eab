"""Render jail records the way FreeBSD's ``jls(8)`` prints them.

Pure functions: no kernel access.  Input objects follow the ``Prison`` record
contract of ``vnetdbg.freebsd.jail`` (duck-typed: any object with the same
attributes works).  Formats and their sources are documented in
``docs/formats/jls-and-show-prison.md``.

Text is produced as ``str`` lines without trailing newlines.  Strings coming
from the kernel are ``str`` decoded with ``errors="surrogateescape"``; every
printf-style width/precision is applied to the *bytes* (as C does), and the
result is decoded back with surrogateescape so that writing the line with
``errors="surrogateescape"`` reproduces the exact bytes.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Sequence

__all__ = [
    "DEFAULT_HEADER",
    "NAME_HEADER",
    "VERBOSE_HEADER",
    "JLS_XO_VERSION",
    "JailNotFound",
    "UnknownParameter",
    "printf_s",
    "c_quote_char",
    "select",
    "default_lines",
    "verbose_lines",
    "all_params",
    "param_names",
    "param_value",
    "param_lines",
    "format_value",
    "to_json",
]

JLS_XO_VERSION = "2"

# Header strings (jls.c xo_emit() title lines, expanded).
DEFAULT_HEADER = "   JID  IP Address      Hostname                      Path"
NAME_HEADER = " JID             IP Address      Hostname                      Path"
VERBOSE_HEADER = (
    "   JID  Hostname                      Path",
    "        Name                          State",
    "        CPUSetID",
    "        IP Address(es)",
)

_ENC = "utf-8"
_ERR = "surrogateescape"


class JailNotFound(ValueError):
    """``-j`` named no usable jail.  ``str(exc)`` is jls's message (without
    the ``jls: `` prefix that ``xo_errx`` adds on stderr; exit status 1)."""


class UnknownParameter(ValueError):
    """A parameter name jls/libjail would reject (``unknown parameter: X``),
    or one vnetdbg cannot source from a core (module/OSD parameters)."""


# ---------------------------------------------------------------------------
# printf helpers (byte-exact)
# ---------------------------------------------------------------------------

def _b(s: str | bytes) -> bytes:
    return s if isinstance(s, bytes) else s.encode(_ENC, _ERR)


def _s(b: bytes) -> str:
    return b.decode(_ENC, _ERR)


def printf_s(value: str | bytes, width: int = 0, precision: int | None = None,
             left: bool = False) -> str:
    """C ``%[-][width][.precision]s`` counted in bytes.

    ``printf_s(x, 29, 29, left=True)`` is ``%-29.29s``.
    """
    data = _b(value)
    if precision is not None:
        data = data[:precision]
    pad = width - len(data)
    if pad > 0:
        data = data + b" " * pad if left else b" " * pad + data
    return _s(data)


def _u32_to_i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def c_quote_char(value: str) -> str:
    """jls quoted_print(): the quote char a value gets under ``-q``/``-s``.

    ``'`` in value -> ``"``; else ``"`` in value -> ``'``; else space or tab
    -> ``"``; else no quoting.  Inner characters are never escaped.
    """
    if "'" in value:
        return '"'
    if '"' in value:
        return "'"
    if " " in value or "\t" in value:
        return '"'
    return ""


# ---------------------------------------------------------------------------
# jail selection (-j / -d / lastjid iteration)
# ---------------------------------------------------------------------------

def _is_prison0(pr: Any) -> bool:
    return getattr(pr, "parent_jid", 0) is None or pr.jid == 0


def _valid(pr: Any) -> bool:
    return pr.state != "invalid" and pr.ref > 0


def _alive(pr: Any) -> bool:
    return pr.state == "alive"


_STRTOUL = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+)\Z")


def _parse_j(spec: str) -> tuple[int, str | None]:
    """jls: ``jid = strtoul(optarg, &ep, 10); if (!jid || *ep) name``."""
    m = _STRTOUL.match(spec)
    if m is None:
        return 0, spec
    n = int(m.group(2))
    if m.group(1) == "-":
        n = -n
    jid = _u32_to_i32(n & 0xFFFFFFFFFFFFFFFF)  # unsigned long -> int
    if jid == 0:
        return 0, spec
    return jid, None


def select(prisons: Iterable[Any], jail_spec: str | int | None = None,
           include_dying: bool = False) -> list[Any]:
    """The jails jls would print, in its order (ascending JID).

    ``jail_spec`` is ``-j``'s argument (numeric non-zero -> JID, anything
    else -> full hierarchical name as seen from prison0).  ``include_dying``
    is ``-d``.  prison0 is never listed.  Raises :class:`JailNotFound` with
    the kernel's jail_get() message.
    """
    cands = [p for p in prisons if not _is_prison0(p) and _valid(p)]
    cands.sort(key=lambda p: p.jid)
    if jail_spec is None:
        return [p for p in cands if _alive(p) or include_dying]
    if isinstance(jail_spec, int):
        jid, name = (jail_spec, None) if jail_spec != 0 else (0, "0")
    else:
        jid, name = _parse_j(jail_spec)
    if name is None:
        for p in cands:
            if p.jid == jid:
                if not (_alive(p) or include_dying):
                    raise JailNotFound(f"jail {jid} is dying")
                return [p]
        raise JailNotFound(f"jail {jid} not found")
    hits = [p for p in cands if p.name == name]
    alive = [p for p in hits if _alive(p)]
    if alive:
        return [alive[0]]
    if hits:
        if include_dying:
            return [hits[0]]
        raise JailNotFound(f'jail "{name}" is dying')
    raise JailNotFound(f'jail "{name}" not found')


# ---------------------------------------------------------------------------
# default and -v forms
# ---------------------------------------------------------------------------

def default_lines(prisons: Iterable[Any], *, by_name: bool = False,
                  header: bool = True, inet: bool = True) -> list[str]:
    """``jls`` / ``jls -N``.  ``inet=False`` models a jls built without INET
    (the address column then prints ``-``)."""
    out: list[str] = []
    if header:
        out.append(NAME_HEADER if by_name else DEFAULT_HEADER)
    for pr in prisons:
        if by_name:
            head = " " + printf_s(pr.name, 15, left=True) + " "
        else:
            head = "%6d" % pr.jid + "  "
        if not inet:
            ip = "-"
        else:
            ip = pr.ip4[0] if pr.ip4 else ""
        out.append(head + printf_s(ip, 15, 15, left=True) + " "
                   + printf_s(pr.hostname, 29, 29, left=True) + " "
                   + printf_s(pr.path, 0, 74))
    return out


def _dying(pr: Any) -> bool:
    return not _alive(pr)


def verbose_lines(prisons: Iterable[Any], *, header: bool = True,
                  inet: bool = True, inet6: bool = True) -> list[str]:
    """``jls -v``."""
    out: list[str] = list(VERBOSE_HEADER) if header else []
    for pr in prisons:
        out.append("%6d" % pr.jid + "  " + printf_s(pr.hostname, 29, 29, True)
                   + " " + printf_s(pr.path, 0, 74))
        out.append("        " + printf_s(pr.name, 29, 29, True) + " "
                   + ("DYING" if _dying(pr) else "ACTIVE"))
        out.append("        %d" % pr.cpusetid)
        if inet:
            out.extend("        " + a for a in (pr.ip4 or []))
        if inet6:
            out.extend("        " + a for a in (pr.ip6 or []))
    return out


# ---------------------------------------------------------------------------
# parameters (-n / -h / -s / param ...)
# ---------------------------------------------------------------------------

class _Bool(int):
    """Marker type: a JP_BOOL parameter value (prints name/noname under -n)."""


class _Jailsys(str):
    """Marker type: an ``E,jailsys`` parameter value (new/disable/inherit)."""


class _ULong(int):
    """Marker type: CTLTYPE_ULONG (host.hostid), printed with %lu."""


# Read-only (CTLFLAG_RD without TUN/WR) parameters: skipped by -s.
_READ_ONLY = {"parent", "dying", "children.cur", "cpuset.id"}


def _sort_key(name: str) -> tuple[int, bytes]:
    # jls sort_param(): names without '.' first, then strcmp().
    return (1 if "." in name else 0, _b(name))


def all_params(prison: Any) -> list[tuple[str, Any]]:
    """Ordered ``(param, value)`` list for ``jls -n`` / ``jls -h`` without
    parameter arguments: every parameter sourceable from the record, sorted
    like jls (top-level names first, then strcmp order).

    Values: ``bool`` for boolean parameters, ``list[str]`` for ``ip4.addr``
    and ``ip6.addr``, ``int`` for numbers, ``str`` for strings and jailsys
    values.  Module (OSD) parameters - ``sysvmsg``/``sysvsem``/``sysvshm``,
    ``linux*``, ``zfs.*``, ``mac.*``, ``meta``/``env`` - are not included.
    """
    return [(n, _public(v)) for n, v in _raw_params(prison)]


def _public(v: Any) -> Any:
    if isinstance(v, _Bool):
        return bool(v)
    if isinstance(v, (_Jailsys,)):
        return str(v)
    if isinstance(v, _ULong):
        return int(v)
    return v


def _raw_params(prison: Any) -> list[tuple[str, Any]]:
    pr = prison
    jailsys = {n: v for n, v in pr.jailsys}
    params: dict[str, Any] = {
        "jid": pr.jid,
        "parent": pr.parent_jid if pr.parent_jid is not None else 0,
        "name": pr.name,
        "path": pr.path,
        "securelevel": pr.securelevel,
        "osreldate": pr.osreldate,
        "osrelease": pr.osrelease,
        "enforce_statfs": pr.enforce_statfs,
        "devfs_ruleset": pr.devfs_rsnum,
        "dying": _Bool(_dying(pr)),
        "children.cur": pr.childcount,
        "children.max": pr.childmax,
        "host.hostname": pr.hostname,
        "host.domainname": pr.domainname,
        "host.hostuuid": pr.hostuuid,
        "host.hostid": _ULong(pr.hostid & 0xFFFFFFFFFFFFFFFF),
        "cpuset.id": pr.cpusetid,
    }
    for name, value in pr.jailsys:
        params[name] = _Jailsys(value)
    # ip4.addr / ip6.addr exist iff the kernel has INET / INET6; the jailsys
    # table (pr_flag_jailsys) carries ip4/ip6 under the same #ifdefs.
    if "ip4" in jailsys:
        params["ip4.addr"] = list(pr.ip4 or [])
    if "ip6" in jailsys:
        params["ip6.addr"] = list(pr.ip6 or [])
    for name, _noname, isset in pr.bools:
        params[name] = _Bool(bool(isset))
    for name, _noname, isset in pr.allows:
        params[name] = _Bool(bool(isset))
    return sorted(params.items(), key=lambda kv: _sort_key(kv[0]))


def param_names(prison: Any) -> list[str]:
    """The ``jls -h`` header names for the "all" parameter list."""
    return [n for n, _ in _raw_params(prison)]


def _nononame(name: str) -> str | None:
    head, dot, last = name.rpartition(".")
    if not last.startswith("no"):
        return None
    return head + dot + last[2:]


def _noname(name: str) -> str:
    head, dot, last = name.rpartition(".")
    return head + dot + "no" + last


def _lookup(prison: Any, name: str) -> tuple[Any, bool]:
    """Return (raw value, is_nobool) for a user-named parameter."""
    raw = dict(_raw_params(prison))
    if name in raw:
        return raw[name], False
    base = _nononame(name)
    if base is not None and isinstance(raw.get(base), _Bool):
        # JP_NOBOOL: libjail fetches the "no" name; the kernel answers with
        # the inverted value.
        return _Bool(not raw[base]), True
    raise UnknownParameter(f"unknown parameter: {name}")


def param_value(prison: Any, name: str) -> Any:
    """Value of one parameter (public types as in :func:`all_params`)."""
    return _public(_lookup(prison, name)[0])


def format_value(value: Any) -> str:
    """libjail jailparam_export(): value text before quoting."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, _Bool):
        return "true" if int(value) else "false"
    if isinstance(value, list):
        return ",".join(value)
    if isinstance(value, int):
        return "%d" % value
    return str(value)


def _render_one(name: str, value: Any, nobool: bool, *, name_value: bool,
                quote: bool) -> str:
    if name_value and isinstance(value, _Bool):
        if int(value):
            return name
        return _nononame(name) if nobool else _noname(name)
    prefix = name + "=" if name_value else ""
    if isinstance(value, list) and not value:
        # special_print(): jp_valuelen == 0
        if quote:
            return prefix + '""'
        return prefix + ("" if name_value else "-")
    text = format_value(value)
    if text == "":
        return prefix + '""'
    qc = c_quote_char(text) if quote else ""
    return prefix + qc + text + qc


def _user_params(prison: Any, params: Sequence[str] | None) -> list[tuple[str, Any, bool]]:
    if params is None:
        return [(n, v, False) for n, v in _raw_params(prison)]
    out: list[tuple[str, Any, bool]] = []
    seen: set[str] = set()
    for name in params:
        if name in seen:  # add_param() folds repeats
            continue
        seen.add(name)
        v, nob = _lookup(prison, name)
        out.append((name, v, nob))
    return out


def _skip(name: str, prison: Any, params_raw: dict[str, Any]) -> bool:
    """-s: drop read-only params and dotted params whose jailsys parent
    (prefix before the first '.') is not "new"."""
    if name in _READ_ONLY:
        return True
    if "." in name:
        parent = name.split(".", 1)[0]
        pv = params_raw.get(parent)
        if isinstance(pv, _Jailsys) and str(pv) != "new":
            return True
    return False


def param_lines(prisons: Iterable[Any], params: Sequence[str] | None = None, *,
                header: bool = False, name_value: bool = False,
                quote: bool = False, skip: bool = False) -> list[str]:
    """``jls [-h] [-n] [-q] [-s] [param ...]``.

    ``params=None`` means "all" (only meaningful with ``header`` or
    ``name_value``, as in jls).  ``skip`` is ``-s`` (implies name_value and
    quote).  The header line (``-h``) lists parameter names separated by
    single spaces; with "all" it is taken from the first prison's parameter
    set (all records of one kernel share the same tables).
    """
    prisons = list(prisons)
    if skip:
        name_value = quote = True
    out: list[str] = []
    if header:
        if params is None:
            names = param_names(prisons[0]) if prisons else []
        else:
            names = list(dict.fromkeys(params))
        out.append(" ".join(names))
    for pr in prisons:
        plist = _user_params(pr, params)
        raw = dict(_raw_params(pr)) if skip else {}
        parts = []
        for name, value, nob in plist:
            if skip and _skip(name, pr, raw):
                continue
            parts.append(_render_one(name, value, nob, name_value=name_value,
                                     quote=quote))
        out.append(" ".join(parts))
    return out


# ---------------------------------------------------------------------------
# libxo JSON
# ---------------------------------------------------------------------------

def _json_param(name: str, value: Any, nobool: bool, name_value: bool) -> Any:
    if isinstance(value, list):
        return list(value)             # emit_ip_addr_list(): leaf-list
    if name_value and isinstance(value, _Bool):
        # {en:NAME/true} / {en:NAME/false}; JP_NOBOOL always emits true.
        return True if (nobool or int(value)) else False
    return format_value(value)         # {a:/%s}: always a JSON string


def to_json(prisons: Iterable[Any], form: str = "default", *,
            params: Sequence[str] | None = None, name_value: bool = False,
            skip: bool = False, inet: bool = True,
            inet6: bool = True) -> dict[str, Any]:
    """``jls --libxo json`` document as a Python dict.

    ``form``: ``"default"``, ``"name"`` (-N), ``"verbose"`` (-v) or
    ``"params"`` (-n/-h/-s/param list; ``params=None`` = all).
    """
    jails: list[dict[str, Any]] = []
    for pr in prisons:
        if form in ("default", "name"):
            d: dict[str, Any] = {}
            if form == "name":
                d["name"] = pr.name
            else:
                d["jid"] = pr.jid
            d["ipv4"] = (pr.ip4[0] if pr.ip4 else "") if inet else "-"
            d["hostname"] = pr.hostname
            d["path"] = pr.path
        elif form == "verbose":
            d = {
                "jid": pr.jid,
                "hostname": pr.hostname,
                "path": pr.path,
                "name": pr.name,
                "state": "DYING" if _dying(pr) else "ACTIVE",
                "cpusetid": pr.cpusetid,
            }
            if inet:
                d["ipv4_addrs"] = list(pr.ip4 or [])
            if inet6:
                d["ipv6_addrs"] = list(pr.ip6 or [])
        elif form == "params":
            nv = name_value or skip
            raw = dict(_raw_params(pr)) if skip else {}
            d = {}
            for name, value, nob in _user_params(pr, params):
                if skip and _skip(name, pr, raw):
                    continue
                d[name] = _json_param(name, value, nob, nv)
        else:
            raise ValueError(f"unknown jls form {form!r}")
        jails.append(d)
    return {"__version": JLS_XO_VERSION,
            "jail-information": {"jail": jails}}
