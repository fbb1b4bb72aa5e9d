"""Golden vectors in specs/vectors/: decode(hex) == fields and encode(fields) == hex, for every type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from conftest import ROOT
from itbproto.core.connection import error_code
from itbproto.core.wire import (
    CATALOG,
    MAX_FRAME,
    Frame,
    Hello,
    Nack,
    Reassembler,
    Role,
    decode,
    encode,
    fragment,
    message_class,
)
from itbproto.core.wire.frame import crc16
from itbproto.errors import ProtocolError
from itbproto.tools import vectors

FOLDER = ROOT / "specs" / "vectors"
VECTORS = sorted(FOLDER.glob("0x*.json"))


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


def test_fragment_vectors_split_and_join() -> None:
    for case in _load(FOLDER / "fragments.json")["cases"]:
        frame = bytes.fromhex(case["frame"])
        fragments = [bytes.fromhex(f) for f in case["fragments"]]
        assert list(fragment(frame, case["mtu"], case["counter"])) == fragments
        assert all(len(f) <= case["mtu"] - 3 for f in fragments)
        receiver = Reassembler()
        assert [out for f in fragments for out in receiver.feed(f)] == [frame]


def test_refusal_vectors_answer_with_typed_nacks_echoing_the_transaction() -> None:
    cases = _load(FOLDER / "refusals.json")["cases"]
    assert len(cases) >= 10
    for case in cases:
        for answer in case["answers"]:
            frame = decode(bytes.fromhex(answer["frame"]))
            assert isinstance(frame.message, Nack)
            assert frame.txn == answer["txn"]
            assert frame.message.code.name == answer["fields"]["code"]
        if "no answer" in case["case"]:
            assert case["answers"] == []
        else:
            (answer,) = case["answers"]
            header_txn = int.from_bytes(bytes.fromhex(case["input"])[6:10], "little")
            assert answer["txn"] == header_txn


def test_transaction_vectors_decode() -> None:
    steps = _load(FOLDER / "transactions.json")["steps"]
    for step in steps:
        frame = decode(bytes.fromhex(step["frame"]))
        assert (type(frame.message).__name__, frame.txn, frame.seq) == (
            step["request"],
            step["txn"],
            step["seq"],
        )
    assert [step["seq"] for step in steps] == list(range(len(steps)))  # replayable on one link


def test_the_transaction_script_replays_on_one_link() -> None:
    """vectors/README: sent on one link in order, with a patient Hello before the patient step and a clinician
    Hello after it (seqs renumbered upwards), a new pump answers every step as listed."""
    firmware, link = vectors._pump()
    seq = 0

    def send(data: bytes) -> Frame:
        nonlocal seq
        (chunk,) = firmware.receive(link, data, vectors.T0)[link]
        seq += 1
        return decode(chunk)

    def hello(role: Role) -> None:
        send(
            encode(Hello(protocol_version=1, role=role, max_frame=MAX_FRAME, client="replay"), txn=1, seq=seq)
        )

    for step in _load(FOLDER / "transactions.json")["steps"]:
        if step["role"] == "PATIENT":
            hello(Role.PATIENT)
        elif step["step"] == "a refused command uses its id":
            hello(Role.CLINICIAN)
        frame = bytearray(bytes.fromhex(step["frame"]))
        frame[2:6] = seq.to_bytes(4, "little")
        frame[-2:] = crc16(bytes(frame[:-2])).to_bytes(2, "little")
        reply = send(bytes(frame)).message
        assert type(reply).__name__ == step["reply"], step["step"]
        if isinstance(reply, Nack):
            assert reply.code.name == step["fields"]["code"], step["step"]
        assert firmware.pump.state.last_txn == step["last_txn"], step["step"]


def test_precedence_vectors_the_first_fault_decides() -> None:
    """Each two-fault payload gets the code of the fault the spec says decides (§1), from decoder and pump."""
    cases = _load(FOLDER / "precedence.json")["cases"]
    faults = [case for case in cases if case["code"] is not None]
    assert {case["code"] for case in faults} == {"MALFORMED", "FIELD_RANGE"}
    for case in faults:
        data = bytes.fromhex(case["input"])
        with pytest.raises(ProtocolError) as caught:
            message_class(data[10]).CODEC.decode(bytes.fromhex(case["payload"]))
        assert error_code(caught.value).name == case["code"]
        assert getattr(caught.value, "field", None) == case["field"]
        (answer,) = case["answers"]
        assert answer["fields"]["code"] == case["code"]
    refused, stale, answered = cases[-3:]
    assert refused["answers"][0]["fields"]["code"] == "UNSUPPORTED_VERSION"
    assert stale["answers"] == []  # the refused frame's seq counted
    assert answered["answers"][0]["message"] == "StatusReport"


def test_the_sample_digests_are_real() -> None:
    """Issue 12: the vectors carried placeholder digests that contradicted the spec."""
    import binascii

    def payload(name: str) -> bytes:
        frame = bytes.fromhex(_load(FOLDER / name)["frame"])
        return frame[13:-2]

    def field(name: str, key: str) -> int:
        value = _load(FOLDER / name)["fields"][key]
        assert isinstance(value, int)
        return value

    stage = binascii.crc32(payload("0x32-stage-prescription.json"))
    assert (
        field("0x33-prescription-staged.json", "digest")
        == stage
        == field("0x34-commit-prescription.json", "digest")
    )
    drug = binascii.crc32(payload("0x54-refill-stage-drug.json"))
    assert field("0x55-refill-staged.json", "digest") == drug == field("0x56-refill-confirm.json", "digest")


def test_the_security_vectors_follow_the_spec_computed_independently() -> None:
    """HKDF and AES-CCM straight from `cryptography`, laid out as protocol.md §6 says: the frames open."""
    v = _load(FOLDER / "security.json")
    long_term = bytes.fromhex(v["long_term_key"])
    salt = bytes.fromhex(v["programmer_nonce"]) + bytes.fromhex(v["pump_nonce"])

    def derive(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=16, salt=salt, info=info).derive(long_term)

    keys = {
        "to pump": derive(b"itbproto v1 session to pump"),
        "to programmer": derive(b"itbproto v1 session to programmer"),
    }
    assert keys["to pump"].hex() == v["key_to_pump"]
    assert keys["to programmer"].hex() == v["key_to_programmer"]
    for case in v["sealed"]:
        frame = bytes.fromhex(case["frame"])
        header, body = frame[:13], frame[13:]
        assert header[1] & 1  # sealed
        direction = 1 if case["direction"] == "to pump" else 2
        nonce = bytes([direction]) + bytes(8) + header[2:6]
        payload = AESCCM(keys[case["direction"]], tag_length=8).decrypt(nonce, body, header)
        assert message_class(header[10]).CODEC.decode(payload).__class__.__name__ == case["message"]
    assert [p["message"] for p in v["pairing"]] == ["PairStart", "PairReply", "PairConfirm", "PairResult"]
