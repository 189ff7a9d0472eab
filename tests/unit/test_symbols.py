"""SymbolTable over the test kernel built in test_types_providers."""

from __future__ import annotations

import re
import struct
import subprocess

import pytest

from tests.unit.test_types_providers import LAYOUT_NAMES, build_test_kernels
from vnetdbg.debuginfo.symbols import Symbol, SymbolTable
from vnetdbg.errors import VnetdbgError

TEXT_BASE = 0xFFFFFFFF80200000


@pytest.fixture(scope="session")
def kernels(tmp_path_factory):
    return build_test_kernels(tmp_path_factory)


@pytest.fixture(scope="module")
def full(kernels):
    return SymbolTable(kernels["clang-dwarf5"]["kernel"])


@pytest.fixture(scope="module")
def debug(kernels):
    return SymbolTable(kernels["clang-dwarf5"]["debug"])


def test_lookup_kinds_and_bindings(full):
    s = full.lookup("prison0")
    assert isinstance(s, Symbol)
    assert (s.name, s.binding, s.kind) == ("prison0", "global", "object")
    assert s.address >= TEXT_BASE and s.size > 0
    f = full.lookup("prison_check")
    assert (f.binding, f.kind) == ("global", "func") and f.size > 0
    local = full.lookup("pr_flag_allow")
    assert (local.binding, local.kind, local.size) == ("local", "object", 4 * 24)
    v = full.lookup("vnet_entry_foo")
    assert (v.binding, v.size) == ("local", 4)
    assert full.lookup("_start").address >= TEXT_BASE
    assert full.address_of("prison0") == s.address
    assert "prison0" in full and "nosuch" not in full
    with pytest.raises(LookupError):
        full.lookup("nosuch_symbol")
    with pytest.raises(LookupError):
        full.address_of("nosuch_symbol")
    kinds = {sym.kind for sym in full}
    assert {"object", "func", "file"} <= kinds


def test_binding_preference(full):
    # dupname: local in kern.c, global in kern2.c
    dup = full.lookup_all("dupname")
    assert sorted(s.binding for s in dup) == ["global", "local"]
    assert full.lookup("dupname").binding == "global"
    # weakname: local in kern.c, weak in kern2.c
    assert full.lookup("weakname").binding == "weak"
    # static_dup: two locals
    both = full.lookup_all("static_dup")
    assert len(both) == 2 and {s.binding for s in both} == {"local"}
    assert full.lookup("static_dup") == both[0]
    assert full.lookup_all("nosuch") == []


def test_symbolize(full):
    s = full.lookup("prison0")
    assert full.symbolize(s.address) == (s, 0)
    assert full.symbolize(s.address + 17) == (s, 17)
    f = full.lookup("prison_check")
    sym, off = full.symbolize(f.address + 3)
    assert sym.name == "prison_check" and off == 3
    assert full.symbolize(0x1000) is None
    assert full.symbolize(0xFFFFFFFFFFFF0000) is None
    arr = full.lookup("pr_flag_allow")
    assert full.symbolize(arr.address + 24 * 3 + 8)[0].name == "pr_flag_allow"


def test_build_id_machine_and_sections(full, debug, kernels):
    assert re.fullmatch(r"[0-9a-f]{40}", full.build_id)
    assert debug.build_id == full.build_id
    out = subprocess.run(["llvm-readelf", "-n", kernels["clang-dwarf5"]["kernel"]],
                         capture_output=True, text=True).stdout
    assert full.build_id in out
    assert full.machine == debug.machine == "x86_64"
    addr, size, stype, flags = full.sections[".text"]
    assert TEXT_BASE <= addr < TEXT_BASE + 0x1000 and size > 0 and stype == "SHT_PROGBITS"
    assert debug.sections[".rodata"][2] == "SHT_NOBITS"
    assert full.has_debug_info and debug.has_debug_info
    assert not SymbolTable(kernels["clang-dwarf5"]["stripped"]).has_debug_info


def test_section_bounds(full, debug):
    start, end = full.section_bounds("set_vnet")
    assert start == full.address_of("__start_set_vnet")
    assert end == full.address_of("__stop_set_vnet")
    assert end - start >= 4 + 16
    foo = full.address_of("vnet_entry_foo")
    assert start <= foo < end
    assert debug.section_bounds("set_vnet") == (start, end)
    with pytest.raises(LookupError):
        full.section_bounds("set_nosuch")


def test_read_static(full, debug):
    lt = full.lookup("layout_table")
    raw = full.read_static(lt.address, lt.size)
    values = struct.unpack(f"<{len(LAYOUT_NAMES)}Q", raw)
    assert dict(zip(LAYOUT_NAMES, values))["pr_id"] == 16
    assert debug.read_static(lt.address, lt.size) is None        # NOBITS in kernel.debug
    bar = full.lookup("vnet_entry_bar")                          # in set_vnet (PROGBITS)
    assert struct.unpack("<2Q", full.read_static(bar.address, 16)) == (1, 2)
    foo = full.lookup("vnet_entry_foo")
    assert int.from_bytes(full.read_static(foo.address, 4), "little") == 42
    allow = full.lookup("pr_flag_allow")
    assert int.from_bytes(full.read_static(allow.address + 24, 4), "little") == 2
    assert full.read_static(full.address_of("prison0"), 8) is None   # .bss
    assert full.read_static(0x1000, 4) is None
    text = full.sections[".text"]
    assert full.read_static(text[0] + text[1] - 2, 4) is None        # crosses the end


def test_version_string(full, debug):
    assert full.version_string == "FreeBSD 14.0-TEST #0: vnetdbg test kernel"
    assert debug.version_string is None


def test_all_variants_load(kernels):
    for k in kernels.values():
        st = SymbolTable(k["kernel"])
        assert st.lookup("allprison").kind == "object"
        assert st.version_string.startswith("FreeBSD 14.0-TEST")


def test_not_an_elf(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x7fELF" + b"\x00" * 10)
    with pytest.raises(VnetdbgError) as ei:
        SymbolTable(bad)
    assert str(bad) in str(ei.value) and "\n" not in str(ei.value)
    text = tmp_path / "text"
    text.write_text("hello\n" * 100)
    with pytest.raises(VnetdbgError, match=re.escape(str(text))):
        SymbolTable(text)
    with pytest.raises(VnetdbgError, match="cannot read"):
        SymbolTable(tmp_path / "missing")
    with pytest.raises(VnetdbgError, match="cannot read"):
        SymbolTable(tmp_path)
