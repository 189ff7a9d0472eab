"""Low-level DWARF (versions 2-5, 32- and 64-bit units, little-endian) reading.

Two parts:

* ``scan_index``: one pass over the whole ``.debug_info`` that records, for the DIEs
  directly under each compile unit, name -> DIE offset of struct/union/enum types,
  typedefs, base types and variables.  Every other DIE is only *skipped*: for each
  abbreviation a skipper is generated once (pure fixed-size abbreviations become a
  constant), so the per-DIE cost is a few bytecodes.  Subtrees are jumped over with
  DW_AT_sibling when the producer emits it (GCC); clang does not, so its DIEs are walked.
* ``DieReader``: decodes one DIE (and its children) on demand from the bytes of its
  compile unit, read straight from the file.

Nothing here builds a DIE tree of the whole file.
"""

from __future__ import annotations

import os
import zlib
from bisect import bisect_right
from typing import Callable, NamedTuple

from ..errors import VnetdbgError

# -- constants (DWARF 5 spec, section 7) -------------------------------------------------
TAG_array_type = 0x01
TAG_class_type = 0x02
TAG_enumeration_type = 0x04
TAG_member = 0x0D
TAG_pointer_type = 0x0F
TAG_reference_type = 0x10
TAG_compile_unit = 0x11
TAG_structure_type = 0x13
TAG_subroutine_type = 0x15
TAG_typedef = 0x16
TAG_union_type = 0x17
TAG_subrange_type = 0x21
TAG_base_type = 0x24
TAG_const_type = 0x26
TAG_enumerator = 0x28
TAG_subprogram = 0x2E
TAG_variable = 0x34
TAG_volatile_type = 0x35
TAG_restrict_type = 0x37
TAG_unspecified_type = 0x3B
TAG_atomic_type = 0x47
TAG_immutable_type = 0x4B

AT_sibling = 0x01
AT_location = 0x02
AT_name = 0x03
AT_byte_size = 0x0B
AT_bit_offset = 0x0C
AT_bit_size = 0x0D
AT_const_value = 0x1C
AT_lower_bound = 0x22
AT_upper_bound = 0x2F
AT_abstract_origin = 0x31
AT_count = 0x37
AT_data_member_location = 0x38
AT_declaration = 0x3C
AT_encoding = 0x3E
AT_external = 0x3F
AT_specification = 0x47
AT_type = 0x49
AT_data_bit_offset = 0x6B
AT_str_offsets_base = 0x72

# forms
F_addr, F_block2, F_block4, F_data2, F_data4, F_data8 = 0x01, 0x03, 0x04, 0x05, 0x06, 0x07
F_string, F_block, F_block1, F_data1, F_flag, F_sdata = 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D
F_strp, F_udata, F_ref_addr, F_ref1, F_ref2, F_ref4 = 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13
F_ref8, F_ref_udata, F_indirect, F_sec_offset, F_exprloc = 0x14, 0x15, 0x16, 0x17, 0x18
F_flag_present, F_strx, F_addrx, F_ref_sup4, F_strp_sup = 0x19, 0x1A, 0x1B, 0x1C, 0x1D
F_data16, F_line_strp, F_ref_sig8, F_implicit_const = 0x1E, 0x1F, 0x20, 0x21
F_loclistx, F_rnglistx, F_ref_sup8 = 0x22, 0x23, 0x24
F_strx1, F_strx2, F_strx3, F_strx4 = 0x25, 0x26, 0x27, 0x28
F_addrx1, F_addrx2, F_addrx3, F_addrx4 = 0x29, 0x2A, 0x2B, 0x2C
F_GNU_addr_index, F_GNU_str_index = 0x1F01, 0x1F02
F_GNU_ref_alt, F_GNU_strp_alt = 0x1F20, 0x1F21

_REF_FORMS = {F_ref1, F_ref2, F_ref4, F_ref8, F_ref_udata}
_STR_FORMS = {F_string, F_strp, F_line_strp, F_strx, F_strx1, F_strx2, F_strx3, F_strx4,
              F_GNU_str_index}

