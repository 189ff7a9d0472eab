"""Compressed vmcores (``vmcore.N.gz``, ``vmcore.N.zst``) and the core cache.

Neither stream is seekable, so the first open decompresses the whole core ONCE into a
cache file (sparse where pages are zero) and later opens reuse it without
decompressing.  The cache key is the compressed file's size, mtime, inode and a hash of
its first and last MiB (plus the byte range, for dumps extracted from a raw image), so
an edited or replaced file gets a new entry.

Guards: free disk space is checked before and while writing; output above
``max_uncompressed`` (default 64 GiB) is refused with a one-line error, so a
decompression bomb cannot fill the disk; a corrupted or truncated stream is a one-line
FormatError and the partial cache file is removed.  A progress bar is drawn on stderr
when it is a terminal.

zstd uses the ``zstandard`` package when it is importable, else the ``zstd`` command;
gzip uses zlib (multi-member streams, as ``savecore -z`` can write, are followed).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import threading
import time
import zlib

from vnetdbg.errors import FormatError, VnetdbgError

NAME = "compressed vmcore"

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
DEFAULT_MAX_UNCOMPRESSED = 64 << 30
MIB = 1 << 20
BLOCK = 4096
ZERO_BLOCK = bytes(BLOCK)
CHUNK = 4 * MIB
#: keep at least this much free on the cache filesystem while writing
FREE_RESERVE = 256 * MIB

#: how many times a stream was actually decompressed (tests check cache reuse with it)
DECOMPRESSIONS = 0


def default_cache_dir() -> str:
    d = os.environ.get("VNETDBG_CACHE_DIR")
    if d:
        return os.path.join(d, "cores")
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return os.path.join(xdg, "vnetdbg", "cores")
    return os.path.join(os.path.expanduser("~"), ".cache", "vnetdbg", "cores")


def codec_of(head: bytes) -> str | None:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def _range(path: str, offset: int, length: int | None) -> tuple[int, int]:
    size = os.stat(path).st_size
    end = size if length is None else min(size, offset + length)
    return offset, max(offset, end)


def cache_key(path: str, codec: str | None, offset: int = 0,
              length: int | None = None) -> str:
    st = os.stat(path)
    start, end = _range(path, offset, length)
    h = hashlib.sha256(f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{codec}:"
                       f"{start}:{end}".encode())
    with io.open(path, "rb") as f:
        f.seek(start)
        h.update(f.read(min(MIB, end - start)))
        tail = max(start, end - MIB)
        f.seek(tail)
        h.update(f.read(end - tail))
    return h.hexdigest()[:40]


# --- streaming ----------------------------------------------------------------------

def _read_range(path: str, start: int, end: int, progress):
    """Yield the compressed bytes of [start, end) in chunks, reporting progress."""
    with io.open(path, "rb") as f:
        f.seek(start)
        pos = start
        while pos < end:
            data = f.read(min(CHUNK, end - pos))
            if not data:
                break
            pos += len(data)
            progress(pos - start)
            yield data


def _gunzip(chunks):
    """Decompressed chunks of a (multi-member) gzip stream; at most CHUNK bytes of
    output per step, so a bomb is caught by the writer's limit before memory fills."""
    d = zlib.decompressobj(wbits=31)
    for data in chunks:
        while data:
            if d.eof:
                if not data.strip(b"\0"):
                    break  # zero padding after the last member (raw dump blocks)
                d = zlib.decompressobj(wbits=31)
            try:
                out = d.decompress(data, CHUNK)
            except zlib.error as exc:
                raise FormatError(str(exc)) from None
            if out:
                yield out
            data = d.unused_data if d.eof else d.unconsumed_tail
    if not d.eof:
        raise FormatError("stream ends early (truncated gzip file)")


#: zstd input is fed in slices this small: zstd's worst-case expansion (an RLE block)
#: is ~32768:1, so one slice cannot produce more than ~256 MiB in memory
ZSTD_SLICE = 8192


def _unzstd_module(chunks):
    import zstandard  # noqa: PLC0415 - optional at import time

    d = zstandard.ZstdDecompressor().decompressobj()
    eof = False
    try:
        for data in chunks:
            pending = memoryview(data)
            while len(pending):
                if eof:
                    if not bytes(pending).strip(b"\0"):
                        break  # zero padding after the last frame
                    d, eof = zstandard.ZstdDecompressor().decompressobj(), False
                piece, pending = pending[:ZSTD_SLICE], pending[ZSTD_SLICE:]
                out = d.decompress(piece)
                if out:
                    yield out
                if d.eof:
                    eof = True
                    if d.unused_data:
                        pending = memoryview(bytes(d.unused_data) + bytes(pending))
    except zstandard.ZstdError as exc:
        raise FormatError(str(exc)) from None
    if not eof:
        raise FormatError("stream ends early (truncated zstd file)")


