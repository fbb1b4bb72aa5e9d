"""Issue 26: an independent implementation of specs/ alone, checked against the vectors.

This file reads only specs/ (protocol.md's text and generated tables, the JSON vector files) and uses only the
standard library: it never imports the library whose codec it checks. From the tables it builds its own
decoder and encoder (the header layout of §2, CRC-16/CCITT-FALSE from its parameters in the text, field
types, sizes and ranges from the message, record and enumeration tables, which fault decides from §1), its
own fragmenter (§3) and its own receiver steps (§2), and checks every vector with them: each message vector
decodes to its fields and re-encodes to its frame, the fragments split and join as §3 says, the refusals and
the precedence cases get the answers §1 and §2 predict, and the transaction script agrees with §4 and §5.

Run as a script (``python -I tests/test_conformance_specs.py``) it runs every check and then asserts that no
``itbproto`` module was ever imported; ``test_the_checks_run_without_itbproto`` does exactly that.
"""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPECS = Path(__file__).resolve().parents[1] / "specs"
TEXT = (SPECS / "protocol.md").read_text(encoding="utf-8")
VECTORS = SPECS / "vectors"


class MalformedError(Exception):
    """The payload does not parse: MALFORMED."""


class OutOfRangeError(Exception):
    """A value outside its range: FIELD_RANGE; ``path`` names the field."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


# --- what the text says ---------------------------------------------------------------------------------


def _crc_parameters() -> tuple[int, int, int]:
    """Poly, init and the check value of the frame CRC, as §2 states them."""
    found = re.search(
        r"CRC-16/CCITT-FALSE\*\* \(poly (0x[0-9A-Fa-f]+), init (0x[0-9A-Fa-f]+), no reflection", TEXT
    )
    check = re.search(r'`crc16\(b"123456789"\) == (0x[0-9A-Fa-f]+)`', TEXT)
    assert found is not None, "§2 names the CRC"
    assert check is not None, "§2 gives the CRC's check value"
    return int(found.group(1), 16), int(found.group(2), 16), int(check.group(1), 16)


POLY, INIT, CHECK = _crc_parameters()


def crc16(data: bytes) -> int:
    """CRC-16 with the text's parameters, bit by bit (no reflection, no final XOR)."""
    crc = INIT
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ POLY if crc & 0x8000 else crc << 1) & 0xFFFF
    return crc


def _tables(heading: str) -> dict[str, list[list[str]]]:
    """Every table under headings starting with ``heading`` (e.g. "### "), by heading text."""
    generated = TEXT[TEXT.index("<!-- BEGIN GENERATED") :]
    out: dict[str, list[list[str]]] = {}
    name = ""
    for line in generated.splitlines():
        if line.startswith("#"):
            level = line.split(" ")[0] + " "
            name = line[len(level) :].strip() if level == heading else ""
            if name:
                out[name] = []
        elif name and line.startswith("| ") and not line.startswith("|---"):
            cells = [c.strip() for c in line.strip()[1:-1].split(" | ")]
            if cells[0] not in ("field", "value", "type"):
                out[name].append(cells)
    return out


def _enums() -> dict[str, dict[int, str]]:
    return {
        name: {int(row[0].split()[0]): row[1].strip("`") for row in rows}
        for name, rows in _tables("#### ").items()
    }


ENUMS = _enums()


def _header_format() -> str:
    sizes = {"u8": "B", "u16": "H", "u32": "I"}
    rows = _tables("## ")["Frame header"]
    return "<" + "".join(sizes[row[1]] for row in rows)


HEADER = struct.Struct(_header_format())
INT = {
    "u8": ("<B", 0, 0xFF),
    "u16": ("<H", 0, 0xFFFF),
    "u32": ("<I", 0, 2**32 - 1),
    "u64": ("<Q", 0, 2**64 - 1),
}
INT["i32"] = ("<i", -(2**31), 2**31 - 1)


@dataclass
class Field:
    name: str
    type: str
    range: str


@dataclass
class Catalog:
    """The message table and the record tables."""

    messages: dict[int, tuple[str, str, str, str]] = field(default_factory=dict)  # name, kind, effect, size
    replies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    layouts: dict[str, list[Field]] = field(default_factory=dict)