# index kinds
K_STRUCT, K_UNION, K_ENUM, K_TYPEDEF, K_BASE, K_VAR = "s", "u", "e", "t", "b", "v"
_INDEX_TAGS = {TAG_structure_type: K_STRUCT, TAG_class_type: K_STRUCT,
               TAG_union_type: K_UNION, TAG_enumeration_type: K_ENUM,
               TAG_typedef: K_TYPEDEF, TAG_base_type: K_BASE, TAG_variable: K_VAR}
INDEX_KINDS = (K_STRUCT, K_UNION, K_ENUM, K_TYPEDEF, K_BASE, K_VAR)


def form_shape(form: int, offsize: int, addrsize: int, version: int):
    """How to skip a form: ("fixed", n) | ("uleb",) | ("block1"|"block2"|"block4"|
    "blockuleb",) | ("string",) | ("indirect",)."""
    fixed = {
        F_addr: addrsize, F_data1: 1, F_ref1: 1, F_flag: 1, F_strx1: 1, F_addrx1: 1,
        F_data2: 2, F_ref2: 2, F_strx2: 2, F_addrx2: 2, F_strx3: 3, F_addrx3: 3,
        F_data4: 4, F_ref4: 4, F_strx4: 4, F_addrx4: 4, F_ref_sup4: 4,
        F_data8: 8, F_ref8: 8, F_ref_sig8: 8, F_ref_sup8: 8, F_data16: 16,
        F_strp: offsize, F_line_strp: offsize, F_sec_offset: offsize, F_strp_sup: offsize,
        F_GNU_ref_alt: offsize, F_GNU_strp_alt: offsize,
        F_ref_addr: offsize if version >= 3 else addrsize,
        F_flag_present: 0, F_implicit_const: 0,
    }.get(form)
    if fixed is not None:
        return ("fixed", fixed)
    if form in (F_udata, F_sdata, F_ref_udata, F_strx, F_addrx, F_loclistx, F_rnglistx,
                F_GNU_addr_index, F_GNU_str_index):
        return ("uleb",)
    if form == F_block1:
        return ("block1",)
    if form == F_block2:
        return ("block2",)
    if form == F_block4:
        return ("block4",)
    if form in (F_block, F_exprloc):
        return ("blockuleb",)
    if form == F_string:
        return ("string",)
    if form == F_indirect:
        return ("indirect",)
    raise ValueError(f"unknown DWARF form {form:#x}")


def read_uleb(d, p: int) -> tuple[int, int]:
    b = d[p]
    if b < 0x80:
        return b, p + 1
    result = b & 0x7F
    shift = 7
    p += 1
    while True:
        b = d[p]
        p += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, p
        shift += 7


