"""Other containers of the same machine state: ELF full dumps (sys/kern/kern_dump.c,
``debug.minidump=0``), raw physical images (file offset = physical address), raw
dump-device images with a ``struct kerneldumpheader`` (sys/sys/kerneldump.h, v1 and
v4) before the dump data and after it, and compressed vmcores as savecore/the kernel
write them (gzip: one member with the minimal header of sys/kern/subr_compressor.c;
zstd: one frame with a checksum and no content size).  Must not import vnetdbg.
"""

from __future__ import annotations

import struct
import zlib

from .archmachine import write_sparse

PAGE_SIZE = 4096
ET_CORE = 4
EV_CURRENT = 1
ELFOSABI_STANDALONE = 255
PT_LOAD = 1
PF_R, PF_W, PF_X = 4, 2, 1
EM = {"amd64": 62, "i386": 3, "arm64": 183, "riscv": 243}

KERNELDUMPMAGIC = b"FreeBSD Kernel Dump"
#: KERNELDUMP_<ARCH>_VERSION (sys/sys/kerneldump.h)
ARCH_VERSION = {"amd64": 2, "i386": 2, "arm64": 1, "riscv": 1}
KERNELDUMP_COMP_NONE, KERNELDUMP_COMP_GZIP, KERNELDUMP_COMP_ZSTD = 0, 1, 2


def _chunks_of(mem, start: int, end: int, file_off: int):
    for pa, page in sorted(mem.pages.items()):
        if start <= pa < end:
            yield file_off + pa - start, bytes(page)


