"""Pure-Python type provider reading DWARF directly (works on every host).

First use of a kernel: one pass over ``.debug_info`` (see ``_dwarf_scan``) builds a name
index of the top-level types and variables.  A type is then extracted by decoding only
its own DIE subtree.  Both the index and every extracted layout go to a cache file keyed
by the kernel's build-id, so later runs answer from the cache and touch ``.debug_info``
only for types never extracted before.

Cache file (JSON): ``{"format", "key", "info_size", "units", "index", "decl",
"records"}``, records being DIE offset -> a small dict describing one type, with
references to other types as DIE offsets (qualifiers already stripped; ``null`` = void).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import sys
import tempfile
import threading
import weakref
from typing import Callable

from ..errors import VnetdbgError
from . import _dwarf_scan as ds
from .types import Kind, Member, Type

CACHE_FORMAT = 1

_QUALIFIER_TAGS = {ds.TAG_const_type, ds.TAG_volatile_type, ds.TAG_restrict_type,
                   ds.TAG_atomic_type, ds.TAG_immutable_type}

_KIND_OF_RECORD = {"int": Kind.INT, "bool": Kind.BOOL, "float": Kind.FLOAT,
                   "pointer": Kind.POINTER, "struct": Kind.STRUCT, "union": Kind.UNION,
                   "array": Kind.ARRAY, "enum": Kind.ENUM, "typedef": Kind.TYPEDEF,
                   "function": Kind.FUNCTION, "void": Kind.VOID}

VOID = None   # record reference meaning "void"


def canonical_base_name(name: str) -> str:
    """One spelling per C base type: "long unsigned int" -> "unsigned long"."""
    words = name.split()
    ws = set(words)
    if not ws <= {"signed", "unsigned", "char", "short", "int", "long", "double",
                  "float", "_Bool", "__int128"}:
        return " ".join(words)
    u = "unsigned " if "unsigned" in ws else ""
    nlong = words.count("long")
    if "char" in ws:
        return ("unsigned " if u else "signed " if "signed" in ws else "") + "char"
    if "double" in ws:
        return "long double" if nlong else "double"
    if "float" in ws:
        return "float"
    if "_Bool" in ws:
        return "_Bool"
    if "__int128" in ws:
        return u + "__int128"
    if "short" in ws:
        return u + "short"
    if nlong >= 2:
        return u + "long long"
    if nlong == 1:
        return u + "long"
    return u + "int"


def _elf_address_size(path: str) -> int:
    """4 for an ELFCLASS32 file (i386), else 8."""
    try:
        with open(path, "rb") as f:
            ident = f.read(5)
    except OSError:
        return 8
    return 4 if ident[:4] == b"\x7fELF" and ident[4:5] == b"\x01" else 8


class DwarfTypeProvider:
    """``TypeProvider`` over a kernel's DWARF, without drgn."""

    name = "dwarf"

    def __init__(self, debug_path, *, cache_dir: str | None = None,
                 progress: Callable[[int, int], None] | bool | None = None):
        self.path = os.fspath(debug_path)
        self._sections = ds.Sections(self.path)      # VnetdbgError if no DWARF
        self._info_size = self._sections.info[".debug_info"][1]
        #: pointer size for pointer_type(): the kernel's ELF class (8, or 4 on i386)
        self.address_size = _elf_address_size(self.path)
        self._progress = progress
        self._cache_dir = cache_dir if cache_dir is not None else ds.default_cache_dir()
        self._key = self._cache_key()
        self._lock = threading.RLock()
        self._records: dict[int, dict] = {}
        self._types: dict[int, Type] = {}
        self._void = Type(Kind.VOID, "void")
        self._pointers: dict[int, Type] = {}
        self._reader: ds.DieReader | None = None
        self._dirty = False
        self._units: list | None = None
        self._index: dict[str, dict[str, int]] | None = None
        self._decl: set[str] = set()
        if not self._load_cache():
            self._build_index()
            self.save()
        ref = weakref.ref(self)
        atexit.register(_save_at_exit, ref)

    # -- cache ---------------------------------------------------------------------------
    def _cache_key(self) -> str:
        bid = self._sections.build_id
        if bid:
            return "bid-" + bid
        h = hashlib.sha256()
        size = os.path.getsize(self.path)
        with open(self.path, "rb") as f:
            h.update(f.read(1 << 20))
            if size > 2 << 20:
                f.seek(size - (1 << 20))
            h.update(f.read(1 << 20))
        h.update(str(size).encode())
        return "sha-" + h.hexdigest()[:40]

    @property
    def cache_path(self) -> str:
        return os.path.join(self._cache_dir, f"types-{self._key}.json")

    def _load_cache(self) -> bool:
        try:
            with open(self.cache_path, "rb") as f:
                doc = json.loads(f.read())
            if (doc.get("format") != CACHE_FORMAT or doc.get("key") != self._key
                    or doc.get("info_size") != self._info_size):
                return False
            units = [ds.Unit(*u) for u in doc["units"]]
            index = doc["index"]
            if set(index) != set(ds.INDEX_KINDS):
                return False
            records = {int(k): v for k, v in doc["records"].items()}
            decl = set(doc["decl"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return False
        self._units, self._index, self._decl, self._records = units, index, decl, records
        return True

    def save(self) -> None:
        """Write the index and every extracted layout to the cache (atomically)."""
        with self._lock:
            doc = {"format": CACHE_FORMAT, "key": self._key, "info_size": self._info_size,
                   "units": [list(u) for u in self._units], "index": self._index,
                   "decl": sorted(self._decl),
                   "records": {str(k): v for k, v in self._records.items()}}
            try:
                os.makedirs(self._cache_dir, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=".types-", dir=self._cache_dir)
                try:
                    with os.fdopen(fd, "w") as f:
                        json.dump(doc, f, separators=(",", ":"))
                    os.replace(tmp, self.cache_path)
                except BaseException:
                    try:
                        os.unlink(tmp)
                    except OSError:
                        pass
                    raise
            except OSError:
                return          # an unwritable cache only costs time
            self._dirty = False

    def close(self) -> None:
        if self._dirty:
            self.save()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- index ---------------------------------------------------------------------------
    def _build_index(self) -> None:
        progress = self._progress
        bar = None
        if progress is None and sys.stderr is not None and sys.stderr.isatty():
            bar = _ProgressBar(self.path)
            progress = bar
        elif progress is False or progress is True:
            progress = _ProgressBar(self.path) if progress is True else None
        try:
            units, index, decl = ds.scan_index(self._sections, progress)
        except (ValueError, IndexError, KeyError) as e:
            raise VnetdbgError(f"{self.path}: malformed DWARF ({e})") from None
        finally:
            if isinstance(progress, _ProgressBar):
                progress.done()
        self._units, self._index, self._decl = units, index, decl

    def _die_reader(self) -> ds.DieReader:
        if self._reader is None:
            self._reader = ds.DieReader(self._sections, self._units)
        return self._reader

    # -- the protocol --------------------------------------------------------------------
    def find_type(self, name: str) -> Type:
        spelled = " ".join(name.replace("*", " * ").split())
        with self._lock:
            if spelled.endswith("*"):
                return self.pointer_type(self.find_type(spelled[:-1]))
            words = spelled.split(" ", 1)
            if len(words) == 2 and words[0] in ("struct", "union", "enum", "class"):
                kind = {"struct": ds.K_STRUCT, "class": ds.K_STRUCT, "union": ds.K_UNION,
                        "enum": ds.K_ENUM}[words[0]]
                off = self._index[kind].get(words[1])
                if off is not None and kind + "\0" + words[1] in self._decl:
                    off = None      # only declared (as drgn: not found)
            elif spelled == "void":
                return self._void
            else:
                off = self._index[ds.K_TYPEDEF].get(spelled)
                if off is None:
                    off = self._base_offset(spelled)
            if off is None:
                raise LookupError(f"could not find type {name!r}")
            return self._type(off)

    def find_variable_type(self, name: str) -> Type:
        with self._lock:
            off = self._index[ds.K_VAR].get(name)
            if off is None:
                raise LookupError(f"could not find variable {name!r}")
            key = -off - 1          # records of variables are stored under -offset-1
            rec = self._records.get(key)
            if rec is None:
                rec = {"k": "var", "t": self._variable_type_ref(off)}
                self._records[key] = rec
                self._dirty = True
            return self._ref(rec["t"])

    def pointer_type(self, target: Type) -> Type:
        p = self._pointers.get(id(target))
        if p is None or p.target is not target:
            p = Type(Kind.POINTER, None, self.address_size, target=target)
            self._pointers[id(target)] = p
        return p

    def type_names(self) -> list[str]:
        """C spellings of every indexed type ("struct prison", "u_int", "int", ...);
        names that are only declared are left out."""
        prefix = {ds.K_STRUCT: "struct ", ds.K_UNION: "union ", ds.K_ENUM: "enum ",
                  ds.K_TYPEDEF: "", ds.K_BASE: ""}
        out = []
        for kind, pre in prefix.items():
            for n in self._index[kind]:
                if kind + "\0" + n not in self._decl:
                    out.append(pre + n)
        return out

    def variable_names(self) -> list[str]:
        return list(self._index[ds.K_VAR])

    # -- helpers -------------------------------------------------------------------------
    def _base_offset(self, spelled: str) -> int | None:
        base = self._index[ds.K_BASE]
        off = base.get(spelled)
        if off is not None:
            return off
        canon = canonical_base_name(spelled)
        for n, o in base.items():
            if canonical_base_name(n) == canon:
                return o
        return None

    def _ref(self, ref) -> Type:
        if ref is None:
            return self._void
        return self._type(ref)

    def _type(self, off: int) -> Type:
        t = self._types.get(off)
        if t is not None:
            return t
        rec = self._records.get(off)
        if rec is None:
            rec = self._extract(off)
            self._records[off] = rec
            self._dirty = True
        if rec["k"] in ("struct", "union", "enum") and rec.get("decl"):
            # a declaration: use the complete definition of that name if there is one
            ik = {"struct": ds.K_STRUCT, "union": ds.K_UNION, "enum": ds.K_ENUM}[rec["k"]]
            full = self._index[ik].get(rec.get("n") or "")
            if full is not None and full != off:
                frec = self._records.get(full)
                if frec is None:
                    frec = self._records[full] = self._extract(full)
                    self._dirty = True
                if not frec.get("decl"):
                    t = self._type(full)
                    self._types[off] = t
                    return t
        t = self._build(rec)
        self._types[off] = t
        return t

    def _build(self, rec: dict) -> Type:
        k = _KIND_OF_RECORD[rec["k"]]
        if k in (Kind.INT, Kind.BOOL, Kind.FLOAT):
            return Type(k, rec["n"], rec["s"], signed=rec.get("sg", False))
        if k is Kind.VOID:
            return self._void
        if k is Kind.POINTER:
            return Type(k, None, rec["s"], target=self._lazy(rec["t"]))
        if k is Kind.TYPEDEF:
            return Type(k, rec["n"], None, target=self._lazy(rec["t"]))
        if k is Kind.FUNCTION:
            return Type(k, None, None, target=self._lazy(rec["t"]))
        if k is Kind.ENUM:
            return Type(k, rec.get("n"), rec.get("s"), signed=rec.get("sg", False),
                        enumerators=[tuple(e) for e in rec.get("e", ())])
        if k is Kind.ARRAY:
            lengths = rec["l"]
            inner: object = self._lazy(rec["t"])
            for ln in reversed(lengths[1:]):
                inner = Type(Kind.ARRAY, None, None, target=inner, length=ln)
            return Type(Kind.ARRAY, None, None, target=inner, length=lengths[0])
        # struct / union
        if rec.get("decl"):
            return Type(k, rec.get("n"), None, members=())
        mems = rec["m"]

        def members(mems=mems):
            return tuple(Member(n, bo, self._lazy(t), bs) for n, bo, bs, t in mems)
        return Type(k, rec.get("n"), rec.get("s"), members=members)

    def _lazy(self, ref):
        if ref is None:
            return self._void

        def resolve(ref=ref):
            with self._lock:
                return self._type(ref)
        return resolve

    # -- extraction from DWARF -----------------------------------------------------------
    def _strip(self, die: ds.Die | None):
        """Follow qualifiers: the DIE of the unqualified type (None = void)."""
        reader = self._die_reader()
        seen = 0
        while die is not None and die.tag in _QUALIFIER_TAGS:
            ref = die.get(ds.AT_type)
            die = None if ref is None else reader.die(ref)
            seen += 1
            if seen > 64:
                break
        return die

    def _type_ref(self, die: ds.Die) -> int | None:
        """Reference (DIE offset, qualifiers stripped) to the type of ``die``."""
        ref = die.get(ds.AT_type)
        if ref is None:
            return VOID
        t = self._strip(self._die_reader().die(ref))
        if t is None:
            return VOID
        if t.tag == ds.TAG_unspecified_type:
            return VOID
        return t.offset

    def _variable_type_ref(self, off: int):
        reader = self._die_reader()
        die = reader.die(off)
        for _ in range(8):
            if ds.AT_type in die.attrs:
                break
            nxt = die.get(ds.AT_specification) or die.get(ds.AT_abstract_origin)
            if nxt is None:
                break
            die = reader.die(nxt)
        return self._type_ref(die)

    def _extract(self, off: int) -> dict:
        reader = self._die_reader()
        try:
            die = self._strip(reader.die(off))
            if die is None:
                return {"k": "void"}
            return self._extract_die(die)
        except (ValueError, IndexError, KeyError) as e:
            raise VnetdbgError(f"{self.path}: malformed DWARF at {off:#x} ({e})") from None

    def _extract_die(self, die: ds.Die) -> dict:
        tag = die.tag
        if tag == ds.TAG_base_type:
            enc = die.get(ds.AT_encoding, 0)
            size = die.get(ds.AT_byte_size)
            name = die.name()
            if name:
                name = canonical_base_name(name)     # as drgn: "long unsigned int" ->
            if enc == 0x02:                          # "unsigned long"
                return {"k": "bool", "n": name, "s": size}
            if enc in (0x03, 0x04, 0x09):
                return {"k": "float", "n": name, "s": size}
            return {"k": "int", "n": name, "s": size, "sg": enc in (0x05, 0x06, 0x0D)}
        if tag in (ds.TAG_pointer_type, ds.TAG_reference_type):
            return {"k": "pointer", "s": die.get(ds.AT_byte_size) or die.cu.unit.addrsize,
                    "t": self._type_ref(die)}
        if tag == ds.TAG_typedef:
            return {"k": "typedef", "n": die.name(), "t": self._type_ref(die)}
        if tag == ds.TAG_subroutine_type or tag == ds.TAG_subprogram:
            return {"k": "function", "t": self._type_ref(die)}
        if tag == ds.TAG_unspecified_type:
            return {"k": "void"}
        if tag == ds.TAG_array_type:
            lengths = []
            for c in die.children():
                if c.tag == ds.TAG_subrange_type or c.tag == 0x04:
                    lengths.append(_subrange_length(c))
            if not lengths:
                lengths = [None]
            return {"k": "array", "t": self._type_ref(die), "l": lengths}
        if tag == ds.TAG_enumeration_type:
            return self._extract_enum(die)
        if tag in (ds.TAG_structure_type, ds.TAG_class_type, ds.TAG_union_type):
            kind = "union" if tag == ds.TAG_union_type else "struct"
            rec: dict = {"k": kind, "n": die.name()}
            if die.get(ds.AT_declaration):
                rec["decl"] = True
                return rec
            rec["s"] = die.get(ds.AT_byte_size)
            members = []
            for c in die.children():
                if c.tag != ds.TAG_member:
                    continue
                members.append(self._member(c, kind == "union"))
            rec["m"] = members
            return rec
        raise VnetdbgError(f"{self.path}: DIE {die.offset:#x} (tag {tag:#x}) is not a type")

    def _member(self, c: ds.Die, in_union: bool) -> list:
        bit_size = c.get(ds.AT_bit_size)
        dbo = c.get(ds.AT_data_bit_offset)
        loc = c.attrs.get(ds.AT_data_member_location)
        byte_off = 0
        if loc is not None:
            form, v = loc
            if isinstance(v, bytes):
                byte_off = _location_expr_offset(v)
            elif form == ds.F_sdata:
                byte_off = v
            else:
                byte_off = v
        if dbo is not None:
            bit_off = dbo
        elif bit_size is not None and ds.AT_bit_offset in c.attrs:
            # DWARF 2/3 style: bit_offset counts from the most significant bit of a
            # storage unit of byte_size bytes at data_member_location (little-endian).
            storage = c.get(ds.AT_byte_size)
            if storage is None:
                t = self._strip(self._die_reader().die(c.get(ds.AT_type)))
                while t is not None and t.tag == ds.TAG_typedef:
                    t = self._strip(self._die_reader().die(t.get(ds.AT_type)))
                storage = t.get(ds.AT_byte_size, 0) if t is not None else 0
            bo = c.get(ds.AT_bit_offset)
            bit_off = byte_off * 8 + storage * 8 - bo - bit_size
        else:
            bit_off = byte_off * 8
        return [c.name(), bit_off, bit_size, self._type_ref(c)]

    def _extract_enum(self, die: ds.Die) -> dict:
        rec: dict = {"k": "enum", "n": die.name()}
        if die.get(ds.AT_declaration):
            rec["decl"] = True
            rec["e"] = []
            return rec
        size = die.get(ds.AT_byte_size)
        signed = None
        tref = die.get(ds.AT_type)
        if tref is not None:
            t = self._strip(self._die_reader().die(tref))
            while t is not None and t.tag == ds.TAG_typedef:
                t = self._strip(self._die_reader().die(t.get(ds.AT_type)))
            if t is not None and t.tag == ds.TAG_base_type:
                signed = t.get(ds.AT_encoding) in (0x05, 0x06)
                size = size or t.get(ds.AT_byte_size)
        raw = []
        for c in die.children():
            if c.tag == ds.TAG_enumerator:
                form, v = c.attrs.get(ds.AT_const_value, (ds.F_udata, 0))
                raw.append((c.name(), form, v))
        if signed is None:
            signed = any(f == ds.F_sdata and v < 0 for _, f, v in raw)
        enums = []
        nbytes = {ds.F_data1: 1, ds.F_data2: 2, ds.F_data4: 4, ds.F_data8: 8}
        for n, form, v in raw:
            if isinstance(v, bytes):
                v = int.from_bytes(v, "little", signed=signed)
            elif signed and form in nbytes:
                bits = nbytes[form] * 8
                if v >= 1 << (bits - 1):
                    v -= 1 << bits
            elif not signed and form == ds.F_sdata and v < 0 and size:
                v &= (1 << (size * 8)) - 1
            enums.append([n, v])
        rec.update(s=size, sg=signed, e=enums)
        return rec


def _subrange_length(c: ds.Die):
    count = c.attrs.get(ds.AT_count)
    if count is not None:
        return count[1] if isinstance(count[1], int) and count[0] not in ds._REF_FORMS \
            else None
    ub = c.attrs.get(ds.AT_upper_bound)
    if ub is None or ub[0] in ds._REF_FORMS or isinstance(ub[1], bytes):
        return None
    v = ub[1]
    if (ub[0] == ds.F_data4 and v == 0xFFFFFFFF) or \
            (ub[0] == ds.F_data8 and v == (1 << 64) - 1) or v < 0:
        return 0                        # upper bound -1: zero-length array
    lb = c.get(ds.AT_lower_bound, 0)
    if not isinstance(lb, int):
        lb = 0
    return max(v - lb + 1, 0)


def _location_expr_offset(expr: bytes) -> int:
    """Byte offset from a DW_AT_data_member_location expression (DW_OP_plus_uconst N,
    or DW_OP_constu N [DW_OP_plus])."""
    if not expr:
        return 0
    op = expr[0]
    if op in (0x23, 0x10):          # DW_OP_plus_uconst, DW_OP_constu
        return ds.read_uleb(expr, 1)[0]
    if op == 0x11:                  # DW_OP_consts
        return ds.read_sleb(expr, 1)[0]
    if 0x30 <= op <= 0x4F:          # DW_OP_lit0..31
        return op - 0x30
    return 0


class _ProgressBar:
    def __init__(self, path: str):
        self.label = os.path.basename(path)
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        pct = done * 100 // max(total, 1)
        width = 30
        fill = width * pct // 100
        sys.stderr.write(f"\rvnetdbg: indexing DWARF of {self.label} "
                         f"[{'#' * fill}{'.' * (width - fill)}] {pct:3d}%")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _save_at_exit(ref) -> None:
    p = ref()
    if p is not None:
        try:
            p.close()
        except Exception:
            pass
