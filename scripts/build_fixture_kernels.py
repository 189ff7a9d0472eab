#!/usr/bin/env python3
"""Build the faithful fake FreeBSD kernels used as vnetdbg test fixtures.

Each layout under fixtures/kernels/<layout>/ (plus the shared pieces in
fixtures/kernels/common/) is a small set of C sources that declare FreeBSD's
real kernel structures and globals for one release.  This script compiles them
with clang for the FreeBSD target, links them with ld.lld at FreeBSD's amd64
addresses and splits the result the way FreeBSD installs a kernel:

    OUT/<layout>/kernel.full   linked ELF with symbols and DWARF
    OUT/<layout>/kernel.debug  llvm-objcopy --only-keep-debug kernel.full
    OUT/<layout>/kernel        llvm-objcopy --strip-debug
                               --add-gnu-debuglink=kernel.debug kernel.full

The output is byte-for-byte reproducible: sources are taken in sorted order,
every build path is mapped to /usr/src/sys or /usr/obj/... in the debug info,
and nothing records a time stamp.

Usage:  scripts/build_fixture_kernels.py [--layout fbsd14] [--out DIR]
        (layouts: LAYOUTS, ARCH_LAYOUTS, VARIANT_LAYOUTS such as fbsd14-novimage)

From Python (the scripts/ directory is not a package):

    spec = importlib.util.spec_from_file_location("bfk", path_to_this_file)
    bfk = importlib.util.module_from_spec(spec); spec.loader.exec_module(bfk)
    paths = bfk.build("fbsd14", out_dir)   # {"kernel_full": ..., ...}
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
KERNELS = REPO / "fixtures" / "kernels"
COMMON = KERNELS / "common"
DEFAULT_OUT = REPO / "build" / "kernels"

#: Layout name -> FreeBSD release modelled, clang target, DWARF version.
LAYOUTS: dict[str, dict] = {
    "fbsd12": {"release": "12.4-RELEASE", "target": "x86_64-unknown-freebsd12.4",
               "dwarf": 4},
    "fbsd13": {"release": "13.2-RELEASE", "target": "x86_64-unknown-freebsd13.2",
               "dwarf": 4},
    "fbsd14": {"release": "14.2-RELEASE", "target": "x86_64-unknown-freebsd14.2",
               "dwarf": 5},
}

#: Other architectures: the MI sources of ``base`` (plus common), the amd64 and x86
#: trees left out, and the machine-dependent pieces of ``fixtures/kernels/md/<arch>``
#: (struct pcpu MD fields, struct pcb, vmparam, locore, linker script).  Kept apart
#: from LAYOUTS so the amd64 builds (and what tests check of them) are unchanged.
#: obj: FreeBSD's MACHINE.MACHINE_ARCH object directory component.
ARCH_LAYOUTS: dict[str, dict] = {
    "fbsd14-arm64": {"release": "14.2-RELEASE", "target": "aarch64-unknown-freebsd14.2",
                     "dwarf": 5, "base": "fbsd14", "arch": "arm64", "obj": "arm64.aarch64",
                     "cflags": ["-mgeneral-regs-only", "-ffixed-x18",
                                "-fno-omit-frame-pointer"]},
    "fbsd14-riscv": {"release": "14.2-RELEASE", "target": "riscv64-unknown-freebsd14.2",
                     "dwarf": 5, "base": "fbsd14", "arch": "riscv", "obj": "riscv.riscv64",
                     "cflags": ["-mcmodel=medany", "-march=rv64imac", "-mabi=lp64",
                                "-mno-relax"]},
    # one kernel for PAE and non-PAE (FreeBSD 12+ builds both pmaps in)
    "fbsd14-i386": {"release": "14.2-RELEASE", "target": "i386-unknown-freebsd14.2",
                    "dwarf": 5, "base": "fbsd14", "arch": "i386", "obj": "i386.i386",
                    "cflags": ["-mno-mmx", "-mno-sse", "-msoft-float",
                               "-fno-omit-frame-pointer"]},
}
MD = KERNELS / "md"

#: Option variants of an amd64 layout: the trees of ``base`` with
#: ``fixtures/kernels/<overlay>/sys`` laid over them (later files win) and the
#: sources of ``omit`` left out, as a kernel config's ``nooptions`` would.  Kept apart
#: from LAYOUTS: the committed amd64 kernels are built exactly as before.
#:   fbsd14-novimage: "nooptions VIMAGE" -- net/vnet.h's !VIMAGE branch (VNET_DEFINE
#:   makes plain globals), no net/vnet.c (FreeBSD: "net/vnet.c optional vimage"), so
#:   no set_vnet contents, vnet0, vnet_head or FEATURE(vimage).
VARIANT_LAYOUTS: dict[str, dict] = {
    "fbsd14-novimage": {"release": "14.2-RELEASE", "target": "x86_64-unknown-freebsd14.2",
                        "dwarf": 5, "base": "fbsd14", "overlay": "variants/novimage",
                        "omit": ("net/vnet.c",)},
}

#: Where the DWARF says the sources and the object directory were.
SRC_PREFIX = "/usr/src/sys"
OBJ_PREFIX = "/usr/obj/usr/src/amd64.amd64/sys/VNETDBG-FIXTURE"

#: FreeBSD's kern.mk/kern.pre.mk flags for amd64 that matter for code layout,
#: plus what a freestanding fixture needs.
CFLAGS = [
    "-c", "-O2", "-pipe", "-fno-strict-aliasing",
    "-ffreestanding", "-fno-builtin", "-nostdinc", "-fno-common",
    "-fno-pic", "-mcmodel=kernel", "-mno-red-zone",
    "-mno-mmx", "-mno-sse", "-msoft-float",
    "-fno-omit-frame-pointer", "-fno-stack-protector",
    "-D_KERNEL", "-Wall", "-Wno-unused-function",
]

TOOLS = ("clang", "ld.lld", "llvm-objcopy")


class BuildError(RuntimeError):
    """A tool is missing or a build step failed."""


def find_tools() -> dict[str, str]:
    """Locate clang, ld.lld and llvm-objcopy (env CLANG/LD_LLD/LLVM_OBJCOPY override)."""
    found: dict[str, str] = {}
    missing = []
    for tool in TOOLS:
        env = os.environ.get(tool.upper().replace(".", "_").replace("-", "_"))
        path = env or shutil.which(tool)
        if not path:
            missing.append(tool)
        else:
            found[tool] = path
    if missing:
        raise BuildError(
            "missing build tool(s): " + ", ".join(missing)
            + " -- install clang, lld and llvm (e.g. apt-get install clang lld llvm) "
            "or set CLANG / LD_LLD / LLVM_OBJCOPY to their paths")
    return found


def _trees(layout: str) -> tuple[list[Path], tuple[str, ...]]:
    """The 'sys' trees of a layout, later ones overriding earlier ones, and the
    sys-relative prefixes left out (the amd64 machine trees, for other arches)."""
    if layout in VARIANT_LAYOUTS:
        spec = VARIANT_LAYOUTS[layout]
        return ([COMMON / "sys", KERNELS / spec["base"] / "sys",
                 KERNELS / spec["overlay"] / "sys"], tuple(spec["omit"]))
    spec = ARCH_LAYOUTS.get(layout)
    if spec is None:
        return [COMMON / "sys", KERNELS / layout / "sys"], ()
    return ([COMMON / "sys", KERNELS / spec["base"] / "sys", MD / spec["arch"] / "sys"],
            ("amd64/", "x86/", "conf/ldscript.amd64"))


def _collect(layout: str, subdir: str, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Map 'sys'-relative path -> file, the layout's file overriding common's."""
    files: dict[str, Path] = {}
    trees, skip = _trees(layout)
    for base in trees:
        root = base / subdir if subdir else base
        if not root.is_dir():
            continue
        for p in sorted(root.rglob("*")):
            if p.is_file() and p.name.endswith(suffixes):
                rel = p.relative_to(base).as_posix()
                if not rel.startswith(skip):
                    files[rel] = p
    return dict(sorted(files.items()))


