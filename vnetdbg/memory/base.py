"""The one interface every memory source implements.

A memory source answers ``read(address, size)`` for kernel virtual addresses, page by
page, and raises ``FaultError`` naming the first address it cannot supply.  It never
returns short data.  Formats are recognised by ``probe(first_bytes)`` and opened by
``open(path)``; both are registered in ``vnetdbg.memory.FORMATS`` (libkvm's ``kvm_arch``
table is the model).
"""

from __future__ import annotations

from typing import Protocol


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
