"""The kernel message buffer (what dmesg(8) shows), read through ``msgbufp``.

The buffer is a ring: ``msg_wseq`` is the next write position as a sequence number, so
the oldest byte sits at ``msg_wseq % msg_size`` once the ring has wrapped.  Like
dmesg(8), we rotate the ring to start there and drop the NUL bytes of a never-written
part.
"""

from __future__ import annotations

from ..objects import Target

MSG_MAGIC = 0x063062


def msgbuf_bytes(target: Target) -> bytes:
    """The message buffer contents, oldest first."""
    mbp = target.variable("msgbufp").deref()
    size = mbp.member("msg_size").value_()
    if size <= 0 or size > 64 << 20:
        return b""
    ring = target.read(mbp.member("msg_ptr").value_(), size)
    pos = mbp.member("msg_wseq").value_() % size
    return (ring[pos:] + ring[:pos]).replace(b"\0", b"")


def msgbuf_magic_ok(target: Target) -> bool:
    return target.variable("msgbufp").deref().member("msg_magic").value_() == MSG_MAGIC


def last_lines(data: bytes, count: int) -> list[str]:
    """The last ``count`` complete or partial lines of ``data`` as text."""
    lines = data.decode("utf-8", "surrogateescape").splitlines()
    return lines[-count:] if count else []
