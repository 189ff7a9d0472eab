"""``vnetdbg COMMAND [CORE] [options]``: argument parsing, FreeBSD aliases, and turning
every ``VnetdbgError`` into one line ``vnetdbg: <message>`` with exit status 1.

CORE may be given as ``-M CORE`` (netstat/kvm habit) or as the first positional argument
that names an existing file; other positionals belong to the command (jls parameters,
the DDB argument).  Usage errors exit 2 (argparse's convention).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

from . import __version__
from .errors import VnetdbgError
from .reports import commands, netcmds

#: file-name prefixes savecore gives dumps; a positional starting so is the core even
#: when the file is missing, so the user gets "file not found" rather than a jls error
CORE_PREFIXES = ("vmcore", "livecore")


class UsageError(Exception):
    """Bad command line: reported like argparse's own errors (exit 2)."""


def _output_format(args) -> str:
    fmt = args.format
    if args.libxo:
        styles = args.libxo.split(",")
        if "json" in styles:
            fmt = "json-pretty" if "pretty" in styles else "json"
        elif "text" in styles:
            fmt = "text"
        else:
            raise UsageError(f"--libxo {args.libxo}: only text and json are supported")
    return fmt


def _common(p: argparse.ArgumentParser, kernel_short: bool = True) -> None:
    g = p.add_argument_group("dump and kernel")
    g.add_argument("-M", dest="core", metavar="CORE", help="crash dump (vmcore.N)")
    names = ["-k", "--kernel"] + (["-N"] if kernel_short else [])
    g.add_argument(*names, dest="kernel", metavar="KERNEL",
                   help="kernel with debug info (default: kernel.debug or kernel beside "
                        "the core, then /usr/lib/debug/boot/kernel/kernel.debug)")
    g.add_argument("--mem", nargs="?", const="/dev/mem", metavar="DEVICE",
                   help="live kernel through physical memory (/dev/mem) and its page "
                        "tables, instead of /dev/kmem")
    g.add_argument("--phys", metavar="FILE",
                   help="raw physical memory image of a FreeBSD guest (QEMU "
                        "memory-backend-file, bhyve /dev/vmm/NAME); needs -k")
    g.add_argument("--max-uncompressed", metavar="SIZE", type=_size,
                   help="refuse to decompress a .gz/.zst core larger than this "
                        "(default 64G)")
    g.add_argument("--force", action="store_true",
                   help="go on even if the kernel does not match the dump")
    g.add_argument("--types", choices=("auto", "drgn", "dwarf"),
                   default=os.environ.get("VNETDBG_TYPES", "auto"),
                   help="type provider: drgn (fast, Linux x86_64) or dwarf (pure Python)")
    g.add_argument("--cache-dir",
                   help="cache for type layouts and decompressed cores (default "
                        "$VNETDBG_CACHE_DIR, $XDG_CACHE_HOME/vnetdbg, ~/.cache/vnetdbg)")
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=("text", "json", "json-pretty"), default="text")
    o.add_argument("--libxo", metavar="STYLE", help="libxo style, e.g. json or json,pretty")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vnetdbg",
        description="Show jails and VNET network stacks from a FreeBSD crash dump.")
    parser.add_argument("--version", action="version", version=f"vnetdbg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("jls", help="list jails as jls(8) would have", add_help=False,
                       description="jls(8) on the crashed machine.")
    _common(p, kernel_short=False)  # jls's own -N means "show names"
    p.add_argument("-v", dest="verbose", action="store_true", help="verbose form")
    p.add_argument("-d", "-a", dest="dying", action="store_true", help="include dying jails")
    p.add_argument("-N", dest="by_name", action="store_true", help="names instead of JIDs")
    p.add_argument("-n", dest="name_value", action="store_true", help="name=value pairs")
    p.add_argument("-h", dest="header", action="store_true", help="header line of names")
    p.add_argument("-q", dest="quote", action="store_true", help="quote values")
    p.add_argument("-s", dest="skip", action="store_true",
                   help="only writable parameters, as jail(8) -c would take them")
    p.add_argument("-j", dest="jail", metavar="JID|NAME", help="this jail only")
    p.add_argument("--help", action="help", help="show this help")
    p.add_argument("words", nargs="*", metavar="[CORE] [param ...]")
    p.set_defaults(func=commands.jls)

    p = sub.add_parser("show", help="DDB show commands: prison [JID|ADDR], all vnets, vnet ADDR",
                       description="DDB's show commands, as printed on the crashed machine.")
    _common(p)
    p.add_argument("words", nargs="+", metavar="WHAT [ARG] [CORE]")
    p.set_defaults(func=commands.show)

    p = sub.add_parser("info", help="what the dump is: format, kernel, panic, messages")
    _common(p)
    p.add_argument("-l", "--lines", type=int, default=10,
                   help="message buffer lines to show (default 10)")
    p.add_argument("words", nargs="*", metavar="CORE")
    p.set_defaults(func=commands.info)

    p = sub.add_parser("vnets", help="one row per virtual network stack")
    _common(p)
    p.add_argument("words", nargs="*", metavar="CORE")
    p.set_defaults(func=netcmds.vnets)

    p = sub.add_parser("netstat", help="netstat(1) per network stack: sockets, -i, -s, -L",
                       description="netstat(1) as run inside each jail's network stack.")
    _common(p)
    _stack_options(p)
    m = p.add_argument_group("what to show (default: sockets)")
    m.add_argument("-i", dest="interfaces", action="store_true", help="interfaces")
    m.add_argument("-s", dest="stats", action="count", default=0,
                   help="protocol statistics; zero counters are hidden unless -z")
    m.add_argument("-L", dest="listen", action="store_true", help="listen queues")
    f = p.add_argument_group("modifiers")
    f.add_argument("-a", dest="all", action="store_true", help="include listening sockets")
    f.add_argument("-n", dest="numeric", action="store_true", help="numeric ports")
    f.add_argument("-A", dest="pcb_address", action="store_true", help="show PCB addresses")
    f.add_argument("-W", dest="wide", action="store_true", help="do not truncate addresses")
    f.add_argument("-4", dest="inet4", action="store_true", help="IPv4 only")
    f.add_argument("-6", dest="inet6", action="store_true", help="IPv6 only")
    f.add_argument("-p", dest="protocol", metavar="PROTO",
                   help="tcp, udp, udplite, raw (with -s also ip, ip6, icmp)")
    f.add_argument("-b", dest="bytes", action="store_true", help="-i: byte counts")
    f.add_argument("-d", dest="drops", action="store_true", help="-i: drop counts")
    f.add_argument("-I", dest="interface", metavar="IFNAME", help="-i: one interface")
    f.add_argument("-z", dest="zero", action="store_true",
                   help="-s: show zero counters too (FreeBSD's -z resets live counters; "
                        "a core has none to reset)")
    f.add_argument("--style", choices=("auto", "12", "15"), default="auto",
                   help="-i layout: fixed widths (12-14) or dynamic (15); default from "
                        "the dump's osreldate")
    p.add_argument("words", nargs="*", metavar="CORE")
    p.set_defaults(func=netcmds.netstat)

    p = sub.add_parser("ifconfig", help="ifconfig(8) per network stack")
    _common(p)
    _stack_options(p)
    p.add_argument("-a", dest="all", action="store_true", help="all interfaces (default)")
    p.add_argument("words", nargs="*", metavar="[IFNAME] CORE")
    p.set_defaults(func=netcmds.ifconfig)

    p = sub.add_parser("dmesg", help="the kernel message buffer")
    _common(p)
    p.add_argument("words", nargs="*", metavar="CORE")
    p.set_defaults(func=commands.dmesg)
    return parser


