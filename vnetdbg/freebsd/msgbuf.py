"""The kernel message buffer (what dmesg(8) shows), read through ``msgbufp``.

The buffer is a ring: ``msg_wseq`` is the next write position as a sequence number, so
the oldest byte sits at ``msg_wseq % msg_size`` once the ring has wrapped.  Like
dmesg(8), we rotate the ring to start there and drop the NUL bytes of a never-written
part.
"""

from __future__ import annotations

from ..objects import Target

MSG_MAGIC = 0x063062


def msgbuf_ring(target: Target) -> tuple[bytes, int]:
    """The raw ring (``msg_size`` bytes at ``msg_ptr``) and the write position in it."""
    mbp = target.variable("msgbufp").deref()
    size = mbp.member("msg_size").value_()
    if size <= 0 or size > 64 << 20:
        return b"", 0
    ring = target.read(mbp.member("msg_ptr").value_(), size)
    return ring, mbp.member("msg_wseq").value_() % size


def ordered(ring: bytes, pos: int) -> bytes:
    """Rotate the ring to start at its oldest byte and drop never-written NULs."""
    return (ring[pos:] + ring[:pos]).replace(b"\0", b"")


def msgbuf_bytes(target: Target) -> bytes:
    """The message buffer contents, oldest first."""
    return ordered(*msgbuf_ring(target))


def cross_check(target: Target, region: bytes | None) -> str | None:
    """Compare the ring in dump memory with the copy a minidump carries beside memory
    (written by the dumping kernel from ``msgbufp->msg_ptr``); a difference means the
    dump or the kernel match is suspect.  Returns a problem message or None."""
    if not region:
        return None
    ring, _ = msgbuf_ring(target)
    if ring != region[:len(ring)]:
        return ("the message buffer in dump memory differs from the dump's own msgbuf "
                "region (wrong kernel, or memory changed while dumping)")
    return None


def msgbuf_magic_ok(target: Target) -> bool:
    return target.variable("msgbufp").deref().member("msg_magic").value_() == MSG_MAGIC


def last_lines(data: bytes, count: int) -> list[str]:
    """The last ``count`` complete or partial lines of ``data`` as text."""
    lines = data.decode("utf-8", "surrogateescape").splitlines()
    return lines[-count:] if count else []
