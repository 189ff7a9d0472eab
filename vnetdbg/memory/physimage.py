"""Raw physical memory images: file offset = physical address (QEMU
``memory-backend-file``, bhyve ``/dev/vmm/NAME``, libkvm's "rawdump" mode), and the
``/dev/mem`` device of a live FreeBSD host (``live.DevMemSource`` builds on this).

Kernel virtual reads walk the kernel's page tables like an ELF full dump (the root
needs kernel symbols: ``attach_symbols``).  Nothing is cached between reads, neither
page contents nor translations: a running guest's memory changes under us.  A short
read, or a page-table entry pointing past the end of the image, faults that page only.
"""

from __future__ import annotations

import errno
import os

from vnetdbg.errors import FaultError, VnetdbgError
from vnetdbg.memory.paged import read_paged
from vnetdbg.memory.pagetables import X86KernelPageTables

NAME = "raw physical memory image"
PAGE_SIZE = 4096
PAGE_MASK = PAGE_SIZE - 1

_OPEN_ERRORS = {errno.ENOENT: "no such file", errno.EISDIR: "is a directory",
                errno.EACCES: "permission denied", errno.EPERM: "permission denied"}


class RawPhysImage:
    page_size = PAGE_SIZE
    kind = "raw physical memory image"

    def __init__(self, path, arch: str = "amd64", *, pread=os.pread):
        self.path = os.fspath(path)
        self.arch = arch
        self._pread = pread
        self._fd = self._open(self.path)
        self.tables = X86KernelPageTables(arch, self.read_phys)

    def _open(self, path: str) -> int:
        try:
            return os.open(path, os.O_RDONLY)
        except OSError as exc:
            reason = _OPEN_ERRORS.get(exc.errno) or exc.strerror or str(exc)
            raise VnetdbgError(f"cannot open memory image ({reason}): {path}") from None

    @property
    def format_name(self) -> str:
        return f"{self.kind} ({self.arch})"

    # -- physical ---------------------------------------------------------------------

    def _pread_page(self, pa: int, n: int) -> bytes:
        """``n`` bytes at ``pa``, all inside one page; FaultError at the first byte
        the image cannot supply."""
        got = b""
        while len(got) < n:
            try:
                chunk = self._pread(self._fd, n - len(got), pa + len(got))
            except OSError as exc:
                if exc.errno in (errno.EFAULT, errno.EIO, errno.ENXIO, errno.EINVAL):
                    raise FaultError(pa + len(got), f"physical address not readable "
                                                    f"({os.strerror(exc.errno)})") from None
                raise
            if not chunk:
                raise FaultError(pa + len(got), "physical address past the end of the image")
            got += chunk
        return got

    def read_phys(self, pa: int, size: int) -> bytes:
        return read_paged(pa, size, PAGE_SIZE,
                          lambda page, offset, n: self._pread_page(page + offset, n),
                          keep_fault_address=True)

    # -- virtual ----------------------------------------------------------------------

    def attach_symbols(self, lookup) -> None:
        self.tables.attach(lookup)

    def translate(self, va: int) -> int:
        return self.tables.translate(va)

    def read(self, address: int, size: int) -> bytes:
        return read_paged(address, size, PAGE_SIZE, lambda page, offset, n:
                          self._pread_page(self.tables.translate(page) | offset, n))

    # -- metadata ---------------------------------------------------------------------

    def msgbuf_region(self) -> None:
        return None

    def describe(self) -> dict:
        d = {"format": self.format_name, "arch": self.arch, "page-size": PAGE_SIZE,
             "path": self.path}
        try:
            st = os.fstat(self._fd)
            if st.st_size:
                d["image-size"] = st.st_size
        except OSError:
            pass
        d.update(self.tables.describe())
        return d

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open(path, arch: str = "amd64") -> RawPhysImage:  # noqa: A001 - registry name
    return RawPhysImage(path, arch)
