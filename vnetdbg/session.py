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


def find_kernel(core_path: str, explicit: str | None, *, live: bool = False) -> str:
    if explicit:
        if not os.path.isfile(explicit):
            raise VnetdbgError(f"kernel file not found: {explicit}")
        return explicit
    if live:
        booted = running_kernel()
        candidates = ["/usr/lib/debug" + booted + ".debug", booted, *SYSTEM_KERNELS]
    else:
        candidates = candidate_kernels(core_path)
    for path in candidates:
        if os.path.isfile(path):
            return path
    if live:
        raise VnetdbgError("no crash dump given and the running kernel was not found "
                           "(not a FreeBSD host?); give a core: vnetdbg COMMAND CORE")
    raise VnetdbgError("no kernel found beside the core or in /usr/lib/debug/boot/kernel "
                       "or /boot/kernel; name it with -k")


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


@dataclass
class Source:
    """Where memory comes from: a crash dump, or (no core) the running kernel through
    ``/dev/kmem``, ``--mem`` (physical memory + page tables) or ``--phys FILE`` (a
    guest's raw memory image)."""

    core: str | None = None
    mem: str | None = None
    phys: str | None = None
    cache_dir: str | None = None          # decompressed cores go under here
    max_uncompressed: int | None = None   # refuse larger decompressions

    @property
    def live(self) -> bool:
        return self.core is None

    def label(self) -> str:
        return self.core or self.phys or self.mem or KMEM


KMEM = "/dev/kmem"
#: FreeBSD's ELF machine names -> MACHINE_ARCH
ARCH_OF_MACHINE = {"x86_64": "amd64", "EM_X86_64": "amd64", "i386": "i386", "EM_386": "i386",
                   "aarch64": "aarch64", "EM_AARCH64": "aarch64", "riscv": "riscv",
                   "EM_RISCV": "riscv"}


def running_kernel() -> str:
    """``kern.bootfile`` of the running FreeBSD kernel (default /boot/kernel/kernel)."""
    import subprocess
    try:
        out = subprocess.run(["sysctl", "-n", "kern.bootfile"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or "/boot/kernel/kernel"


def _open_memory(source: Source, arch: str | None):
    from .memory import live, physimage

    if source.core is not None:
        return open_core(source.core, cache_dir=source.cache_dir,
                         max_uncompressed=source.max_uncompressed)
    if source.phys is not None:
        return physimage.open(source.phys, arch)
    if source.mem is not None:
        return live.open_mem(source.mem, arch)
    return live.open_kmem(KMEM, arch)


def open_session(core_path: str | None, kernel: str | None = None, *, force: bool = False,
                 types: str = "auto", cache_dir: str | None = None,
                 source: Source | None = None) -> Session:
    """Open a dump (or a live source) with its kernel, checked to match."""
    source = source or Source(core=core_path)
    if source.phys is not None and kernel is None:
        raise VnetdbgError("--phys needs the guest's kernel: give it with -k KERNEL")
    memory = None
    try:
        if source.core is not None:  # the dump first: its errors matter more
            memory = _open_memory(source, None)
            kernel_path = find_kernel(source.core, kernel)
            symbols = SymbolTable(kernel_path)
        else:
            kernel_path = find_kernel(source.label(), kernel, live=True)
            symbols = SymbolTable(kernel_path)
            memory = _open_memory(source, ARCH_OF_MACHINE.get(symbols.machine, "amd64"))
        return _open_with(memory, source, kernel_path, symbols, force, types, cache_dir)
    except BaseException:
        if memory is not None:
            memory.close()
        raise


def _open_with(memory, source, kernel_path, symbols, force, types, cache_dir) -> Session:
    core_path = source.label()
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
    # pointer, long and address width come from the kernel's ELF class (i386: 4)
    target = Target(memory, symbols, provider,
                    byteorder="little" if symbols.little_endian else "big",
                    pointer_size=symbols.elfclass // 8)
    info_path = find_info_file(source.core) if source.core else None
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