def _unzstd_command(chunks):
    exe = shutil.which("zstd")
    if exe is None:
        raise VnetdbgError("reading a .zst vmcore needs the zstandard Python package "
                           "or the zstd command")
    proc = subprocess.Popen([exe, "-d", "-c", "-q"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    feed_error: list[BaseException] = []

    def feed():
        try:
            for data in chunks:
                proc.stdin.write(data)
        except BrokenPipeError:
            pass
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            feed_error.append(exc)
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass

    errs: list[bytes] = []
    t_err = threading.Thread(target=lambda: errs.append(proc.stderr.read()), daemon=True)
    t_in = threading.Thread(target=feed, daemon=True)
    t_err.start()
    t_in.start()
    finished = False
    try:
        while True:
            out = proc.stdout.read1(CHUNK)
            if not out:
                break
            yield out
        finished = True
    finally:
        if not finished:
            proc.kill()
        proc.stdout.close()
        rc = proc.wait()
        t_in.join()
        t_err.join()
    if feed_error:
        raise feed_error[0]
    if rc != 0:
        msg = (errs[0] if errs else b"").decode("utf-8", "replace").strip().splitlines()
        raise FormatError(f"zstd: {msg[-1] if msg else f'exit status {rc}'}")


def have_zstandard() -> bool:
    try:
        import zstandard  # noqa: F401,PLC0415
    except ImportError:
        return False
    return True


def decompressor(codec: str | None, use_module: bool | None = None):
    """Generator function turning compressed chunks into output chunks."""
    if codec is None:
        return lambda chunks: chunks
    if codec == "gzip":
        return _gunzip
    if codec == "zstd":
        if use_module is None:
            use_module = have_zstandard()
        return _unzstd_module if use_module else _unzstd_command
    raise ValueError(codec)


# --- sparse writer ------------------------------------------------------------------

class _SparseWriter:
    """Write a stream to ``fd`` leaving 4 KiB zero blocks as holes."""

    def __init__(self, fd: int, limit: int, space_check):
        self.fd, self.limit, self.space_check = fd, limit, space_check
        self.size = 0
        self._since_check = 0
        self._pending = b""

    def write(self, data: bytes) -> None:
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if self.size + len(data) > self.limit:
            raise _TooBig()
        usable = len(data) - len(data) % BLOCK
        if usable < len(data):
            self._pending = bytes(data[usable:])
        view = memoryview(data)[:usable]
        run_start = None
        pos = self.size
        for i in range(0, usable, BLOCK):
            if view[i:i + BLOCK] == ZERO_BLOCK:
                if run_start is not None:
                    os.pwrite(self.fd, view[run_start:i], pos + run_start)
                    run_start = None
            elif run_start is None:
                run_start = i
        if run_start is not None:
            os.pwrite(self.fd, view[run_start:usable], pos + run_start)
        self.size += usable
        self._since_check += usable
        if self._since_check >= 256 * MIB:
            self._since_check = 0
            self.space_check()

    def finish(self) -> None:
        if self._pending:
            if self.size + len(self._pending) > self.limit:
                raise _TooBig()
            if self._pending.strip(b"\0"):
                os.pwrite(self.fd, self._pending, self.size)
            self.size += len(self._pending)
            self._pending = b""
        os.ftruncate(self.fd, self.size)


class _TooBig(Exception):
    pass


def _progress_bar(label: str, total: int):
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()) or total <= 0:
        return lambda done: None, lambda: None
    last = [0.0]

    def update(done: int) -> None:
        now = time.monotonic()
        if now - last[0] < 0.2 and done < total:
            return
        last[0] = now
        frac = min(1.0, done / total)
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r{label} [{bar:<30}] {frac * 100:5.1f}%")
        sys.stderr.flush()

    def end() -> None:
        sys.stderr.write("\r" + " " * (len(label) + 42) + "\r")
        sys.stderr.flush()

    return update, end


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)  # pragma: no cover


