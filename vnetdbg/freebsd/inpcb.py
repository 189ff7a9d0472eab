"""Internet protocol control blocks (``struct inpcb``) of one network stack, fast.

Each protocol keeps its pcbs on one list in a per-stack ``struct inpcbinfo``:
``V_tcbinfo`` (TCP, listeners and TIME_WAIT included), ``V_udbinfo``, ``V_ulitecbinfo``
and ``V_ripcbinfo`` (raw IP).  ``ipi_listhead`` is a *pointer* to the list head on
12/13 (``V_tcb`` ...) and an *embedded* head on 14+; the DWARF type of the member says
which.  Elements are linked through ``inp_list`` (CK_LIST ``cle_next``; LIST
``le_next`` is accepted too).

Per pcb the reader decodes what netstat prints (``Pcb``): ``inp_vflag``, ``inp_flags``,
ports and addresses from ``inp_inc.inc_ie`` (ports in network byte order, the address
unions spelled ``ie_dependfaddr``/``ie_dependladdr`` or, before 12,
``ie6_foreign``/``ie6_local``), the socket (``so_options``; for a listening socket,
``SO_ACCEPTCONN``, the listen half of the union: ``sol_qlen``/``sol_incqlen``/
``sol_qlimit``, otherwise ``so_rcv``/``so_snd`` ``sb_ccc`` (``sb_cc`` on old kernels)),
the protocol number from ``so_proto->pr_protocol`` and, for TCP, ``t_state``/``t_flags``:

- 12/13: ``(struct tcpcb *)inp_ppcb``, or TIME_WAIT when ``inp_flags & INP_TIMEWAIT``
  (``inp_ppcb`` is then a ``struct tcptw``, and there is usually no socket);
- 14+: the tcpcb *embeds* the inpcb (``t_inpcb``, a struct, at offset 0), so the tcpcb
  is ``container_of(inp)`` and is read together with it; ``t_state`` may be a bitfield.

Speed (one stack can hold 500,000 pcbs): every member offset is worked out once per
target from the types (``PcbLayout``); the hot loop reads each inpcb's span of bytes
once with ``target.read`` and decodes it with precompiled ``struct.Struct``s: no type
lookups and no ``Value`` objects per pcb.  The walk is bounded and cycle-safe, and a
link into an absent page ends that list with a problem naming the address (a partial
report beats none).
"""

from __future__ import annotations

import struct
from typing import Iterator

from ..debuginfo.types import Kind, Type
from ..errors import FaultError, VnetdbgError
from ..objects import Target
from .queue import DEFAULT_LIMIT

INP_IPV4 = 0x1
INP_IPV6 = 0x2
INP_ANONPORT = 0x40
INP_TIMEWAIT = 0x01000000      # 12/13 only (bits were renumbered in 14)
SO_ACCEPTCONN = 0x2
TCPS_LISTEN = 1
TCPS_TIME_WAIT = 10
TF_NEEDSYN = 0x0400
TF_NEEDFIN = 0x0800
TF_TOE = 0x02000000

#: (netstat's name, pcbinfo VNET variable) in netstat's order
PCBINFOS = (("tcp", "tcbinfo"), ("udp", "udbinfo"), ("udplite", "ulitecbinfo"),
            ("raw", "ripcbinfo"))


class Pcb:
    """One inpcb as netstat sees it (the xinpcb/xtcpcb the sysctl would have made)."""

    __slots__ = ("address", "vflag", "flags", "lport", "fport", "laddr", "faddr",
                 "zoneid", "socket", "so_pcb", "options", "rcv_cc", "snd_cc", "qlen",
                 "incqlen", "qlimit", "protocol", "ip_p", "tcpcb", "state", "t_flags")

    def __init__(self, address, vflag, flags, lport, fport, laddr, faddr, zoneid=None,
                 socket=0, ip_p=None):
        self.address = address
        self.vflag = vflag
        self.flags = flags
        self.lport = lport          # host byte order (the kernel keeps network order)
        self.fport = fport
        self.laddr = laddr          # 16 bytes: IPv6 address, or IPv4 at [12:16]
        self.faddr = faddr
        self.zoneid = zoneid
        self.socket = socket
        self.ip_p = ip_p
        self.so_pcb = 0
        self.options = self.rcv_cc = self.snd_cc = self.qlen = self.incqlen = 0
        self.qlimit = 0
        self.protocol = None        # so_proto->pr_protocol (None without a socket)
        self.tcpcb = None
        self.state = None           # TCP only
        self.t_flags = 0

    @property
    def listening(self) -> bool:
        return bool(self.options and self.options & SO_ACCEPTCONN)

    def __repr__(self) -> str:
        return f"<Pcb {self.address:#x} vflag={self.vflag} state={self.state}>"


