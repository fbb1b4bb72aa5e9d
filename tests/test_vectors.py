"""Golden vectors in specs/vectors/: decode(hex) == fields and encode(fields) == hex, for every type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import ROOT
from itbproto.wire import CATALOG, Frame, decode, encode, message_class

VECTORS = sorted((ROOT / "specs" / "vectors").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_every_message_type_has_a_vector() -> None:
    covered = {int(_load(path)["type"], 16) for path in VECTORS}
    assert covered == set(CATALOG)


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_decodes_to_its_fields(path: Path) -> None:
    vector = _load(path)
    cls = message_class(int(vector["type"], 16))
    assert cls.__name__ == vector["message"]
    expected = cls.CODEC.from_json(vector["fields"])
    assert decode(bytes.fromhex(vector["frame"])) == Frame(expected, txn=vector["txn"], seq=vector["seq"])
    assert expected.to_json() == vector["fields"]


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector_fields_encode_to_its_bytes(path: Path) -> None:
    vector = _load(path)
    msg = message_class(int(vector["type"], 16)).CODEC.from_json(vector["fields"])
    assert encode(msg, txn=vector["txn"], seq=vector["seq"]).hex() == vector["frame"]
