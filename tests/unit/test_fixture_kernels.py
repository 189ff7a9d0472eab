"""The fake FreeBSD kernels built by scripts/build_fixture_kernels.py.

Each layout is built twice into tmp_path; the tests check reproducibility, the
ELF shape (FreeBSD OSABI, addresses, PT_LOADs, build-id, debuglink), the
symbols the tool relies on (with FreeBSD's global/local binding) and the
release-specific DWARF members.
"""

from __future__ import annotations

import importlib.util
import io
import shutil
from pathlib import Path

import pytest

from elftools.elf.elffile import ELFFile

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build_fixture_kernels.py"

KERNBASE = 0xFFFFFFFF80000000
KERNLOAD = 0x200000

pytestmark = pytest.mark.skipif(
    shutil.which("clang") is None,
    reason="clang not installed: fixture kernels cannot be built "
           "(needs clang, ld.lld and llvm-objcopy)")


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_fixture_kernels", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bfk = _load_builder()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """layout -> (paths of build 1, paths of build 2)."""
    missing = [t for t in bfk.TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip("missing build tools: " + ", ".join(missing))
    out = {}
    for layout in bfk.LAYOUTS:
        a = bfk.build(layout, tmp_path_factory.mktemp(f"{layout}-a"))
        b = bfk.build(layout, tmp_path_factory.mktemp(f"{layout}-b"))
        out[layout] = (a, b)
    return out


def _symbols(path):
    """name -> (value, size, bind, type, section index) from .symtab."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        syms = {}
        for s in elf.get_section_by_name(".symtab").iter_symbols():
            if s.name:
                syms.setdefault(s.name, (s["st_value"], s["st_size"],
                                         s["st_info"]["bind"], s["st_info"]["type"],
                                         s["st_shndx"]))
        return syms


def _sections(path):
    with open(path, "rb") as f:
        elf = ELFFile(f)
        return {s.name: (s["sh_addr"], s["sh_size"], s["sh_flags"]) for s in elf.iter_sections()}


def _drgn_program(path):
    drgn = pytest.importorskip("drgn")
    prog = drgn.Program(drgn.Platform(
        drgn.Architecture.X86_64,
        drgn.PlatformFlags.IS_64_BIT | drgn.PlatformFlags.IS_LITTLE_ENDIAN))
    mod = prog.extra_module("kernel", create=True)
    mod.try_file(str(path))
    return prog


def _has_member(prog, type_name, member):
    try:
        prog.type(type_name).member(member)
    except LookupError:
        return False
    return True


LAYOUTS = sorted(bfk.LAYOUTS)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_reproducible(built, layout):
    a, b = built[layout]
    for key in ("kernel_full", "kernel_debug", "kernel"):
        assert a[key].read_bytes() == b[key].read_bytes(), f"{layout} {key} differs between builds"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_elf_shape(built, layout):
    paths = built[layout][0]
    with open(paths["kernel_full"], "rb") as f:
        elf = ELFFile(f)
        assert elf["e_ident"]["EI_OSABI"] == "ELFOSABI_FREEBSD"
        assert elf["e_type"] == "ET_EXEC"
        assert elf["e_machine"] == "EM_X86_64"
        loads = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        assert loads[0]["p_vaddr"] == KERNBASE + KERNLOAD
        assert loads[0]["p_offset"] == 0          # ELF headers inside the first PT_LOAD
        for seg in loads:
            assert seg["p_align"] == 0x1000
            assert seg["p_vaddr"] % 0x1000 == seg["p_offset"] % 0x1000
            assert seg["p_paddr"] == seg["p_vaddr"] - KERNBASE
        notes = [n for s in elf.iter_segments() if s["p_type"] == "PT_NOTE"
                 for n in s.iter_notes()]
        assert any(n["n_type"] == "NT_GNU_BUILD_ID" for n in notes)
        dwarf_version = next(elf.get_dwarf_info().iter_CUs()).header["version"]
        assert dwarf_version == bfk.LAYOUTS[layout]["dwarf"]
    secs = _sections(paths["kernel_full"])
    for name in ("set_vnet", "set_pcpu", "set_sysctl_set", ".text", ".data", ".bss"):
        assert name in secs, name
    assert secs["set_vnet"][0] % 64 == 0 and secs["set_pcpu"][0] % 64 == 0
    # the installed pair: stripped kernel with a debuglink, and the debug file
    stripped = _sections(paths["kernel"])
    assert ".gnu_debuglink" in stripped and ".debug_info" not in stripped
    assert ".symtab" in stripped
    assert ".debug_info" in _sections(paths["kernel_debug"])