# -- layout ----------------------------------------------------------------------------

_INT_CODES = {(1, False): "B", (2, False): "H", (4, False): "I", (8, False): "Q",
              (1, True): "b", (2, True): "h", (4, True): "i", (8, True): "q"}


class _Field:
    __slots__ = ("name", "offset", "code", "shift", "mask")

    def __init__(self, name, offset, code, shift=0, mask=None):
        self.name, self.offset, self.code, self.shift, self.mask = \
            name, offset, code, shift, mask


def _field(t: Type, path: str, name: str | None = None, base: int = 0) -> _Field:
    """The member ``path`` of ``t`` as an unpackable field (offset relative to ``base``)."""
    bit_offset, m = t.find_member(path)
    mt = m.type.strip_typedefs()
    name = name or path.rsplit(".", 1)[-1]
    if m.bit_size:
        first = bit_offset // 8
        shift = bit_offset % 8
        nbytes = (shift + m.bit_size + 7) // 8
        size = next(s for s in (1, 2, 4, 8) if s >= nbytes)
        return _Field(name, base + first, _INT_CODES[(size, False)], shift,
                      (1 << m.bit_size) - 1)
    if mt.kind is Kind.POINTER:
        return _Field(name, base + bit_offset // 8, "Q")
    if mt.kind in (Kind.INT, Kind.ENUM, Kind.BOOL):
        return _Field(name, base + bit_offset // 8,
                      _INT_CODES[(mt.size, bool(mt.signed) and mt.kind is not Kind.BOOL)])
    size = m.type.size
    if not size:
        raise VnetdbgError(f"{t}: member {path} has no size")
    return _Field(name, base + bit_offset // 8, f"{size}s")


def _first_member(t: Type, *paths: str) -> str | None:
    for p in paths:
        if t.has_member(p):
            return p
    return None


class _Record:
    """Fields decoded from one buffer with one precompiled ``struct.Struct`` (fields must
    not overlap); ``start``/``length`` is the span of bytes to read."""

    def __init__(self, fields: list[_Field]):
        fields = sorted(fields, key=lambda f: f.offset)
        self.fields = fields
        self.names = [f.name for f in fields]
        self.start = fields[0].offset if fields else 0
        fmt, pos = "<", self.start
        for f in fields:
            if f.offset < pos:
                raise VnetdbgError(f"overlapping members at offset {f.offset} ({f.name})")
            if f.offset > pos:
                fmt += f"{f.offset - pos}x"
            fmt += f.code
            pos = f.offset + struct.calcsize("<" + f.code)
        self.struct = struct.Struct(fmt)
        self.length = pos - self.start
        self.bitfields = [(i, f.shift, f.mask) for i, f in enumerate(fields)
                          if f.mask is not None]

    def unpack(self, buf, offset: int = 0) -> list:
        values = list(self.struct.unpack_from(buf, offset))
        for i, shift, mask in self.bitfields:
            values[i] = (values[i] >> shift) & mask
        return values


class PcbLayout:
    """Every offset the pcb walk needs, computed once per target from DWARF."""

    def __init__(self, target: Target):
        self.target = target
        inp = target.type("struct inpcb")
        self.inpcb_size = inp.size
        nxt = _first_member(inp, "inp_list.cle_next", "inp_list.le_next")
        if nxt is None:
            raise VnetdbgError("struct inpcb has no inp_list.cle_next/le_next")
        ie = "inp_inc.inc_ie."
        faddr = _first_member(inp, ie + "ie_dependfaddr", ie + "ie6_foreign",
                              ie + "ie_ufaddr")
        laddr = _first_member(inp, ie + "ie_dependladdr", ie + "ie6_local",
                              ie + "ie_uladdr")
        if faddr is None or laddr is None:
            raise VnetdbgError("struct in_endpoints: no foreign/local address union found")
        fields = [_field(inp, nxt, "next"), _field(inp, "inp_vflag"),
                  _field(inp, "inp_flags"), _field(inp, ie + "ie_fport", "fport"),
                  _field(inp, ie + "ie_lport", "lport"),
                  _Field("faddr", inp.find_member(faddr)[0] // 8, "16s"),
                  _Field("laddr", inp.find_member(laddr)[0] // 8, "16s"),
                  _field(inp, "inp_socket", "socket")]
        if inp.has_member(ie + "ie6_zoneid"):
            fields.append(_field(inp, ie + "ie6_zoneid", "zoneid"))
        if inp.has_member("inp_ip_p"):
            fields.append(_field(inp, "inp_ip_p", "ip_p"))
        self.has_ppcb = inp.has_member("inp_ppcb")
        if self.has_ppcb:
            fields.append(_field(inp, "inp_ppcb", "ppcb"))
        self.inp = _Record(fields)
        self.next_offset = inp.find_member(nxt)[0] // 8

        # 14+: struct tcpcb begins with (embeds) struct inpcb t_inpcb
        tcp = target.type("struct tcpcb") if target.has_type("struct tcpcb") else None
        self.tcp_embeds = False
        self.tcp_inp_offset = 0
        self.tcp = None
        if tcp is not None:
            if tcp.has_member("t_inpcb"):
                off, m = tcp.find_member("t_inpcb")
                if m.type.strip_typedefs().kind is Kind.STRUCT:
                    self.tcp_embeds = True
                    self.tcp_inp_offset = off // 8
            tfields = [_field(tcp, "t_state", "state")]
            if tcp.has_member("t_flags"):
                tfields.append(_field(tcp, "t_flags", "t_flags"))
            self.tcp = _Record(tfields)
        if self.tcp_embeds:
            # one read covers the inpcb fields and the tcpcb's state/flags
            base = -self.tcp_inp_offset
            shifted = [_Field(f.name, f.offset + base, f.code, f.shift, f.mask)
                       for f in self._tcp_fields(tcp)]
            self.inp_tcp = _Record(fields + shifted)
        else:
            self.inp_tcp = None

        so = target.type("struct socket")
        self.so_head = _Record([_field(so, "so_options", "options"),
                                _field(so, "so_proto", "proto"),
                                _field(so, "so_pcb", "so_pcb")])
        rcv = _first_member(so, "so_rcv.sb_ccc", "so_rcv.sb_cc")
        snd = _first_member(so, "so_snd.sb_ccc", "so_snd.sb_cc")
        self.so_data = _Record([_field(so, rcv, "rcv_cc"), _field(so, snd, "snd_cc")]) \
            if rcv and snd else None
        if so.has_member("sol_qlen"):
            self.so_listen = _Record([_field(so, "sol_qlen", "qlen"),
                                      _field(so, "sol_incqlen", "incqlen"),
                                      _field(so, "sol_qlimit", "qlimit")])
        elif so.has_member("so_qlen"):   # pre-12 sockets: no listen/data union
            self.so_listen = _Record([_field(so, "so_qlen", "qlen"),
                                      _field(so, "so_incqlen", "incqlen"),
                                      _field(so, "so_qlimit", "qlimit")])
        else:
            self.so_listen = None
        parts = [self.so_head] + [r for r in (self.so_data, self.so_listen) if r]
        self.so_start = min(r.start for r in parts)
        self.so_length = max(r.start + r.length for r in parts) - self.so_start
        self.pr_protocol = None
        if target.has_type("struct protosw"):
            pr = target.type("struct protosw")
            if pr.has_member("pr_protocol"):
                self.pr_protocol = _Record([_field(pr, "pr_protocol", "protocol")])

    @staticmethod
    def _tcp_fields(tcp: Type) -> list[_Field]:
        out = [_field(tcp, "t_state", "state")]
        if tcp.has_member("t_flags"):
            out.append(_field(tcp, "t_flags", "t_flags"))
        return out


def pcb_layout(target: Target) -> PcbLayout:
    """The target's ``PcbLayout`` (built on first use, then cached on the target)."""
    layout = getattr(target, "_vnetdbg_pcb_layout", None)
    if layout is None:
        layout = PcbLayout(target)
        target._vnetdbg_pcb_layout = layout
    return layout


# -- the walk ---------------------------------------------------------------------------

#: walk_pcbs reads dump memory in aligned blocks of this many bytes: pcbs, tcpcbs and
#: sockets come from UMA slabs, so consecutive list elements are mostly neighbours and
#: one translation + one copy serves dozens of them
_CHUNK = 1 << 16
_CHUNK_SLOTS = 32               # blocks kept (2 MiB)
_RELEASE_EVERY = 2048           # block loads (128 MiB) between dropping mapped dump pages


def _mapped_page_releaser(target: Target):
    """The memory source's ``drop_cached_pages`` (None when it has none): without it,
    listing a million pcbs would leave every touched page of the core in our RSS."""
    return getattr(target.memory, "drop_cached_pages", None)


class _ChunkReader:
    """``target.read`` for many small neighbouring objects.  ``span(address, size)``
    returns ``(buffer, offset)`` for ``struct.unpack_from``: a slice of a cached aligned
    block when the object lies inside one whose pages are all present, else a direct
    ``target.read`` of the object alone (so a fault still names the exact address).
    Blocks with an absent page are remembered as such (empty)."""

    def __init__(self, target: Target):
        self.read = target.read
        self.cache: dict[int, bytes] = {}
        self.mask = ((1 << (8 * target.pointer_size)) - 1) & ~(_CHUNK - 1)
        self.loads = 0
        self.release = _mapped_page_releaser(target)

    def span(self, address: int, size: int):
        base = address & self.mask
        off = address - base
        if off + size <= _CHUNK:
            c = self.cache.get(base)
            if c is None:
                c = self.load(base)
            if c:
                return c, off
        return self.read(address, size), 0

    def load(self, base: int) -> bytes:
        cache = self.cache
        if len(cache) >= _CHUNK_SLOTS:
            del cache[next(iter(cache))]      # oldest first (insertion order)
        try:
            c = self.read(base, _CHUNK)
        except FaultError:
            c = b""
        cache[base] = c
        self.loads += 1
        if self.release is not None and not self.loads % _RELEASE_EVERY:
            self.release()
        return c


def _chunk_reader(target: Target) -> _ChunkReader:
    """The target's block reader, emptied: one per target, so the count of blocks read
    (and with it the release of mapped pages) runs across every list of every stack;
    emptied per list walk, so a live source is never answered from an older walk."""
    chunks = getattr(target, "_vnetdbg_chunks", None)
    if chunks is None:
        chunks = target._vnetdbg_chunks = _ChunkReader(target)
    chunks.cache.clear()
    return chunks



def list_head_address(target: Target, info_address: int, info_type: Type) -> int:
    """Address of the ``struct inpcbhead`` of an inpcbinfo: ``*ipi_listhead`` (12/13)
    or ``&ipi_listhead`` (14+), decided by the member's DWARF type."""
    off, m = info_type.find_member("ipi_listhead")
    if m.type.strip_typedefs().kind is Kind.POINTER:
        return target.read_pointer(info_address + off // 8)
    return info_address + off // 8


def _head_first_offset(target: Target) -> int:
    head = target.type("struct inpcbhead")
    name = _first_member(head, "clh_first", "lh_first")
    if name is None:
        raise VnetdbgError("struct inpcbhead has no clh_first/lh_first")
    return head.find_member(name)[0] // 8


def _make_pcb(address, vflag, flags, lport_n, fport_n, laddr, faddr, zoneid, ip_p, socket,
              options, so_pcb, rcv_cc, snd_cc, qlen, incqlen, qlimit, protocol, tcpcb,
              state, t_flags) -> Pcb:
    """``walk_pcb_rows``'s ``row`` for ``walk_pcbs``: the values as a ``Pcb``."""
    p = Pcb(address, vflag, flags, ((lport_n & 0xFF) << 8) | (lport_n >> 8),
            ((fport_n & 0xFF) << 8) | (fport_n >> 8), laddr, faddr, zoneid, socket, ip_p)
    p.options, p.so_pcb, p.rcv_cc, p.snd_cc = options, so_pcb, rcv_cc, snd_cc
    p.qlen, p.incqlen, p.qlimit, p.protocol = qlen, incqlen, qlimit, protocol
    p.tcpcb, p.state, p.t_flags = tcpcb, state, t_flags
    return p


def walk_pcbs(target: Target, info_address: int, *, tcp: bool, what: str,
              problems: list[str], limit: int = DEFAULT_LIMIT) -> Iterator[Pcb]:
    """Every pcb on the list of the ``struct inpcbinfo`` at ``info_address``, list
    order (newest first).  ``tcp`` adds TCP state.  Problems (unreadable head, pcb,
    socket or tcpcb; cycles; over ``limit``) are appended to ``problems``; a bad pcb
    link ends the walk, a bad socket or tcpcb only blanks those columns."""
    return walk_pcb_rows(target, info_address, tcp=tcp, what=what, problems=problems,
                         row=_make_pcb, limit=limit)


def walk_pcb_rows(target: Target, info_address: int, *, tcp: bool, what: str,
                  problems: list[str], row, limit: int = DEFAULT_LIMIT) -> Iterator:
    """``walk_pcbs`` without ``Pcb`` objects: per pcb, ``row(address, vflag, flags,
    lport_n, fport_n, laddr, faddr, zoneid, ip_p, socket, options, so_pcb, rcv_cc,
    snd_cc, qlen, incqlen, qlimit, protocol, tcpcb, state, t_flags)`` (the ``Pcb``
    fields, but ports in *network* byte order) is called and whatever it returns other
    than None is yielded.  Same walk, bounds, cycle detection and problems."""
    L = pcb_layout(target)
    read = target.read
    info_type = target.type("struct inpcbinfo")
    try:
        head = list_head_address(target, info_address, info_type)
        address = target.read_pointer(head + _head_first_offset(target)) if head else 0
    except FaultError as e:
        problems.append(f"{what}: cannot read the list head ({e.reason} at {e.address:#x})")
        return
    rec = L.inp_tcp if (tcp and L.tcp_embeds) else L.inp
    names = rec.names
    start, length = rec.start, rec.length
    unpack_from = rec.struct.unpack_from
    bitfields = rec.bitfields
    ix = {n: i for i, n in enumerate(names)}
    i_next, i_vflag, i_flags = ix["next"], ix["inp_vflag"], ix["inp_flags"]
    i_lport, i_fport, i_laddr, i_faddr = ix["lport"], ix["fport"], ix["laddr"], ix["faddr"]
    i_socket = ix["socket"]
    i_zone, i_ip_p, i_ppcb = ix.get("zoneid"), ix.get("ip_p"), ix.get("ppcb")
    i_state, i_tflags = ix.get("state"), ix.get("t_flags")
    embeds = tcp and L.tcp_embeds
    tcp_off = L.tcp_inp_offset
    seen: set[int] = set()
    chunks = _chunk_reader(target)
    cache, load, cmask = chunks.cache, chunks.load, chunks.mask
    cache_get = cache.get
    chunk = _CHUNK
    sockets = _SocketReader(target, L, problems, what)
    # the socket: head and data half unpacked at once (the listen half, in a union with
    # the data half, separately for listening sockets)
    so_start, so_length = L.so_start, L.so_length
    so_unpack, so_off = sockets.head_data.struct.unpack_from, sockets.head_data.start - so_start
    h_opt, h_proto, h_pcb = sockets.hd_opt, sockets.hd_proto, sockets.hd_pcb
    h_rcv, h_snd = sockets.hd_rcv, sockets.hd_snd
    has_data = h_rcv is not None
    listen = sockets.listen
    if listen is not None:
        listen_off, l_qlen, l_inc, l_lim = (sockets.listen_off, sockets.l_qlen,
                                            sockets.l_inc, sockets.l_lim)
    protocols = sockets.protocols
    protocol_of = sockets._protocol
    mask64 = (1 << (8 * target.pointer_size)) - 1   # address arithmetic wraps there
    prev = 0
    count = 0
    # 14's t_state is a bitfield: extracted where used, without rebuilding the tuple
    st_shift, st_mask = 0, -1
    if bitfields and [b[0] for b in bitfields] == [i_state]:
        st_shift, st_mask = bitfields[0][1], bitfields[0][2]
        bitfields = []
    tcpcb = state = None
    t_flags = 0
    seen_add = seen.add
    while address:
        seen_add(address)
        if len(seen) == count:          # not new: seen before
            problems.append(f"{what}: cycle: pcb at {address:#x} appears twice; "
                            f"stopped after {count} pcbs")
            return
        if count >= limit:
            problems.append(f"{what}: more than {limit} pcbs; stopped")
            return
        count += 1
        a = (address + start) & mask64
        base = a & cmask
        off = a - base
        buf = None
        if off + length <= chunk:
            buf = cache_get(base)
            if buf is None:
                buf = load(base)
        if not buf:
            try:
                buf = read(a, length)
            except FaultError as e:
                via = f" (inp_list link of pcb {prev:#x})" if prev else " (list head)"
                problems.append(f"{what}: pcb at {address:#x}{via} cannot be read "
                                f"({e.reason} at {e.address:#x}); list cut short")
                return
            off = 0
        v = unpack_from(buf, off)
        if bitfields:
            v = list(v)
            for i, shift, mask in bitfields:
                v[i] = (v[i] >> shift) & mask
        if embeds:
            tcpcb = address - tcp_off
            state = (v[i_state] >> st_shift) & st_mask
            t_flags = 0 if i_tflags is None else v[i_tflags]
        elif tcp:
            tcpcb, state, t_flags = _tcp_state(chunks, L, address, v[i_flags],
                                               0 if i_ppcb is None else v[i_ppcb],
                                               problems, what)
        so = v[i_socket]
        if so:
            a = so + so_start
            base = a & cmask
            off = a - base
            buf = None
            if off + so_length <= chunk:
                buf = cache_get(base)
                if buf is None:
                    buf = load(base)
            if not buf:
                try:
                    buf = read(a, so_length)
                    off = 0
                except FaultError as e:
                    problems.append(f"{what}: socket at {so:#x} of pcb {address:#x} "
                                    f"cannot be read ({e.reason} at {e.address:#x})")
                    buf = None
            if buf is None:
                options = so_pcb = rcv = snd = qlen = incqlen = qlimit = 0
                protocol = None
            else:
                # records unpack their fields in *offset* order (``_Record`` sorts
                # them): permute by the precomputed indexes
                h = so_unpack(buf, off + so_off)
                options, proto, so_pcb = h[h_opt], h[h_proto], h[h_pcb]
                qlen = incqlen = qlimit = 0
                if options & SO_ACCEPTCONN:
                    rcv = snd = 0
                    if listen is not None:
                        q = listen(buf, off + listen_off)
                        qlen, incqlen, qlimit = q[l_qlen], q[l_inc], q[l_lim]
                elif has_data:
                    rcv, snd = h[h_rcv], h[h_snd]
                else:
                    rcv = snd = 0
                try:
                    protocol = protocols[proto]
                except KeyError:
                    protocol = protocol_of(proto)
        else:
            # no socket (TCP TIME_WAIT): the sysctl zeroes the xsocket
            options = so_pcb = rcv = snd = qlen = incqlen = qlimit = 0
            protocol = None
        r = row(address, v[i_vflag], v[i_flags], v[i_lport], v[i_fport], v[i_laddr],
                v[i_faddr], None if i_zone is None else v[i_zone],
                None if i_ip_p is None else v[i_ip_p], so, options, so_pcb, rcv, snd,
                qlen, incqlen, qlimit, protocol, tcpcb, state, t_flags)
        if r is not None:
            yield r
        prev, address = address, v[i_next]


def _tcp_state(chunks: _ChunkReader, L: PcbLayout, address: int, flags: int, ppcb: int,
               problems, what) -> tuple:
    """12/13: (tcpcb, state, t_flags) from the separate tcpcb (or TIME_WAIT from the
    flags)."""
    if flags & INP_TIMEWAIT:
        return ppcb, TCPS_TIME_WAIT, 0
    if not ppcb or L.tcp is None:
        return ppcb, 0, 0     # pcblist_kvm: bzero(&xt_tp)
    try:
        buf, off = chunks.span(ppcb + L.tcp.start, L.tcp.length)
    except FaultError as e:
        problems.append(f"{what}: tcpcb at {ppcb:#x} of pcb {address:#x} cannot be read "
                        f"({e.reason} at {e.address:#x})")
        return ppcb, None, 0
    td = dict(zip(L.tcp.names, L.tcp.unpack(buf, off)))
    return ppcb, td["state"], td.get("t_flags", 0)


class _SocketReader:
    """Socket record layout of a walk; ``so_proto->pr_protocol`` is cached per
    protosw."""

    def __init__(self, target: Target, L: PcbLayout, problems: list[str], what: str):
        self.target, self.L, self.problems, self.what = target, L, problems, what
        self.protocols: dict[int, int | None] = {}
        for r in (L.so_head, L.so_data, L.so_listen):
            if r is not None and r.bitfields:
                raise VnetdbgError("bitfields in struct socket members are not supported")
        base = L.so_start
        hd = _Record(L.so_head.fields + (L.so_data.fields if L.so_data is not None else []))
        self.head_data = hd
        n = hd.names
        self.hd_opt, self.hd_proto, self.hd_pcb = (n.index("options"), n.index("proto"),
                                                   n.index("so_pcb"))
        self.hd_rcv = n.index("rcv_cc") if "rcv_cc" in n else None
        self.hd_snd = n.index("snd_cc") if "snd_cc" in n else None
        self.listen = None
        if L.so_listen is not None:
            self.listen = L.so_listen.struct.unpack_from
            self.listen_off = L.so_listen.start - base
            n = L.so_listen.names
            self.l_qlen, self.l_inc, self.l_lim = (n.index("qlen"), n.index("incqlen"),
                                                   n.index("qlimit"))

    def _protocol(self, proto: int) -> int | None:
        try:
            return self.protocols[proto]
        except KeyError:
            pass
        value = None
        rec = self.L.pr_protocol
        if proto and rec is not None:
            try:
                value = rec.unpack(self.target.read(proto + rec.start, rec.length))[0]
            except FaultError as e:
                self.problems.append(f"{self.what}: protosw at {proto:#x} cannot be read "
                                     f"({e.reason} at {e.address:#x})")
        self.protocols[proto] = value
        return value


# -- interface names for IPv6 scope ids --------------------------------------------------

def interface_names(target: Target, vnet_address: int | None,
                    problems: list[str]) -> dict[int, str]:
    """ifindex -> name for the stack's interfaces (``V_ifnet``), for ``fe80::1%lo0``."""
    from .ifnet import for_each_ifnet
    names: dict[int, str] = {}
    try:
        for ifp in for_each_ifnet(target, vnet_address, problems):
            try:
                names[ifp.member("if_index").value_()] = ifp.member("if_xname").string()
            except (FaultError, LookupError, VnetdbgError):
                continue
    except (FaultError, LookupError, VnetdbgError) as e:
        problems.append(f"V_ifnet: interface names unavailable ({e})")
    return names
