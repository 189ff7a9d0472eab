"""Shared test setup: fixture locations, a private type cache, and a CLI runner."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VMCORES = ROOT / "fixtures" / "vmcores"
#: committed fixture machines: (directory, what it models)
LAYOUTS = ("amd64-fbsd12", "amd64-fbsd13", "amd64-fbsd14")


def have_drgn() -> bool:
    try:
        import drgn  # noqa: F401
    except ImportError:
        return False
    return True


#: both type providers on hosts that have drgn; on Linux x86_64 drgn is a declared
#: dependency, so its absence there is a failure (test_environment.py), not a skip
PROVIDERS = ("drgn", "dwarf") if have_drgn() else ("dwarf",)


@pytest.fixture(autouse=True, scope="session")
def _private_type_cache(tmp_path_factory):
    """Keep the DWARF provider's cache out of the user's home during tests."""
    os.environ["VNETDBG_CACHE_DIR"] = str(tmp_path_factory.mktemp("type-cache"))
    yield


class Result:
    def __init__(self, code: int, out: bytes, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "surrogateescape")


def run_cli(*argv: str) -> Result:
    """Run ``vnetdbg ARGV`` in-process from the repository root; stdout as bytes."""
    from vnetdbg.cli import main

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="\n")
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(list(argv))
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
        out.flush()
    finally:
        os.chdir(cwd)
    return Result(code, raw.getvalue(), err.getvalue())


@pytest.fixture
def cli():
    return run_cli
