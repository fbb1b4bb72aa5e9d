"""The README's examples run as written: its Python blocks, and the frames its shell lines decode."""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import ROOT
from itbproto.cli import main

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)
DECODED = re.findall(r"itbproto decode (?:0x)?([0-9a-f]{30,})", README) + re.findall(
    r"echo 0x([0-9a-f]+) \|", README
)


@pytest.mark.parametrize("source", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(source: str, capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    for name, value in namespace.items():
        if name.startswith("test_") and callable(value):
            value()


def test_readme_has_examples() -> None:
    assert len(BLOCKS) >= 4
    assert len(DECODED) >= 2


@pytest.mark.parametrize("frame", DECODED)
def test_readme_frames_are_real(frame: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", frame]) == 0
    assert "SetRate" in capsys.readouterr().out
