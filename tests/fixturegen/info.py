"""kerneldumpheader v4 and savecore's info.N text."""

from __future__ import annotations

import struct
import time

KERNELDUMPVERSION = 4
KERNELDUMP_AMD64_VERSION = 2
KERNELDUMPMAGIC = b"FreeBSD Kernel Dump"


def _cstr(s: bytes, size: int) -> bytes:
    """strlcpy into a ``size`` byte field."""
    s = s[: size - 1]
    return s + bytes(size - len(s))


def kerneldump_parity(hdr: bytes) -> int:
    par = 0
    for (w,) in struct.iter_unpack("<I", hdr):
        par ^= w
    return par


def build_kerneldumpheader(*, dumplength: int, dumptime: int, hostname: bytes,
                           versionstring: bytes, panicstring: bytes,
                           blocksize: int = 512, architecture: bytes = b"amd64") -> bytes:
    """A v4 header as dump_init_header() fills it (big-endian integers)."""
    h = bytearray(512)
    h[0:20] = _cstr(KERNELDUMPMAGIC, 20)
    h[20:32] = _cstr(architecture, 12)
    struct.pack_into(">II", h, 32, KERNELDUMPVERSION, KERNELDUMP_AMD64_VERSION)
    struct.pack_into(">QQ", h, 40, dumplength, dumptime)
    struct.pack_into(">II", h, 56, 0, blocksize)
    h[64:128] = _cstr(hostname, 64)
    vs = _cstr(versionstring, 192)
    if len(versionstring) >= 191:
        vs = vs[:190] + b"\n" + vs[191:]
    h[128:320] = vs
    h[320:495] = _cstr(panicstring, 175)
    h[495] = 0  # compression none
    struct.pack_into(">Q", h, 496, dumplength)  # dumpextent
    # parity: stored in host (little-endian) order so all words XOR to 0
    struct.pack_into("<I", h, 508, kerneldump_parity(bytes(h)))
    assert kerneldump_parity(bytes(h)) == 0
    return bytes(h)


def _field(h: bytes, a: int, b: int) -> str:
    return h[a:b].split(b"\0", 1)[0].decode("latin-1")


def format_info(hdr: bytes, *, device: str = "/dev/ada0p3", bounds: int = 0,
                status: str = "good") -> str:
    """savecore's printheader() output (libxo text style)."""
    arch = _field(hdr, 20, 32)
    archver, = struct.unpack_from(">I", hdr, 36)
    dumplen, dumptime = struct.unpack_from(">QQ", hdr, 40)
    blocksize, = struct.unpack_from(">I", hdr, 60)
    comp = {0: "none", 1: "gzip", 2: "zstd"}.get(hdr[495], "unknown")
    parity, = struct.unpack_from("<I", hdr, 508)
    t = time.strftime("%Y-%m-%d %H:%M:%S +0000", time.gmtime(dumptime))
    lines = [
        f"Dump header from device: {device}\n",
        f"  Architecture: {arch}\n",
        f"  Architecture Version: {archver}\n",
        f"  Dump Length: {dumplen}\n",
        f"  Blocksize: {blocksize}\n",
        f"  Compression: {comp}\n",
        f"  Dumptime: {t}\n",
        f"  Hostname: {_field(hdr, 64, 128)}\n",
        f"  Magic: {_field(hdr, 0, 20)}\n",
        f"  Version String: {_field(hdr, 128, 320)}",
        f"  Panic String: {_field(hdr, 320, 495)}\n",
        f"  Dump Parity: {parity}\n",
        f"  Bounds: {bounds}\n",
        f"  Dump Status: {status}\n",
    ]
    return "".join(lines)


def write_info(path: str, **kw) -> tuple[bytes, str]:
    device = kw.pop("device", "/dev/ada0p3")
    hdr = build_kerneldumpheader(**kw)
    text = format_info(hdr, device=device)
    with open(path, "w", encoding="latin-1", newline="\n") as f:
        f.write(text)
    return hdr, text
