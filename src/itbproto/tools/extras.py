"""Which of itbproto's optional extras a missing module comes with: a one-line message, not a traceback."""

from __future__ import annotations

__all__ = ["EXTRAS", "install_hint"]

#: top-level module -> the extra that installs it (pyproject.toml's optional dependencies)
EXTRAS = {
    "bleak": "ble",
    "bumble": "ble",
    "hypothesis": "qa",
    "pytest": "qa",
    "matplotlib": "emulator",
    "redis": "redis",
}


def install_hint(exc: ModuleNotFoundError) -> str | None:
    """What to install for ``exc`` (None: not a module of an extra)."""
    module = (exc.name or "").split(".")[0]
    extra = EXTRAS.get(module)
    if extra is None:
        return None
    return f"this needs the {extra!r} extra ({module} is not installed): pip install 'itbproto[{extra}]'"
