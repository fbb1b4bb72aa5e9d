"""A user's first hour (issue 25): itbproto installed without its extras, in a project that uses pytest (the
plugin pytest loads from itbproto's entry point must leave that project's tests alone, and a run that asks for
the QA suite must end with one line saying what to install); a command that needs a missing extra, a bad store
path, a bad number: one line, never a traceback. The packaging test (marked ``packaging`` and ``slow``, about
ten seconds) proves it on the wheel itself: built from this checkout, installed alone in a fresh venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT

#: a package that shadows hypothesis and fails to import, as when the extra is not installed
_NO_HYPOTHESIS = "raise ImportError('No module named hypothesis (shadowed: a plain install)')\n"


def pytest_in(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shadow = project / "shadow" / "hypothesis"
    shadow.mkdir(parents=True, exist_ok=True)
    (shadow / "__init__.py").write_text(_NO_HYPOTHESIS)
    env = {**os.environ, "PYTHONPATH": str(shadow.parent)}
    return subprocess.run(
        # hypothesis' own pytest plugin is not there either when hypothesis is not installed
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_a_users_own_tests_run_without_the_qa_extra(tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    done = pytest_in(tmp_path, "-q", "test_mine.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_asking_for_the_suite_without_the_extra_says_what_to_install(tmp_path: Path) -> None:
    done = pytest_in(tmp_path, "-q", "--pyargs", "itbproto.qa", "--itb-target=inproc")
    assert done.returncode != 0
    assert "pip install 'itbproto[qa]'" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("missing", "command", "extra"),
    [
        ("matplotlib", ["itbemu", "simulate", "--days", "2", "--plot", "PLOT"], "emulator"),
        ("bleak", ["itbproto", "status", "--target", "ble://ITB20"], "ble"),
        ("bumble", ["itbemu", "serve", "--ble", "tcp-server:127.0.0.1:0"], "ble"),
    ],
)
def test_a_missing_extra_is_one_line_saying_what_to_install(
    missing: str, command: list[str], extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    from itbemu.cli import main as itbemu
    from itbproto.cli import main as itbproto

    for name in [m for m in sys.modules if m == missing or m.startswith(missing + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)  # `import missing` fails as when it is not installed
    args = [str(tmp_path / "plot.png") if a == "PLOT" else a for a in command[1:]]
    if command[0] == "itbemu" and args[0] == "simulate":
        args += ["--prescription", str(ROOT / "examples" / "prescriptions" / "continuous-400ug.toml")]
    status = (itbemu if command[0] == "itbemu" else itbproto)(args)
    err = capsys.readouterr().err
    assert status != 0
    assert err.strip().splitlines() == [f"{command[0]}: " + err.split(": ", 1)[1].strip()]
    assert f"pip install 'itbproto[{extra}]'" in err


@pytest.mark.parametrize("where", ["missing-dir/pump.db", ".", "not-a-store.txt"])
def test_a_bad_store_path_is_one_line(where: str, tmp_path: Path, capsys: Any) -> None:
    from itbemu.cli import main as itbemu

    (tmp_path / "not-a-store.txt").write_text("hello, not SQLite\\n" * 100)
    path = tmp_path / where
    for args in (
        ["serve", "--tcp", "127.0.0.1:0", "--store", str(path)],
        ["export-log", "--store", str(path)],
    ):
        assert itbemu(args) != 0
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("itbemu: ")
    assert not (tmp_path / "missing-dir").exists()


def test_export_log_of_a_missing_store_leaves_no_file_behind(tmp_path: Path, capsys: Any) -> None:
    from itbemu.cli import main as itbemu

    assert itbemu(["export-log", "--store", str(tmp_path / "missing.db")]) != 0
    assert "no store there" in capsys.readouterr().err
    assert not (tmp_path / "missing.db").exists()


def test_simulate_refuses_a_negative_number_of_days(capsys: Any) -> None:
    from itbemu.cli import main as itbemu

    with pytest.raises(SystemExit) as refused:
        itbemu(["simulate", "--days", "-5", "--prescription", "x.toml"])
    assert refused.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["itbemu", "itbproto"])
def test_both_commands_say_the_installed_version(command: str, capsys: Any) -> None:
    from importlib.metadata import version

    import itbproto
    from itbemu.cli import main as itbemu
    from itbproto.cli import main as itbproto_main

    with pytest.raises(SystemExit) as done:
        (itbemu if command == "itbemu" else itbproto_main)(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"{command} {version('itbproto')}\n"
    assert itbproto.__version__ == version("itbproto")  # the same as pyproject.toml's


def test_the_license_is_mit_and_packaged() -> None:
    """LICENSE at the root; pyproject ships it (the packaging test finds it in the installed wheel's
    dist-info)."""
    import tomllib

    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Copyright (c) 2026 itbproto developers" in text
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]


def test_the_demo_runs_without_matplotlib_and_says_what_the_plot_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from itbemu.demo import run_demo

    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # not installed: a plain `pip install itbproto`
    lines: list[str] = []
    assert run_demo(tmp_path, days=30, say=lines.append) is None
    assert any(line.strip().startswith("days: 30") for line in lines)  # the simulation ran
    said = [line for line in lines if "pip install 'itbproto[emulator]'" in line]
    assert len(said) == 1
    assert "plot" in said[0]
    assert not (tmp_path / "simulation.png").exists()


def test_the_wheel_carries_the_prescriptions_the_demo_reads() -> None:
    """The installed demo reads them from itbemu/_prescriptions, where the wheel puts examples/prescriptions
    (a source checkout reads examples/ itself); the packaging test runs the demo from the wheel."""
    import tomllib

    from itbemu import demo

    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["force-include"]["examples/prescriptions"] == "itbemu/_prescriptions"
    assert Path(demo.__file__).resolve().parent / "_prescriptions" == demo.PACKAGED
    for name in ("continuous-400ug.toml", "flex-4-step.toml"):
        assert (ROOT / "examples" / "prescriptions" / name).is_file()
        assert demo.prescription(name) == ROOT / "examples" / "prescriptions" / name


def test_the_run_time_needs_construct_only_not_construct_typing() -> None:
    """construct-typing (its stubs) is for type checking, the ``typing`` extra: it pulls arrow, dateutil and
    tzdata into an install. The library, the emulator and a round trip of every message import none of it."""
    import tomllib

    script = (
        "import sys, itbproto, itbemu, itbemu.cli, itbproto.cli\n"
        "from itbproto.tools.samples import SAMPLES\n"
        "from itbproto.core.wire import decode, encode\n"
        "for msg in SAMPLES.values():\n"
        "    assert decode(encode(msg, txn=7)).message == msg\n"
        "print(' '.join(m for m in ('construct_typed', 'arrow', 'dateutil') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if d.startswith("construct-typing")]
    assert [d for d in project["optional-dependencies"]["typing"] if d.startswith("construct-typing")]
    assert "typing" in project["optional-dependencies"]["dev"][0]  # itbproto[...] of the dev extra


def _make_n(project: Path, target: str) -> str:
    """What ``make TARGET`` would run in ``project`` (a dry run: ``make -n``)."""
    done = subprocess.run(
        ["make", "-n", "--no-print-directory", target],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_installs_what_the_demo_needs_and_make_test_the_dev_tools_in_either_order(
    tmp_path: Path,
) -> None:
    """A fresh clone: ``make demo`` installs itbproto with the emulator extra (the plot), not the dev tools;
    ``make test`` installs ``.[dev]``, before or after the demo, into the same .venv; once the dev tools are
    in, the demo installs nothing more."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    demo = _make_n(tmp_path, "demo")
    assert "-m venv .venv" in demo
    assert "install --quiet -e '.[emulator]'" in demo
    assert "[dev]" not in demo
    assert "itbemu demo" in demo
    assert "install --quiet -e '.[dev]'" in _make_n(tmp_path, "test")

    # make demo ran (the venv and the demo's install are there): make test adds the dev tools, no new venv
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").touch()
    (tmp_path / ".venv" / ".installed-demo").touch()
    test = _make_n(tmp_path, "test")
    assert "-m venv" not in test
    assert "install --quiet -e '.[dev]'" in test
    assert "install" not in _make_n(tmp_path, "demo")

    # make test ran first: the dev tools include the emulator extra, so the demo's install counts as done
    assert "touch .venv/.installed .venv/.installed-demo" in test
    for stamp in (".installed", ".installed-demo"):
        (tmp_path / ".venv" / stamp).touch()
    assert "install" not in _make_n(tmp_path, "demo")


