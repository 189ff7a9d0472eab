"""Type providers (drgn and pure-Python DWARF) against a small FreeBSD-like test kernel.

The kernel is compiled here from C (clang for x86_64-unknown-freebsd14.0, DWARF 4 and 5;
GCC DWARF 4 when available, which emits DW_AT_sibling and old-style DW_AT_bit_offset;
and a zlib-compressed copy), linked at 0xffffffff80200000 with ld.lld, and split with
``llvm-objcopy --only-keep-debug``.  ``layout_table`` in the kernel's .rodata holds
offsetof/sizeof values computed by the compiler, which the tests read back.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import struct
import subprocess

import pytest

from vnetdbg.debuginfo import open_types
from vnetdbg.debuginfo import _dwarf_scan
from vnetdbg.debuginfo.dwarf_types import DwarfTypeProvider, canonical_base_name
from vnetdbg.debuginfo.symbols import SymbolTable
from vnetdbg.debuginfo.types import Kind, Type
from vnetdbg.errors import FaultError, VnetdbgError

KERN_H = r"""
#include <stddef.h>
#define LIST_HEAD(name, type) struct name { struct type *lh_first; }
#define LIST_ENTRY(type) struct { struct type *le_next; struct type **le_prev; }
#define TAILQ_HEAD(name, type) struct name { struct type *tqh_first; struct type **tqh_last; }
#define TAILQ_ENTRY(type) struct { struct type *tqe_next; struct type **tqe_prev; }

typedef unsigned int __uint32_t;
typedef __uint32_t uint32_t;
typedef uint32_t u_int;
typedef unsigned long long __uint64_t;
typedef __uint64_t *counter_u64_t;
typedef _Bool bool;

struct mtx { const char *name; volatile unsigned long mtx_lock; };
struct vnet;
struct ucred_opaque;      /* defined only in kern2.c */
struct never_defined;     /* defined nowhere */

enum prison_state { PRISON_STATE_INVALID = 0, PRISON_STATE_ALIVE, PRISON_STATE_DYING,
                    PRISON_STATE_NEG = -3 };
enum big_flags { BF_LOW = 1, BF_HIGH = 0x80000000u };

struct prison {
	TAILQ_ENTRY(prison) pr_list;
	int pr_id;
	int pr_ref;
	struct prison *pr_parent;
	LIST_HEAD(, prison) pr_children;
	LIST_ENTRY(prison) pr_sibling;
	struct vnet *pr_vnet;
	struct mtx pr_mtx;
	enum prison_state pr_state;
	u_int pr_flags;
	union {
		struct { unsigned char a, b; } pr_u_s;
		unsigned short pr_u_w;
	};
	struct {
		int pr_anon_x;
		union { long pr_anon_l; void *pr_anon_p; };
	};
	char pr_name[256];
	char pr_path[1024];
	int pr_grid[3][4];
	const volatile int *pr_cvp;
	void (*pr_cb)(struct prison *, int);
	struct ucred_opaque *pr_cred;
	struct never_defined *pr_never;
	counter_u64_t pr_counter;
	bool pr_flag;
	enum big_flags pr_big;
};
"""

KERN_C = KERN_H + r"""
struct tcpcb {
	unsigned int t_state:4, t_flags_lo:12;
	signed int t_neg:3;
	unsigned char t_byte;
	unsigned long long t_wide:40;
	int t_after;
};

struct mbuf_tags {
	int count;
	unsigned long data[];
};

typedef struct tcpcb tcpcb_t;
typedef tcpcb_t tcpcb_alias_t;

union sockaddr_u { struct { unsigned char len, family; } sa; unsigned int raw[4]; };

struct vnet {
	LIST_ENTRY(vnet) vnet_le;
	u_int vnet_magic_n;
	void *vnet_data_mem;
	unsigned long vnet_data_base;
};

TAILQ_HEAD(prisonlist, prison);
LIST_HEAD(vnet_list_head, vnet);

