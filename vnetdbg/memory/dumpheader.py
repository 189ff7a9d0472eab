"""``struct kerneldumpheader`` (``sys/sys/kerneldump.h``, v1-v4) and raw dump images
that still carry one: netdump/TFTP images and dump-device extracts start with the
512-byte big-endian header, followed (in its own block) by the optional encryption key
and the dump data.  ``savecore``'s ``vmcore.N`` never has one.

``parse`` decodes any version, ``parity`` is savecore's check (XOR of the 128 u32 words
is 0), and ``open`` finds the dump data (``blocksize + dumpkeysize`` bytes in,
``dumplength`` long), unpacks it into the core cache (decompressing kernel-compressed
dumps), and opens it with the matching format; the returned source answers
``dump_header()`` with the savecore ``info.N`` fields.  ``find_trailing`` reads a whole
dump-device image from its end, as savecore does.
"""

from __future__ import annotations

import io
import os
import struct
import time
from dataclasses import dataclass

from vnetdbg.errors import FormatError
from vnetdbg.memory import compressed

NAME = "raw dump image (kerneldumpheader)"
HEADER_SIZE = 512
MAGIC_DUMP = "FreeBSD Kernel Dump"
MAGIC_TEXT = "FreeBSD Text Dump"
MAGIC_CLEARED = "Cleared Kernel Dump"
MAGICS = (MAGIC_DUMP, MAGIC_TEXT, MAGIC_CLEARED)
COMPRESSION = {0: "none", 1: "gzip", 2: "zstd"}
CODECS = {1: "gzip", 2: "zstd"}
MAX_BLOCKSIZE = 1 << 20


@dataclass(frozen=True)
class KernelDumpHeader:
    magic: str
    architecture: str
    version: int
    architectureversion: int
    dumplength: int
    dumptime: int
    dumpkeysize: int
    blocksize: int
    hostname: str
    versionstring: str
    panicstring: str
    compression: int
    dumpextent: int
    parity: int          # the stored word
    parity_ok: bool

    @property
    def cleared(self) -> bool:
        return self.magic == MAGIC_CLEARED

    @property
    def textdump(self) -> bool:
        return self.magic == MAGIC_TEXT


def _str(b: bytes) -> str:
    return b.split(b"\0", 1)[0].decode("utf-8", "replace")


def parity(block: bytes) -> int:
    """XOR of the 128 32-bit words; 0 for a valid header (any byte order works)."""
    acc = 0
    for (word,) in struct.iter_unpack(">I", block[:HEADER_SIZE]):
        acc ^= word
    return acc


def parse(block: bytes) -> KernelDumpHeader:
    """Decode a 512-byte header of any known version; FormatError if it is not one."""
    if len(block) < HEADER_SIZE:
        raise FormatError(f"truncated kerneldumpheader ({len(block)} of 512 bytes)")
    magic = _str(block[0:20])
    if magic not in MAGICS:
        raise FormatError(f"no kerneldumpheader magic ({block[:20]!r})")
    arch = _str(block[20:32])
    version, archver = struct.unpack_from(">II", block, 32)
    stored_parity, = struct.unpack_from(">I", block, 508)
    ok = parity(block) == 0
    if version == 1:
        dumplength, dumptime, blocksize = struct.unpack_from(">QQI", block, 40)
        keysize, compression = 0, 0
        hostname, vstr, pstr = block[60:124], block[124:316], block[316:508]
        extent = dumplength
    elif version == 2:
        dumplength, dumptime, keysize, blocksize = struct.unpack_from(">QQII", block, 40)
        compression = 0
        hostname, vstr, pstr = block[64:128], block[128:320], block[320:508]
        extent = dumplength
    elif version == 3:
        dumplength, extent, dumptime, keysize, blocksize, compression = \
            struct.unpack_from(">QQQIIB", block, 40)
        hostname, vstr, pstr = block[73:137], block[137:329], block[329:508]
    elif version == 4:
        dumplength, dumptime, keysize, blocksize = struct.unpack_from(">QQII", block, 40)
        compression = block[495]
        extent, = struct.unpack_from(">Q", block, 496)
        hostname, vstr, pstr = block[64:128], block[128:320], block[320:495]
    else:
        raise FormatError(f"unsupported kerneldumpheader version {version}")
    return KernelDumpHeader(magic, arch, version, archver, dumplength, dumptime, keysize,
                            blocksize, _str(hostname), _str(vstr), _str(pstr), compression,
                            extent, stored_parity, ok)


def info(hdr: KernelDumpHeader, status: str | None = None) -> dict:
    """The fields savecore writes to ``info.N``, libxo-style keys."""
    d = {
        "magic": hdr.magic,
        "header-version": hdr.version,
        "architecture": hdr.architecture,
        "architecture-version": hdr.architectureversion,
        "dump-length": hdr.dumplength,
        "blocksize": hdr.blocksize,
        "compression": COMPRESSION.get(hdr.compression, f"unknown ({hdr.compression})"),
        "dumptime": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(hdr.dumptime)),
        "hostname": hdr.hostname,
        "version-string": hdr.versionstring,
        "panic-string": hdr.panicstring,
        "dump-parity": hdr.parity,
        "dump-status": status or ("cleared" if hdr.cleared else
                                  "good" if hdr.parity_ok else "bad"),
    }
    if hdr.dumpkeysize:
        d["dump-key-size"] = hdr.dumpkeysize
    if hdr.dumpextent != hdr.dumplength:
        d["dump-extent"] = hdr.dumpextent
    return d


