"""Every block of the README runs as written (issue 25): its Python blocks, and its shell blocks line by line
against the servers they start, in a fresh directory where `examples/` is the repository's.

How a shell block is run, the only liberties taken with its text:
- a line that starts `itbemu serve` is a server (with or without its `&`): it runs in the background until the
  block's flow ends (a later server on the same port replaces it), and the next line waits until it listens;
- `export NAME=VALUE` sets the environment of the lines after it;
- each `127.0.0.1:PORT` is given a free port (the same one everywhere in the flow), so runs do not collide;
- a flow is a shell block and the Python blocks right after it that use one of its ports;
- every other line must end with status 0, except the stated exceptions: `make ...` (CI runs `make test`
  itself; `make demo` runs `itbemu demo`, which tests/test_plain_install.py runs from the wheel) and
  `pip install ...` (the test runs in the installed package).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT, free_port
from itbproto.cli import main

README = (ROOT / "README.md").read_text(encoding="utf-8")
DECODED = re.findall(r"itbproto decode (?:0x)?([0-9a-f]{30,})", README) + re.findall(
    r"echo 0x([0-9a-f]+) \|", README
)
EXCEPTIONS = ("make ", "pip install ")
PORT = re.compile(r"127\.0\.0\.1:(\d{4,5})")


@dataclass
class Block:
    language: str
    text: str
    line: int  # where it starts in README.md


@dataclass
class Flow:
    """A shell block and the Python blocks after it that use its servers (or a Python block alone)."""

    shell: Block | None
    python: list[Block] = field(default_factory=list)

    @property
    def name(self) -> str:
        first = self.shell or self.python[0]
        return f"{first.language}@{first.line}"


def blocks() -> list[Block]:
    found = []
    for match in re.finditer(r"^```(\w+)\n(.*?)^```", README, re.S | re.M):
        found.append(Block(match[1], match[2], README[: match.start()].count("\n") + 1))
    return found


def flows() -> list[Flow]:
    out: list[Flow] = []
    for block in blocks():
        if block.language == "sh":
            out.append(Flow(block))
        elif block.language == "python":
            last = out[-1] if out else None
            ports = (
                set(PORT.findall(last.shell.text)) if last is not None and last.shell is not None else set()
            )
            if last is not None and ports & set(PORT.findall(block.text)):
                last.python.append(block)
            else:
                out.append(Flow(None, [block]))
    return out


FLOWS = flows()


def lines(shell: str) -> Iterator[str]:
    """The block's commands: continuations joined, blank and comment-only lines left out."""
    for line in shell.replace("\\\n", " ").splitlines():
        if line.strip() and not line.strip().startswith("#"):
            yield line.strip()


@dataclass
class Run:
    """Where a flow runs: its directory, environment and servers."""

    cwd: Path
    env: dict[str, str]
    servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    said: list[str] = field(default_factory=list)

    def line(self, line: str) -> None:
        if line.startswith(EXCEPTIONS):
            return
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").split("#")[0].strip().partition("=")
            self.env[name] = value
            return
        if line.startswith("itbemu serve"):
            self.serve(line)
            return
        done = subprocess.run(
            ["bash", "-c", line], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=300
        )
        self.said.append(f"$ {line}\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        assert done.returncode == 0, "\n".join(self.said)

    def serve(self, line: str) -> None:
        command = line.split(" #")[0].strip().removesuffix("&").strip()
        port = PORT.search(command)
        key = port[1] if port else command
        self.stop(key)
        log = self.cwd / f"serve-{len(self.said)}.log"
        with log.open("wb") as out:
            self.servers[key] = subprocess.Popen(
                shlex.split(command), cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.said.append(f"$ {command} &")
        for _ in range(1200):  # a minute at most
            if " on " in log.read_text(errors="replace"):  # "itbemu: pump ... on tcp://..." once it listens
                return
            assert self.servers[key].poll() is None, log.read_text(errors="replace")
            time.sleep(0.05)
        raise AssertionError(f"{command} did not start")

    def stop(self, key: str) -> None:
        server = self.servers.pop(key, None)
        if server is not None:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=60) == 0, f"a server did not stop cleanly: {server.args!r}"

    def close(self) -> None:
        for key in list(self.servers):
            self.stop(key)


@contextmanager
def place(tmp_path: Path) -> Iterator[Run]:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ITBPROTO_", "PYTEST_", "HYPOTHESIS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    run = Run(tmp_path, env)
    try:
        yield run
    finally:
        run.close()


def with_free_ports(text: str, ports: dict[str, str]) -> str:
    return PORT.sub(lambda m: f"127.0.0.1:{ports.setdefault(m[1], str(free_port()))}", text)


def exec_python(block: Block, ports: dict[str, str]) -> None:
    namespace: dict[str, Any] = {"__name__": "__readme__"}
    exec(compile(with_free_ports(block.text, ports), f"README.md:{block.line}", "exec"), namespace)
    for name, value in namespace.items():
        if name.startswith("test_") and callable(value):
            value()


@pytest.mark.parametrize("flow", FLOWS, ids=[f.name for f in FLOWS])
def test_readme_block_runs_as_written(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    ports: dict[str, str] = {}
    with place(tmp_path) as run:
        if flow.shell is not None:
            for line in lines(with_free_ports(flow.shell.text, ports)):
                run.line(line)
        for block in flow.python:
            exec_python(block, ports)


def test_readme_has_examples_of_every_kind() -> None:
    kinds = [b.language for b in blocks()]
    assert kinds.count("python") >= 5
    assert kinds.count("sh") >= 5
    assert len(DECODED) >= 2
    code = {"python", "sh"}
    assert {b.language for b in blocks()} - code <= {
        "text",
        "yaml",
    }  # (text: output and the layout; yaml: CI)


@pytest.mark.parametrize(
    "block", [b for b in blocks() if b.language == "yaml"], ids=lambda b: f"yaml@{b.line}"
)
def test_readme_yaml_blocks_parse(block: Block) -> None:
    yaml = pytest.importorskip("yaml")
    assert isinstance(yaml.safe_load(block.text), dict)


@pytest.mark.parametrize("frame", DECODED)
def test_readme_frames_are_real(frame: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", frame]) == 0
    assert "SetRate" in capsys.readouterr().out
