"""The tree as core | io | tools: the import contracts of pyproject.toml hold and catch what they forbid; the
package root holds what a user reads first; the 0.2 module paths CHANGELOG.md lists still import, each as the
very module it became, with a DeprecationWarning naming the new path."""

from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import itbproto

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(itbproto.__file__).resolve().parent
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def lint_imports(where: Path, src: Path) -> subprocess.CompletedProcess[str]:
    """import-linter's ``lint-imports`` on the package in ``src``, with the config in ``where``."""
    env = {"PYTHONPATH": str(src), "PATH": str(Path(sys.executable).parent), "NO_COLOR": "1"}
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"]
    return subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, check=False)


def contract(kind: str) -> dict[str, object]:
    return next(c for c in CONTRACTS["contracts"] if c["id"] == kind)


def test_the_import_contracts_hold() -> None:
    done = lint_imports(ROOT, ROOT / "src")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Contracts: {len(CONTRACTS['contracts'])} kept, 0 broken." in done.stdout


def test_the_import_contracts_catch_every_import_they_forbid(tmp_path: Path) -> None:
    """A copy of the package in which each contract is broken once per rule it states (the imports come from
    the contracts, so a rule dropped from pyproject.toml shows here as one not caught)."""
    shutil.copytree(PACKAGE, tmp_path / "src" / "itbproto", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    broken: dict[str, list[str]] = {}  # module -> what it now imports against a contract

    sans_io = contract("sans-io")
    broken["itbproto.core.wire.frame"] = list(sans_io["forbidden_modules"])  # type: ignore[call-overload]
    layers = [layer.split(" | ")[0] for layer in contract("layers")["layers"]]  # type: ignore[attr-defined]
    for upper, lower in itertools.pairwise(layers):  # each layer imports the one above it
        module = {"core": "itbproto.core.therapy.flows", "io": "itbproto.io.transport"}.get(lower)
        broken.setdefault(module or f"itbproto.{lower}", []).append(f"itbproto.{upper}")
    for source in contract("emulator")["source_modules"]:  # type: ignore[attr-defined]
        module = {"itbproto.core": "itbproto.core.link", "itbproto.io": "itbproto.io.client"}.get(source)
        module = module or {"itbproto.tools": "itbproto.tools.display"}.get(source, source)
        broken.setdefault(module, []).append("itbemu")
    for module, imports in broken.items():
        path = tmp_path / "src" / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        path.write_text(path.read_text() + "".join(f"\nimport {name}  # noqa" for name in imports) + "\n")

    done = lint_imports(tmp_path, tmp_path / "src")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"0 kept, {len(CONTRACTS['contracts'])} broken." in done.stdout
    report = re.sub(r"\s+", " ", done.stdout)
    missed = [
        f"{module} -> {name}"
        for module, imports in broken.items()
        for name in imports
        if f"{module} -> {name} (l." not in report
    ]
    assert missed == [], report


def test_the_package_root_holds_what_a_user_reads_first() -> None:
    names = {p.name for p in PACKAGE.iterdir() if p.name not in ("__pycache__", "_specs")}
    assert names == {
        "__init__.py",
        "__main__.py",
        "_moved.py",
        "cli.py",
        "errors.py",
        "units.py",
        "py.typed",
        "core",
        "io",
        "qa",
        "tools",
    }


def moves() -> dict[str, str]:
    """The table of CHANGELOG.md: 0.2 path -> 0.3 path."""
    rows = re.findall(
        r"^\s*\| `(itbproto[\w.]*)` \| `(itbproto[\w.]*)` \|$", (ROOT / "CHANGELOG.md").read_text(), re.M
    )
    assert len(rows) > 10
    return dict(rows)


def test_the_changelog_lists_every_alias_and_no_other() -> None:
    from itbproto._moved import MOVED

    assert moves() == MOVED


#: imports every 0.2 path (each package's modules found on disk under the new path) in a fresh interpreter
ALIASES = """
import importlib, json, pkgutil, sys, warnings
pairs = []
with warnings.catch_warnings(record=True) as said:
    warnings.simplefilter("always")
    for old, new in json.loads(sys.argv[1]).items():
        inside = getattr(importlib.import_module(new), "__path__", [])
        for name in [new] + [m.name for m in pkgutil.walk_packages(inside, new + ".")]:
            alias = old + name[len(new):]
            importlib.import_module(alias)
            pairs.append([alias, name, sys.modules[alias] is sys.modules[name]])
files = [getattr(m, "__file__", None) for m in {id(m): m for m in sys.modules.values()}.values()]
files = [f for f in files if f and "itbproto" in f]
warned = [str(w.message) for w in said if w.category is DeprecationWarning]
print(json.dumps({"aliases": pairs, "warned": warned, "twice": len(files) - len(set(files))}))
"""


def test_every_0_2_path_imports_as_the_module_it_became_with_a_warning() -> None:
    done = subprocess.run(
        [sys.executable, "-c", ALIASES, json.dumps(moves())], capture_output=True, text=True, check=True
    )
    result = json.loads(done.stdout)
    assert result["twice"] == 0  # no module loaded a second time under its old name
    aliases = result["aliases"]
    assert len(aliases) > 60  # every module of the moved packages, not only the packages
    for alias, name, same in aliases:
        assert same, alias
        assert any(said.startswith(f"{alias} moved to {name} ") for said in result["warned"]), alias


def test_old_paths_in_user_code_warn_at_the_line_that_names_them(tmp_path: Path) -> None:
    script = tmp_path / "old.py"
    script.write_text(
        "import itbproto\n"
        "from itbproto.wire import SetRate\n"  # line 2
        "from itbproto import specfiles\n"  # line 3
        "therapy = itbproto.therapy\n"  # line 4
        "from itbproto.core.wire import SetRate as New\n"
        "from itbproto.io.specfiles import load_rules\n"
        "from itbproto.core import therapy as new_therapy\n"
        "assert SetRate is New and specfiles.load_rules is load_rules and therapy is new_therapy\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "always::DeprecationWarning", str(script)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    warned = re.findall(
        r"old\.py:(\d+): DeprecationWarning: (itbproto[\w.]*) moved to (itbproto[\w.]*)", done.stderr
    )
    assert ("2", "itbproto.wire", "itbproto.core.wire") in warned
    assert ("3", "itbproto.specfiles", "itbproto.io.specfiles") in warned
    assert ("4", "itbproto.therapy", "itbproto.core.therapy") in warned
    assert all(line in {"2", "3", "4"} for line, _, _ in warned), (
        done.stderr
    )  # every warning at the user's line


def test_new_paths_warn_nothing() -> None:
    code = "import itbproto, itbproto.cli, itbproto.qa.plugin, itbproto.io.ble.bumble_backend, itbproto.tools"
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