def info_lines(hdr: KernelDumpHeader, device: str = "?", status: str | None = None) -> str:
    """Text like savecore's ``info.N``."""
    d = info(hdr, status)
    lines = [f"Dump header from device: {device}",
             f"  Architecture: {hdr.architecture}",
             f"  Architecture Version: {hdr.architectureversion}",
             f"  Dump Length: {hdr.dumplength}",
             f"  Blocksize: {hdr.blocksize}"]
    if hdr.version >= 3:
        lines.append(f"  Compression: {d['compression']}")
    lines += [f"  Dumptime: {d['dumptime']}",
              f"  Hostname: {hdr.hostname}",
              f"  Magic: {hdr.magic}",
              f"  Version String: {hdr.versionstring.rstrip(chr(10))}",
              f"  Panic String: {hdr.panicstring}",
              f"  Dump Parity: {hdr.parity}",
              f"  Dump Status: {d['dump-status']}"]
    return "\n".join(lines) + "\n"


def _blocksize(hdr: KernelDumpHeader) -> int:
    bs = hdr.blocksize
    if bs < HEADER_SIZE or bs > MAX_BLOCKSIZE or bs & (bs - 1):
        raise FormatError(f"implausible kerneldumpheader blocksize {bs}")
    return bs


def check_usable(hdr: KernelDumpHeader) -> None:
    """Refuse what cannot be read as memory, each with a one-line reason."""
    if not hdr.parity_ok:
        raise FormatError(f"bad kerneldumpheader parity (stored word {hdr.parity:#010x}; "
                          f"the 128 words do not XOR to 0), savecore would refuse it")
    if hdr.textdump:
        raise FormatError("textdump, not a memory dump")
    if hdr.dumpkeysize:
        raise FormatError("encrypted dump: extract it with savecore (vmcore_encrypted.N "
                          "+ key.N), then decrypt with decryptcore(8): decryptcore -p "
                          "private.pem -k key.N -e vmcore_encrypted.N -c vmcore.N")
    if hdr.compression not in (0, 1, 2):
        raise FormatError(f"unknown dump compression {hdr.compression}")


@dataclass(frozen=True)
class Location:
    header_offset: int
    data_offset: int
    data_length: int
    status: str          # good / bad / cleared / unknown
    truncated: bool


def locate_leading(hdr: KernelDumpHeader, header_offset: int, file_size: int,
                   status: str | None = None) -> Location:
    """Dump data follows the header's block and the key: ``blocksize + dumpkeysize``."""
    data = header_offset + _blocksize(hdr) + hdr.dumpkeysize
    if data >= file_size:
        raise FormatError(f"truncated raw dump: no dump data after the header "
                          f"(data at offset {data}, file has {file_size})")
    length = min(hdr.dumplength, file_size - data)
    return Location(header_offset, data, length,
                    status or ("cleared" if hdr.cleared else "unknown"),
                    length < hdr.dumplength)


def find_trailing(path) -> tuple[KernelDumpHeader, Location]:
    """A whole dump-device image: the trailing header sits in the last block, the
    leading one ``dumpextent + blocksize + dumpkeysize`` before it (savecore's walk);
    they must be identical for status "good"."""
    path = os.fspath(path)
    with io.open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        for bs in (512, 4096):
            if size < 2 * bs:
                continue
            f.seek(size - bs)
            block = f.read(HEADER_SIZE)
            try:
                hdr = parse(block)
            except FormatError:
                continue
            lead = size - bs - hdr.dumpextent - bs - hdr.dumpkeysize
            if lead < 0:
                raise FormatError(f"trailing kerneldumpheader claims a {hdr.dumpextent}-"
                                  f"byte dump, the image has {size} bytes: {path}")
            f.seek(lead)
            lead_block = f.read(HEADER_SIZE)
            status = "good" if lead_block == block and hdr.parity_ok else "bad"
            if hdr.cleared:
                status = "cleared"
            loc = Location(lead, lead + bs + hdr.dumpkeysize,
                           min(hdr.dumplength, size - bs - (lead + bs + hdr.dumpkeysize)),
                           status, False)
            return hdr, loc
    raise FormatError(f"no kerneldumpheader in the last block: {path}")


def open_at(path, hdr: KernelDumpHeader, loc: Location, *, cache_dir: str | None = None,
            max_uncompressed: int = compressed.DEFAULT_MAX_UNCOMPRESSED):
    """Unpack the located dump data into the core cache and open it."""
    path = os.fspath(path)
    try:
        check_usable(hdr)
    except FormatError as exc:
        raise FormatError(f"{exc}: {path}") from None
    codec = CODECS.get(hdr.compression)
    cache, reused = compressed.materialize(path, codec, offset=loc.data_offset,
                                           length=loc.data_length, cache_dir=cache_dir,
                                           max_uncompressed=max_uncompressed)
    inner = compressed.open_cached(cache, path)
    extra = {"container": "raw dump image with kerneldumpheader",
             "container-file": path, "dump-data-offset": loc.data_offset,
             "dump-status": loc.status, "cache-file": cache, "cache-reused": reused}
    if codec:
        extra["compression"] = codec
    if loc.truncated:
        extra["container-truncated"] = True
    return compressed.Wrapped(inner, extra, info(hdr, loc.status))


def probe(first_bytes: bytes) -> bool:
    return first_bytes.startswith((MAGIC_DUMP.encode(), MAGIC_CLEARED.encode()))


def open(path, **kwargs):  # noqa: A001 - registry protocol name
    path = os.fspath(path)
    with io.open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        block = f.read(HEADER_SIZE)
    try:
        hdr = parse(block)
        check_usable(hdr)
        loc = locate_leading(hdr, 0, size)
    except FormatError as exc:
        raise FormatError(f"{exc}: {path}") from None
    return open_at(path, hdr, loc, **kwargs)
