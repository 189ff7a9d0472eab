"""Memory sources and the format registry.

``FORMATS`` plays the role of libkvm's ``kvm_arch`` list: each entry is a module with
``NAME``, ``probe(first_bytes)`` and ``open(path)``.  ``open_core`` picks the first
format whose probe accepts the file.  Files we recognise but cannot read yet are named
by ``UNSUPPORTED`` so the user learns what they have instead of "unrecognised".
"""

from __future__ import annotations

import errno
import inspect
import os

from vnetdbg.errors import FormatError, VnetdbgError
from vnetdbg.memory import (compressed, dumpheader, elfcore, minidump_amd64, minidump_arm64,
                            minidump_i386, minidump_riscv)
from vnetdbg.memory.base import MemorySource

FORMATS = (minidump_amd64, minidump_arm64, minidump_i386, minidump_riscv, elfcore,
           dumpheader, compressed)

PROBE_SIZE = 4096

_ET_CORE = 4


def _prefix(magic: bytes):
    return lambda b: {} if b.startswith(magic) else None


def _other_minidump(b: bytes) -> dict | None:
    """Any ``minidump FreeBSD/<arch>`` that no registered format accepted."""
    tag = b"minidump FreeBSD/"
    if not b.startswith(tag):
        return None
    arch = b[len(tag):32].split(b"\0", 1)[0].decode("ascii", "replace")
    return {"arch": arch or "?"}


def _elf_type(b: bytes) -> int | None:
    if not b.startswith(b"\x7fELF") or len(b) < 18:
        return None
    return int.from_bytes(b[16:18], "big" if b[5] == 2 else "little")


def _elf_other(b: bytes) -> dict | None:
    etype = _elf_type(b)
    return None if etype in (None, _ET_CORE) else {}


def _ustar(b: bytes) -> dict | None:
    return {} if b[257:262] == b"ustar" else None


# (matcher, message): a matcher returns None for "not this", else fields for the message.
UNSUPPORTED = (
    (_other_minidump, "FreeBSD/{arch} minidumps are not supported (vnetdbg reads amd64, "
                      "arm64, i386 and riscv minidumps)"),
    (_elf_other, "ELF file but not a core dump (a kernel or module?), not a vmcore"),
    (_prefix(b"FreeBSD Text Dump"), "textdump, not a memory dump"),
    (_ustar, "textdump, not a memory dump"),
)

# (file-name matcher, message) for files whose bytes say nothing (ciphertext).
UNSUPPORTED_NAMES = (
    (lambda name: name.startswith("vmcore_encrypted"),
     "encrypted vmcore: decrypt it first with decryptcore(8), e.g. "
     "decryptcore -p private.pem -k key.N -e vmcore_encrypted.N -c vmcore.N"),
    (lambda name: name.startswith("key.") or name == "key.last",
     "dump encryption key (key.N), not a vmcore: give decryptcore(8) the "
     "vmcore_encrypted.N beside it"),
)

_OS_ERRORS = {
    errno.ENOENT: "no such file",
    errno.EISDIR: "is a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


def _read_head(path: str) -> bytes:
    """First PROBE_SIZE bytes, with OS failures turned into one-line user errors."""
    try:
        with open(path, "rb") as f:
            return f.read(PROBE_SIZE)
    except OSError as exc:
        reason = _OS_ERRORS.get(exc.errno) or exc.strerror or str(exc)
        raise VnetdbgError(f"cannot open core ({reason}): {path}") from None


def identify_unsupported(first_bytes: bytes) -> str | None:
    """Message for a file we recognise but cannot read, else None."""
    for matcher, message in UNSUPPORTED:
        fields = matcher(first_bytes)
        if fields is not None:
            return message.format(**fields)
    return None


def _accepted(open_func, options: dict) -> dict:
    """The options (cache_dir, max_uncompressed, ...) this format's open() takes."""
    params = inspect.signature(open_func).parameters
    return {k: v for k, v in options.items() if v is not None and k in params}


def open_core(path, **options) -> MemorySource:
    """Open a vmcore with the first registered format whose probe accepts it.
    ``options`` (cache_dir, max_uncompressed) go to the formats that use them."""
    path = os.fspath(path)
    head = _read_head(path)
    if not head:
        raise FormatError(f"empty file, not a vmcore: {path}")
    for fmt in FORMATS:
        if fmt.probe(head):
            return fmt.open(path, **_accepted(fmt.open, options))
    message = identify_unsupported(head)
    name = os.path.basename(path)
    for matcher, text in UNSUPPORTED_NAMES:
        if message is None and matcher(name):
            message = text
    if message:
        raise FormatError(f"{message}: {path}")
    raise FormatError(f"not a FreeBSD vmcore (unrecognised format): {path}")
