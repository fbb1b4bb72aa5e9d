"""The module paths of 0.2, before the tree became core | io | tools: they keep working until 0.4, with a
DeprecationWarning naming the new path (CHANGELOG.md lists every move).

An old path is an alias, not a copy: ``import itbproto.wire.messages`` gives the very module
``itbproto.core.wire.messages`` (the same classes, the same state), so code mixing old and new paths still
sees one library. Type checkers do not know the aliases: move the imports.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

__all__ = ["MOVED", "install", "moved"]

#: old module -> new module; the most specific first (a module that left its package comes before the package)
MOVED = {
    "itbproto.security.keystore": "itbproto.io.keystore",
    "itbproto.ble.gatt": "itbproto.core.wire.gatt",
    **{f"itbproto.{name}": f"itbproto.core.{name}" for name in ("wire", "connection", "firmware", "link")},
    **{f"itbproto.{name}": f"itbproto.core.{name}" for name in ("machines", "safety", "therapy", "security")},
    "itbproto.capture": "itbproto.core.capture",
    **{f"itbproto.{name}": f"itbproto.io.{name}" for name in ("ble", "transport", "client", "specfiles")},
    **{
        f"itbproto.{name}": f"itbproto.tools.{name}"
        for name in ("remote", "display", "demo", "specgen", "vectors", "samples", "extras")
    },
}


def moved(old: str, stacklevel: int = 1) -> str | None:
    """Where the module ``old`` (a 0.2 path) lives now, said in a DeprecationWarning to the caller
    ``stacklevel`` frames up; None: it did not move."""
    if not old.startswith("itbproto."):
        return None
    for before, after in MOVED.items():
        if old == before or old.startswith(before + "."):
            new = after + old[len(before) :]
            warnings.warn(
                f"{old} moved to {new} (itbproto 0.3); the old path goes in 0.4",
                DeprecationWarning,
                stacklevel + 1,
            )
            return new
    return None


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module at its new path (imported as usual, once)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self._spec  # the import system gave it the alias's spec; it keeps its own


class _Finder(importlib.abc.MetaPathFinder):
    """Ahead of the path finder, so an old path never loads a second copy of a module."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = moved(fullname, stacklevel=2)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(new))


def install() -> None:
    """Put the old paths' finder first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
