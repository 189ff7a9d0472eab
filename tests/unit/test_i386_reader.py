"""i386 on the reader side: the 12+ page-table bootstrap (KERNBASE == KERNLOAD, image
mapped 1:1, pae_mode choosing the pmap), 32-bit symbol tables, 4-byte pointers in both
type providers and in Target, counter(9) pointer arrays; then the fbsd14-i386 fixture
kernel (built into tmp_path; skipped without clang/ld.lld) read through PAE and
non-PAE minidumps and ELF full dumps, checked page by page against the simulated
machine."""

from __future__ import annotations

import importlib.util
import shutil
import struct

import pytest

from tests.conftest import ROOT
from vnetdbg.errors import FaultError, VnetdbgError
from vnetdbg.memory.pagetables import X86KernelPageTables

V, RW, PS = 0x1, 0x2, 0x80


class Phys:
    def __init__(self):
        self.b = bytearray(0x40000)

    def u32(self, pa, v):
        struct.pack_into("<I", self.b, pa, v)

    def u64(self, pa, v):
        struct.pack_into("<Q", self.b, pa, v)

    def read(self, pa, n):
        if pa < 0 or pa + n > len(self.b):
            raise FaultError(pa, "not in image")
        return bytes(self.b[pa:pa + n])


KB12 = 0x00800000


def _merged_kernel_memory():
    """Physical memory of a 12+ kernel: the pmap globals sit at small addresses, read
    1:1 (VA == PA, as pmap_cold() maps the image); both pmaps' roots are set, so only
    pae_mode tells which one ran."""
    ph = Phys()
    # symbols (VA == PA): pae_mode 0x1000, IdlePDPT 0x1004, IdlePTD_nopae 0x1008
    ph.u32(0x1004, 0x2000)                       # IdlePDPT -> PDPT at 0x2000
    ph.u32(0x1008, 0x8000)                       # IdlePTD_nopae -> PD at 0x8000
    # PAE: PDPT[0] -> PD 0x3000; PD[4] (VA 8 MiB): 2 MiB page at 0x800000 ... use PT
    ph.u64(0x2000, 0x3000 | V)
    ph.u64(0x3000 + 8 * 4, 0x4000 | V | RW)      # VA 0x800000.. -> PT 0x4000
    ph.u64(0x4000 + 8 * 1, 0x5000 | V)           # VA 0x801000 -> PA 0x5000
    # non-PAE: PD[2] (VA 8 MiB) -> PT 0x9000; PT[1] -> PA 0x6000
    ph.u32(0x8000 + 4 * 2, 0x9000 | V | RW)
    ph.u32(0x9000 + 4 * 1, 0x6000 | V)
    return ph


SYMS12 = {"kernbase": KB12, "kernload": KB12, "pae_mode": 0x1000, "IdlePDPT": 0x1004,
          "IdlePTD_pae": 0x100C, "IdlePTD_nopae": 0x1008}


@pytest.mark.parametrize("pae", [1, 0])
def test_12plus_bootstrap_is_identity_and_follows_pae_mode(pae):
    ph = _merged_kernel_memory()
    ph.u32(0x1000, pae)
    t = X86KernelPageTables("i386", ph.read)
    t.attach(SYMS12.get)
    assert t.mode == ("pae" if pae else "nopae")
    assert t.root == (0x2000 if pae else 0x8000)
    assert t.translate(0x801234) == (0x5234 if pae else 0x6234)


def test_12plus_without_kernload_symbol_uses_low_kernbase():
    ph = _merged_kernel_memory()
    ph.u32(0x1000, 1)
    t = X86KernelPageTables("i386", ph.read)
    t.attach({k: v for k, v in SYMS12.items() if k != "kernload"}.get)
    assert (t.mode, t.root) == ("pae", 0x2000)


def test_pre12_bootstrap_still_subtracts_kernbase():
    ph = Phys()
    ph.u32(0x1000, 0x2000)                      # IdlePTD at VA 0xc0001000 -> PA 0x1000
    ph.u32(0x2000 + 4 * 0x300, 0x400000 | V | PS)
    t = X86KernelPageTables("i386", lambda pa, n: ph.read(pa, n) if pa < len(ph.b)
                            else b"\0" * n)
    t.attach({"kernbase": 0xC0000000, "kernload": 0x400000,
              "IdlePTD": 0xC0001000}.get)
    assert (t.mode, t.root) == ("nopae", 0x2000)
    assert t.translate(0xC0012345) == 0x412345


def test_12plus_unreadable_pae_mode_is_one_error():
    t = X86KernelPageTables("i386", Phys().read)
    with pytest.raises(VnetdbgError, match=r"pae_mode at physical 0x9000000 \(symbol "
                                           r"0x9000000, the kernel image being mapped 1:1\)"):
        t.attach({**SYMS12, "pae_mode": 0x9000000}.get)