def _catalog() -> Catalog:
    catalog = Catalog()
    for row in _tables("## ")["Messages"]:
        name = re.sub(r"\[(\w+)\].*", r"\1", row[1])
        catalog.messages[int(row[0], 16)] = (name, row[2], row[3], row[7])
        catalog.replies[name] = tuple(r.strip() for r in row[4].split(",")) if row[4] != "-" else ()
    for heading, rows in _tables("### ").items():
        name = heading.split()[-1]
        catalog.layouts[name] = [Field(row[0].strip("`"), row[1].replace("\\|", "|"), row[3]) for row in rows]
    return catalog


CATALOG = _catalog()
TYPES = {name: code for code, (name, *_) in CATALOG.messages.items()}


# --- the codec, from the tables -----------------------------------------------------------------------------


def _scalar(type_: str) -> bool:
    return type_ in INT or type_ == "bool" or " enum " in type_ or " bits of " in type_


def _scalar_size(type_: str) -> int:
    return 1 if type_ == "bool" else struct.calcsize(INT[type_.split()[0]][0])


def _bounds(type_: str, range_: str) -> tuple[int, int]:
    lo, hi = (int(x) for x in range_.split(".."))
    return lo, hi


def _lengths(type_: str) -> tuple[int, int, int | None]:
    found = re.match(r"\w+\[(\d+)\.\.(\d+)(?:, at most (\d+) B)?\]", type_)
    assert found is not None, type_
    budget = found.group(3)
    return int(found.group(1)), int(found.group(2)), int(budget) if budget else None


def max_size(type_: str) -> int:
    if _scalar(type_):
        return _scalar_size(type_)
    if type_.startswith(("text[", "bytes[")):
        return 1 + _lengths(type_)[1]
    if type_.startswith("array["):
        _, most, budget = _lengths(type_)
        items = most * max_size(type_.split(" of ", 1)[1])
        return 1 + (items if budget is None else min(items, budget))
    return sum(max_size(f.type) for f in CATALOG.layouts[type_])


def fixed_size(type_: str) -> int | None:
    if _scalar(type_):
        return _scalar_size(type_)
    if type_ in CATALOG.layouts:
        sizes = [fixed_size(f.type) for f in CATALOG.layouts[type_]]
        return None if None in sizes else sum(s for s in sizes if s is not None)
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _value(f: Field, raw: int, path: str) -> Any:
    """A scalar's value from its raw integer, checked against the table (OutOfRangeError if it is not)."""
    if f.type == "bool":
        if raw > 1:
            raise OutOfRangeError(path)
        return raw == 1
    if " enum " in f.type:
        names = ENUMS[f.type.split()[-1]]
        if raw not in names:
            raise OutOfRangeError(path)
        return names[raw]
    if " bits of " in f.type:
        names = ENUMS[f.type.split()[-1]]
        bits = {int(b.split()[1]): b.split()[2] for b in f.range.removeprefix("any of ").split(", ")}
        assert set(bits.values()) == set(names.values())
        if raw & ~sum(1 << b for b in bits):
            raise OutOfRangeError(path)
        return [bits[b] for b in sorted(bits) if raw >> b & 1]
    lo, hi = _bounds(f.type, f.range)
    if not lo <= raw <= hi:
        raise OutOfRangeError(path)
    return raw