def sources(layout: str) -> list[tuple[str, Path]]:
    """The (relative path, file) list of .c/.S sources of a layout, sorted."""
    srcs = _collect(layout, "", (".c", ".S"))
    return sorted(srcs.items())


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env={**os.environ, "LC_ALL": "C",
                                          "SOURCE_DATE_EPOCH": "0"})
    if proc.returncode != 0:
        raise BuildError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}")
    if proc.stdout.strip():
        sys.stderr.write(proc.stdout)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def build(layout: str, out_dir: str | os.PathLike = DEFAULT_OUT) -> dict[str, Path]:
    """Build one layout into ``out_dir/<layout>/``; return the produced paths.

    Keys: ``dir``, ``kernel_full``, ``kernel_debug``, ``kernel``.
    """
    if layout in ARCH_LAYOUTS:
        return _build_arch(layout, out_dir)
    if layout not in LAYOUTS and layout not in VARIANT_LAYOUTS:
        raise BuildError(f"unknown layout {layout!r}; known: "
                         f"{', '.join([*LAYOUTS, *ARCH_LAYOUTS, *VARIANT_LAYOUTS])}")
    spec = LAYOUTS.get(layout) or VARIANT_LAYOUTS[layout]
    tools = find_tools()
    layout_sys = (KERNELS / spec.get("base", layout) / "sys").resolve()
    common_sys = (COMMON / "sys").resolve()
    # a variant's overlay tree: searched first, mapped to /usr/src/sys like the rest
    overlay = [(KERNELS / spec["overlay"] / "sys").resolve()] if "overlay" in spec else []
    if not layout_sys.is_dir():
        raise BuildError(f"no sources for layout {layout} in {layout_sys}")

    dest = Path(out_dir).resolve() / layout
    dest.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix=f"vnetdbg-{layout}-") as tmp:
        objdir = Path(tmp).resolve() / "obj"
        objdir.mkdir()
        # Like FreeBSD's kernel build: "machine" and "x86" in the object
        # directory stand for amd64/include and x86/include.
        for link, sub in (("machine", "amd64/include"), ("x86", "x86/include")):
            d = objdir / link
            d.mkdir()
            for rel, p in _collect(layout, sub, (".h",)).items():
                target = d / Path(rel).relative_to(sub)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, target)

        cflags = CFLAGS + [
            f"--target={spec['target']}",
            "-g", f"-gdwarf-{spec['dwarf']}",
            f"-fdebug-prefix-map={objdir}={OBJ_PREFIX}",
            *[f"-fdebug-prefix-map={o}={SRC_PREFIX}" for o in overlay],
            f"-fdebug-prefix-map={layout_sys}={SRC_PREFIX}",
            f"-fdebug-prefix-map={common_sys}={SRC_PREFIX}",
            "-I.", *[f"-I{o}" for o in overlay], f"-I{layout_sys}", f"-I{common_sys}",
            f"-I{common_sys}/contrib/ck/include",
        ]
        objs: dict[str, Path] = {}
        for rel, src in sources(layout):
            obj = objdir / (Path(rel).stem + ".o")
            if obj.name in objs:
                raise BuildError(f"two sources compile to {obj.name}: {objs[obj.name]} and {rel}")
            objs[obj.name] = src
            if rel.endswith(".S"):
                # clang's integrated assembler ignores -fdebug-prefix-map, so
                # assembler sources get no debug info (keeps builds path-free).
                flags = [f for f in cflags if not f.startswith(("-g", "-fdebug-prefix-map"))]
                flags += ["-x", "assembler-with-cpp"]
            else:
                flags = cflags
            _run([tools["clang"], *flags, str(src.resolve()), "-o", str(obj)], objdir)

        # locore.o first, as in FreeBSD's SYSTEM_OBJS; the rest sorted.
        order = sorted(objs, key=lambda n: (n != "locore.o", n))
        ldscript = _collect(layout, "conf", ("ldscript.amd64",))["conf/ldscript.amd64"]
        full = objdir / "kernel.full"
        _run([tools["ld.lld"], "-T", str(ldscript.resolve()), "--build-id=sha1",
              "-z", "max-page-size=0x1000", "-z", "common-page-size=0x1000",
              "-z", "norelro", "--no-rosegment", "-nostdlib", "-static",
              "--no-undefined", "-o", str(full), *order], objdir)
        debug = objdir / "kernel.debug"
        _run([tools["llvm-objcopy"], "--only-keep-debug", "kernel.full", "kernel.debug"], objdir)
        stripped = objdir / "kernel"
        _run([tools["llvm-objcopy"], "--strip-debug", "--add-gnu-debuglink=kernel.debug",
              "kernel.full", "kernel"], objdir)

        result = {"dir": dest}
        for key, f in (("kernel_full", full), ("kernel_debug", debug), ("kernel", stripped)):
            tmp_out = dest / (f.name + ".tmp")
            shutil.copyfile(f, tmp_out)
            os.replace(tmp_out, dest / f.name)
            result[key] = dest / f.name
    return result