struct pr_flag_bool { unsigned flag; const char *name; const char *noname; };

static struct pr_flag_bool pr_flag_allow[4] = {
	{1, "allow.set_hostname", "allow.noset_hostname"},
	{2, "allow.sysvipc", "allow.nosysvipc"},
	{4, "allow.raw_sockets", "allow.noraw_sockets"},
	{8, "allow.chflags", "allow.nochflags"},
};

struct prison prison0;
struct prisonlist allprison = { 0, &allprison.tqh_first };
struct vnet_list_head vnet_head;
struct vnet vnet0;
struct tcpcb tcb0;
tcpcb_alias_t tcb_alias;
struct mbuf_tags *tags_ptr;
union sockaddr_u sa0;
enum prison_state state0 = PRISON_STATE_ALIVE;
unsigned long counters[8];
const char version[] = "FreeBSD 14.0-TEST #0: vnetdbg test kernel";
static int dupname __attribute__((used)) = 1;
static int weakname __attribute__((used)) = 5;
static int static_dup __attribute__((used)) = 6;

__attribute__((section("set_vnet"), used)) static int vnet_entry_foo = 42;
__attribute__((section("set_vnet"), used)) unsigned long vnet_entry_bar[2] = {1, 2};
extern char __start_set_vnet[], __stop_set_vnet[];

#define OFF(t, m) offsetof(struct t, m)
__attribute__((used)) static const unsigned long layout_table[] = {
	sizeof(struct prison), OFF(prison, pr_id), OFF(prison, pr_children),
	OFF(prison, pr_sibling), OFF(prison, pr_vnet), OFF(prison, pr_mtx),
	OFF(prison, pr_state), OFF(prison, pr_u_w), OFF(prison, pr_anon_x),
	OFF(prison, pr_anon_l), OFF(prison, pr_name), OFF(prison, pr_path),
	OFF(prison, pr_grid), OFF(prison, pr_flag), sizeof(struct tcpcb), OFF(tcpcb, t_byte),
	OFF(tcpcb, t_after), sizeof(struct mbuf_tags), OFF(mbuf_tags, data),
	sizeof(struct vnet), OFF(vnet, vnet_data_base),
};
#define LAYOUT_NAMES "sizeof(prison) pr_id pr_children pr_sibling pr_vnet pr_mtx " \
	"pr_state pr_u_w pr_anon_x pr_anon_l pr_name pr_path pr_grid pr_flag " \
	"sizeof(tcpcb) t_byte t_after sizeof(mbuf_tags) data sizeof(vnet) vnet_data_base"

