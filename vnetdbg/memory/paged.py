"""The page-by-page read loop every memory source shares.

A read of ``size`` bytes at ``address`` is split at page boundaries.  Each piece comes
from ``fetch(page_address, offset_in_page, length)`` (bytes), or, for a source backed by
a mapped file ``mm``, from ``page_offset(page_address)`` (the page's file offset), in
which case pieces that follow each other in the file are sliced as one run.

A FaultError from ``fetch`` or ``page_offset`` is re-raised naming the first byte of
the read that could not be supplied (``cur``, the start of the failing piece) with the
original reason, unless the source already names the exact byte in the same address
space (``keep_fault_address``).
"""

from __future__ import annotations

import mmap

from vnetdbg.errors import FaultError


def drop_mapped_pages(mm: mmap.mmap) -> None:
    """Drop this process's mappings of the file pages read so far.  The data stays in
    the page cache and a later read faults it back in; a long walk over a big core
    (a million pcbs) otherwise keeps every page it touched in our RSS."""
    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None or mm.closed:
        return
    try:
        mm.madvise(advice)
    except (OSError, ValueError):
        pass


def read_paged(address: int, size: int, page_size: int, fetch=None, *, mm=None,
               page_offset=None, keep_fault_address: bool = False) -> bytes:
    if size < 0:
        raise ValueError("negative read size")
    chunks = []  # bytes pieces, or [start, end) file runs when reading ``mm``
    cur, end = address, address + size
    while cur < end:
        page = cur - cur % page_size
        n = min(end, page + page_size) - cur
        try:
            if mm is None:
                chunks.append(fetch(page, cur - page, n))
            else:
                start = page_offset(page) + (cur - page)
                if chunks and chunks[-1][1] == start:  # file-contiguous: extend the run
                    chunks[-1][1] = start + n
                else:
                    chunks.append([start, start + n])
        except FaultError as exc:
            if keep_fault_address:
                raise
            raise FaultError(cur, exc.reason) from None
        cur += n
    if mm is None:
        return b"".join(chunks)
    if len(chunks) == 1:
        return mm[chunks[0][0]:chunks[0][1]]
    return b"".join(mm[a:b] for a, b in chunks)


def read_mapped(mm, address: int, size: int, page_size: int, page_offset) -> bytes:
    """``read_paged`` over the mapped file ``mm``: ``page_offset(page_address)`` is the
    page's file offset or raises FaultError."""
    return read_paged(address, size, page_size, mm=mm, page_offset=page_offset)
