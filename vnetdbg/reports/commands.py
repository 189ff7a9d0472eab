"""One function per CLI command: open the dump, gather with the FreeBSD helpers, render.

Each returns the list of problems met on the way (broken lists, unreadable objects);
the CLI prints them as warnings after the (partial) report.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import asdict

from ..errors import VnetdbgError
from ..freebsd.jail import all_prisons
from ..freebsd.msgbuf import cross_check, msgbuf_bytes
from ..session import Source, open_session
from . import ddb_prison, info as info_report, jls as jls_report


@contextmanager
def session_for(args):
    cores = os.path.join(args.cache_dir, "cores") if args.cache_dir else None
    source = Source(core=args.core, mem=args.mem, phys=args.phys, cache_dir=cores,
                    max_uncompressed=args.max_uncompressed)
    session = open_session(args.core, args.kernel, force=args.force, types=args.types,
                           cache_dir=args.cache_dir, source=source)
    try:
        for warning in session.warnings:
            print(f"vnetdbg: warning: {warning}", file=sys.stderr)
        yield session
    finally:
        session.close()


def write_lines(lines) -> None:
    out = sys.stdout
    for line in lines:
        out.write(line)
        out.write("\n")


def emit_json(obj, args) -> None:
    """JSON output: compact, or indented for ``json-pretty``; kernel strings stay bytes."""
    indent = 2 if args.output == "json-pretty" else None
    sys.stdout.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


def _jls_form(args, params) -> str:
    """Which jls form the options select (named parameters cancel -v, as in jls)."""
    if params or args.name_value or args.header or args.skip:
        return "params"
    if args.verbose:
        return "verbose"
    return "name" if args.by_name else "default"


def jls(args) -> list[str]:
    problems: list[str] = []
    with session_for(args) as session:
        prisons = all_prisons(session.target, problems)
    params = list(args.words) or None
    form = _jls_form(args, params)
    try:
        jails = jls_report.select(prisons, args.jail, include_dying=args.dying)
        if args.output != "text":
            emit_json(jls_report.to_json(jails, form, params=params,
                                          name_value=args.name_value, skip=args.skip), args)
        elif form == "params":
            write_lines(jls_report.param_lines(jails, params, header=args.header,
                                                name_value=args.name_value,
                                                quote=args.quote, skip=args.skip))
        elif form == "verbose":
            write_lines(jls_report.verbose_lines(jails))
        else:
            write_lines(jls_report.default_lines(jails, by_name=args.by_name))
    except (jls_report.JailNotFound, jls_report.UnknownParameter) as e:
        raise VnetdbgError(str(e)) from None
    return problems


def _prison_by_arg(prisons, arg: str):
    """DDB's lookup: a JID with references, then any prison with that JID, then the
    number as an address.  JIDs are decimal here; addresses take a 0x prefix."""
    try:
        number = int(arg, 0)
    except ValueError:
        raise VnetdbgError(f"show prison: {arg!r} is neither a JID nor an address") from None
    if not arg.lower().startswith("0x"):
        for want_refs in (True, False):
            for p in prisons:
                if p.jid == number and (p.ref > 0 or not want_refs):
                    return p
    for p in prisons:
        if p.address == number:
            return p
    raise VnetdbgError(f"show prison: no prison with JID or address {arg}")


def show(args) -> list[str]:
    words = args.words
    if words[0] == "all" and len(words) > 1:
        words = words[1:]
    if words[0] in ("vnets", "vnet"):
        from .netcmds import show_vnets
        return show_vnets(args, words)
    if words[0] not in ("prison", "prisons"):
        raise VnetdbgError(f"show {words[0]}: unknown; try: show prison [JID|ADDR], "
                           f"show all vnets, show vnet ADDR")
    if len(words) > 2:
        raise VnetdbgError("usage: show prison [JID|ADDR]")
    problems: list[str] = []
    with session_for(args) as session:
        prisons = all_prisons(session.target, problems)
        vimage = session.target.has_symbol("sysctl___kern_features_vimage")
    if args.output != "text":
        chosen = [_prison_by_arg(prisons, words[1])] if len(words) == 2 else prisons
        emit_json({"prison-information": {"prison": [asdict(p) for p in chosen]}}, args)
    elif len(words) == 2:
        write_lines(ddb_prison.show_prison_lines(_prison_by_arg(prisons, words[1]),
                                                  vimage=vimage))
    else:
        write_lines(ddb_prison.show_all_prisons_lines(prisons[0], prisons[1:], vimage=vimage))
    return problems


def info(args) -> list[str]:
    if args.words:
        raise VnetdbgError(f"info: unexpected argument {args.words[0]!r}")
    with session_for(args) as session:
        already = len(session.warnings)
        facts = info_report.gather(session, args.lines)
        problems = session.warnings[already:]
        if args.output != "text":
            emit_json(facts, args)
        else:
            write_lines(info_report.text_lines(facts, session.match.describe()))
    return problems


def dmesg(args) -> list[str]:
    if args.words:
        raise VnetdbgError(f"dmesg: unexpected argument {args.words[0]!r}")
    problems: list[str] = []
    with session_for(args) as session:
        data = msgbuf_bytes(session.target)
        mismatch = cross_check(session.target, session.memory.msgbuf_region())
        if mismatch:
            problems.append(mismatch)
    if args.output != "text":
        emit_json({"message-buffer": data.decode("utf-8", "surrogateescape")}, args)
    else:
        sys.stdout.write(data.decode("utf-8", "surrogateescape"))
    return problems