unsigned long vnet_set_size(void) { return (unsigned long)(__stop_set_vnet - __start_set_vnet); }
int prison_check(struct prison *pr) {
	return pr->pr_id + pr_flag_allow[0].flag + layout_table[0] + tcb0.t_state;
}
void _start(void) { prison_check(&prison0); vnet_set_size(); }
"""

KERN2_C = KERN_H + r"""
struct ucred_opaque { int cr_uid; int cr_ngroups; };
struct ucred_opaque cred0;
struct prison *kern2_prison_ptr;
int dupname = 2;
static int static_dup __attribute__((used)) = 7;
__attribute__((weak)) int weakname = 3;
"""

LAYOUT_NAMES = ("sizeof(prison) pr_id pr_children pr_sibling pr_vnet pr_mtx "
                "pr_state pr_u_w pr_anon_x pr_anon_l pr_name pr_path pr_grid pr_flag "
                "sizeof(tcpcb) t_byte t_after sizeof(mbuf_tags) data sizeof(vnet) "
                "vnet_data_base").split()

LINKER_SCRIPT = """
ENTRY(_start)
SECTIONS {
  . = 0xffffffff80200000;
  .text : { *(.text .text.*) }
  .rodata : { *(.rodata .rodata.*) }
  . = ALIGN(0x1000);
  .data : { *(.data .data.*) }
  set_vnet : { *(set_vnet) }
  .bss : { *(.bss .bss.*) *(COMMON) }
}
"""

CFLAGS = ["-c", "-g", "-O0", "-ffreestanding", "-fno-pic", "-mcmodel=kernel",
          "-fno-stack-protector"]
VARIANTS = ["clang-dwarf4", "clang-dwarf5", "gcc-dwarf4", "clang-dwarf5-zlib"]

_BUILT: dict[str, object] = {}


def _run(cmd, cwd):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")


def build_test_kernels(tmp_path_factory) -> dict[str, dict[str, str]]:
    """Build (once per session) every variant; returns variant -> {"kernel", "debug",
    "stripped"} paths.  Variants whose compiler is missing are absent."""
    if "kernels" in _BUILT:
        return _BUILT["kernels"]  # type: ignore[return-value]
    for tool in ("clang", "ld.lld", "llvm-objcopy"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    d = tmp_path_factory.mktemp("testkernel")
    (d / "kern.c").write_text(KERN_C)
    (d / "kern2.c").write_text(KERN2_C)
    (d / "kernel.ld").write_text(LINKER_SCRIPT)
    out: dict[str, dict[str, str]] = {}
    for variant in VARIANTS:
        if variant.startswith("gcc") and shutil.which("gcc") is None:
            continue
        if variant.startswith("gcc") and platform.machine() != "x86_64":
            continue
        v = variant.split("-")[1][-1]
        objs = []
        for src in ("kern", "kern2"):
            obj = f"{src}-{variant}.o"
            if variant.startswith("gcc"):
                cmd = ["gcc", f"-gdwarf-{v}"] + CFLAGS
            else:
                cmd = ["clang", "--target=x86_64-unknown-freebsd14.0", f"-gdwarf-{v}"] + CFLAGS
            _run(cmd + [f"{src}.c", "-o", obj], d)
            objs.append(obj)
        kernel = f"kernel-{variant}"
        _run(["ld.lld", "-T", "kernel.ld", "--build-id=sha1", "-nostdlib", "-static",
              *objs, "-o", kernel], d)
        if variant.endswith("zlib"):
            _run(["llvm-objcopy", "--compress-debug-sections=zlib", kernel], d)
        _run(["llvm-objcopy", "--only-keep-debug", kernel, kernel + ".debug"], d)
        _run(["llvm-objcopy", "--strip-debug", kernel, kernel + ".stripped"], d)
        out[variant] = {"kernel": str(d / kernel), "debug": str(d / (kernel + ".debug")),
                        "stripped": str(d / (kernel + ".stripped"))}
    _BUILT["kernels"] = out
    return out


def _host_needs_drgn() -> bool:
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


def require_drgn():
    try:
        import drgn  # noqa: F401
    except ImportError:
        if _host_needs_drgn():
            pytest.fail("drgn is a dependency on Linux x86_64 but cannot be imported")
        pytest.skip("drgn not available on this host")


@pytest.fixture(scope="session")
def kernels(tmp_path_factory):
    return build_test_kernels(tmp_path_factory)


@pytest.fixture(params=VARIANTS)
def kern(request, kernels):
    if request.param not in kernels:
        pytest.skip(f"{request.param}: compiler not available")
    return kernels[request.param]


@pytest.fixture
def layout(kern):
    """name -> value of layout_table, read from the full kernel's .rodata."""
    st = SymbolTable(kern["kernel"])
    sym = st.lookup("layout_table")
    raw = st.read_static(sym.address, sym.size)
    values = struct.unpack(f"<{len(LAYOUT_NAMES)}Q", raw)
    return dict(zip(LAYOUT_NAMES, values))


def make_provider(which: str, path: str, cache_dir) -> object:
    if which == "drgn":
        require_drgn()
        from vnetdbg.debuginfo.drgn_types import DrgnTypeProvider
        return DrgnTypeProvider(path)
    return DwarfTypeProvider(path, cache_dir=str(cache_dir), progress=False)


