"""The programmer's keys at rest: one JSON file readable by its owner only (mode 0600), a key per pump.

The library reads no file but the spec data (:mod:`itbproto.io.specfiles`) and this one, and only when asked.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from itbproto.core.security.pairing import PairedKey
from itbproto.core.wire.enums import Role
from itbproto.errors import SpecError

__all__ = ["find_key", "load_key", "save_key"]


def save_key(path: str | Path, serial: str, key: PairedKey) -> None:
    """Keep ``key`` for pump ``serial`` in the keystore at ``path`` (created 0600; others' keys kept)."""
    path = Path(path)
    keys = _read(path) if path.exists() else {}
    keys[serial] = {"key_id": key.key_id, "role": key.role.name.lower(), "long_term": key.long_term.hex()}
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(keys, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(path.with_suffix(".tmp"), path)


def load_key(path: str | Path, serial: str) -> PairedKey:
    """The key kept for pump ``serial``; :class:`~itbproto.errors.SpecError` if there is none, or if the
    file can be read by anyone but its owner."""
    key = find_key(path, serial)
    if key is None:
        raise SpecError(str(path), f"no key for pump {serial}: pair first")
    return key


def find_key(path: str | Path, serial: str) -> PairedKey | None:
    """The key kept for pump ``serial``, or None; :class:`~itbproto.errors.SpecError` for a keystore that
    is malformed or can be read by anyone but its owner."""
    path = Path(path)
    entry = _read(path).get(serial)
    if entry is None:
        return None
    try:
        key_id, role, long_term = entry["key_id"], str(entry["role"]), bytes.fromhex(str(entry["long_term"]))
        if not isinstance(key_id, int):
            raise TypeError(f"key_id {key_id!r}")
        return PairedKey(key_id, Role[role.upper()], long_term)
    except (KeyError, TypeError, ValueError) as exc:
        raise SpecError(str(path), f"a malformed key for {serial}: {exc}") from None


def _read(path: Path) -> dict[str, dict[str, object]]:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SpecError(str(path), "the keystore must be readable by its owner only (chmod 600)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SpecError(str(path), str(exc)) from None
    if not isinstance(data, dict):
        raise SpecError(str(path), "not a keystore")
    return data
