"""Issue 3: one machine state (the default jail scenario, without network state), every
memory source and architecture, identical `jls --format json -d` and `dmesg`.

Everything is generated at test time into a session tmp dir (nothing big committed):
the fixture kernels (fbsd14 for amd64, fbsd14-arm64, fbsd14-riscv) are built with
clang/ld.lld by scripts/build_fixture_kernels.py, then tests/fixturegen writes the
dumps: amd64 minidumps v1/v2/v3, arm64 minidumps (4 KiB and 16 KiB pages), a riscv
minidump, an amd64 ELF full dump, raw dump-device images (kerneldumpheader v4 and v1),
vmcore.0.gz, vmcore.0.zst, a raw physical image (--phys) and a /dev/kmem stand-in
(KmemSource over a regular file with an injected KVA -> offset function); and i386
(fbsd14-i386, one kernel for both pmaps as on FreeBSD 12+): minidumps v2 with and
without PAE and ELF full dumps of both machines.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil

import pytest

from .conftest import PROVIDERS, ROOT, run_cli



def _kernel_builder():
    spec = importlib.util.spec_from_file_location(
        "build_fixture_kernels", ROOT / "scripts" / "build_fixture_kernels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def all_sources(tmp_path_factory):
    """name -> dict(argv=[...] for run_cli, or kmem=(path, offset function), kernel)."""
    bfk = _kernel_builder()
    missing = [t for t in bfk.TOOLS if shutil.which(t) is None]
    if missing:
        pytest.skip(f"fixture kernels need {', '.join(missing)}")
    from tests.fixturegen import build_vmcore
    from tests.fixturegen import rawimage, scenario
    from tests.fixturegen.allsources import build_arch_vmcore, copy_kernel, kmem_offset_function

    root = tmp_path_factory.mktemp("all-sources")
    kdir = root / "kernels"
    layouts = {}
    for layout in ("fbsd14", "fbsd14-arm64", "fbsd14-riscv", "fbsd14-i386"):
        layouts[layout] = str(bfk.build(layout, kdir)["dir"])
    scen = scenario.default(network=False)
    out: dict[str, dict] = {}

    def core(name: str, path) -> None:
        out[name] = {"argv": ["-M", str(path)], "path": str(path)}

    amd64_machine = None
    for version in (1, 2, 3):
        d = root / f"amd64-v{version}"
        res = build_vmcore(layouts["fbsd14"], str(d), dump_version=version, scenario=scen,
                           layout="fbsd14", write_truth=False)
        core(f"amd64-minidump-v{version}", d / "vmcore.0")
        if version == 3:
            amd64_machine = res["_machine"]
            truth = res
    for name, arch, ps, layout in (("arm64-minidump-4k", "arm64", 4096, "fbsd14-arm64"),
                                   ("arm64-minidump-16k", "arm64", 16384, "fbsd14-arm64"),
                                   ("riscv-minidump", "riscv", 4096, "fbsd14-riscv")):
        d = root / name
        build_arch_vmcore(layouts[layout], str(d), arch, page_size=ps, scenario=scen)
        core(name, d / "vmcore.0")

    # i386: PAE and non-PAE machines, each as a minidump and as an ELF full dump
    from tests.fixturegen.arch_i386 import build_i386_vmcore
    for mode, pae in (("pae", True), ("nopae", False)):
        d = root / f"i386-minidump-{mode}"
        # same ring size as the amd64 machine (i386's struct msgbuf is 16 bytes
        # smaller, so the same MSGBUF_SIZE would keep 16 more bytes of text)
        res = build_i386_vmcore(layouts["fbsd14-i386"], str(d), pae=pae, scenario=scen,
                                msg_size=truth["msgbuf"]["size"])
        core(f"i386-minidump-{mode}", d / "vmcore.0")
        d = root / f"i386-elf-{mode}"
        d.mkdir()
        rawimage.write_elf_full_dump(res["machine"], str(d / "vmcore.0"), "i386")
        copy_kernel(layouts["fbsd14-i386"], str(d))
        core(f"i386-elf-full-{mode}", d / "vmcore.0")

    v3 = root / "amd64-v3" / "vmcore.0"
    # ELF full dump of the same amd64 machine
    d = root / "amd64-elf"
    d.mkdir()
    rawimage.write_elf_full_dump(amd64_machine, str(d / "vmcore.0"), "amd64")
    copy_kernel(layouts["fbsd14"], str(d))
    core("amd64-elf-full", d / "vmcore.0")
    # raw dump-device images (leading + trailing kerneldumpheader)
    for hv in (4, 1):
        d = root / f"amd64-kdh-v{hv}"
        d.mkdir()
        rawimage.write_dump_device_image(
            str(v3), str(d / "vmcore.0"), version=hv, arch="amd64", dumptime=scen.dumptime,
            hostname=scen.hostname.encode(), versionstring=truth["version"].encode(),
            panicstring=scen.panic.encode())
        copy_kernel(layouts["fbsd14"], str(d))
        core(f"amd64-dumpdev-kdh-v{hv}", d / "vmcore.0")
    # compressed vmcores
    for codec, ext in (("gzip", "gz"), ("zstd", "zst")):
        d = root / f"amd64-{ext}"
        d.mkdir()
        rawimage.write_compressed(str(v3), str(d / f"vmcore.0.{ext}"), codec)
        copy_kernel(layouts["fbsd14"], str(d))
        core(f"amd64-vmcore.0.{ext}", d / f"vmcore.0.{ext}")
    # raw physical image, through --phys, and a /dev/kmem stand-in over it
    d = root / "amd64-phys"
    d.mkdir()
    rawimage.write_phys_image(amd64_machine, str(d / "mem.img"))
    copy_kernel(layouts["fbsd14"], str(d))
    kernel = str(d / "kernel")
    out["amd64-phys-image"] = {"argv": ["--phys", str(d / "mem.img"), "-k", kernel],
                               "path": str(d / "mem.img")}
    out["amd64-kmem"] = {"argv": ["-k", kernel],
                         "kmem": (str(d / "mem.img"), kmem_offset_function(amd64_machine))}
    return out


SOURCES = ["amd64-minidump-v1", "amd64-minidump-v2", "amd64-minidump-v3",
           "arm64-minidump-4k", "arm64-minidump-16k", "riscv-minidump",
           "i386-minidump-pae", "i386-minidump-nopae", "i386-elf-full-pae",
           "i386-elf-full-nopae", "amd64-elf-full", "amd64-dumpdev-kdh-v4", "amd64-dumpdev-kdh-v1",
           "amd64-vmcore.0.gz", "amd64-vmcore.0.zst", "amd64-phys-image", "amd64-kmem"]


def _run(src: dict, monkeypatch, *argv: str):
    if "kmem" in src:
        from vnetdbg.memory import live
        path, offset = src["kmem"]
        monkeypatch.setattr(live, "open_kmem",
                            lambda _p=live.KMEM, arch="amd64": live.KmemSource(
                                path, arch, offset=offset))
    return run_cli(*argv, *src["argv"])


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("command", [("jls", "--format", "json", "-d"), ("dmesg",)],
                         ids=["jls-json-d", "dmesg"])
def test_same_output_from_every_source(all_sources, monkeypatch, command, provider):
    """The table: every source gives byte-identical output to amd64 minidump v3, under
    each type provider (the pure-Python one is what FreeBSD hosts run)."""
    command = (*command, "--types", provider)
    results = {}
    for name in SOURCES:
        r = _run(all_sources[name], monkeypatch, *command)
        results[name] = r
        assert r.code == 0, f"{name}: exit {r.code}: {r.err}"
        assert r.err == "", f"{name}: stderr {r.err!r}"
        monkeypatch.undo()
    ref = results["amd64-minidump-v3"].out
    assert ref
    if command[0] == "jls":
        jails = json.loads(ref.decode("utf-8", "surrogateescape"))["jail-information"]["jail"]
        assert [j["jid"] for j in jails] == [1, 2, 3, 4, 5]
    differing = [n for n, r in results.items() if r.out != ref]
    assert not differing, f"output differs from amd64-minidump-v3 for {differing}"


# -- bad input, per format ----------------------------------------------------------------

def _one_error_line(r):
    assert r.code == 1, (r.code, r.err)
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vnetdbg: "), r.err
    assert "Traceback" not in r.err


def _copy_with(src: str, dst_dir, data: bytes, name: str = "vmcore.0"):
    os.makedirs(dst_dir, exist_ok=True)
    for k in ("kernel", "kernel.debug"):
        shutil.copyfile(os.path.join(os.path.dirname(src), k), os.path.join(dst_dir, k))
    p = os.path.join(dst_dir, name)
    with open(p, "wb") as f:
        f.write(data)
    return p


@pytest.mark.parametrize("name", ["arm64-minidump-4k", "arm64-minidump-16k", "riscv-minidump",
                                  "i386-minidump-pae", "i386-minidump-nopae"])
@pytest.mark.parametrize("region", ["header", "msgbuf", "bitmap", "pmap"])
def test_truncated_minidump_regions(all_sources, tmp_path, name, region):
    src = all_sources[name]["path"]
    with open(src, "rb") as f:
        data = f.read()
    ps = 16384 if "16k" in name else 4096
    hdr_bitmap = int.from_bytes(data[32:36], "little")
    msg = int.from_bytes(data[28:32], "little")
    rnd = lambda n: -(-n // ps) * ps  # noqa: E731
    bitmap_off = ps + rnd(msg) + ps          # header, msgbuf, dump_avail
    cut = {"header": 100, "msgbuf": ps + 10, "bitmap": bitmap_off + 8,
           "pmap": bitmap_off + rnd(hdr_bitmap) + ps // 2}[region]
    p = _copy_with(src, tmp_path, data[:cut])
    _one_error_line(run_cli("jls", "--format", "json", "-M", p))


@pytest.mark.parametrize("ext", ["gz", "zst"])
def test_corrupted_compressed_stream(all_sources, tmp_path, ext):
    src = all_sources[f"amd64-vmcore.0.{ext}"]["path"]
    with open(src, "rb") as f:
        data = bytearray(f.read())
    mid = len(data) // 2
    data[mid:mid + 64] = bytes(b ^ 0x5A for b in data[mid:mid + 64])
    p = _copy_with(src, tmp_path / "bad", bytes(data), f"vmcore.0.{ext}")
    _one_error_line(run_cli("jls", "-M", p))
    p = _copy_with(src, tmp_path / "short", bytes(data[:mid]), f"vmcore.0.{ext}")
    _one_error_line(run_cli("jls", "-M", p))


def test_truncated_elf_full_dump_headers(all_sources, tmp_path):
    src = all_sources["amd64-elf-full"]["path"]
    with open(src, "rb") as f:
        head = f.read(64 + 56)
    p = _copy_with(src, tmp_path, head[:64 + 20])
    _one_error_line(run_cli("jls", "-M", p))


@pytest.mark.parametrize("hv", [4, 1])
def test_dump_device_image_bad_parity(all_sources, tmp_path, hv):
    src = all_sources[f"amd64-dumpdev-kdh-v{hv}"]["path"]
    with open(src, "rb") as f:
        data = bytearray(f.read())
    data[200] ^= 0x01                        # in the version string: parity breaks
    p = _copy_with(src, tmp_path, bytes(data))
    _one_error_line(run_cli("jls", "-M", p))