@pytest.fixture(params=["drgn", "dwarf"])
def provider(request, kern, tmp_path):
    return make_provider(request.param, kern["debug"], tmp_path / "cache")


# -- deep comparison -------------------------------------------------------------------
def describe(t: Type, seen: set | None = None, depth: int = 0):
    """A plain structure of everything our model says about ``t``; named structs/unions
    are expanded once per walk."""
    if seen is None:
        seen = set()
    d = [t.kind.value, t.name, t.size, t.signed, t.length, t.enumerators]
    if t.kind in (Kind.STRUCT, Kind.UNION):
        key = (t.kind, t.name)
        if t.name and key in seen:
            return d
        if t.name:
            seen.add(key)
        d.append([(m.name, m.bit_offset, m.bit_size, describe(m.type, seen, depth + 1))
                  for m in t.members])
    elif t.kind in (Kind.POINTER, Kind.TYPEDEF, Kind.ARRAY, Kind.FUNCTION):
        d.append(describe(t.target, seen, depth + 1))
    return d


VARIABLES = ["prison0", "allprison", "vnet_head", "vnet0", "tcb0", "tcb_alias", "tags_ptr",
             "sa0", "state0", "counters", "version", "pr_flag_allow", "vnet_entry_foo",
             "vnet_entry_bar", "layout_table", "cred0", "kern2_prison_ptr", "dupname",
             "weakname", "static_dup"]


def test_drgn_and_dwarf_agree_on_every_named_type(kern, tmp_path):
    require_drgn()
    a = make_provider("drgn", kern["debug"], tmp_path)
    b = make_provider("dwarf", kern["debug"], tmp_path)
    names = b.type_names()
    assert {"struct prison", "struct tcpcb", "union sockaddr_u", "enum prison_state",
            "u_int", "tcpcb_alias_t", "unsigned int", "struct ucred_opaque"} <= set(names)
    assert "struct never_defined" not in names
    for name in names:
        if name == "__ARRAY_SIZE_TYPE__":
            continue
        assert describe(a.find_type(name)) == describe(b.find_type(name)), name
    for name in VARIABLES:
        assert describe(a.find_variable_type(name)) == \
            describe(b.find_variable_type(name)), name
    for name in ("struct prison *", "unsigned long", "long unsigned int", "char"):
        assert describe(a.find_type(name)) == describe(b.find_type(name)), name


# -- concrete facts, both providers ----------------------------------------------------
def test_struct_prison_layout(provider, layout):
    pr = provider.find_type("struct prison")
    assert pr.kind is Kind.STRUCT and pr.name == "prison"
    assert pr.size == layout["sizeof(prison)"]
    for m in ("pr_id", "pr_children", "pr_sibling", "pr_vnet", "pr_mtx", "pr_state",
              "pr_u_w", "pr_anon_x", "pr_anon_l", "pr_name", "pr_path", "pr_grid",
              "pr_flag"):
        off, mem = pr.find_member(m)
        assert off == layout[m] * 8, m
    assert pr.find_member("pr_list.tqe_prev")[0] == 64
    assert pr.find_member("pr_mtx.mtx_lock")[0] == (layout["pr_mtx"] + 8) * 8
    # anonymous members
    anon = [m for m in pr.members if m.name is None]
    assert len(anon) == 2 and anon[0].type.kind is Kind.UNION
    assert anon[1].type.kind is Kind.STRUCT and anon[1].type.name is None
    assert "pr_anon_p" in list(pr.member_names())
    # self reference terminates and is the same object
    nxt = pr.find_member("pr_list.tqe_next")[1].type
    assert nxt.kind is Kind.POINTER and nxt.target is pr
    prev = pr.find_member("pr_list.tqe_prev")[1].type
    assert prev.target.target is pr
    assert pr.find_member("pr_children.lh_first")[1].type.target is pr


