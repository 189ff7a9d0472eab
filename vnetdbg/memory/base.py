"""The one interface every memory source implements.

A memory source answers ``read(address, size)`` for kernel virtual addresses, page by
page, and raises ``FaultError`` naming the first address it cannot supply.  It never
returns short data.  Formats are recognised by ``probe(first_bytes)`` and opened by
``open(path)``; both are registered in ``vnetdbg.memory.FORMATS`` (libkvm's ``kvm_arch``
table is the model).
"""

from __future__ import annotations

from typing import Callable, Protocol  # noqa: F401 - used in docs


class MemorySource(Protocol):
    #: FreeBSD MACHINE_ARCH of the dumped machine ("amd64")
    arch: str
    #: page size of the dump
    page_size: int
    #: human-readable format ("amd64 minidump v3")
    format_name: str

    def read(self, address: int, size: int) -> bytes:
        """``size`` bytes at kernel virtual ``address``; FaultError at the first absent byte."""

    def describe(self) -> dict:
        """Facts for ``vnetdbg info`` (format, arch, version, page size, present pages,
        kernbase, dmapbase, dmapend, ...), JSON-serialisable, keys in libxo style."""

    def msgbuf_region(self) -> bytes | None:
        """The raw message-buffer ring the dump carries beside memory, if the format has one."""

    def close(self) -> None:
        ...

    # Optional: ``drop_cached_pages()`` -- sources that mmap their file let long walks
    # drop the pages mapped so far, so RSS stays bounded (``paged.drop_mapped_pages``).

    # Optional methods (not every source has them; look them up with getattr):
    #
    # def attach_symbols(self, lookup: Callable[[str], int | None]) -> None:
    #     Sources that translate through the kernel's own page tables (ELF full dumps,
    #     raw physical images, /dev/mem) need kernel symbols to find the root
    #     (KPML4phys on amd64, IdlePDPT / IdlePTD on i386).  ``lookup(name)`` returns the
    #     symbol's address or None.  vnetdbg.session calls it right after loading the
    #     kernel's symbols; until then virtual reads fault and read_phys works.
    #
    # def read_phys(self, pa: int, size: int) -> bytes:
    #     Physical reads, page by page, FaultError at the first absent byte.
    #
    # def dump_header(self) -> dict | None:
    #     For cores found behind a kerneldumpheader (raw dump images): the header's
    #     fields as savecore's info.N shows them.
