"""Open a dump with its kernel: find the kernel files, load symbols and types, and check
that the kernel really is the one that was running.

Kernel discovery follows where FreeBSD puts things: ``-k``/``-N`` when given; otherwise
``kernel.debug`` or ``kernel`` beside the core (crashinfo and savecore users copy them
there); then ``/usr/lib/debug/boot/kernel/kernel.debug`` and ``/boot/kernel/kernel``.
Symbols and types come from the file that has DWARF; the version string to compare with
comes from a file whose ``.rodata`` has contents (a ``kernel.debug`` made by
``objcopy --only-keep-debug`` keeps only NOBITS placeholders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from .debuginfo import open_types
from .debuginfo.symbols import SymbolTable
from .errors import FaultError, VnetdbgError
from .memory import open_core
from .memory.infofile import find_info_file, parse_info_file
from .objects import Target

SYSTEM_KERNELS = ("/usr/lib/debug/boot/kernel/kernel.debug", "/boot/kernel/kernel")


@dataclass
class KernelMatch:
    """How the kernel file was checked against the dump."""

    method: str            # "version" | "info" | "build-id" | "none"
    ok: bool | None        # None: nothing to compare with
    dump_version: str | None
    expected: str | None   # what the kernel file (or info.N) says

    def describe(self) -> str:
        if self.ok is None:
            return "unverified (no version string or build-id to compare)"
        how = {"version": "version string", "info": "info file version string",
               "build-id": "build-id"}[self.method]
        return f"{'yes' if self.ok else 'NO'} (by {how})"


@dataclass
class Session:
    core_path: str
    kernel_path: str            # the file symbols and types come from
    memory: object
    symbols: SymbolTable
    target: Target
    match: KernelMatch
    info: dict | None = None    # parsed info.N, when present
    warnings: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.memory.close()


def candidate_kernels(core_path: str) -> list[str]:
    here = os.path.dirname(core_path)  # keep relative paths relative in messages
    return [os.path.join(here, "kernel.debug"), os.path.join(here, "kernel"), *SYSTEM_KERNELS]


def find_kernel(core_path: str, explicit: str | None) -> str:
    if explicit:
        if not os.path.isfile(explicit):
            raise VnetdbgError(f"kernel file not found: {explicit}")
        return explicit
    for path in candidate_kernels(core_path):
        if os.path.isfile(path):
            return path
    raise VnetdbgError("no kernel found beside the core or in /usr/lib/debug/boot/kernel "
                       "or /boot/kernel; name it with -k KERNEL")


def _debug_file_for(path: str, symbols: SymbolTable) -> str | None:
    """The file with DWARF for kernel ``path``: itself, ``path.debug`` beside it, or the
    FreeBSD debug directory copy."""
    if symbols.has_debug_info:
        return path
    for candidate in (path + ".debug",
                      os.path.join(os.path.dirname(path), "kernel.debug"),
                      "/usr/lib/debug" + os.path.abspath(path) + ".debug"):
        if os.path.isfile(candidate) and SymbolTable(candidate).has_debug_info:
            return candidate
    return None


def _stripped_twin(debug_path: str) -> str | None:
    """The loadable kernel beside a ``.debug`` file (it carries the real ``.rodata``)."""
    if debug_path.endswith(".debug"):
        twin = debug_path[: -len(".debug")]
        if os.path.isfile(twin):
            return twin
    return None


def dump_version(target: Target) -> str | None:
    """The ``version`` string as it sits in the dump's memory (None when unreadable)."""
    try:
        sym = target.symbols.lookup("version")
    except LookupError:
        return None
    try:
        raw = target.read(sym.address, sym.size or 256)
    except FaultError:
        return None
    raw = raw.split(b"\0", 1)[0]
    return raw.decode("utf-8", "replace")


def _first_line(s: str | None) -> str:
    return (s or "").strip().splitlines()[0] if (s or "").strip() else "(unreadable)"


def check_kernel(target: Target, symbols: SymbolTable, kernel_path: str,
                 info: dict | None) -> KernelMatch:
    """Compare the dump with the kernel: the kernel file's own version string when a file
    carries it, else info.N's, else the build-id note as it sits in dump memory."""
    in_dump = dump_version(target)
    for path in (kernel_path, _stripped_twin(kernel_path)):
        if path is None:
            continue
        own = symbols.version_string if path == kernel_path else SymbolTable(path).version_string
        if own:
            return KernelMatch("version", in_dump == own, in_dump, own)
    if info and info.get("version_string"):
        expected = info["version_string"]
        return KernelMatch("info", in_dump is not None and in_dump.strip() == expected.strip(),
                           in_dump, expected)
    if symbols.build_id:
        note = symbols.sections.get(".note.gnu.build-id")
        if note:
            try:
                raw = target.read(note[0], note[1])
            except FaultError:
                raw = b""
            return KernelMatch("build-id", bytes.fromhex(symbols.build_id) in raw,
                               in_dump, symbols.build_id)
    return KernelMatch("none", None, in_dump, None)


def open_session(core_path: str, kernel: str | None = None, *, force: bool = False,
                 types: str = "auto", cache_dir: str | None = None) -> Session:
    memory = open_core(core_path)
    try:
        return _open_with(memory, core_path, kernel, force, types, cache_dir)
    except BaseException:
        memory.close()
        raise


def _open_with(memory, core_path, kernel, force, types, cache_dir) -> Session:
    kernel_path = find_kernel(core_path, kernel)
    symbols = SymbolTable(kernel_path)
    debug_path = _debug_file_for(kernel_path, symbols)
    if debug_path is None:
        raise VnetdbgError(f"{kernel_path} has no DWARF debug information and no "
                           f"kernel.debug was found beside it; give one with -k")
    if debug_path != kernel_path:
        kernel_path, symbols = debug_path, SymbolTable(debug_path)
    attach = getattr(memory, "attach_symbols", None)
    if attach is not None:
        attach(lambda name: symbols.lookup(name).address if name in symbols else None)
    provider = open_types(kernel_path, provider=types, read=memory.read, cache_dir=cache_dir)
    target = Target(memory, symbols, provider)
    info_path = find_info_file(core_path)
    info = parse_info_file(info_path) if info_path else None
    match = check_kernel(target, symbols, kernel_path, info)
    session = Session(core_path, kernel_path, memory, symbols, target, match, info)
    if match.ok is False:
        # info.N says what was running; the string at the wrong kernel's `version`
        # symbol is only a fragment of something else
        said = (info or {}).get("version_string") if match.method != "info" else None
        message = (f"kernel does not match the dump: the dump has "
                   f"\"{_first_line(said or match.dump_version)}\", {kernel_path} has "
                   f"\"{_first_line(match.expected)}\"")
        if not force:
            raise VnetdbgError(message + " (use --force to go on anyway)")
        session.warnings.append(message + "; going on because of --force")
    return session
