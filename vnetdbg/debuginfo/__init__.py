"""Debug information: the type model, type providers and the ELF symbol table."""

from __future__ import annotations

import os
from typing import Callable

from ..errors import VnetdbgError
from .types import Kind, Member, Type, TypeProvider

PROVIDERS = ("auto", "drgn", "dwarf")


def open_types(debug_path, *, provider: str = "auto",
               read: Callable[[int, int], bytes] | None = None,
               cache_dir: str | None = None) -> TypeProvider:
    """A TypeProvider for the kernel debug file ``debug_path``.

    ``provider``: "drgn", "dwarf" or "auto" (the environment variable VNETDBG_TYPES if
    set, else drgn when importable, else the pure-Python DWARF reader).  ``read`` is a
    memory reader ``(address, size) -> bytes`` handed to drgn; ``cache_dir`` is where the
    DWARF reader keeps its index."""
    if provider == "auto":
        provider = os.environ.get("VNETDBG_TYPES", "").strip().lower() or "auto"
    if provider not in PROVIDERS:
        raise VnetdbgError(f"unknown type provider {provider!r} (choose drgn or dwarf)")
    if provider == "auto":
        from .drgn_types import drgn_available
        provider = "drgn" if drgn_available() else "dwarf"
    if provider == "drgn":
        from .drgn_types import DrgnTypeProvider
        return DrgnTypeProvider(debug_path, read=read)
    from .dwarf_types import DwarfTypeProvider
    return DwarfTypeProvider(debug_path, cache_dir=cache_dir)


__all__ = ["Kind", "Member", "Type", "TypeProvider", "open_types"]
