"""ELF full dumps (amd64 and i386) and the x86 page-table walks they use, against
hand-built physical memory.  Page tables are written down entry by entry below; the
ELF packer follows doc section 4 (ET_CORE, OSABI 255, one PT_LOAD per chunk,
p_paddr = physical address)."""

from __future__ import annotations

import struct

import pytest

from vnetdbg import memory
from vnetdbg.errors import FaultError, FormatError, VnetdbgError
from vnetdbg.memory import pagetables

PS = 4096
V, RW, PSB = 0x1, 0x2, 0x80
NX = 1 << 63
KERNBASE = 0xFFFFFFFF80000000


class Phys:
    """Physical memory as {page: bytearray}; segments are listed explicitly."""

    def __init__(self):
        self.pages: dict[int, bytearray] = {}

    def put(self, pa: int, data: bytes) -> None:
        for i in range(0, len(data)):
            a = pa + i
            self.pages.setdefault(a & ~0xFFF, bytearray(PS))[a & 0xFFF] = data[i]

    def u64(self, pa, v):
        self.put(pa, struct.pack("<Q", v))

    def u32(self, pa, v):
        self.put(pa, struct.pack("<I", v))

    def tag(self, pa, tag: bytes):
        self.put(pa, tag * (PS // 8))

    def read(self, pa, n):
        out = bytearray()
        for a in range(pa, pa + n):
            page = self.pages.get(a & ~0xFFF)
            if page is None:
                raise FaultError(a)
            out.append(page[a & 0xFFF])
        return bytes(out)

    def segment(self, start, end) -> bytes:
        return b"".join(bytes(self.pages.get(p, bytes(PS))) for p in range(start, end, PS))


def elf(segments: list[tuple[int, bytes]], *, cls=64, machine=62, osabi=255,
        phnum=None) -> bytes:
    """ELF core: Ehdr, Phdrs, then each segment page-aligned."""
    ehsize, phsize = (64, 56) if cls == 64 else (52, 32)
    n = len(segments) if phnum is None else phnum
    off = -(-(ehsize + phsize * len(segments)) // PS) * PS
    phdrs, body = b"", b""
    for pa, data in segments:
        if cls == 64:
            phdrs += struct.pack("<IIQQQQQQ", 1, 4, off + len(body), pa, pa, len(data),
                                 len(data), PS)
        else:
            phdrs += struct.pack("<IIIIIIII", 1, off + len(body), pa, pa, len(data),
                                 len(data), 4, PS)
        body += data
    ident = b"\x7fELF" + bytes([2 if cls == 64 else 1, 1, 1, osabi]) + bytes(8)
    if cls == 64:
        eh = ident + struct.pack("<HHIQQQIHHHHHH", 4, machine, 1, 0, ehsize, 0, 0, ehsize,
                                 phsize, n, 0, 0, 0)
    else:
        eh = ident + struct.pack("<HHIIIIIHHHHHH", 4, machine, 1, 0, ehsize, 0, 0, ehsize,
                                 phsize, n, 0, 0, 0)
    head = eh + phdrs
    return head + bytes(off - len(head)) + body


# --- amd64 ----------------------------------------------------------------------------
# Symbols: kernbase = 0xffffffff80000000, KPML4phys at VA kernbase+0x2000 -> PA 0x2000,
# which holds 0x3000 = the PML4 page.
# VA 0xffffffff80008000: PML4[511] -> PDP 0x4000; PDP[510] -> PD 0x5000; PD[0] -> PT
#   0x6000; PT[8] -> PA 0x100000 (NX set).  PT[9] invalid; PT[10] -> PA 0x500000 (not in
#   any segment).
# VA 0xffffffff80200000 (PD[1]): 2 MiB page at PA 0x200000.
# VA 0xffffff8000000000 (PML4[511], PDP[0]): 1 GiB page at PA 0x40000000.
# DMAP VA 0xfffff80000000000 (PML4[496]) -> PDP 0x7000; PDP[0]: 1 GiB page at PA 0.
# Self map: PML4[0] -> the PML4 itself (0x3000), so VA 0 walks PML4 four times.
def amd64_phys() -> Phys:
    ph = Phys()
    ph.u64(0x2000, 0x3000)
    ph.u64(0x3000 + 8 * 511, 0x4000 | V | RW)
    ph.u64(0x3000 + 8 * 496, 0x7000 | V | RW)
    ph.u64(0x3000 + 8 * 0, 0x3000 | V | RW)
    ph.u64(0x4000 + 8 * 510, 0x5000 | V | RW)
    ph.u64(0x4000 + 8 * 0, 0x40000000 | V | PSB)
    ph.u64(0x5000 + 8 * 0, 0x6000 | V | RW)
    ph.u64(0x5000 + 8 * 1, 0x200000 | V | PSB | NX)
    ph.u64(0x6000 + 8 * 8, 0x100000 | V | NX)
    ph.u64(0x6000 + 8 * 10, 0x500000 | V)
    ph.u64(0x7000 + 8 * 0, 0x0 | V | PSB)
    ph.tag(0x100000, b"PA100000")
    ph.tag(0x101000, b"PA101000")
    ph.tag(0x201000, b"PA201000")
    ph.tag(0x40000000, b"PA4000_0")
    return ph


AMD64_SEGMENTS = [(0, 0x10000), (0x100000, 0x102000), (0x200000, 0x202000),
                  (0x40000000, 0x40001000)]
SYMS = {"kernbase": KERNBASE, "KPML4phys": KERNBASE + 0x2000}


def amd64_core(tmp_path, name="vmcore.0"):
    ph = amd64_phys()
    p = tmp_path / name
    p.write_bytes(elf([(s, ph.segment(s, e)) for s, e in AMD64_SEGMENTS]))
    return p


@pytest.fixture
def amd64(tmp_path):
    with memory.open_core(amd64_core(tmp_path)) as d:
        d.attach_symbols(SYMS.get)
        yield d


def test_amd64_metadata(amd64):
    assert amd64.format_name == "amd64 ELF full dump" and amd64.arch == "amd64"
    d = amd64.describe()
    assert d["segments"] == 4 and d["page-tables"] == "amd64"
    assert d["page-table-root"] == 0x3000
    assert amd64.segments()[1] == (0x100000, 0x102000)
    assert amd64.msgbuf_region() is None


@pytest.mark.parametrize("va, pa", [
    (KERNBASE + 0x8010, 0x100010),                    # 4 KiB page via PT
    (KERNBASE + 0x201008, 0x201008),                  # 2 MiB page
    (0xFFFFFF8000000010, 0x40000010),                 # 1 GiB page
    (0xFFFFF80000000000 + 0x101008, 0x101008),        # DMAP through 1 GiB page
])
def test_amd64_translation(amd64, va, pa):
    assert amd64.translate(va) == pa


def test_amd64_reads(amd64):
    assert amd64.read(KERNBASE + 0x8000, 8) == b"PA100000"
    assert amd64.read(KERNBASE + 0x201000, 8) == b"PA201000"
    assert amd64.read(0xFFFFFF8000000000, 8) == b"PA4000_0"
    # DMAP: cross-page, physically contiguous pages
    assert amd64.read(0xFFFFF80000000000 + 0x100FF8, 16) == b"PA100000PA101000"
    assert amd64.read_phys(0x101000, 8) == b"PA101000"


@pytest.mark.parametrize("va, why", [
    (KERNBASE + 0x9000, "no valid PT entry"),
    (KERNBASE + 0xA000, "not in dump"),               # PA 0x500000 outside segments
    (KERNBASE + 0x202000, "not in dump"),             # 2M page, sub-page 2 not dumped
    (KERNBASE - 0x40000000 * 2, "no valid PDP entry"),
    (0xFFFF800000000000, "no valid PML4 entry"),
    (0x0000800000000000, "non-canonical"),
])
def test_amd64_absent(amd64, va, why):
    with pytest.raises(FaultError, match=why) as e:
        amd64.read(va, 8)
    assert e.value.address == va


def test_amd64_cross_page_fault_names_first_absent_byte(amd64):
    with pytest.raises(FaultError) as e:
        amd64.read(KERNBASE + 0x8FFC, 8)
    assert e.value.address == KERNBASE + 0x9000


def test_page_table_loop_is_depth_limited(amd64):
    """PML4[0] points at the PML4: VA 0 walks PML4 -> PML4 -> PML4 -> PML4 and ends on
    the PML4 page itself after four reads (no infinite loop)."""
    assert amd64.translate(0) == 0x3000
    assert amd64.read(0, 8) == struct.pack("<Q", 0x3000 | V | RW)
    steps, pa, revisited = pagetables.walk_steps("amd64", amd64.read_phys, 0x3000, 0)
    assert len(steps) == 4 and pa == 0x3000 and revisited
    steps, pa, revisited = pagetables.walk_steps("amd64", amd64.read_phys, 0x3000,
                                                 KERNBASE + 0x8000)
    assert [s.level for s in steps] == ["PML4", "PDP", "PD", "PT"] and not revisited


def test_reads_fault_until_symbols_attached(tmp_path):
    with memory.open_core(amd64_core(tmp_path)) as d:
        assert d.read_phys(0x100000, 8) == b"PA100000"
        with pytest.raises(FaultError, match="KPML4phys"):
            d.read(KERNBASE + 0x8000, 8)
        with pytest.raises(VnetdbgError, match="no KPML4phys symbol"):
            d.attach_symbols({"kernbase": KERNBASE}.get)
        with pytest.raises(VnetdbgError, match="cannot read KPML4phys"):
            d.attach_symbols({"KPML4phys": KERNBASE + 0x9000000}.get)


# --- i386 -----------------------------------------------------------------------------
KB = 0xC0000000


def i386_nopae() -> Phys:
    # IdlePTD at VA 0xc0001000 -> PA 0x1000 holds 0x2000 (the page directory).
    # PD[0x300] -> PT 0x3000; PT[5] -> PA 0x4000.  PD[0x301]: 4 MiB page at 0x400000.
    ph = Phys()
    ph.u32(0x1000, 0x2000)
    ph.u32(0x2000 + 4 * 0x300, 0x3000 | V)
    ph.u32(0x2000 + 4 * 0x301, 0x400000 | V | PSB)
    ph.u32(0x3000 + 4 * 5, 0x4000 | V)
    ph.tag(0x4000, b"PA004000")
    ph.tag(0x401000, b"PA401000")
    return ph


def i386_pae() -> Phys:
    # IdlePDPT at VA 0xc0001000 -> PA 0x1000 holds 0x2000 (the PDPT).
    # PDPT[3] -> PD 0x3000; PD[0] -> PT 0x4000; PT[5] -> PA 0x5000 (NX).
    # PD[1]: 2 MiB page at 0x200000.
    ph = Phys()
    ph.u32(0x1000, 0x2000)
    ph.u64(0x2000 + 8 * 3, 0x3000 | V)
    ph.u64(0x3000 + 8 * 0, 0x4000 | V)
    ph.u64(0x3000 + 8 * 1, 0x200000 | V | PSB)
    ph.u64(0x4000 + 8 * 5, 0x5000 | V | NX)
    ph.tag(0x5000, b"PA005000")
    ph.tag(0x201000, b"PA201000")
    return ph


def i386_core(tmp_path, ph, segments, name):
    p = tmp_path / name
    p.write_bytes(elf([(s, ph.segment(s, e)) for s, e in segments], cls=32, machine=3))
    return p


def test_i386_nopae(tmp_path):
    p = i386_core(tmp_path, i386_nopae(), [(0, 0x8000), (0x400000, 0x402000)], "np")
    with memory.open_core(p) as d:
        assert d.format_name == "i386 ELF full dump"
        d.attach_symbols({"kernbase": KB, "IdlePTD": KB + 0x1000}.get)
        assert d.describe()["page-tables"] == "nopae"
        assert d.read(KB + 0x5000, 8) == b"PA004000"
        assert d.translate(KB + 0x401123) == 0x401123           # 4 MiB page
        assert d.read(KB + 0x401000, 8) == b"PA401000"
        with pytest.raises(FaultError, match="no valid PT entry"):
            d.read(KB + 0x6000, 4)
        with pytest.raises(FaultError, match="no valid PD entry"):
            d.read(KB + 0x800000, 4)


def test_i386_pae(tmp_path):
    p = i386_core(tmp_path, i386_pae(), [(0, 0x8000), (0x200000, 0x202000)], "pae")
    with memory.open_core(p) as d:
        d.attach_symbols({"kernbase": KB, "IdlePDPT": KB + 0x1000,
                          "IdlePTD": KB + 0x7000}.get)    # IdlePDPT wins, as in libkvm
        assert d.describe()["page-tables"] == "pae"
        assert d.read(KB + 0x5000, 8) == b"PA005000"
        assert d.translate(KB + 0x201010) == 0x201010          # 2 MiB page
        with pytest.raises(FaultError, match="no valid PDPT entry"):
            d.read(0x40000000, 4)                              # PDPT[1] empty


def test_i386_needs_a_root_symbol(tmp_path):
    p = i386_core(tmp_path, i386_pae(), [(0, 0x8000)], "x")
    with memory.open_core(p) as d:
        with pytest.raises(VnetdbgError, match="neither IdlePDPT nor IdlePTD"):
            d.attach_symbols({"kernbase": KB}.get)


# --- refusals and truncation ----------------------------------------------------------

def test_truncated_segment_faults_per_page(tmp_path):
    blob = elf([(0x100000, b"A" * PS + b"B" * PS)])
    p = tmp_path / "t"
    p.write_bytes(blob[:len(blob) - PS])       # second page of the segment cut off
    with memory.open_core(p) as d:
        assert d.read_phys(0x100000, 4) == b"AAAA"
        with pytest.raises(FaultError) as e:
            d.read_phys(0x100FFE, 4)
        assert e.value.address == 0x101000


@pytest.mark.parametrize("blob, message", [
    (elf([], osabi=0), "OSABI 0, not a FreeBSD kernel dump"),
    (elf([], machine=183), "ELF full dumps of arm64 are not supported"),
    (elf([], phnum=5000), "implausible ELF program header count 5000"),
    (elf([], phnum=100), "truncated ELF dump: program headers need"),
])
def test_refusals(tmp_path, blob, message):
    p = tmp_path / "vmcore.1"
    p.write_bytes(blob)
    with pytest.raises(FormatError, match=message) as e:
        memory.open_core(p)
    assert str(e.value).endswith(str(p))


def test_pure_walks():
    ph = amd64_phys()
    assert pagetables.amd64_translate(ph.read, 0x3000, KERNBASE + 0x8123) == 0x100123
    ph32 = i386_nopae()
    assert pagetables.nopae_translate(ph32.read, 0x2000, KB + 0x5FFF) == 0x4FFF
    ph3 = i386_pae()
    assert pagetables.pae_translate(ph3.read, 0x2000, KB + 0x5004) == 0x5004
    with pytest.raises(FaultError, match="above 4 GiB"):
        pagetables.pae_translate(ph3.read, 0x2000, 1 << 32)
    with pytest.raises(FaultError, match="PD page 0x9000 not present"):
        pagetables.nopae_translate(Phys().read, 0x9000, KB)
    assert pagetables.canonical(0xFFFF800000000000) and not pagetables.canonical(1 << 47)