# --- the packaging test: the wheel, installed alone in a fresh venv -----------------------------------------

#: what a plain install must not pull in (construct-typing's run-time dependencies, for its stubs only)
_NOT_IN_A_PLAIN_INSTALL = ("arrow", "python-dateutil", "tzdata", "construct-typing")


@dataclass
class PlainVenv:
    """A venv holding the wheel built from this checkout's sdist and pytest, nothing else (no extras)."""

    python: Path
    sdist: Path
    wheel: Path  # built from the sdist
    home: Path  # a directory outside the checkout to run commands in
    env: dict[str, str]

    def run(
        self, *command: str, cwd: Path | None = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """A command of the venv's bin/ (``itbemu``, ``pytest``...), or its python for ``python``."""
        exe = self.python if command[0] == "python" else self.python.parent / command[0]
        return subprocess.run(
            [str(exe), *command[1:]],
            cwd=cwd or self.home,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> PlainVenv:
    """The sdist (hatchling, as pyproject's build-system asks), the wheel pip builds from it (so the sdist is
    complete), a fresh ``venv`` and ``pip install WHEEL pytest`` (pip fetches the run-time dependencies
    through its cache); the venv has no pip of its own (this pip installs into it: faster)."""
    import tomllib

    base = tmp_path_factory.mktemp("plain")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    backend = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    _must([*pip, "install", "--target", str(base / "backend"), *backend])
    _must(
        [sys.executable, "-m", "hatchling", "build", "-t", "sdist", "-d", str(base / "dist")],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(base / "backend")},
    )
    (sdist,) = (base / "dist").glob("itbproto-*.tar.gz")
    _must([*pip, "wheel", "--no-deps", str(sdist), "-w", str(base / "dist")])
    (wheel,) = (base / "dist").glob("itbproto-*.whl")
    venv = base / "venv"
    _must([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _must([*pip, "--python", str(python), "install", str(wheel), "pytest"])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    home = base / "home"
    home.mkdir()
    return PlainVenv(python, sdist, wheel, home, env)


def _must(command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return lines[0]


@pytest.mark.slow
@pytest.mark.packaging
def test_the_wheel_alone_installs_no_extras_and_carries_its_license(plain: PlainVenv) -> None:
    listed = plain.run(
        "python",
        "-c",
        "import importlib.metadata as m; print('\\n'.join(d.metadata['Name'] for d in m.distributions()))",
    )
    installed = {name.lower() for name in listed.stdout.split()}
    assert "itbproto" in installed
    assert not installed & set(_NOT_IN_A_PLAIN_INSTALL), sorted(installed)
    files = plain.run(
        "python", "-c", "import importlib.metadata as m; print('\\n'.join(map(str, m.files('itbproto'))))"
    )
    assert any(
        f.startswith("itbproto-") and ".dist-info/" in f and f.endswith("LICENSE")
        for f in files.stdout.split()
    )
    with tarfile.open(plain.sdist) as sdist:
        assert f"{plain.sdist.name.removesuffix('.tar.gz')}/LICENSE" in sdist.getnames()
    assert plain.run("itbproto", "--help").returncode == 0
    version = plain.run("itbemu", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"itbemu {plain.wheel.name.split('-')[1]}"


@pytest.mark.slow
@pytest.mark.packaging
def test_the_demo_runs_from_the_wheel_alone_and_says_what_the_plot_needs(plain: PlainVenv) -> None:
    done = plain.run("itbemu", "demo", "--out", str(plain.home / "demo-out"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "REFILL_CONFIRMED" in done.stdout
    assert "battery_eos_day" in done.stdout  # the ten years ran
    said = [line for line in done.stdout.splitlines() if "pip install 'itbproto[emulator]'" in line]
    assert len(said) == 1
    assert not (plain.home / "demo-out" / "simulation.png").exists()


@pytest.mark.slow
@pytest.mark.packaging
def test_the_wheel_alone_leaves_a_users_pytest_alone(plain: PlainVenv, tmp_path: Path) -> None:
    (tmp_path / "test_mine.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    done = plain.run("pytest", "-p", "no:cacheprovider", "test_mine.py", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert "plugins: itbproto-" in done.stdout  # with itbproto's pytest11 entry point loaded


@pytest.mark.slow
@pytest.mark.packaging
@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["itbemu", "simulate", "--days", "2", "--prescription", "RX", "--plot", "X.png"], "emulator"),
        (["itbproto", "status", "--target", "ble://ITB20"], "ble"),
        (["itbemu", "serve", "--ble", "tcp-server:127.0.0.1:0"], "ble"),
        (["pytest", "-p", "no:cacheprovider", "--pyargs", "itbproto.qa"], "qa"),
    ],
    ids=["simulate-plot", "status-ble", "serve-ble", "qa-suite"],
)
def test_the_wheel_alone_names_the_missing_extra_in_one_line(
    plain: PlainVenv, command: list[str], extra: str, tmp_path: Path
) -> None:
    rx = ROOT / "examples" / "prescriptions" / "continuous-400ug.toml"
    done = plain.run(*[str(rx) if a == "RX" else a for a in command], cwd=tmp_path)
    assert done.returncode != 0
    assert f"pip install 'itbproto[{extra}]'" in _one_line(done)