def test_counter_pointer_array_uses_the_kernels_pointer_size():
    from vnetdbg.freebsd.counter import CpuOffsets, counter_pointers_fetch

    mem = bytearray(0x3000)
    struct.pack_into("<II", mem, 0x100, 0x1000, 0x2000)       # two 4-byte pointers
    struct.pack_into("<Q", mem, 0x1000, 5)
    struct.pack_into("<Q", mem, 0x1010, 7)                    # CPU 1 at +0x10
    struct.pack_into("<Q", mem, 0x2000, 1 << 40)

    class T:
        pointer_size = 4
        byteorder = "little"

        @staticmethod
        def read(a, n):
            return bytes(mem[a:a + n])

    assert counter_pointers_fetch(T, 0x100, 2, CpuOffsets((0, 0x10))) == [12, 1 << 40]


# --- with the fbsd14-i386 fixture kernel ------------------------------------------------

@pytest.fixture(scope="module")
def i386_kernel(tmp_path_factory):
    spec = importlib.util.spec_from_file_location(
        "build_fixture_kernels", ROOT / "scripts" / "build_fixture_kernels.py")
    bfk = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bfk)
    missing = [t for t in bfk.TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"fixture kernels need {', '.join(missing)}")
    out = tmp_path_factory.mktemp("k386")
    return bfk.build("fbsd14-i386", out)


def test_symbols_of_an_elf32_kernel(i386_kernel):
    from vnetdbg.debuginfo.symbols import SymbolTable
    st = SymbolTable(i386_kernel["kernel_debug"])
    assert st.elfclass == 32 and st.machine == "i386"
    assert st.lookup("kernbase").address == 0x00800000 == st.lookup("kernload").address
    prison0 = st.lookup("prison0")
    assert 0x00800000 < prison0.address < 0x01000000 and prison0.size > 1000
    assert st.lookup("pr_flag_allow_size").size == 4          # const size_t


@pytest.mark.parametrize("provider", ["drgn", "dwarf"])
def test_type_providers_give_ilp32_layouts(i386_kernel, provider, tmp_path):
    from vnetdbg.debuginfo import open_types
    from vnetdbg.debuginfo.drgn_types import drgn_available
    if provider == "drgn" and not drgn_available():
        pytest.skip("drgn not installed")
    p = open_types(i386_kernel["kernel_debug"], provider=provider, cache_dir=str(tmp_path))
    for name, size in (("size_t", 4), ("unsigned long", 4), ("uintptr_t", 4),
                       ("vm_offset_t", 4), ("counter_u64_t", 4),
                       ("uint64_t", 8)):
        assert p.find_type(name).size == size, name
    prison = p.find_type("struct prison")
    assert prison.find_member("pr_parent")[1].type.size == 4
    assert p.pointer_type(prison).size == 4
    assert p.find_variable_type("pr_flag_allow_size").size == 4


def test_drgn_platform_is_32_bit_i386(i386_kernel):
    drgn = pytest.importorskip("drgn")
    from vnetdbg.debuginfo.drgn_types import DrgnTypeProvider
    prov = DrgnTypeProvider(i386_kernel["kernel_debug"])
    plat = prov.program.platform
    assert plat.arch == drgn.Architecture.I386
    assert not plat.flags & drgn.PlatformFlags.IS_64_BIT
    assert plat.flags & drgn.PlatformFlags.IS_LITTLE_ENDIAN
    assert prov.program.type("struct prison *").size == 4
    assert prov.program.type("long").size == 4


@pytest.mark.parametrize("pae", [True, False], ids=["pae", "nopae"])
def test_i386_dumps_against_the_machine(i386_kernel, tmp_path, pae):
    """Every page the machine maps from KERNBASE to kernel_vm_end reads back the same
    through the minidump and the ELF full dump; the session's Target has 4-byte
    pointers; the full dump found the root through the 1:1 bootstrap and pae_mode."""
    from tests.fixturegen import rawimage, scenario
    from tests.fixturegen.arch_i386 import KERNBASE, build_i386_vmcore
    from tests.fixturegen.allsources import copy_kernel
    from vnetdbg.session import open_session

    res = build_i386_vmcore(str(i386_kernel["dir"]), str(tmp_path / "mini"), pae=pae,
                            scenario=scenario.default(network=False))
    m = res["machine"]
    (tmp_path / "elf").mkdir()
    rawimage.write_elf_full_dump(m, str(tmp_path / "elf" / "vmcore.0"), "i386")
    copy_kernel(str(i386_kernel["dir"]), str(tmp_path / "elf"))
    for kind in ("mini", "elf"):
        s = open_session(str(tmp_path / kind / "vmcore.0"))
        try:
            assert s.target.pointer_size == 4
            assert s.match.ok
            if kind == "elf":
                d = s.memory.describe()
                assert d["page-tables"] == ("pae" if pae else "nopae")
                assert d["page-table-root"] == m.pt.root
            else:
                assert s.memory.pae is pae
            va = KERNBASE
            checked = 0
            while va < m.kernel_vm_end:
                pa = m.translate(va)
                if pa is not None and any(m.mem.read(pa, 4096)):
                    assert s.memory.read(va, 4096) == m.mem.read(pa, 4096), hex(va)
                    checked += 1
                va += 4096
            assert checked > 20
            with pytest.raises(FaultError):
                s.memory.read(m.unmapped_kva(), 4)
        finally:
            s.close()