def decode_record(layout: list[Field], buf: bytes, pos: int, path: str) -> tuple[dict[str, Any], int]:
    """§1's order: runs of fixed-size fields read whole, then checked in order; the others one by one."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(layout):
        run = [layout[i]]
        while _scalar(run[0].type) and i + len(run) < len(layout) and _scalar(layout[i + len(run)].type):
            run.append(layout[i + len(run)])
        if _scalar(run[0].type):
            size = sum(_scalar_size(f.type) for f in run)
            if pos + size > len(buf):
                raise MalformedError(f"the payload ends inside {[f.name for f in run]}")
            for f in run:
                fmt = "<B" if f.type == "bool" else INT[f.type.split()[0]][0]
                (raw,) = struct.unpack_from(fmt, buf, pos)
                pos += struct.calcsize(fmt)
                out[f.name] = _value(f, raw, _join(path, f.name))
        else:
            out[run[0].name], pos = decode_value(run[0], buf, pos, _join(path, run[0].name))
        i += len(run)
    return out, pos


def decode_value(f: Field, buf: bytes, pos: int, path: str) -> tuple[Any, int]:
    type_ = f.type
    if type_.startswith(("text[", "bytes[")):
        if pos >= len(buf):
            raise MalformedError("no length byte")
        n, lo, hi = buf[pos], *_lengths(type_)[:2]
        raw = buf[pos + 1 : pos + 1 + n]
        if len(raw) != n:
            raise MalformedError("fewer bytes than announced")
        if not lo <= n <= hi:
            raise OutOfRangeError(path)
        if type_.startswith("text["):
            if not all(0x20 <= b <= 0x7E for b in raw):
                raise OutOfRangeError(path)
            return raw.decode("ascii"), pos + 1 + n
        return raw.hex(), pos + 1 + n
    if type_.startswith("array["):
        if pos >= len(buf):
            raise MalformedError("no count byte")
        lo, hi, budget = _lengths(type_)
        count = buf[pos]
        if not lo <= count <= hi:
            raise OutOfRangeError(path)
        item = Field("", type_.split(" of ", 1)[1], "")
        start = pos = pos + 1
        items = []
        for k in range(count):
            value, pos = decode_value(item, buf, pos, f"{path}[{k}]")
            items.append(value)
        if budget is not None and pos - start > budget:
            raise OutOfRangeError(path)
        return items, pos
    if type_ in CATALOG.layouts:
        return decode_record(CATALOG.layouts[type_], buf, pos, path)
    raise AssertionError(f"{path}: a scalar outside a run")  # decode_record reads scalars


def decode_payload(name: str, payload: bytes) -> dict[str, Any]:
    size = fixed_size(name)
    if size is not None and len(payload) != size:
        raise MalformedError(f"{len(payload)} bytes, the table says {size}")
    fields, pos = decode_record(CATALOG.layouts[name], payload, 0, "")
    if pos != len(payload):
        raise MalformedError("bytes left over")
    return fields


def encode_value(f: Field, value: Any) -> bytes:
    type_ = f.type
    if type_ == "bool":
        return bytes([1 if value else 0])
    if " enum " in type_:
        names = {v: k for k, v in ENUMS[type_.split()[-1]].items()}
        return struct.pack(INT[type_.split()[0]][0], names[value])
    if " bits of " in type_:
        bits = {b.split()[2]: int(b.split()[1]) for b in f.range.removeprefix("any of ").split(", ")}
        return struct.pack(INT[type_.split()[0]][0], sum(1 << bits[v] for v in value))
    if type_ in INT:
        packed: bytes = struct.pack(INT[type_][0], value)
        return packed
    if type_.startswith(("text[", "bytes[")):
        raw: bytes = value.encode("ascii") if type_.startswith("text[") else bytes.fromhex(value)
        return bytes([len(raw)]) + raw
    if type_.startswith("array["):
        item = Field("", type_.split(" of ", 1)[1], "")
        return bytes([len(value)]) + b"".join(encode_value(item, v) for v in value)
    return b"".join(encode_value(g, value[g.name]) for g in CATALOG.layouts[type_])


def encode_frame(name: str, fields: dict[str, Any], *, txn: int, seq: int) -> bytes:
    payload = encode_value(Field("", name, ""), fields)
    head = HEADER.pack(1, 0, seq, txn, TYPES[name], len(payload)) + payload
    return head + struct.pack("<H", crc16(head))


@dataclass
class Frame:
    version: int
    flags: int
    seq: int
    txn: int
    msg_type: int
    payload: bytes


def open_frame(data: bytes) -> Frame | None:
    """§2 steps 1 and 2 on a plain link: the frame, or None (dropped unanswered)."""
    if len(data) < HEADER.size + 2:
        return None
    version, flags, seq, txn, msg_type, length = HEADER.unpack_from(data)
    if length > 1024:
        return None
    if len(data) != HEADER.size + length + (8 if flags & 1 else 2):
        return None
    if flags & 1:  # sealed, on a plain link
        return None
    if struct.unpack_from("<H", data, len(data) - 2)[0] != crc16(data[:-2]):
        return None
    return Frame(version, flags, seq, txn, msg_type, data[HEADER.size : -2])


def decode_frame(data: bytes) -> tuple[str, Frame, dict[str, Any]]:
    frame = open_frame(data)
    assert frame is not None, data.hex()
    assert (frame.version, frame.flags) == (1, 0), data.hex()
    name = CATALOG.messages[frame.msg_type][0]
    return name, frame, decode_payload(name, frame.payload)


@dataclass
class Receiver:
    """A pump's §2 receiving steps on one plain link; ``answer`` predicts its Nack code (None: dropped)."""

    last_seq: int | None = None

    def answer(self, data: bytes) -> str | tuple[str, str | None] | None:
        frame = open_frame(data)
        if frame is None:
            return None
        if self.last_seq is not None and frame.seq <= self.last_seq:
            return None
        self.last_seq = frame.seq  # accepted: steps 4-7 may still refuse it
        if frame.version != 1:
            return "UNSUPPORTED_VERSION", None
        if frame.flags & 0xFE:
            return "MALFORMED", None
        if frame.msg_type not in CATALOG.messages:
            return "UNKNOWN_MESSAGE", None
        name, kind, *_ = CATALOG.messages[frame.msg_type]
        try:
            decode_payload(name, frame.payload)
        except MalformedError:
            return "MALFORMED", None
        except OutOfRangeError as error:
            return "FIELD_RANGE", error.path
        if kind != "request":
            return "UNKNOWN_MESSAGE", None
        if frame.txn == 0:
            return "BAD_TXN", None  # §5 step 2
        return "accepted"