def _stack_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("which network stack (default: all, one section each)")
    g.add_argument("-j", dest="jail", metavar="JID|NAME", help="the stack this jail uses")
    g.add_argument("--vnet", metavar="ADDR", help="the stack at this struct vnet address")


def _size(text: str) -> int:
    """``64G``, ``512M``, ``1024`` -> bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().rstrip("B")
    unit = t[-1:] if t[-1:] in units and not t[-1:].isdigit() else ""
    try:
        return int(float(t[: len(t) - len(unit)]) * units[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text}") from None


def split_core(args) -> None:
    """Take CORE out of the positionals (unless -M gave it).  No CORE means the running
    kernel (/dev/kmem, or --mem/--phys)."""
    if args.core is None:
        for i, word in enumerate(args.words):
            if os.path.isfile(word) or os.path.basename(word).startswith(CORE_PREFIXES):
                args.core = word
                del args.words[i]
                break
    if args.core is not None and (args.mem or args.phys):
        raise UsageError("give either a crash dump or --mem/--phys, not both")


def _stdout() -> None:
    """Kernel strings are bytes: write undecodable ones back unchanged."""
    try:
        sys.stdout.reconfigure(errors="surrogateescape")  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # positionals may follow options ("show prison 2 --types dwarf vmcore.0"): argparse
    # stops a nargs="*" list at the first option, so collect the rest here
    args, extra = parser.parse_known_args(argv)
    for word in extra:
        if word.startswith("-") and word != "-":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.words = list(getattr(args, "words", [])) + extra
    _stdout()
    func: Callable = args.func
    try:
        args.output = _output_format(args)
        split_core(args)
        problems = func(args) or []
    except UsageError as e:
        parser.error(str(e))
    except VnetdbgError as e:
        sys.stdout.flush()
        print(f"vnetdbg: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:
        return 130
    sys.stdout.flush()
    for problem in problems:
        print(f"vnetdbg: warning: {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
