"""specs/ stays in step with the code: generated tables and vectors are up to date."""

from __future__ import annotations

from conftest import ROOT
from itbproto.core.wire import CATALOG
from itbproto.tools import specgen


def test_generated_specs_are_up_to_date() -> None:
    stale = specgen.check(ROOT)
    assert not stale, f"run `itbproto specs --write`; out of date: {stale}"


def test_protocol_md_documents_every_message() -> None:
    text = (ROOT / "specs" / "protocol.md").read_text(encoding="utf-8")
    for cls in CATALOG.values():
        assert f"### 0x{cls.TYPE:02x} {cls.__name__}" in text