def fragment(frame: bytes, mtu: int, counter: int) -> list[bytes]:
    """§3: the first fragment carries MTU - 7 frame bytes after a 4-byte header, each other MTU - 5."""
    first = bytes([counter, 0]) + struct.pack("<H", len(frame)) + frame[: mtu - 7]
    out, rest, index = [first], frame[mtu - 7 :], 1
    while rest:
        out.append(bytes([counter, index]) + rest[: mtu - 5])
        rest, index = rest[mtu - 5 :], index + 1
    return out


# --- the checks -------------------------------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return data


def check_crc() -> None:
    assert crc16(b"123456789") == CHECK


def check_the_tables_agree_with_themselves() -> None:
    """The payload-bytes column is what the field tables add up to; every message has its table."""
    for name, _kind, _effect, size in CATALOG.messages.values():
        fixed = fixed_size(name)
        assert size == (str(fixed) if fixed is not None else f"at most {max_size(name)}"), (name, size)


def check_message_vectors() -> None:
    files = sorted(VECTORS.glob("0x*.json"))
    assert {_load(p.name)["message"] for p in files} == set(TYPES)
    for path in files:
        vector = _load(path.name)
        data = bytes.fromhex(vector["frame"])
        name, frame, fields = decode_frame(data)
        assert (name, f"0x{frame.msg_type:02x}") == (vector["message"], vector["type"])
        assert (frame.txn, frame.seq, fields) == (vector["txn"], vector["seq"], vector["fields"]), path.name
        assert encode_frame(name, vector["fields"], txn=vector["txn"], seq=vector["seq"]) == data


def check_fragments() -> None:
    cases = _load("fragments.json")["cases"]
    for case in cases:
        frame = bytes.fromhex(case["frame"])
        decode_frame(frame)
        fragments = [bytes.fromhex(f) for f in case["fragments"]]
        assert fragment(frame, case["mtu"], case["counter"]) == fragments
        assert all(len(f) <= case["mtu"] - 3 for f in fragments)
        assert b"".join([fragments[0][4:], *(f[2:] for f in fragments[1:])]) == frame


def _check_answers(cases: list[dict[str, Any]]) -> None:
    receiver = Receiver(last_seq=0)  # after the clinician Hello with seq 0
    for case in cases:
        predicted = receiver.answer(bytes.fromhex(case["input"]))
        if predicted is None:
            assert case["answers"] == [], case["case"]
            continue
        (answer,) = case["answers"]
        name, frame, fields = decode_frame(bytes.fromhex(answer["frame"]))
        assert (name, frame.txn) == (answer["message"], answer["txn"])
        fields.pop("detail", None)
        assert fields == answer["fields"], case["case"]
        if isinstance(predicted, tuple):
            code, where = predicted
            assert (name, fields["code"]) == ("Nack", code), case["case"]
            if case.get("code") is not None:
                assert (case["code"], case["field"]) == (code, where), case["case"]


