"""Reads the data files of specs/: device profiles, the drug table, the rule catalog.

This is the only module of the library that reads files; the sans-IO core gets
the parsed records. The files are found in the installed package (``_specs``,
copied from specs/ when the wheel is built) or, in a source checkout, in the
repository's specs/ folder.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from itbproto.core.safety.catalog import RuleCatalog, parse_catalog
from itbproto.core.therapy.profile import DeviceProfile, Drug, from_mapping
from itbproto.core.wire.fields import RecordType
from itbproto.core.wire.messages import Prescription
from itbproto.errors import ProtocolError, SpecError

__all__ = [
    "load_drug",
    "load_policy",
    "load_prescription",
    "load_profile",
    "load_rules",
    "profile_ids",
    "specs_dir",
]


def specs_dir() -> Path:
    """The folder holding the spec data files."""
    package = Path(__file__).resolve().parents[1]  # itbproto/
    for candidate in (package / "_specs", package.parents[1] / "specs"):
        if (candidate / "safety-rules.toml").is_file():
            return candidate
    raise SpecError(str(package), "no specs folder found (neither packaged _specs nor a source checkout)")


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SpecError(str(path), str(exc)) from exc


@functools.cache
def load_rules(path: Path | None = None) -> RuleCatalog:
    """The rule catalog (default: specs/safety-rules.toml)."""
    path = path or specs_dir() / "safety-rules.toml"
    return parse_catalog(_read(path), str(path))


@functools.cache
def load_drug(name: str = "baclofen", path: Path | None = None) -> Drug:
    """One drug from the drug table (default: specs/drugs.toml)."""
    path = path or specs_dir() / "drugs.toml"
    table = _read(path)
    if name not in table:
        raise SpecError(str(path), f"no drug {name!r}; have {sorted(table)}")
    return from_mapping(Drug, table[name], f"{path}:{name}")


def profile_ids() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (specs_dir() / "profiles").glob("*.toml")))


@functools.cache
def load_profile(profile: str | Path = "itb-20") -> DeviceProfile:
    """A device profile by id (``itb-20``) or by path to a TOML file."""
    path = profile if isinstance(profile, Path) else specs_dir() / "profiles" / f"{profile}.toml"
    loaded = from_mapping(DeviceProfile, _read(path), str(path))
    if isinstance(profile, str) and loaded.id != profile:
        raise SpecError(str(path), f"id {loaded.id!r} does not match the file name")
    return loaded


def load_policy(path: str | Path) -> dict[str, int]:
    """A site's safety policy (``[policy]`` with ``"RULE-ID.param" = value``, examples/policies/): checked
    against the catalog, where it may only tighten (POLICY-001: a looser value raises PolicyError)."""
    from itbproto.core.safety import SafetyPolicy

    path = Path(path)
    values = _read(path).get("policy", {})
    if not isinstance(values, dict) or not all(isinstance(v, int) for v in values.values()):
        raise SpecError(str(path), 'expected a [policy] table of "RULE-ID.param" = integer')
    SafetyPolicy(load_rules(), values)
    return dict(values)


def load_prescription(path: str | Path) -> Prescription:
    """A prescription written as TOML: the fields of the wire record, enums by name (examples/*.toml)."""
    path = Path(path)
    try:
        return RecordType(Prescription).from_json(_read(path), "prescription")
    except ProtocolError as exc:
        raise SpecError(str(path), str(exc)) from None