def test_arrays(provider):
    pr = provider.find_type("struct prison")
    name = pr.find_member("pr_name")[1].type
    assert name.kind is Kind.ARRAY and name.length == 256 and name.size == 256
    assert name.target.name == "char" and name.target.size == 1
    grid = pr.find_member("pr_grid")[1].type
    assert (grid.length, grid.target.kind, grid.target.length, grid.size) == \
        (3, Kind.ARRAY, 4, 48)
    assert grid.target.target.name == "int"
    tags = provider.find_type("struct mbuf_tags")
    data = tags.find_member("data")[1]
    assert data.type.kind is Kind.ARRAY and data.type.length is None
    assert data.type.size is None and tags.size == 8 and data.offset == 8
    arr = provider.find_variable_type("pr_flag_allow")
    assert arr.kind is Kind.ARRAY and arr.length == 4
    assert arr.target.name == "pr_flag_bool" and arr.size == 4 * 24
    ver = provider.find_variable_type("version")
    assert ver.kind is Kind.ARRAY and ver.length == len("FreeBSD 14.0-TEST #0: vnetdbg test kernel") + 1


def test_bitfields(provider, layout):
    t = provider.find_type("struct tcpcb")
    assert t.size == layout["sizeof(tcpcb)"]
    got = [(m.name, m.bit_offset, m.bit_size) for m in t.members]
    assert got == [("t_state", 0, 4), ("t_flags_lo", 4, 12), ("t_neg", 16, 3),
                   ("t_byte", layout["t_byte"] * 8, None), ("t_wide", 64, 40),
                   ("t_after", layout["t_after"] * 8, None)]
    assert t.find_member("t_neg")[1].type.signed
    assert not t.find_member("t_state")[1].type.signed
    assert t.find_member("t_state")[1].offset == 0


def test_enums(provider):
    e = provider.find_type("enum prison_state")
    assert e.kind is Kind.ENUM and e.size == 4 and e.signed
    assert e.enumerators == (("PRISON_STATE_INVALID", 0), ("PRISON_STATE_ALIVE", 1),
                             ("PRISON_STATE_DYING", 2), ("PRISON_STATE_NEG", -3))
    assert e.enumerator_name(2) == "PRISON_STATE_DYING"
    assert e.enumerator_value("PRISON_STATE_NEG") == -3
    big = provider.find_type("enum big_flags")
    assert not big.signed and dict(big.enumerators)["BF_HIGH"] == 0x80000000


def test_typedef_chain_and_base_types(provider):
    t = provider.find_type("u_int")
    chain = []
    while t.kind is Kind.TYPEDEF:
        chain.append(t.name)
        t = t.target
    assert chain == ["u_int", "uint32_t", "__uint32_t"]
    assert (t.kind, t.name, t.size, t.signed) == (Kind.INT, "unsigned int", 4, False)
    assert provider.find_type("u_int").size == 4
    assert provider.find_type("tcpcb_alias_t").strip_typedefs().name == "tcpcb"
    c = provider.find_type("counter_u64_t")
    assert c.is_pointer() and c.strip_typedefs().target.strip_typedefs().size == 8
    b = provider.find_type("bool").strip_typedefs()
    assert b.kind is Kind.BOOL and b.size == 1
    assert provider.find_type("unsigned long").size == 8
    assert provider.find_type("long unsigned int").size == 8
    assert provider.find_type("int").signed


def test_pointers_qualifiers_functions(provider):
    pr = provider.find_type("struct prison")
    cvp = pr.find_member("pr_cvp")[1].type
    assert cvp.kind is Kind.POINTER and cvp.target.name == "int"   # qualifiers dropped
    lock = pr.find_member("pr_mtx.mtx_lock")[1].type
    assert lock.kind is Kind.INT and lock.name == "unsigned long"
    cb = pr.find_member("pr_cb")[1].type
    assert cb.kind is Kind.POINTER and cb.target.kind is Kind.FUNCTION
    assert cb.target.size is None
    vm = provider.find_type("struct vnet").find_member("vnet_data_mem")[1].type
    assert vm.target.kind is Kind.VOID and vm.target.size is None
    p = provider.pointer_type(pr)
    assert p.kind is Kind.POINTER and p.size == 8 and p.target is pr
    assert provider.find_type("struct prison *").target.name == "prison"