def write_elf_full_dump(machine, path: str, arch: str = "amd64") -> dict:
    """One PT_LOAD per dump_avail chunk (p_paddr = p_vaddr = physical address), data
    from the first page boundary after the program headers (dumpsys_generic())."""
    chunks_pa = list(machine.dump_avail)
    is64 = arch in ("amd64", "arm64", "riscv")
    ehsize, phentsize = (64, 56) if is64 else (52, 32)
    shentsize = 64 if is64 else 40
    phoff = ehsize
    hdrsz = phoff + len(chunks_pa) * phentsize
    fileofs = -(-hdrsz // PAGE_SIZE) * PAGE_SIZE
    ident = b"\x7fELF" + bytes([2 if is64 else 1, 1, EV_CURRENT, ELFOSABI_STANDALONE]) + bytes(8)
    if is64:
        eh = ident + struct.pack("<HHIQQQIHHHHHH", ET_CORE, EM[arch], EV_CURRENT, 0, phoff, 0,
                                 0, ehsize, phentsize, len(chunks_pa), shentsize, 0, 0)
    else:
        eh = ident + struct.pack("<HHIIIIIHHHHHH", ET_CORE, EM[arch], EV_CURRENT, 0, phoff, 0,
                                 0, ehsize, phentsize, len(chunks_pa), shentsize, 0, 0)
    phdrs = b""
    off = fileofs
    data = []
    for a, b in chunks_pa:
        size = b - a
        if is64:
            phdrs += struct.pack("<IIQQQQQQ", PT_LOAD, PF_R | PF_W | PF_X, off, a, a, size, size,
                                 PAGE_SIZE)
        else:
            phdrs += struct.pack("<IIIIIIII", PT_LOAD, off, a, a, size, size, PF_R | PF_W | PF_X,
                                 PAGE_SIZE)
        data.append((a, b, off))
        off += size
    chunks = [(0, eh + phdrs)]
    for a, b, o in data:
        chunks.extend(_chunks_of(machine.mem, a, b, o))
    chunks.append((off - 1, b"\0")) if off > fileofs else None
    size = write_sparse(path, chunks)
    return {"size": size, "segments": [(a, b) for a, b in chunks_pa], "data_offset": fileofs}


def write_phys_image(machine, path: str) -> dict:
    """Every RAM byte at file offset = its physical address (holes read as zero)."""
    end = machine.mem.maxpa
    chunks = list(_chunks_of(machine.mem, 0, end, 0))
    chunks.append((end - 1, b"\0"))
    return {"size": write_sparse(path, chunks)}


def kerneldump_parity(block: bytes) -> int:
    acc = 0
    for (w,) in struct.iter_unpack(">I", block):
        acc ^= w
    return acc


def kerneldumpheader(version: int, *, arch: str, dumplength: int, dumptime: int,
                     blocksize: int = 512, hostname: bytes = b"", versionstring: bytes = b"",
                     panicstring: bytes = b"", compression: int = 0,
                     magic: bytes = KERNELDUMPMAGIC) -> bytes:
    """A 512-byte big-endian kerneldumpheader of ``version`` 1 or 4 with its parity."""
    h = bytearray(512)
    h[0:20] = magic.ljust(20, b"\0")[:20]
    h[20:32] = arch.encode().ljust(12, b"\0")[:12]
    struct.pack_into(">II", h, 32, version, ARCH_VERSION[arch])
    if version == 1:
        struct.pack_into(">QQI", h, 40, dumplength, dumptime, blocksize)
        h[60:124] = hostname[:63].ljust(64, b"\0")
        h[124:316] = versionstring[:191].ljust(192, b"\0")
        h[316:508] = panicstring[:191].ljust(192, b"\0")
    elif version == 4:
        struct.pack_into(">QQII", h, 40, dumplength, dumptime, 0, blocksize)
        h[64:128] = hostname[:63].ljust(64, b"\0")
        h[128:320] = versionstring[:191].ljust(192, b"\0")
        h[320:495] = panicstring[:174].ljust(175, b"\0")
        h[495] = compression
        struct.pack_into(">Q", h, 496, dumplength)          # dumpextent
    else:
        raise ValueError("kerneldumpheader versions 1 and 4 only")
    struct.pack_into(">I", h, 508, kerneldump_parity(bytes(h)))
    assert kerneldump_parity(bytes(h)) == 0
    return bytes(h)


def write_dump_device_image(vmcore: str, path: str, *, version: int, arch: str,
                            dumptime: int, hostname: bytes, versionstring: bytes,
                            panicstring: bytes, blocksize: int = 512) -> dict:
    """Leading header | dump data (padded to the block size) | trailing header, as
    the kernel leaves them on the dump device (dump_start()/dump_finish())."""
    with open(vmcore, "rb") as f:
        data = f.read()
    data += bytes(-len(data) % blocksize)
    hdr = kerneldumpheader(version, arch=arch, dumplength=len(data), dumptime=dumptime,
                           blocksize=blocksize, hostname=hostname,
                           versionstring=versionstring, panicstring=panicstring)
    lead = hdr + bytes(blocksize - 512)
    chunks = [(0, lead)]
    for off in range(0, len(data), 1 << 20):
        chunks.append((blocksize + off, data[off:off + (1 << 20)]))
    chunks.append((blocksize + len(data), lead))
    return {"size": write_sparse(path, chunks), "header": hdr, "data_offset": blocksize}


def gzip_member(data: bytes, level: int = 6) -> bytes:
    """One gzip member with the kernel's minimal header (no name, no mtime, OS unix)."""
    c = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = c.compress(data) + c.flush()
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + body
            + struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF))


def zstd_frame(data: bytes, level: int = 3) -> bytes:
    """One zstd frame with a content checksum and no content size (streamed)."""
    import zstandard
    c = zstandard.ZstdCompressor(level=level, write_checksum=True,
                                 write_content_size=False).compressobj()
    return c.compress(data) + c.flush()


def write_compressed(vmcore: str, path: str, codec: str) -> dict:
    with open(vmcore, "rb") as f:
        data = f.read()
    out = gzip_member(data) if codec == "gzip" else zstd_frame(data)
    with open(path, "wb") as f:
        f.write(out)
    return {"size": len(out), "uncompressed": len(data)}