GLOBALS = [
    "prison0", "allprison", "lastprid", "pr_flag_bool_size", "pr_flag_jailsys_size",
    "pr_flag_allow_size", "vnet0", "vnet_head", "vnet_entry_ifnet", "dpcpu_off",
    "cpuid_to_pcpu", "mp_maxid", "mp_ncpus", "mp_maxcpus", "msgbufp", "panicstr",
    "dumptid", "dumping", "dumppcb", "version", "ostype", "osrelease", "osreldate",
    "KPML4phys", "btext", "etext", "end", "__start_set_vnet", "__stop_set_vnet",
    "__start_set_pcpu", "__stop_set_pcpu", "__pcpu", "pcpu_entry_pcputicks",
    "allprison_lock", "sysctl___kern_features",
]
LOCALS = [
    "pr_flag_bool", "pr_flag_jailsys", "pr_flag_allow", "vnet_entry_modspace",
    "vnet_constructors", "vnet_destructors", "sysctl___kern_features_vimage",
    "pcpu_entry_modspace",
]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_symbols(built, layout):
    paths = built[layout][0]
    for path in (paths["kernel_full"], paths["kernel"]):
        syms = _symbols(path)
        for name in GLOBALS:
            assert name in syms, f"{layout}: {name} missing"
            assert syms[name][2] == "STB_GLOBAL", f"{layout}: {name} is {syms[name][2]}"
        for name in LOCALS:
            assert name in syms, f"{layout}: {name} missing"
            assert syms[name][2] == "STB_LOCAL", f"{layout}: {name} is {syms[name][2]}"
        kb = syms["kernbase"]
        assert kb[0] == KERNBASE and kb[4] == "SHN_ABS" and kb[2] == "STB_GLOBAL"
        assert syms["pr_flag_allow"][1] == 32 * 24        # NBBY * NBPW bool_flags
        assert syms["vnet_entry_modspace"][1] == 8 * 4096  # VNET_MODMIN


@pytest.mark.parametrize("layout", LAYOUTS)
def test_set_bounds(built, layout):
    syms = _symbols(built[layout][0]["kernel_full"])
    secs = _sections(built[layout][0]["kernel_full"])
    start, stop = syms["__start_set_vnet"][0], syms["__stop_set_vnet"][0]
    assert (start, stop - start) == secs["set_vnet"][:2]
    for name in ("vnet_entry_ifnet", "vnet_entry_ifg_head", "vnet_entry_modspace"):
        addr, size = syms[name][:2]
        assert start <= addr and addr + size <= stop, name
    pstart, pstop = syms["__start_set_pcpu"][0], syms["__stop_set_pcpu"][0]
    for name in ("pcpu_entry_pcputicks", "pcpu_entry_modspace"):
        assert pstart <= syms[name][0] < pstop, name


