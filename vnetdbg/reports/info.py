"""``vnetdbg info``: what a dump is and what it says about the crash, gathered from the
memory source, the kernel match check, info.N and the kernel's own globals."""

from __future__ import annotations

from ..errors import FaultError, VnetdbgError
from ..freebsd.jail import prison0
from ..freebsd.msgbuf import last_lines, msgbuf_bytes

#: keys of describe() shown as hex in text form, with their labels
_HEX_KEYS = {"kernbase": "Kernbase", "dmapbase": "DMAP base", "dmapend": "DMAP end"}


def panic_string(target) -> str | None:
    """``panicstr``: None when the kernel did not panic (a live dump, or NULL)."""
    try:
        value = target.variable("panicstr")
        return value.string() if value.value_() else None
    except (FaultError, VnetdbgError):
        return None


def gather(session, lines: int) -> dict:
    """The facts for ``info`` as a JSON-ready dict with libxo-style keys."""
    target = session.target
    facts = dict(session.memory.describe())
    facts["core"] = session.core_path
    facts["kernel"] = session.kernel_path
    facts["types"] = target.types.name
    facts["version"] = (session.match.dump_version or "").rstrip("\n") or None
    facts["kernel-match"] = session.match.ok
    facts["kernel-match-method"] = session.match.method
    facts["panic"] = panic_string(target)
    try:
        facts["hostname"] = prison0(target).member("pr_hostname").string()
    except (FaultError, VnetdbgError):
        facts["hostname"] = None
    info = session.info or {}
    header = getattr(session.memory, "dump_header", lambda: None)()
    if header:
        facts["dump-header"] = header
    facts["dumptime"] = info.get("dumptime") or (header or {}).get("dumptime")
    try:
        facts["msgbuf"] = last_lines(msgbuf_bytes(target), lines)
    except (FaultError, VnetdbgError) as e:
        facts["msgbuf"] = []
        session.warnings.append(f"message buffer unreadable: {e}")
    return facts


def text_lines(facts: dict, match_text: str) -> list[str]:
    def show(v):
        return "-" if v is None else str(v)

    rows = [
        ("Dump", facts["core"]),
        ("Format", facts.get("format")),
        ("Architecture", facts.get("arch")),
        ("Page size", facts.get("page-size")),
        ("Present pages", facts.get("present-pages")),
    ]
    rows += [(label, f"{facts[k]:#x}") for k, label in _HEX_KEYS.items()
             if facts.get(k) is not None]
    rows += [
        ("Kernel", f"{facts['kernel']} (types: {facts['types']})"),
        ("Kernel match", match_text),
        ("Version", facts["version"]),
        ("Panic", facts["panic"] or "(none)"),
        ("Hostname", facts["hostname"]),
        ("Dump time", facts["dumptime"]),
    ]
    out = [f"{label + ':':<15} {show(value).splitlines()[0] if value else show(value)}"
           for label, value in rows]
    header = facts.get("dump-header")
    if header:
        out.append("Dump header:")
        out += [f"  {key}: {value}" for key, value in header.items()]
    out.append(f"Message buffer (last {len(facts['msgbuf'])} lines):")
    out += [f"  {line}" for line in facts["msgbuf"]]
    return out