def _build_arch(layout: str, out_dir) -> dict[str, Path]:
    """build() for an ARCH_LAYOUTS entry (same steps, per-arch flags and trees)."""
    spec = ARCH_LAYOUTS[layout]
    arch = spec["arch"]
    tools = find_tools()
    trees = [t.resolve() for t in _trees(layout)[0]]
    common_sys, base_sys, md_sys = trees
    if not md_sys.is_dir():
        raise BuildError(f"no machine-dependent sources for {arch} in {md_sys}")
    obj_prefix = f"/usr/obj/usr/src/{spec['obj']}/sys/VNETDBG-FIXTURE"
    dest = Path(out_dir).resolve() / layout
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"vnetdbg-{layout}-") as tmp:
        objdir = Path(tmp).resolve() / "obj"
        objdir.mkdir()
        d = objdir / "machine"
        d.mkdir()
        sub = f"{arch}/include"
        for rel, p in _collect(layout, sub, (".h",)).items():
            target = d / Path(rel).relative_to(sub)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(p, target)
        base_flags = [f for f in CFLAGS if f not in (
            "-mcmodel=kernel", "-mno-red-zone", "-mno-mmx", "-mno-sse", "-msoft-float")]
        cflags = base_flags + spec["cflags"] + [
            f"--target={spec['target']}",
            "-g", f"-gdwarf-{spec['dwarf']}",
            f"-fdebug-prefix-map={objdir}={obj_prefix}",
            f"-fdebug-prefix-map={md_sys}={SRC_PREFIX}",
            f"-fdebug-prefix-map={base_sys}={SRC_PREFIX}",
            f"-fdebug-prefix-map={common_sys}={SRC_PREFIX}",
            "-I.", f"-I{md_sys}", f"-I{base_sys}", f"-I{common_sys}",
            f"-I{common_sys}/contrib/ck/include",
        ]
        objs: dict[str, Path] = {}
        for rel, src in sources(layout):
            obj = objdir / (Path(rel).stem + ".o")
            if obj.name in objs:
                raise BuildError(f"two sources compile to {obj.name}: {objs[obj.name]} and {rel}")
            objs[obj.name] = src
            if rel.endswith(".S"):
                flags = [f for f in cflags if not f.startswith(("-g", "-fdebug-prefix-map"))]
                flags += ["-x", "assembler-with-cpp"]
            else:
                flags = cflags
            _run([tools["clang"], *flags, str(src.resolve()), "-o", str(obj)], objdir)
        order = sorted(objs, key=lambda n: (n != "locore.o", n))
        script = f"conf/ldscript.{arch}"
        ldscript = _collect(layout, "conf", (f"ldscript.{arch}",))[script]
        full = objdir / "kernel.full"
        _run([tools["ld.lld"], "-T", str(ldscript.resolve()), "--build-id=sha1",
              "-z", "max-page-size=0x1000", "-z", "common-page-size=0x1000",
              "-z", "norelro", "--no-rosegment", "-nostdlib", "-static",
              "--no-undefined", "-o", str(full), *order], objdir)
        _run([tools["llvm-objcopy"], "--only-keep-debug", "kernel.full", "kernel.debug"], objdir)
        _run([tools["llvm-objcopy"], "--strip-debug", "--add-gnu-debuglink=kernel.debug",
              "kernel.full", "kernel"], objdir)
        result = {"dir": dest}
        for key, name in (("kernel_full", "kernel.full"), ("kernel_debug", "kernel.debug"),
                          ("kernel", "kernel")):
            tmp_out = dest / (name + ".tmp")
            shutil.copyfile(objdir / name, tmp_out)
            os.replace(tmp_out, dest / name)
            result[key] = dest / name
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layout", action="append",
                    choices=sorted([*LAYOUTS, *ARCH_LAYOUTS, *VARIANT_LAYOUTS]),
                    help="layout to build (repeatable; default: the amd64 layouts)")
    ap.add_argument("--out", default=str(DEFAULT_OUT),
                    help=f"output directory (default: {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    try:
        for layout in args.layout or sorted(LAYOUTS):
            paths = build(layout, args.out)
            print(f"{layout} ({ {**LAYOUTS, **ARCH_LAYOUTS, **VARIANT_LAYOUTS}[layout]['release'] }):")
            for key in ("kernel_full", "kernel_debug", "kernel"):
                print(f"  {paths[key]}  sha256={sha256(paths[key])}")
    except BuildError as e:
        print(f"build_fixture_kernels: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