#: member -> layouts that have it (struct, member)
LAYOUT_MEMBERS = {
    ("struct prison", "pr_addrs"): {"fbsd14"},
    ("struct prison", "pr_proclist"): {"fbsd14"},
    ("struct prison", "pr_exportcnt"): {"fbsd14"},
    ("struct prison", "pr_ip4s"): {"fbsd12", "fbsd13"},
    ("struct prison", "pr_ip4"): {"fbsd12", "fbsd13"},
    ("struct prison", "pr_ip6s"): {"fbsd12", "fbsd13"},
    ("struct prison", "pr_ip6"): {"fbsd12", "fbsd13"},
    ("struct prison", "pr_state"): {"fbsd13", "fbsd14"},
    ("struct vnet", "vnet_shutdown"): {"fbsd13", "fbsd14"},
    ("struct pcpu", "pc_zpcpu_offset"): {"fbsd13", "fbsd14"},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_members(built, layout):
    prog = _drgn_program(built[layout][0]["kernel_debug"])
    for (type_name, member), have in LAYOUT_MEMBERS.items():
        assert _has_member(prog, type_name, member) == (layout in have), \
            f"{layout}: {type_name}.{member}"
    # members every layout has
    for member in ("pr_list", "pr_id", "pr_ref", "pr_uref", "pr_flags", "pr_children",
                   "pr_sibling", "pr_parent", "pr_cpuset", "pr_vnet", "pr_allow",
                   "pr_name", "pr_path", "pr_hostname", "pr_osrelease"):
        assert _has_member(prog, "struct prison", member), member
    for member in ("vnet_le", "vnet_magic_n", "vnet_state", "vnet_data_mem", "vnet_data_base"):
        assert _has_member(prog, "struct vnet", member), member
    for member in ("pc_curthread", "pc_cpuid", "pc_dynamic", "pc_prvspace"):
        assert _has_member(prog, "struct pcpu", member), member
    assert prog.type("struct pcpu").size == 4096
    assert prog.type("struct prison").member("pr_name").offset == 288
    vnet = prog.type("struct vnet")
    assert [vnet.member(m).offset for m in ("vnet_magic_n", "vnet_state", "vnet_data_base")] \
        == [16, 28, 40]
    assert vnet.size == (64 if layout != "fbsd12" else 48)
    # types that must reach DWARF
    enum = prog.type("enum sysinit_sub_id")
    assert dict(enum.enumerators)["SI_SUB_VNET_DONE"] == 0xDC00000
    assert prog.type("struct vnet_sysinit").member("subsystem").type.type_name() \
        == "enum sysinit_sub_id"
    for t in ("struct bool_flags", "struct jailsys_flags", "struct cpuset", "cpuset_t",
              "struct bitset", "struct msgbuf", "struct pcb", "struct sysctl_oid",
              "struct ifnethead", "struct prisonlist", "struct vnet_list_head"):
        prog.type(t)
    if layout == "fbsd14":
        pip = prog.type("struct prison_ip")
        assert [m.name for m in pip.members] == ["ctx", "ips", "pr_ip"]
        assert pip.member("ips").offset == 16
    else:
        with pytest.raises(LookupError):
            prog.type("struct prison_ip")
    if layout == "fbsd12":
        assert prog.type("struct prison").member("pr_uref").type.type_name() == "int"
    else:
        assert prog.type("enum prison_state")


#: network structures: member -> layouts that have it (struct, member)
NET_LAYOUT_MEMBERS = {
    ("struct ifnet", "if_index_reserved"): {"fbsd12", "fbsd13"},
    ("struct ifnet", "if_idxgen"): {"fbsd14"},
    ("struct ifnet", "if_capabilities2"): {"fbsd14"},
    ("struct ifnet", "if_capenable2"): {"fbsd14"},
    ("struct ifnet", "if_numa_domain"): {"fbsd13", "fbsd14"},
    ("struct ifaddr", "ifa_rtrequest"): {"fbsd12"},
    ("struct inpcb", "inp_ppcb"): {"fbsd12", "fbsd13"},
    ("struct inpcb", "inp_hash"): {"fbsd12", "fbsd13"},
    ("struct inpcb", "inp_pcbgroup"): {"fbsd12", "fbsd13"},
    ("struct inpcb", "inp_hash_exact"): {"fbsd14"},
    ("struct inpcb", "inp_smr"): {"fbsd14"},
    ("struct inpcbinfo", "ipi_list_lock"): {"fbsd12", "fbsd13"},
    ("struct inpcbinfo", "ipi_hash_wild"): {"fbsd14"},
    ("struct in_endpoints", "ie6_zoneid"): {"fbsd13", "fbsd14"},
    ("struct socket", "so_rerror"): {"fbsd13", "fbsd14"},
    ("struct socket", "so_snd_sx"): {"fbsd14"},
    ("struct sockbuf", "sb_mtx"): {"fbsd12", "fbsd13", "fbsd14"},
    ("struct sockbuf", "sb_mcnt"): {"fbsd12"},
    ("struct sockbuf", "uxdg_mb"): {"fbsd14"},
    ("struct tcpcb", "t_port"): {"fbsd13", "fbsd14"},
    ("struct tcpcb", "t_timers"): {"fbsd12", "fbsd13", "fbsd14"},
    ("struct tcpcb", "t_vnet"): {"fbsd12", "fbsd13"},
    ("struct tcpcb", "t_ccv"): {"fbsd14"},
    ("struct tcpstat", "tcps_tunneled_pkts"): {"fbsd13", "fbsd14"},
    ("struct tcpstat", "tcps_tw_recycles"): {"fbsd14"},
    ("struct protosw", "pr_usrreqs"): {"fbsd12", "fbsd13"},
    ("struct protosw", "pr_attach"): {"fbsd14"},
    ("struct udpcb", "u_inpcb"): {"fbsd14"},
}

#: members every layout has
NET_COMMON_MEMBERS = {
    "struct ifnet": ["if_link", "if_xname", "if_dname", "if_dunit", "if_index", "if_flags",
                     "if_drv_flags", "if_capabilities", "if_capenable", "if_type",
                     "if_addrlen", "if_hdrlen", "if_link_state", "if_mtu", "if_metric",
                     "if_baudrate", "if_snd", "if_addrhead", "if_addr", "if_afdata",
                     "if_fib", "if_vnet", "if_home_vnet", "if_carp", "if_bridge",
                     "if_get_counter", "if_counters", "if_description"],
    "struct ifaddr": ["ifa_addr", "ifa_dstaddr", "ifa_netmask", "ifa_ifp", "ifa_carp",
                      "ifa_link", "ifa_flags", "ifa_refcnt", "ifa_ipackets",
                      "ifa_opackets", "ifa_ibytes", "ifa_obytes", "ifa_epoch_ctx"],
    "struct in_ifaddr": ["ia_ifa", "ia_subnet", "ia_subnetmask", "ia_hash", "ia_link",
                         "ia_addr", "ia_dstaddr", "ia_sockmask"],
    "struct in6_ifaddr": ["ia_ifa", "ia_addr", "ia_net", "ia_dstaddr", "ia_prefixmask",
                          "ia_plen", "ia_link", "ia6_flags", "ia6_lifetime"],
    "struct inpcb": ["inp_lock", "inp_refcount", "inp_flags", "inp_flags2", "inp_socket",
                     "inp_pcbinfo", "inp_cred", "inp_vflag", "inp_ip_p", "inp_flowid",
                     "inp_inc", "inp_gencnt", "inp_list"],
    "struct inpcbinfo": ["ipi_lock", "ipi_listhead", "ipi_count", "ipi_gencnt",
                         "ipi_zone", "ipi_vnet"],
    "struct in_endpoints": ["ie_fport", "ie_lport", "ie_dependfaddr", "ie_dependladdr"],
    "struct in_conninfo": ["inc_flags", "inc_len", "inc_fibnum", "inc_ie"],
    "struct socket": ["so_lock", "so_count", "so_rdsel", "so_wrsel", "so_options",
                      "so_type", "so_state", "so_pcb", "so_vnet", "so_proto", "so_error",
                      "so_cred", "so_rcv", "so_snd", "sol_incomp", "sol_comp", "sol_qlen",
                      "sol_incqlen", "sol_qlimit"],
    "struct sockbuf": ["sb_ccc", "sb_acc", "sb_hiwat", "sb_lowat", "sb_mbcnt", "sb_mbmax",
                       "sb_state", "sb_flags"],
    "struct tcpcb": ["t_inpcb", "t_state", "t_flags", "snd_una", "snd_nxt", "rcv_nxt"],
    "struct protosw": ["pr_type", "pr_domain", "pr_protocol", "pr_flags"],
    "struct domain": ["dom_family", "dom_name", "dom_protosw"],
    "struct sockaddr_in6": ["sin6_len", "sin6_family", "sin6_port", "sin6_addr",
                            "sin6_scope_id"],
    "struct sockaddr_dl": ["sdl_len", "sdl_family", "sdl_index", "sdl_type", "sdl_nlen",
                           "sdl_alen", "sdl_slen", "sdl_data"],
}

#: VNET variables per layout (symbol -> layouts), all in set_vnet
NET_VNET_VARS = {
    "vnet_entry_tcbinfo": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_udbinfo": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_ulitecbinfo": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_ripcbinfo": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_tcb": {"fbsd12", "fbsd13"},
    "vnet_entry_udb": {"fbsd12", "fbsd13"},
    "vnet_entry_ulitecb": {"fbsd12", "fbsd13"},
    "vnet_entry_ripcb": {"fbsd12", "fbsd13"},
    "vnet_entry_tcpstat": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_udpstat": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_ipstat": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_icmpstat": {"fbsd12", "fbsd13", "fbsd14"},   # VNET_..._STATIC: LOCAL
    "vnet_entry_ip6stat": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_tcps_states": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_ifindex_table": {"fbsd12", "fbsd13"},
    "vnet_entry_if_index": {"fbsd12", "fbsd13"},
    "vnet_entry_in_ifaddrhead": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_in6_ifaddrhead": {"fbsd12", "fbsd13", "fbsd14"},
    "vnet_entry_twq_2msl": {"fbsd12", "fbsd13"},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_network_layout(built, layout):
    """Release differences of the network structures, as a reader must detect them."""
    prog = _drgn_program(built[layout][0]["kernel_debug"])
    for (type_name, member), have in NET_LAYOUT_MEMBERS.items():
        assert _has_member(prog, type_name, member) == (layout in have), \
            f"{layout}: {type_name}.{member}"
    for type_name, members in NET_COMMON_MEMBERS.items():
        for member in members:
            assert _has_member(prog, type_name, member), f"{layout}: {type_name}.{member}"
    # ipi_listhead: pointer to V_tcb etc. (12/13) vs embedded CK_LIST head (14)
    lh = prog.type("struct inpcbinfo").member("ipi_listhead").type
    if layout == "fbsd14":
        assert lh.type_name() == "struct inpcbhead"
    else:
        assert lh.type_name() == "struct inpcbhead *"
    assert [m.name for m in prog.type("struct inpcbhead").members] == ["clh_first"]
    # tcpcb.t_inpcb: pointer (12/13) vs embedded struct inpcb at offset 0 (14)
    tcpcb = prog.type("struct tcpcb")
    ti = tcpcb.member("t_inpcb")
    assert ti.offset == 0
    assert ti.type.type_name() == ("struct inpcb" if layout == "fbsd14" else "struct inpcb *")
    # t_state is a 4-bit bitfield in all three releases
    assert tcpcb.member("t_state").bit_field_size == 4
    # struct tcptw / INP_TIMEWAIT only on 12/13
    if layout == "fbsd14":
        with pytest.raises(LookupError):
            prog.type("struct tcptw")
    else:
        assert prog.type("struct tcptw").member("tw_inpcb").offset == 0
    # listening/data union of struct socket
    so = prog.type("struct socket")
    assert so.member("sol_qlen").offset < so.member("so_snd").offset
    assert so.member("so_rcv").offset <= so.member("sol_incomp").offset
    # counters: counter_u64_t is a pointer, if_counters has IFCOUNTERS entries
    enum = prog.type("ift_counter").type
    assert dict(enum.enumerators)["IFCOUNTER_NOPROTO"] == 11
    assert dict(enum.enumerators)["IFCOUNTERS"] == 12
    ctr = prog.type("struct ifnet").member("if_counters").type
    assert ctr.length == 12 and ctr.type.type_name() == "counter_u64_t"
    assert prog.type("counter_u64_t").type.type_name() == "uint64_t *"
    # the per-CPU statistics arrays are sized sizeof(struct X) / sizeof(uint64_t)
    for var, st in (("vnet_entry_tcpstat", "struct tcpstat"),
                    ("vnet_entry_udpstat", "struct udpstat"),
                    ("vnet_entry_ipstat", "struct ipstat"),
                    ("vnet_entry_icmpstat", "struct icmpstat"),
                    ("vnet_entry_ip6stat", "struct ip6stat")):
        assert prog.object(var).type_.length == prog.type(st).size // 8, var
    assert prog.object("vnet_entry_tcps_states").type_.length == 11
    # functions whose addresses the reader compares
    for fn in ("if_get_counter_default", "vtnet_get_counter"):
        assert prog.object(fn).address_
    if layout == "fbsd14":
        assert prog.object("ifindex_table").type_.type_name() == "struct ifindex_entry *"
        for pr in ("tcp_protosw", "udp_protosw", "rip_protosw"):
            assert prog.object(pr).type_.type_name() == "struct protosw"
    else:
        assert prog.object("inetsw").type_.type.type_name() == "struct protosw"
        it = prog.object("vnet_entry_ifindex_table").type_.type_name()
        assert it == ("struct ifnet **" if layout == "fbsd12" else "struct ifindex_entry *")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_network_vnet_symbols(built, layout):
    syms = _symbols(built[layout][0]["kernel_full"])
    start, stop = syms["__start_set_vnet"][0], syms["__stop_set_vnet"][0]
    for name, have in NET_VNET_VARS.items():
        assert (name in syms) == (layout in have), f"{layout}: {name}"
        if name in syms:
            addr, size = syms[name][:2]
            assert start <= addr and addr + size <= stop, name
            want = "STB_LOCAL" if name in ("vnet_entry_icmpstat", "vnet_entry_twq_2msl") \
                else "STB_GLOBAL"
            assert syms[name][2] == want, f"{layout}: {name} is {syms[name][2]}"
    assert syms["if_get_counter_default"][2] == "STB_GLOBAL"
    assert syms["vtnet_get_counter"][2] == "STB_LOCAL"     # static in if_vtnet.c
    assert syms["vtnet_get_counter"][3] == "STT_FUNC"


#: allow names per layout (the part before the first empty slot)
ALLOW_NAMES = {
    "fbsd12": 11, "fbsd13": 12, "fbsd14": 13,
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_flag_tables(built, layout):
    """The static pr_flag_allow initialiser has the release's entries (read from .data)."""
    path = built[layout][0]["kernel_full"]
    syms = _symbols(path)
    elf = ELFFile(io.BytesIO(Path(path).read_bytes()))
    if True:
        def read(addr, size):
            for seg in elf.iter_segments():
                if seg["p_type"] == "PT_LOAD" and seg["p_vaddr"] <= addr < seg["p_vaddr"] + seg["p_filesz"]:
                    off = addr - seg["p_vaddr"]
                    return seg.data()[off:off + size]
            raise AssertionError(hex(addr))

        def cstr(addr):
            data = read(addr, 256)
            return data[:data.index(b"\0")].decode()

        base, size = syms["pr_flag_allow"][:2]
        raw = read(base, size)
        names = []
        for i in range(32):
            name_p, noname_p, flag = (int.from_bytes(raw[i * 24 + o:i * 24 + o + n], "little")
                                      for o, n in ((0, 8), (8, 8), (16, 4)))
            if flag == 0:
                break
            names.append((cstr(name_p), cstr(noname_p), flag))
    assert len(names) == ALLOW_NAMES[layout]
    assert names[0] == ("allow.set_hostname", "allow.noset_hostname", 0x1)
    has_suser = ("allow.suser", "allow.nosuser", 0x400) in names
    assert has_suser == (layout != "fbsd12")
    assert (("allow.nfsd", "allow.nonfsd", 0x20000) in names) == (layout == "fbsd14")
    assert int.from_bytes(read(syms["pr_flag_allow_size"][0], 8), "little") == 32 * 24
    assert cstr(syms["ostype"][0]) == "FreeBSD"
    assert cstr(syms["osrelease"][0]) == bfk.LAYOUTS[layout]["release"]
    assert "VNETDBG-FIXTURE" in cstr(syms["version"][0])


def test_missing_tool_message(monkeypatch):
    monkeypatch.setattr(bfk.shutil, "which", lambda name: None)
    for var in ("CLANG", "LD_LLD", "LLVM_OBJCOPY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(bfk.BuildError, match="missing build tool"):
        bfk.find_tools()