def test_incomplete_and_cross_unit_types(provider):
    pr = provider.find_type("struct prison")
    never = pr.find_member("pr_never")[1].type.target
    assert never.kind is Kind.STRUCT and never.name == "never_defined"
    assert never.size is None and never.members == ()
    # declared in kern.c, defined in kern2.c: resolved to the definition
    cred = pr.find_member("pr_cred")[1].type.target
    assert cred.size == 8 and [m.name for m in cred.members] == ["cr_uid", "cr_ngroups"]
    assert provider.find_variable_type("cred0").size == 8
    with pytest.raises(LookupError):
        provider.find_type("struct never_defined")


def test_variables(provider):
    assert provider.find_variable_type("prison0").name == "prison"
    assert provider.find_variable_type("vnet_entry_foo").name == "int"        # static
    bar = provider.find_variable_type("vnet_entry_bar")
    assert bar.kind is Kind.ARRAY and bar.length == 2
    assert provider.find_variable_type("allprison").name == "prisonlist"
    assert provider.find_variable_type("tcb_alias").name == "tcpcb_alias_t"
    assert provider.find_variable_type("state0").kind is Kind.ENUM
    assert provider.find_variable_type("static_dup").name == "int"
    assert provider.find_variable_type("kern2_prison_ptr").target.name == "prison"
    lt = provider.find_variable_type("layout_table")
    assert lt.length == len(LAYOUT_NAMES) and lt.target.name == "unsigned long"


def test_lookup_errors(provider):
    for name in ("struct nosuch", "union prison", "enum nosuch", "nosuch_t",
                 "unsigned nosuch"):
        with pytest.raises(LookupError):
            provider.find_type(name)
    with pytest.raises(LookupError):
        provider.find_variable_type("nosuch_variable")
    with pytest.raises(LookupError):
        provider.find_variable_type("prison")


def test_provider_names(provider):
    assert provider.name in ("drgn", "dwarf")


# -- the DWARF cache -------------------------------------------------------------------
def _forbid_debug_info(monkeypatch, allow_subtrees: bool):
    def no_scan(*a, **k):
        raise AssertionError("scan_index called although the cache is warm")
    monkeypatch.setattr(_dwarf_scan, "scan_index", no_scan)
    if not allow_subtrees:
        def no_read(*a, **k):
            raise AssertionError(".debug_info read although the type is cached")
        monkeypatch.setattr(_dwarf_scan.Sections, "read_info_range", no_read)
    if allow_subtrees:          # (a compressed section is decompressed whole)
        return
    real_get = _dwarf_scan.Sections.get

    def get(self, name):
        if name == ".debug_info":
            raise AssertionError("whole .debug_info loaded")
        return real_get(self, name)
    monkeypatch.setattr(_dwarf_scan.Sections, "get", get)