def check_refusals() -> None:
    _check_answers(_load("refusals.json")["cases"])


def fault(name: str, payload: bytes) -> tuple[str, str | None]:
    """The Nack code a payload's first fault gets, and the field it names."""
    try:
        decode_payload(name, payload)
    except MalformedError:
        return "MALFORMED", None
    except OutOfRangeError as error:
        return "FIELD_RANGE", error.path
    raise AssertionError(f"{payload.hex()} decodes as {name}")


def check_precedence() -> None:
    cases = _load("precedence.json")["cases"]
    for case in cases:
        if case["code"] is None:
            continue
        msg_type = bytes.fromhex(case["input"])[10]
        assert fault(CATALOG.messages[msg_type][0], bytes.fromhex(case["payload"])) == (
            case["code"],
            case["field"],
        ), case["case"]
    _check_answers(cases)


def check_transactions() -> None:
    steps = _load("transactions.json")["steps"]
    last_txn, seqs = 0, []
    for step in steps:
        name, frame, _ = decode_frame(bytes.fromhex(step["frame"]))
        assert (name, frame.txn) == (step["request"], step["txn"])
        seqs.append(frame.seq)
        assert step["reply"] in (*CATALOG.replies[name], "Nack")
        assert step["role"] is None or step["role"] in ENUMS["Role"].values()
        if step["fields"] is not None and step["reply"] == "Nack":
            assert step["fields"]["code"] in ENUMS["ErrorCode"].values()
        effect = CATALOG.messages[TYPES[name]][2]
        if effect != "command":  # §5: reads and open requests never touch last_txn
            assert step["last_txn"] == last_txn, step["step"]
        assert step["last_txn"] >= last_txn
        last_txn = step["last_txn"]
    assert seqs == sorted(set(seqs)), "increasing seqs: the script replays on one link"


def check_security_frames() -> None:
    vectors = _load("security.json")
    for item in vectors["pairing"]:
        name, _, _ = decode_frame(bytes.fromhex(item["frame"]))
        assert name == item["message"]
    for item in vectors["sealed"]:  # AES-CCM is not in the standard library: the envelope only
        data = bytes.fromhex(item["frame"])
        version, flags, seq, txn, msg_type, length = HEADER.unpack_from(data)
        assert (version, flags, seq, txn) == (1, 1, item["seq"], item["txn"])
        assert CATALOG.messages[msg_type][0] == item["message"]
        assert len(data) == HEADER.size + length + 8


CHECKS = [
    check_crc,
    check_the_tables_agree_with_themselves,
    check_message_vectors,
    check_fragments,
    check_refusals,
    check_precedence,
    check_transactions,
    check_security_frames,
]


def test_crc() -> None:
    check_crc()


def test_the_tables_agree_with_themselves() -> None:
    check_the_tables_agree_with_themselves()


def test_message_vectors() -> None:
    check_message_vectors()


def test_fragments() -> None:
    check_fragments()


def test_refusals() -> None:
    check_refusals()


def test_precedence() -> None:
    check_precedence()


def test_transactions() -> None:
    check_transactions()


def test_security_frames() -> None:
    check_security_frames()


def test_the_checks_run_without_itbproto() -> None:
    """In a fresh, isolated interpreter every check passes and no itbproto module was imported."""
    done = subprocess.run(
        [sys.executable, "-I", __file__], capture_output=True, text=True, check=False, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{len(CHECKS)} checks passed, itbproto never imported"


def test_this_file_imports_nothing_from_itbproto() -> None:
    source = Path(__file__).read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import)\s+itbproto", source, re.MULTILINE)


if __name__ == "__main__":
    for check in CHECKS:
        check()
    assert not any(name == "itbproto" or name.startswith("itbproto.") for name in sys.modules)
    sys.stdout.write(f"{len(CHECKS)} checks passed, itbproto never imported\n")
