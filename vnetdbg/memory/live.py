"""The live FreeBSD kernel: ``/dev/kmem`` (kernel virtual addresses) and ``/dev/mem``
(physical memory plus a walk of the kernel page tables).

``/dev/kmem`` offsets *are* KVAs; amd64/arm64 KVAs >= 2**63 are negative ``off_t``,
which FreeBSD accepts for character devices and Python's ``os.lseek`` refuses, so reads
use ``os.pread(fd, n, kva - 2**64)`` (gotcha 11).  The kernel clamps each transfer to a
page and fails only when nothing could be copied, so a read stops at the first unmapped
page: short reads and EFAULT become FaultError naming that address.

Everything that touches the host is a parameter so tests can run on Linux against a
regular file: the device path, the KVA -> offset function and the pread callable.
"""

from __future__ import annotations

import errno
import os

from vnetdbg.errors import FaultError, VnetdbgError
from vnetdbg.memory.paged import read_paged
from vnetdbg.memory.physimage import RawPhysImage

NAME = "live kernel"
PAGE_SIZE = 4096
PAGE_MASK = PAGE_SIZE - 1
KMEM = "/dev/kmem"
MEM = "/dev/mem"


def kmem_offset(kva: int) -> int:
    """The ``off_t`` for ``kva`` on /dev/kmem: two's-complement for the upper half."""
    kva &= (1 << 64) - 1
    return kva - (1 << 64) if kva >= 1 << 63 else kva


def open_device(path: str, what: str) -> int:
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise VnetdbgError(f"cannot open {path}: permission denied "
                               f"(need root or group kmem)") from None
        if exc.errno == errno.ENOENT:
            raise VnetdbgError(f"cannot open {path}: no such device "
                               f"({what} needs a FreeBSD host)") from None
        raise VnetdbgError(f"cannot open {path}: {exc.strerror or exc}") from None


class KmemSource:
    """Kernel virtual reads through /dev/kmem, page by page, no caching."""

    page_size = PAGE_SIZE
    format_name = "live kernel (/dev/kmem)"

    def __init__(self, path: str = KMEM, arch: str = "amd64", *, offset=kmem_offset,
                 pread=os.pread):
        self.path = os.fspath(path)
        self.arch = arch
        self._offset = offset
        self._pread = pread
        self._fd = open_device(self.path, "live kernel access")

    def _read_chunk(self, kva: int, n: int) -> bytes:
        got = b""
        while len(got) < n:
            at = kva + len(got)
            try:
                chunk = self._pread(self._fd, n - len(got), self._offset(at))
            except OSError as exc:
                if exc.errno in (errno.EFAULT, errno.EIO, errno.ENXIO, errno.EINVAL):
                    raise FaultError(at, f"not mapped in the live kernel "
                                         f"({os.strerror(exc.errno)})") from None
                if exc.errno in (errno.EACCES, errno.EPERM):
                    raise VnetdbgError(f"cannot read {self.path}: permission denied "
                                       f"(need root or group kmem)") from None
                raise VnetdbgError(f"cannot read {self.path}: {exc.strerror}") from None
            if not chunk:
                raise FaultError(at, "short read from the live kernel")
            got += chunk
        return got

    def read(self, address: int, size: int) -> bytes:
        return read_paged(address, size, PAGE_SIZE,
                          lambda page, offset, n: self._read_chunk(page + offset, n),
                          keep_fault_address=True)

    def msgbuf_region(self) -> None:
        return None

    def describe(self) -> dict:
        return {"format": self.format_name, "arch": self.arch, "page-size": PAGE_SIZE,
                "device": self.path, "live": True}

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DevMemSource(RawPhysImage):
    """Physical reads from /dev/mem, virtual reads by walking the kernel page tables
    from KPML4phys (amd64) or IdlePDPT/IdlePTD (i386); needs ``attach_symbols``."""

    kind = "live kernel (/dev/mem)"

    def __init__(self, path: str = MEM, arch: str = "amd64", *, pread=os.pread):
        super().__init__(path, arch, pread=pread)

    def _open(self, path: str) -> int:
        return open_device(path, "live kernel access")

    @property
    def format_name(self) -> str:
        return f"{self.kind}"

    def describe(self) -> dict:
        d = super().describe()
        d["live"] = True
        return d


def open_kmem(path: str = KMEM, arch: str = "amd64") -> KmemSource:
    return KmemSource(path, arch)


def open_mem(path: str = MEM, arch: str = "amd64") -> DevMemSource:
    return DevMemSource(path, arch)