def test_cache_answers_without_debug_info(kern, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    p1 = DwarfTypeProvider(kern["debug"], cache_dir=str(cache), progress=False)
    expected = describe(p1.find_type("struct prison"))
    expected_var = describe(p1.find_variable_type("pr_flag_allow"))
    p1.save()
    files = os.listdir(cache)
    assert len(files) == 1 and files[0].startswith("types-bid-")
    _forbid_debug_info(monkeypatch, allow_subtrees=False)
    p2 = DwarfTypeProvider(kern["debug"], cache_dir=str(cache), progress=False)
    assert describe(p2.find_type("struct prison")) == expected
    assert describe(p2.find_variable_type("pr_flag_allow")) == expected_var
    # a new name: the cached index is used and only that subtree is parsed
    monkeypatch.undo()
    _forbid_debug_info(monkeypatch, allow_subtrees=True)
    t = p2.find_type("struct tcpcb")
    assert t.find_member("t_state")[1].bit_size == 4
    p2.save()
    monkeypatch.undo()
    _forbid_debug_info(monkeypatch, allow_subtrees=False)
    p3 = DwarfTypeProvider(kern["debug"], cache_dir=str(cache), progress=False)
    assert p3.find_type("struct tcpcb").find_member("t_wide")[1].bit_size == 40


def test_cache_shared_by_kernel_and_debug_file(kernels, tmp_path, monkeypatch):
    k = kernels["clang-dwarf5"]
    cache = str(tmp_path / "c")
    DwarfTypeProvider(k["kernel"], cache_dir=cache, progress=False).find_type("struct vnet")
    _forbid_debug_info(monkeypatch, allow_subtrees=True)
    p = DwarfTypeProvider(k["debug"], cache_dir=cache, progress=False)
    assert p.find_type("struct vnet").size == 40


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"\x00\xff" * 100,
                                     json.dumps({"format": 999}).encode(),
                                     json.dumps([1, 2, 3]).encode()])
def test_corrupt_cache_is_rebuilt(kernels, tmp_path, garbage):
    k = kernels["clang-dwarf5"]
    cache = tmp_path / "cache"
    p1 = DwarfTypeProvider(k["debug"], cache_dir=str(cache), progress=False)
    path = p1.cache_path
    with open(path, "wb") as f:
        f.write(garbage)
    p2 = DwarfTypeProvider(k["debug"], cache_dir=str(cache), progress=False)
    assert p2.find_type("struct prison").size > 0
    p2.save()
    with open(path) as f:
        assert json.load(f)["format"] == 1


def test_corrupt_cache_fields_rebuilt(kernels, tmp_path):
    k = kernels["clang-dwarf5"]
    cache = tmp_path / "cache"
    p1 = DwarfTypeProvider(k["debug"], cache_dir=str(cache), progress=False)
    with open(p1.cache_path) as f:
        doc = json.load(f)
    doc["units"] = "garbage"
    with open(p1.cache_path, "w") as f:
        json.dump(doc, f)
    p2 = DwarfTypeProvider(k["debug"], cache_dir=str(cache), progress=False)
    assert p2.find_type("struct vnet").size == 40


