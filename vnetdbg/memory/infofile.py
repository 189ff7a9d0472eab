"""savecore's ``info.N``: the dump's kerneldumpheader rendered as text.

``vmcore.N`` carries no kerneldumpheader, so hostname, dump time, panic string and the
kernel version of a saved dump are only here.  Format (doc 1.3)::

    Dump header from device: /dev/ada0p3
      Architecture: amd64
      Version String: FreeBSD 11.0-RELEASE #0 r306420: ...
        root@host:/usr/obj/usr/src/sys/GENERIC
      Panic String: page fault
      ...

The version string carries its own newline(s), so its value runs until the
``  Panic String:`` line.  The result is a plain JSON-ready dict with snake_case keys
(``version_string``, ``dumptime``, ...; None when a line is missing); every line as
printed, unknown keys included, is also kept under ``fields``.
"""

from __future__ import annotations

import re
from pathlib import Path

from vnetdbg.errors import FormatError

_DEVICE_LINE = re.compile(r"^Dump header from device:?\s*(.*)$")  # pre-libxo: no colon
_KEY_LINE = re.compile(r"^  ([A-Za-z][A-Za-z ]*?):(?: (.*))?$")
_VERSION_KEY = "Version String"
_VERSION_END = "  Panic String:"
_CORE_NAME = re.compile(r"^(?:vmcore|vmcore_encrypted)\.(\d+|last)(?:\.gz|\.zst)?$")


def _leading_int(text: str) -> int | None:
    """Numbers may carry decoration (old savecore: "Dump Length: 123B (0 MB)")."""
    m = re.match(r"\s*(\d+)", text)
    return int(m.group(1)) if m else None


# printed key -> (dict key, converter)
_KEYS = {
    "Architecture": ("architecture", str),
    "Architecture Version": ("architecture_version", _leading_int),
    "Dump Length": ("dump_length", _leading_int),
    "Blocksize": ("blocksize", _leading_int),
    "Compression": ("compression", str),
    "Dumptime": ("dumptime", str),
    "Hostname": ("hostname", str),
    "Magic": ("magic", str),
    "Version String": ("version_string", str),
    "Panic String": ("panic_string", str),
    "Dump Parity": ("dump_parity", _leading_int),
    "Bounds": ("bounds", _leading_int),
    "Dump Status": ("dump_status", str),
}


def split_fields(text: str) -> tuple[str | None, dict[str, str]]:
    """(device, {key: raw value}); continuation lines join the previous value."""
    device = None
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        dm = _DEVICE_LINE.match(line)
        if dm:
            device = dm.group(1).strip()
            key = None
            continue
        in_version = key == _VERSION_KEY and not line.startswith(_VERSION_END)
        m = None if in_version else _KEY_LINE.match(line)
        if m:
            key = m.group(1)
            fields[key] = m.group(2) or ""
        elif key is not None:
            fields[key] += "\n" + line
    return device, {k: v.rstrip() for k, v in fields.items()}


def parse_info(text: str) -> dict:
    device, fields = split_fields(text)
    if device is None and not fields:
        raise FormatError("not a savecore info file (no dump header lines)")
    info = {"device": device}
    for key, (name, conv) in _KEYS.items():
        info[name] = conv(fields[key]) if key in fields else None
    info["fields"] = fields
    return info


def parse_info_file(path) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise FormatError(f"cannot read info file ({exc.strerror}): {path}") from None
    try:
        return parse_info(text)
    except FormatError as exc:
        raise FormatError(f"{exc}: {path}") from None


def find_info_file(core_path) -> Path | None:
    """``.../info.N`` beside ``.../vmcore.N[.gz|.zst]`` if it exists, else None."""
    core = Path(core_path)
    m = _CORE_NAME.match(core.name)
    if not m:
        return None
    info = core.with_name(f"info.{m.group(1)}")
    return info if info.is_file() else None
