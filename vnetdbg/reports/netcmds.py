"""The network commands: ``vnets``, ``show vnets``, ``netstat`` and ``ifconfig``.

Every network report runs once per stack chosen by ``scope.select_stacks``.  Text output
is streamed section by section, each headed ``vnet 0x… (jail N "name")`` unless the
user named one stack (then the section is exactly what the tool printed inside that
jail).  JSON is one flat list whose objects carry ``vnet``, ``jail`` and ``jail-name``
keys, like mdb's ``::netstat`` Stack and Zone columns.

A report mode is a module with ``JSON_PATH`` (libxo container and list names),
``records(target, stack, opts, problems)`` (JSON-ready dicts) and
``text_lines(target, stack, opts, problems)`` (FreeBSD's text, as an iterator).
"""

from __future__ import annotations

import sys

from ..errors import VnetdbgError
from ..freebsd.jail import all_prisons
from ..freebsd.vnet import all_vnets, expected_magic, has_vimage, vnet_info
from . import vnets as vnets_report
from .commands import emit_json, session_for, write_lines
from .scope import select_stacks


NO_VIMAGE_NOTE = ("vnetdbg: note: kernel built without options VIMAGE: no virtual network "
                  "stacks, one stack in plain globals (netstat/ifconfig report it)")


def _no_vimage_note() -> None:
    sys.stdout.flush()
    print(NO_VIMAGE_NOTE, file=sys.stderr)


def vnets(args) -> list[str]:
    if args.words:
        raise VnetdbgError(f"vnets: unexpected argument {args.words[0]!r}")
    problems: list[str] = []
    with session_for(args) as session:
        target = session.target
        vimage = has_vimage(target)
        # without VIMAGE there is no struct vnet and no vnet_head: an empty table
        stacks = all_vnets(target, all_prisons(target, problems), problems) if vimage else []
    if args.output != "text":
        emit_json(vnets_report.to_json(stacks), args)
    else:
        write_lines(vnets_report.table_lines(stacks))
    if not vimage:
        _no_vimage_note()
    return problems


def show_vnets(args, words: list[str]) -> list[str]:
    """``show vnets`` / ``show all vnets`` / ``show vnet ADDR``."""
    problems: list[str] = []
    with session_for(args) as session:
        target = session.target
        new_style = target.type("struct vnet").has_member("vnet_shutdown")
        magic = expected_magic(target)
        if words[0] == "vnet":
            if len(words) != 2:
                write_lines(["usage: show vnet <struct vnet *>"])
                return problems
            try:
                address = int(words[1], 16)
            except ValueError:
                raise VnetdbgError(f"show vnet: {words[1]!r} is not an address") from None
            stacks = [vnet_info(target.value(address, "struct vnet"))]
        elif not has_vimage(target):
            # DDB has no vnet commands without VIMAGE; nothing to list
            stacks = []
        else:
            stacks = all_vnets(target, all_prisons(target, problems), problems)
        if args.output != "text":
            emit_json(vnets_report.to_json(stacks), args)
        else:
            for v in stacks:
                write_lines(vnets_report.ddb_lines(v, magic, new_style=new_style))
        if words[0] != "vnet" and not has_vimage(target):
            _no_vimage_note()
    return problems


def _run(args, mode, opts) -> list[str]:
    problems: list[str] = []
    with session_for(args) as session:
        target = session.target
        stacks, single = select_stacks(target, jail=args.jail, vnet=args.vnet,
                                       problems=problems)
        if args.output != "text":
            items = []
            for stack in stacks:
                for record in mode.records(target, stack, opts, problems):
                    record.update(stack.keys())
                    items.append(record)
            container, listname = mode.JSON_PATH
            emit_json({container: {listname: items}}, args)
            return problems
        out = sys.stdout
        shown = 0
        for stack in stacks:
            # the heading goes out with a section's first line: a stack with nothing to
            # show (ifconfig IFNAME where it has no such interface) is left out
            headed = single
            for line in mode.text_lines(target, stack, opts, problems):
                if not headed:
                    out.write(("\n" if shown else "") + stack.heading() + "\n")
                    headed = True
                    shown += 1
                out.write(line)
                out.write("\n")
            out.flush()  # the first stack is on screen before the last is read
    return problems


def netstat(args) -> list[str]:
    if args.words:
        raise VnetdbgError(f"netstat: unexpected argument {args.words[0]!r}")
    # report modules are imported when used: each command loads only what it needs
    if args.interfaces:
        from . import netstat_if as mode
    elif args.stats:
        from . import netstat_stats as mode
    else:
        from . import netstat_inet as mode
    return _run(args, mode, args)


def ifconfig(args) -> list[str]:
    args.ifname = args.words.pop(0) if args.words else None
    if args.words:
        raise VnetdbgError(f"ifconfig: unexpected argument {args.words[0]!r}")
    from . import ifconfig as mode
    return _run(args, mode, args)