def test_cache_dir_from_environment(kernels, tmp_path, monkeypatch):
    k = kernels["clang-dwarf5"]
    monkeypatch.setenv("VNETDBG_CACHE_DIR", str(tmp_path / "envcache"))
    p = DwarfTypeProvider(k["debug"], progress=False)
    assert p.cache_path.startswith(str(tmp_path / "envcache"))
    monkeypatch.delenv("VNETDBG_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _dwarf_scan.default_cache_dir() == str(tmp_path / "xdg" / "vnetdbg")


def test_unwritable_cache_dir_still_works(kernels, tmp_path):
    k = kernels["clang-dwarf5"]
    blocker = tmp_path / "file"
    blocker.write_text("x")
    p = DwarfTypeProvider(k["debug"], cache_dir=str(blocker / "sub"), progress=False)
    assert p.find_type("struct vnet").size == 40


def test_progress_callback(kernels, tmp_path):
    k = kernels["clang-dwarf5"]
    calls = []
    DwarfTypeProvider(k["debug"], cache_dir=str(tmp_path),
                      progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1][0] == calls[-1][1]


# -- errors ----------------------------------------------------------------------------
def test_missing_dwarf(kernels, tmp_path):
    path = kernels["clang-dwarf5"]["stripped"]
    with pytest.raises(VnetdbgError) as ei:
        DwarfTypeProvider(path, cache_dir=str(tmp_path))
    assert str(ei.value) == f"{path} has no DWARF debug information (need kernel.debug)"
    require_drgn()
    from vnetdbg.debuginfo.drgn_types import DrgnTypeProvider
    with pytest.raises(VnetdbgError, match="no DWARF debug information"):
        DrgnTypeProvider(path)


@pytest.mark.parametrize("which", ["drgn", "dwarf"])
def test_not_an_elf(tmp_path, which):
    bad = tmp_path / "notelf"
    bad.write_bytes(b"this is not an ELF file at all" * 10)
    with pytest.raises(VnetdbgError) as ei:
        make_provider(which, str(bad), tmp_path)
    assert str(bad) in str(ei.value) and "\n" not in str(ei.value)
    missing = tmp_path / "missing"
    with pytest.raises(VnetdbgError) as ei:
        make_provider(which, str(missing), tmp_path)
    assert str(missing) in str(ei.value)


def test_canonical_base_names():
    assert canonical_base_name("long unsigned int") == "unsigned long"
    assert canonical_base_name("unsigned long") == "unsigned long"
    assert canonical_base_name("long long int") == "long long"
    assert canonical_base_name("short unsigned int") == "unsigned short"
    assert canonical_base_name("signed char") == "signed char"
    assert canonical_base_name("char") == "char"
    assert canonical_base_name("signed") == "int"


# -- open_types and drgn specifics -----------------------------------------------------
def test_open_types(kernels, tmp_path, monkeypatch):
    path = kernels["clang-dwarf5"]["debug"]
    monkeypatch.delenv("VNETDBG_TYPES", raising=False)
    p = open_types(path, provider="dwarf", cache_dir=str(tmp_path))
    assert p.name == "dwarf"
    monkeypatch.setenv("VNETDBG_TYPES", "dwarf")
    assert open_types(path, cache_dir=str(tmp_path)).name == "dwarf"
    with pytest.raises(VnetdbgError, match="unknown type provider"):
        open_types(path, provider="gdb")
    monkeypatch.setenv("VNETDBG_TYPES", "bogus")
    with pytest.raises(VnetdbgError):
        open_types(path, cache_dir=str(tmp_path))
    monkeypatch.delenv("VNETDBG_TYPES")
    require_drgn()
    assert open_types(path, cache_dir=str(tmp_path)).name == "drgn"
    monkeypatch.setenv("VNETDBG_TYPES", "drgn")
    assert open_types(path, provider="dwarf", cache_dir=str(tmp_path)).name == "dwarf"


def test_drgn_program_reads_through_our_reader(kernels):
    require_drgn()
    import drgn
    from vnetdbg.debuginfo.drgn_types import DrgnTypeProvider
    k = kernels["clang-dwarf5"]
    st = SymbolTable(k["kernel"])
    prison0 = st.address_of("prison0")
    id_off = 16
    reads = []

    def read(address, size):
        reads.append((address, size))
        if address >= 0xfffff80000000000 and address < 0xffffffff00000000:
            raise FaultError(address)
        buf = bytearray(size)
        if address <= prison0 + id_off < address + size:
            buf[prison0 + id_off - address:prison0 + id_off - address + 4] = \
                (77).to_bytes(4, "little")
        return bytes(buf)

    p = DrgnTypeProvider(k["debug"], read=read,
                         address_ranges=[(0xffffffff80200000, 0xffffffff80400000)])
    prog = p.program
    assert prog["prison0"].address_ == prison0
    assert prog["prison0"].pr_id.value_() == 77
    assert reads
    with pytest.raises(drgn.FaultError):
        prog.read(0xfffff80000001000, 8)
    assert prog.symbol(prison0).name == "prison0"


def test_dwarf_type_names_cover_index(kernels, tmp_path):
    p = DwarfTypeProvider(kernels["clang-dwarf4"]["debug"], cache_dir=str(tmp_path),
                          progress=False)
    names = p.type_names()
    assert "struct prison" in names and "enum prison_state" in names
    assert "union sockaddr_u" in names and "u_int" in names