def materialize(path, codec: str | None, *, offset: int = 0, length: int | None = None,
                cache_dir: str | None = None,
                max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED,
                use_module: bool | None = None) -> tuple[str, bool]:
    """Cache file holding the decompressed (or, with ``codec`` None, copied) bytes of
    ``path[offset:offset+length]``; returns (cache path, reused)."""
    global DECOMPRESSIONS
    path = os.fspath(path)
    cache_dir = cache_dir or default_cache_dir()
    try:
        os.makedirs(cache_dir, exist_ok=True)
    except OSError as exc:
        raise VnetdbgError(f"cannot create core cache directory {cache_dir}: "
                           f"{exc.strerror or exc}") from None
    key = cache_key(path, codec, offset, length)
    final = os.path.join(cache_dir, f"{key}.core")
    if os.path.exists(final):
        return final, True
    start, end = _range(path, offset, length)
    compressed_size = end - start

    def free() -> int:
        return shutil.disk_usage(cache_dir).free

    def space_check() -> None:
        if free() < FREE_RESERVE:
            raise VnetdbgError(f"core cache {cache_dir} is nearly full "
                               f"({_human(free())} free): free space or use another "
                               f"--cache-dir")

    if free() < FREE_RESERVE + (compressed_size if codec is None else 0):
        raise VnetdbgError(f"not enough free space in {cache_dir} "
                           f"({_human(free())} free) to unpack {path}")
    tmp = os.path.join(cache_dir, f"{key}.tmp.{os.getpid()}")
    what = {"gzip": "decompressing", "zstd": "decompressing", None: "extracting"}[codec]
    update, end_bar = _progress_bar(f"{what} {os.path.basename(path)}", compressed_size)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    ok = False
    try:
        DECOMPRESSIONS += 1
        writer = _SparseWriter(fd, max_uncompressed, space_check)
        for out in decompressor(codec, use_module)(_read_range(path, start, end, update)):
            writer.write(out)
        writer.finish()
        ok = True
    except _TooBig:
        raise VnetdbgError(f"{path} unpacks to more than {_human(max_uncompressed)} "
                           f"(max_uncompressed); refusing, it may be a decompression "
                           f"bomb; raise the limit if the core is really that big") \
            from None
    except FormatError as exc:
        raise FormatError(f"corrupted {codec} stream ({exc}): {path}") from None
    except OSError as exc:
        raise VnetdbgError(f"cannot write core cache file {tmp}: "
                           f"{exc.strerror or exc}") from None
    finally:
        os.close(fd)
        end_bar()
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    os.replace(tmp, final)
    return final, False


# --- wrapping the opened core -------------------------------------------------------

class Wrapped:
    """A memory source opened from a cache file, describing where it came from."""

    def __init__(self, inner, extra: dict, header: dict | None = None):
        self._inner = inner
        self._extra = extra
        self._header = header
        self.read = inner.read
        self.arch = inner.arch
        self.page_size = inner.page_size
        self.format_name = inner.format_name

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def describe(self) -> dict:
        d = self._inner.describe()
        d.update(self._extra)
        return d

    def dump_header(self) -> dict | None:
        return self._header

    def msgbuf_region(self):
        return self._inner.msgbuf_region()

    def close(self) -> None:
        self._inner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_cached(cache_path: str, origin: str):
    """Open an unpacked cache file with the registered formats (no nesting)."""
    from vnetdbg import memory  # noqa: PLC0415 - the registry imports this module

    with io.open(cache_path, "rb") as f:
        head = f.read(memory.PROBE_SIZE)
    if codec_of(head) or head.startswith((b"FreeBSD Kernel Dump", b"Cleared Kernel Dump")):
        raise FormatError(f"nested compression or dump header inside {origin}; "
                          f"unpack it by hand")
    try:
        return memory.open_core(cache_path)
    except FormatError as exc:
        text = str(exc)
        if text.endswith(": " + cache_path):
            text = text[:-len(cache_path) - 2]
        raise FormatError(f"{text} (in the unpacked core {cache_path}): {origin}") from None


def probe(first_bytes: bytes) -> bool:
    return codec_of(first_bytes) is not None


def open(path, *, cache_dir: str | None = None,  # noqa: A001 - registry protocol name
         max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED):
    path = os.fspath(path)
    with io.open(path, "rb") as f:
        codec = codec_of(f.read(4))
    if codec is None:
        raise FormatError(f"not a gzip or zstd file: {path}")
    cache, reused = materialize(path, codec, cache_dir=cache_dir,
                                max_uncompressed=max_uncompressed)
    inner = open_cached(cache, path)
    return Wrapped(inner, {"compression": codec, "compressed-file": path,
                           "cache-file": cache, "cache-reused": reused})