def read_sleb(d, p: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        b = d[p]
        p += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, p


def _skip_block_uleb(d, p: int) -> int:
    n, p = read_uleb(d, p)
    return p + n


# -- abbreviations -----------------------------------------------------------------------
class Abbrev(NamedTuple):
    code: int
    tag: int
    has_children: bool
    attrs: tuple  # ((attr, form, implicit_const), ...)


def parse_abbrevs(data: bytes, offset: int) -> dict[int, Abbrev]:
    table: dict[int, Abbrev] = {}
    p = offset
    n = len(data)
    while p < n:
        code, p = read_uleb(data, p)
        if code == 0:
            break
        tag, p = read_uleb(data, p)
        children = data[p] != 0
        p += 1
        attrs = []
        while True:
            at, p = read_uleb(data, p)
            form, p = read_uleb(data, p)
            ic = None
            if form == F_implicit_const:
                ic, p = read_sleb(data, p)
            if at == 0 and form == 0:
                break
            attrs.append((at, form, ic))
        table[code] = Abbrev(code, tag, children, tuple(attrs))
    return table


_SKIPPER_CACHE: dict[tuple, Callable] = {}


def _make_skipper(shapes: tuple) -> Callable:
    """Generate ``f(d, p) -> p`` skipping attributes with the given shapes."""
    fn = _SKIPPER_CACHE.get(shapes)
    if fn is not None:
        return fn
    lines = ["def skip(d, p):"]
    pending = 0
    for sh in shapes:
        kind = sh[0]
        if kind == "fixed":
            pending += sh[1]
            continue
        if pending:
            lines.append(f"    p += {pending}")
            pending = 0
        if kind == "uleb":
            lines.append("    while d[p] > 127: p += 1")
            pending = 1
        elif kind == "block1":
            lines.append("    p += 1 + d[p]")
        elif kind == "block2":
            lines.append("    p += 2 + (d[p] | d[p + 1] << 8)")
        elif kind == "block4":
            lines.append("    p += 4 + int.from_bytes(d[p:p + 4], 'little')")
        elif kind == "blockuleb":
            lines.append("    b = d[p]")
            lines.append("    if b < 128: p += 1 + b")
            lines.append("    else: p = _skip_block_uleb(d, p)")
        elif kind == "string":
            lines.append("    p = d.index(0, p) + 1")
        else:  # pragma: no cover
            raise ValueError(kind)
    lines.append(f"    return p + {pending}" if pending else "    return p")
    ns: dict = {"_skip_block_uleb": _skip_block_uleb}
    exec(compile("\n".join(lines), "<dwarf-skipper>", "exec"), ns)
    fn = ns["skip"]
    _SKIPPER_CACHE[shapes] = fn
    return fn


class CompiledAbbrev(NamedTuple):
    fixed: int                 # size of the attributes, or -1 if variable
    skip: Callable | None      # f(d, p) -> p when not fixed (None if DW_FORM_indirect)
    has_children: bool
    kind: str | None           # index kind when interesting at top level
    sib: tuple | None          # (offset within attrs, form) of a fixed-position DW_AT_sibling
    name: tuple | None         # (offset within attrs, form) of a fixed-position DW_AT_name
    decl: bool | None          # DW_AT_declaration statically known (None = must decode)
    abbrev: Abbrev


def compile_abbrev(ab: Abbrev, offsize: int, addrsize: int, version: int) -> CompiledAbbrev:
    shapes = []
    indirect = False
    pos = 0            # fixed position so far, or None when variable
    sib = name = None
    decl: bool | None = False
    for at, form, _ic in ab.attrs:
        sh = form_shape(form, offsize, addrsize, version)
        if at == AT_sibling and pos is not None and form in _REF_FORMS | {F_ref_addr}:
            sib = (pos, form)
        elif at == AT_name and pos is not None:
            name = (pos, form)
        elif at == AT_declaration:
            decl = True if form in (F_flag_present, F_implicit_const) else None
        if sh[0] == "indirect":
            indirect = True
        shapes.append(sh)
        if pos is not None:
            pos = pos + sh[1] if sh[0] == "fixed" else None
    kind = _INDEX_TAGS.get(ab.tag)
    ats = {a[0] for a in ab.attrs}
    if AT_name not in ats and not (kind == K_VAR and ats & {AT_specification,
                                                            AT_abstract_origin}):
        kind = None          # anonymous: nothing to index
    if indirect:
        return CompiledAbbrev(-1, None, ab.has_children, kind, None, None, None, ab)
    if pos is not None:
        return CompiledAbbrev(pos, None, ab.has_children, kind, sib, name, decl, ab)
    return CompiledAbbrev(-1, _make_skipper(tuple(shapes)), ab.has_children, kind, sib,
                          name, decl, ab)


# -- units -------------------------------------------------------------------------------
class Unit(NamedTuple):
    offset: int         # of the unit header
    end: int            # one past the unit
    version: int
    offsize: int        # 4 or 8 (64-bit DWARF)
    addrsize: int
    abbrev_offset: int
    die_offset: int     # first DIE
    unit_type: int      # DW_UT_* (compile = 1 for DWARF < 5)


def parse_unit_header(d, off: int) -> Unit:
    length = int.from_bytes(d[off:off + 4], "little")
    p = off + 4
    offsize = 4
    if length == 0xFFFFFFFF:
        length = int.from_bytes(d[p:p + 8], "little")
        p += 8
        offsize = 8
    end = p + length
    version = d[p] | d[p + 1] << 8
    p += 2
    if version >= 5:
        unit_type = d[p]
        addrsize = d[p + 1]
        p += 2
        abbrev = int.from_bytes(d[p:p + offsize], "little")
        p += offsize
        if unit_type in (4, 5):       # skeleton, split_compile: dwo_id
            p += 8
        elif unit_type in (2, 6):     # type, split_type: signature + type offset
            p += 8 + offsize
    elif 2 <= version <= 4:
        unit_type = 1
        abbrev = int.from_bytes(d[p:p + offsize], "little")
        p += offsize
        addrsize = d[p]
        p += 1
    else:
        raise ValueError(f"unsupported DWARF version {version} at {off:#x}")
    return Unit(off, end, version, offsize, addrsize, abbrev, p, unit_type)


# -- sections ----------------------------------------------------------------------------
class Sections:
    """File locations of the debug sections; bytes loaded on first use."""

    NAMES = (".debug_info", ".debug_abbrev", ".debug_str", ".debug_str_offsets",
             ".debug_line_str")

    def __init__(self, path: str):
        from elftools.elf.elffile import ELFFile
        from elftools.common.exceptions import ELFError

        self.path = path
        self.info: dict[str, tuple[int, int, int]] = {}   # name -> (offset, size, flags)
        self._data: dict[str, bytes] = {}
        self.build_id: str | None = None
        try:
            with open(path, "rb") as f:
                elf = ELFFile(f)
                if not elf.little_endian:
                    raise VnetdbgError(f"{path}: big-endian DWARF is not supported")
                for sec in elf.iter_sections():
                    h = sec.header
                    if sec.name in self.NAMES and h["sh_type"] != "SHT_NOBITS":
                        self.info[sec.name] = (h["sh_offset"], h["sh_size"], h["sh_flags"])
                    elif h["sh_type"] == "SHT_NOTE" and self.build_id is None:
                        from .symbols import _note_build_id
                        self.build_id = _note_build_id(f, h["sh_offset"], h["sh_size"], "<")
        except OSError as e:
            raise VnetdbgError(f"cannot read {path}: {e.strerror or e}") from None
        except (ELFError, ValueError, IndexError) as e:
            raise VnetdbgError(f"{path} is not a readable ELF file ({e})") from None
        if not self.info.get(".debug_info", (0, 0, 0))[1]:
            raise VnetdbgError(f"{path} has no DWARF debug information (need kernel.debug)")

    @property
    def compressed(self) -> bool:
        return bool(self.info[".debug_info"][2] & 0x800)

    def get(self, name: str) -> bytes:
        data = self._data.get(name)
        if data is None:
            loc = self.info.get(name)
            if loc is None:
                data = b""
            else:
                with open(self.path, "rb") as f:
                    f.seek(loc[0])
                    data = f.read(loc[1])
                if loc[2] & 0x800:                      # SHF_COMPRESSED
                    data = _decompress(self.path, name, data)
            self._data[name] = data
        return data

    def drop(self, name: str) -> None:
        self._data.pop(name, None)

    def read_info_range(self, start: int, end: int) -> bytes:
        """Bytes [start, end) of .debug_info without loading the whole section."""
        if self.compressed or ".debug_info" in self._data:
            return self.get(".debug_info")[start:end]
        off = self.info[".debug_info"][0]
        with open(self.path, "rb") as f:
            f.seek(off + start)
            return f.read(end - start)


def _decompress(path: str, name: str, data: bytes) -> bytes:
    ch_type = int.from_bytes(data[0:4], "little")
    if ch_type != 1:   # ELFCOMPRESS_ZLIB (64-bit Chdr: type, reserved, size, align)
        raise VnetdbgError(f"{path}: {name} uses an unsupported compression ({ch_type})")
    return zlib.decompress(data[24:])


# -- attribute decoding ------------------------------------------------------------------
class CuContext:
    """What decoding a DIE needs beyond its bytes."""

    __slots__ = ("unit", "abbrevs", "compiled", "str_offsets_base", "sections", "base")

    def __init__(self, unit: Unit, abbrevs, sections: Sections, base: int = 0):
        self.unit = unit
        self.abbrevs = abbrevs
        self.compiled = None
        self.str_offsets_base = 8 if unit.offsize == 4 else 16
        self.sections = sections
        self.base = base          # section offset of d[0]

    def strx(self, index: int) -> str:
        so = self.sections.get(".debug_str_offsets")
        n = self.unit.offsize
        p = self.str_offsets_base + index * n
        return self.strp(int.from_bytes(so[p:p + n], "little"))

    def strp(self, off: int, section: str = ".debug_str") -> str:
        s = self.sections.get(section)
        e = s.find(b"\0", off)
        return s[off:e].decode("utf-8", "replace")


def decode_attrs(d, p: int, ab: Abbrev, cu: CuContext) -> tuple[dict, int]:
    """Decode the attributes of one DIE starting at ``p`` (just after the code).

    Values: ints for constants/flags/refs (refs made section-absolute), str for strings,
    bytes for blocks/exprlocs.  Returns ({attr: (form, value)}, end position)."""
    u = cu.unit
    out = {}
    for at, form, ic in ab.attrs:
        while form == F_indirect:
            form, p = read_uleb(d, p)
        if form == F_implicit_const:
            v = ic
        elif form in (F_data1, F_ref1, F_flag, F_strx1, F_addrx1):
            v = d[p]
            p += 1
        elif form in (F_data2, F_ref2, F_strx2, F_addrx2):
            v = d[p] | d[p + 1] << 8
            p += 2
        elif form in (F_strx3, F_addrx3):
            v = d[p] | d[p + 1] << 8 | d[p + 2] << 16
            p += 3
        elif form in (F_data4, F_ref4, F_strx4, F_addrx4, F_ref_sup4):
            v = int.from_bytes(d[p:p + 4], "little")
            p += 4
        elif form in (F_data8, F_ref8, F_ref_sig8, F_ref_sup8):
            v = int.from_bytes(d[p:p + 8], "little")
            p += 8
        elif form == F_data16:
            v = int.from_bytes(d[p:p + 16], "little")
            p += 16
        elif form in (F_udata, F_ref_udata, F_strx, F_addrx, F_loclistx, F_rnglistx,
                      F_GNU_addr_index, F_GNU_str_index):
            v, p = read_uleb(d, p)
        elif form == F_sdata:
            v, p = read_sleb(d, p)
        elif form == F_flag_present:
            v = 1
        elif form == F_addr:
            v = int.from_bytes(d[p:p + u.addrsize], "little")
            p += u.addrsize
        elif form in (F_strp, F_line_strp, F_sec_offset, F_strp_sup, F_GNU_ref_alt,
                      F_GNU_strp_alt):
            v = int.from_bytes(d[p:p + u.offsize], "little")
            p += u.offsize
        elif form == F_ref_addr:
            n = u.offsize if u.version >= 3 else u.addrsize
            v = int.from_bytes(d[p:p + n], "little")
            p += n
        elif form == F_string:
            e = d.index(0, p)
            v = bytes(d[p:e]).decode("utf-8", "replace")
            p = e + 1
        elif form in (F_block, F_exprloc):
            n, p = read_uleb(d, p)
            v = bytes(d[p:p + n])
            p += n
        elif form == F_block1:
            n = d[p]
            v = bytes(d[p + 1:p + 1 + n])
            p += 1 + n
        elif form == F_block2:
            n = d[p] | d[p + 1] << 8
            v = bytes(d[p + 2:p + 2 + n])
            p += 2 + n
        elif form == F_block4:
            n = int.from_bytes(d[p:p + 4], "little")
            v = bytes(d[p + 4:p + 4 + n])
            p += 4 + n
        else:
            raise ValueError(f"unknown DWARF form {form:#x}")
        if form in _REF_FORMS:
            v += u.offset
        out[at] = (form, v)
    return out, p


def attr_string(cu: CuContext, form: int, v) -> str | None:
    if form == F_string:
        return v
    if form == F_strp:
        return cu.strp(v)
    if form == F_line_strp:
        return cu.strp(v, ".debug_line_str")
    if form in (F_strx, F_strx1, F_strx2, F_strx3, F_strx4, F_GNU_str_index):
        return cu.strx(v)
    return None


# -- the index pass ----------------------------------------------------------------------
def scan_index(sections: Sections, progress: Callable[[int, int], None] | None = None):
    """Index the top-level named DIEs of every compile unit.

    Returns (units, index, decl) where units is a list of Unit tuples, index maps kind ->
    {name: DIE offset} and decl is the set of "kind\\0name" keys whose entry is only a
    declaration."""
    d = sections.get(".debug_info")
    abbrev_data = sections.get(".debug_abbrev")
    total = len(d)
    index: dict[str, dict[str, int]] = {k: {} for k in INDEX_KINDS}
    decl: set[str] = set()
    units: list[Unit] = []
    abbrev_cache: dict[tuple, list] = {}
    pending_spec: list[tuple[int, int]] = []
    last_report = -1
    off = 0
    while off < total:
        u = parse_unit_header(d, off)
        units.append(u)
        off = u.end
        if progress is not None:
            pct = off * 100 // total
            if pct != last_report:
                last_report = pct
                progress(off, total)
        if u.unit_type not in (1, 3):     # only compile (and partial) units
            continue
        key = (u.abbrev_offset, u.offsize, u.addrsize, u.version)
        table = abbrev_cache.get(key)
        if table is None:
            raw = parse_abbrevs(abbrev_data, u.abbrev_offset)
            table = [None] * (max(raw, default=0) + 1)
            for code, ab in raw.items():
                table[code] = compile_abbrev(ab, u.offsize, u.addrsize, u.version)
            abbrev_cache[key] = table
        _scan_unit(d, u, table, sections, index, decl, pending_spec)
    # Definitions that name their declaration through DW_AT_specification.
    if pending_spec:
        reader = DieReader(sections, units)
        for def_off, spec_off in pending_spec:
            try:
                die = reader.die(spec_off)
            except (ValueError, IndexError, KeyError):
                continue
            name = die.name()
            if not name:
                continue
            d_v = index[K_VAR]
            k = K_VAR + "\0" + name
            if name not in d_v or k in decl:
                d_v[name] = def_off
                decl.discard(k)
    sections.drop(".debug_info")
    return units, index, decl


def _scan_unit(d, u: Unit, table: list, sections: Sections, index, decl, pending_spec):
    end = u.end
    p = u.die_offset
    cu_base = u.offset
    # The unit DIE: decode fully (for DW_AT_str_offsets_base).
    code, p = read_uleb(d, p)
    if code == 0:
        return
    ca = table[code]
    attrs, p = decode_attrs(d, p, ca.abbrev, CuContext(u, None, sections))
    cu = CuContext(u, None, sections)
    sob = attrs.get(AT_str_offsets_base)
    if sob is not None:
        cu.str_offsets_base = sob[1]
    if not ca.has_children:
        return
    str_data = None
    strcache: dict[int, str] = {}
    so_base = cu.str_offsets_base
    offsize = u.offsize
    # Children of the unit DIE.
    while p < end:
        die_off = p
        code = d[p]
        p += 1
        if code == 0:
            break
        if code > 127:
            code, p = read_uleb(d, die_off)
        ca = table[code]
        start = p
        fixed = ca.fixed
        if fixed >= 0:
            p += fixed
        elif ca.skip is not None:
            p = ca.skip(d, p)
        else:
            _, p = decode_attrs(d, p, ca.abbrev, cu)
        kind = ca.kind
        if kind is not None:
            # -- an interesting top-level DIE: find its name and declaration flag
            nm = ca.name
            isdecl = ca.decl
            name = None
            if nm is not None and isdecl is not None:
                q = start + nm[0]
                form = nm[1]
                soff = -1
                if form == F_strx1:
                    soff = d[q]
                    soff = -2 - soff
                elif form == F_strp:
                    soff = int.from_bytes(d[q:q + offsize], "little")
                elif form == F_strx2:
                    soff = -2 - (d[q] | d[q + 1] << 8)
                elif form == F_strx:
                    soff = -2 - read_uleb(d, q)[0]
                elif form == F_string:
                    name = bytes(d[q:d.index(0, q)]).decode("utf-8", "replace")
                else:
                    name = attr_string(cu, form, decode_attrs(
                        d, start, ca.abbrev, cu)[0][AT_name][1])
                if soff != -1:
                    name = strcache.get(soff)
                    if name is None:
                        if soff < -1:
                            x = so_base + (-2 - soff) * offsize
                            so = sections.get(".debug_str_offsets")
                            real = int.from_bytes(so[x:x + offsize], "little")
                        else:
                            real = soff
                        if str_data is None:
                            str_data = sections.get(".debug_str")
                        e = str_data.find(b"\0", real)
                        name = str_data[real:e].decode("utf-8", "replace")
                        strcache[soff] = name
            else:
                attrs, _ = decode_attrs(d, start, ca.abbrev, cu)
                isdecl = bool(attrs.get(AT_declaration, (0, 0))[1])
                a = attrs.get(AT_name)
                if a is not None:
                    name = attr_string(cu, a[0], a[1])
                elif kind == K_VAR:
                    sp = attrs.get(AT_specification) or attrs.get(AT_abstract_origin)
                    if sp is not None:
                        pending_spec.append((die_off, sp[1]))
            if name:
                dk = index[kind]
                cur = dk.get(name)
                if cur is None:
                    dk[name] = die_off
                    if isdecl:
                        decl.add(kind + "\0" + name)
                elif not isdecl:
                    k = kind + "\0" + name
                    if k in decl:
                        dk[name] = die_off
                        decl.discard(k)
        if ca.has_children:
            sib = ca.sib
            if sib is not None:
                q = start + sib[0]
                form = sib[1]
                if form == F_ref4:
                    p = cu_base + int.from_bytes(d[q:q + 4], "little")
                elif form == F_ref_addr:
                    p = int.from_bytes(d[q:q + offsize], "little")
                elif form == F_ref2:
                    p = cu_base + (d[q] | d[q + 1] << 8)
                elif form == F_ref1:
                    p = cu_base + d[q]
                elif form == F_ref8:
                    p = cu_base + int.from_bytes(d[q:q + 8], "little")
                else:
                    p = cu_base + read_uleb(d, q)[0]
                continue
            p = _skip_children(d, p, table, cu)


def _skip_children(d, p: int, table: list, cu) -> int:
    """Skip the children of a DIE (``p`` at the first child); return the position after
    the terminating null entry."""
    depth = 1
    while True:
        code = d[p]
        p += 1
        if code == 0:
            depth -= 1
            if depth == 0:
                return p
            continue
        if code > 127:
            code, p = read_uleb(d, p - 1)
        fixed, skip, kids = table[code][:3]
        if fixed >= 0:
            p += fixed
        elif skip is not None:
            p = skip(d, p)
        else:
            _, p = decode_attrs(d, p, table[code].abbrev, cu)
        if kids:
            depth += 1


# -- on-demand DIE reading ---------------------------------------------------------------
class Die:
    __slots__ = ("offset", "tag", "attrs", "has_children", "end", "cu", "reader")

    def __init__(self, offset, tag, attrs, has_children, end, cu, reader):
        self.offset = offset
        self.tag = tag
        self.attrs = attrs
        self.has_children = has_children
        self.end = end              # section offset just past the attributes
        self.cu = cu
        self.reader = reader

    def get(self, at: int, default=None):
        a = self.attrs.get(at)
        return default if a is None else a[1]

    def form(self, at: int):
        a = self.attrs.get(at)
        return None if a is None else a[0]

    def name(self) -> str | None:
        a = self.attrs.get(AT_name)
        if a is None:
            return None
        return attr_string(self.cu, a[0], a[1])

    def children(self):
        if not self.has_children:
            return iter(())
        return self.reader.children(self)

    def __repr__(self):
        return f"<Die {self.offset:#x} tag {self.tag:#x}>"


class DieReader:
    """Decode individual DIEs from the compile unit bytes, read on demand."""

    def __init__(self, sections: Sections, units: list):
        self.sections = sections
        self.units = [u if isinstance(u, Unit) else Unit(*u) for u in units]
        self._starts = [u.offset for u in self.units]
        self._cus: dict[int, tuple[bytes, CuContext]] = {}
        self._abbrevs: dict[int, dict] = {}

    def _cu_for(self, off: int) -> tuple[bytes, CuContext]:
        i = bisect_right(self._starts, off) - 1
        if i < 0 or off >= self.units[i].end:
            raise ValueError(f"DIE offset {off:#x} outside .debug_info")
        u = self.units[i]
        hit = self._cus.get(u.offset)
        if hit is not None:
            return hit
        data = self.sections.read_info_range(u.offset, u.end)
        ab = self._abbrevs.get(u.abbrev_offset)
        if ab is None:
            ab = self._abbrevs[u.abbrev_offset] = parse_abbrevs(
                self.sections.get(".debug_abbrev"), u.abbrev_offset)
        cu = CuContext(u, ab, self.sections, base=u.offset)
        # unit DIE attributes: str_offsets_base
        p = u.die_offset - u.offset
        code, p = read_uleb(data, p)
        if code:
            attrs, _ = decode_attrs(data, p, ab[code], cu)
            sob = attrs.get(AT_str_offsets_base)
            if sob is not None:
                cu.str_offsets_base = sob[1]
        if len(self._cus) > 64:
            self._cus.clear()
        self._cus[u.offset] = (data, cu)
        return data, cu

    def die(self, off: int) -> Die:
        data, cu = self._cu_for(off)
        return self._die_at(data, cu, off - cu.base)

    def _die_at(self, data, cu, p: int) -> Die:
        start = p
        code, p = read_uleb(data, p)
        if code == 0:
            raise ValueError(f"null DIE at {start + cu.base:#x}")
        ab = cu.abbrevs[code]
        attrs, p = decode_attrs(data, p, ab, cu)
        return Die(start + cu.base, ab.tag, attrs, ab.has_children, p + cu.base, cu, self)

    def children(self, die: Die):
        data, cu = self._cu_for(die.offset)
        base = cu.base
        p = die.end - base
        n = len(data)
        while p < n:
            if data[p] == 0:
                return
            child = self._die_at(data, cu, p)
            yield child
            p = child.end - base
            if child.has_children:
                sib = child.attrs.get(AT_sibling)
                if sib is not None:
                    p = sib[1] - base
                else:
                    p = self._skip_subtree(data, cu, p)

    def _skip_subtree(self, data, cu, p: int) -> int:
        depth = 1
        while True:
            code, p = read_uleb(data, p)
            if code == 0:
                depth -= 1
                if depth == 0:
                    return p
                continue
            ab = cu.abbrevs[code]
            _, p = decode_attrs(data, p, ab, cu)
            if ab.has_children:
                depth += 1


def default_cache_dir() -> str:
    d = os.environ.get("VNETDBG_CACHE_DIR")
    if d:
        return d
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return os.path.join(xdg, "vnetdbg")
    return os.path.join(os.path.expanduser("~"), ".cache", "vnetdbg")
