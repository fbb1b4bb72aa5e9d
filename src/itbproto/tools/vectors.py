"""Golden vectors: what an independent implementation checks itself against (specs/vectors/).

Every vector is generated from the library itself and frozen by a test, so it
is both an example and a regression check. The JSON format is written out in
specs/vectors/README.md:

- one file per message type: a frame, its envelope fields and its decoded fields;
- ``fragments.json``: frames split for ATT MTUs, fragment by fragment;
- ``refusals.json``: bad frames sent to a pump in session, and what it answers (or not);
- ``precedence.json``: payloads with more than one fault, which fault decides, and whether a refused
  frame's ``seq`` counts;
- ``transactions.json``: the transaction-id rules as a script of requests and answers;
- ``security.json``: a pairing with fixed randomness (every message, the keys it derives), a session's keys
  from fixed nonces, and sealed frames both ways.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Firmware
from itbproto.core.machines.pump import CLOSED, PumpMachine, Session
from itbproto.core.safety import SafetyPolicy
from itbproto.core.security.channel import SealedChannel
from itbproto.core.security.keys import pairing_keys, session_keys
from itbproto.core.security.pairing import PROGRAMMER_ID, ProgrammerPairing, PumpPairing
from itbproto.core.therapy.state import TherapyState
from itbproto.core.wire import enums
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import ErrorCode
from itbproto.core.wire.fields import Json
from itbproto.core.wire.fragment import fragment
from itbproto.core.wire.frame import FLAG_SEALED, MAX_FRAME, crc16, decode, encode
from itbproto.core.wire.message import Message, message_class
from itbproto.errors import FieldRangeError, MalformedPayloadError
from itbproto.io.specfiles import load_drug, load_profile, load_rules
from itbproto.tools.samples import EXCHANGE, PRESCRIPTION, SAMPLES

__all__ = [
    "fragment_vectors",
    "message_vector",
    "message_vector_name",
    "precedence_vectors",
    "refusal_vectors",
    "security_vectors",
    "transaction_vectors",
]

T0 = 40_000_000
_HEADER = struct.Struct("<BBIIBH")


def message_vector(msg: Message) -> dict[str, Json]:
    """The golden vector of a sample message: envelope fields, JSON fields and frame hex."""
    txn = next((s.txn for s in EXCHANGE if s.message is msg), 0x100 + msg.TYPE)
    if msg.KIND.value == "notification":
        txn = 0
    seq = int(msg.TYPE)  # any fixed value works; the type keeps it memorable
    return {
        "message": type(msg).__name__,
        "type": f"0x{msg.TYPE:02x}",
        "txn": txn,
        "seq": seq,
        "fields": msg.to_json(),
        "frame": encode(msg, txn=txn, seq=seq).hex(),
    }


def message_vector_name(msg: Message) -> str:
    snake = "".join(f"-{c.lower()}" if c.isupper() else c for c in type(msg).__name__).lstrip("-")
    return f"0x{msg.TYPE:02x}-{snake}.json"


def fragment_vectors() -> dict[str, Json]:
    """Frames split into fragments for a few ATT MTUs."""
    cases: list[Json] = []
    for msg_type, mtu, counter in (
        (enums.MsgType.SET_RATE, 23, 0),
        (enums.MsgType.STATUS_REPORT, 23, 1),
        (enums.MsgType.STATUS_REPORT, 59, 2),
        (enums.MsgType.PRESCRIPTION_REPORT, 23, 255),
        (enums.MsgType.PRESCRIPTION_REPORT, 185, 7),
    ):
        frame = encode(SAMPLES[msg_type], txn=9, seq=4)
        cases.append(
            {
                "message": type(SAMPLES[msg_type]).__name__,
                "mtu": mtu,
                "counter": counter,
                "frame": frame.hex(),
                "fragments": [f.hex() for f in fragment(frame, mtu, counter)],
            }
        )
    return {
        "about": "frames split for ATT MTUs (protocol.md §3): each fragment is one ATT write or "
        "notification; splitting frame for mtu with counter must give exactly fragments, and joining "
        "them gives frame (specs/vectors/README.md)",
        "cases": cases,
    }


def _pump(serial: str = "ITB20-VECTORS") -> tuple[Firmware, int]:
    profile, drug = load_profile("itb-20"), load_drug()
    therapy = TherapyState.new(
        now=T0, profile=profile, drug=drug, concentration_ug_ml=500, reservoir_ul=20_000
    )
    firmware = Firmware(PumpMachine.new(therapy, SafetyPolicy(load_rules()), serial=serial))
    return firmware, firmware.attach(Connection(Side.PUMP))


def _frame(msg_type: int, payload: bytes, *, txn: int, seq: int, version: int = 1, flags: int = 0) -> bytes:
    head = _HEADER.pack(version, flags, seq, txn, msg_type, len(payload)) + payload
    return head + struct.pack("<H", crc16(head))


def _answers(firmware: Firmware, link: int, data: bytes, now: int = T0) -> list[Json]:
    replies: list[Json] = []
    for chunk in firmware.receive(link, data, now).get(link, []):
        frame = decode(chunk)
        fields = frame.message.to_json()
        if isinstance(frame.message, m.Nack):
            fields.pop("detail")  # free text: not part of the vector
        replies.append(
            {
                "message": type(frame.message).__name__,
                "txn": frame.txn,
                "fields": fields,
                "frame": chunk.hex(),
            }
        )
    return replies


def refusal_vectors() -> dict[str, Json]:
    """Bad frames sent to a pump with a clinician session open, and what it answers."""
    firmware, link = _pump()
    hello = m.Hello(protocol_version=1, role=enums.Role.CLINICIAN, max_frame=MAX_FRAME, client="vectors")
    firmware.receive(link, encode(hello, txn=1, seq=0), T0)
    set_rate = encode(m.SetRate(rate_ul_day=880), txn=5, seq=20)
    rate = m.SetRate.TYPE
    cases: list[tuple[str, bytes]] = [
        ("bad CRC: the header cannot be trusted, no answer", set_rate[:-1] + bytes([set_rate[-1] ^ 0xFF])),
        ("truncated: no answer", set_rate[:-1]),
        ("longer than its header says: no answer", set_rate + b"\x00"),
        (
            "sealed frame on a plain link: no answer",
            _frame(rate, bytes(4), txn=5, seq=21, flags=FLAG_SEALED)[:-2] + bytes(8),
        ),
        ("unsupported version", _frame(rate, bytes(4), txn=6, seq=22, version=2)),
        ("reserved flag set", _frame(rate, bytes(4), txn=7, seq=23, flags=0x02)),
        ("unknown message type", _frame(0xEE, b"", txn=8, seq=24)),
        ("payload too short", _frame(rate, bytes(3), txn=9, seq=25)),
        ("field out of range", _frame(rate, struct.pack("<I", m.MAX_RATE_UL_DAY + 1), txn=10, seq=26)),
        (
            "a response sent as a request",
            _frame(m.Ack.TYPE, bytes([rate]) + struct.pack("<I", 0), txn=11, seq=27),
        ),
        ("transaction id 0", _frame(enums.MsgType.STATUS_REQUEST, b"", txn=0, seq=28)),
        (
            "sequence number not newer than the last one: no answer",
            _frame(enums.MsgType.STATUS_REQUEST, b"", txn=12, seq=28),
        ),
    ]
    out: list[Json] = [
        {"case": case, "input": data.hex(), "answers": _answers(firmware, link, data)} for case, data in cases
    ]
    return {
        "about": "frames a pump (plain link, clinician session open, last seq 0) receives, in order, and "
        "what it sends back (protocol.md §2, §5); send input in order on one link after a clinician Hello "
        "with seq 0 and compare the answers; an empty list: dropped unanswered; a Nack's detail is free text "
        "and left out (specs/vectors/README.md)",
        "cases": out,
    }


def _first_fault(msg_type: int, payload: bytes) -> tuple[str, str | None]:
    """The Nack code the payload's first fault gets, and the field it names (None: the payload's size)."""
    try:
        message_class(msg_type).CODEC.decode(payload)
    except FieldRangeError as error:
        return ErrorCode.FIELD_RANGE.name, error.field
    except MalformedPayloadError:
        return ErrorCode.MALFORMED.name, None
    raise AssertionError(f"payload {payload.hex()} of type 0x{msg_type:02x} decodes")


def precedence_vectors() -> dict[str, Json]:
    """Payloads with two faults (which decides) and the seq of a refused frame, sent to a pump in session."""
    firmware, link = _pump()
    hello = m.Hello(protocol_version=1, role=enums.Role.CLINICIAN, max_frame=MAX_FRAME, client="vectors")
    firmware.receive(link, encode(hello, txn=1, seq=0), T0)
    u32 = struct.Struct("<I").pack
    hello_head = bytes([1, enums.Role.CLINICIAN]) + struct.pack("<H", MAX_FRAME)  # a run of three fields
    hello_tail = bytes([7]) + b"vectors" + u32(0) + bytes([16]) + bytes(16)
    payloads: list[tuple[str, int, bytes]] = [
        (
            "fixed size, too short, its first field out of range: the size decides",
            m.RecordProcedure.TYPE,
            bytes([0xEE]) + bytes(3),
        ),
        (
            "fixed size, too long, a field out of range: the size decides",
            m.EventLogRead.TYPE,
            u32(0) + bytes([0]) + bytes(1),
        ),
        (
            "fixed size, two fields out of range: the first in table order decides",
            m.RecordProcedure.TYPE,
            bytes([0xEE]) + u32(10_001),
        ),
        (
            "a field out of range, the payload ends before a later field: the field decides",
            m.Hello.TYPE,
            bytes([0]) + hello_head[1:],
        ),
        (
            "a field out of range in a run of fixed-size fields the payload ends inside: the payload decides",
            m.Hello.TYPE,
            bytes([0, enums.Role.CLINICIAN]),
        ),
        (
            "a field out of range and bytes left over: the field decides",
            m.Hello.TYPE,
            hello_head[:1] + bytes([9]) + hello_head[2:] + hello_tail + bytes(1),
        ),
        (
            "two fields out of range: the first in table order decides",
            m.Hello.TYPE,
            bytes([0, 9]) + hello_head[2:] + hello_tail,
        ),
        (
            "a bool other than 0 or 1 is out of range",
            m.RefillConfirm.TYPE,
            u32(1) + u32(20_000) + u32(500) + u32(0) + bytes([2]) + bytes([0, 0]),
        ),
        (
            "a text announcing more bytes than are left: the payload decides",
            m.Hello.TYPE,
            hello_head + bytes([16]) + b"vec",
        ),
        (
            "a text not printable, the payload ends after it: the text decides",
            m.Hello.TYPE,
            hello_head + bytes([1, 0x07]),
        ),
        (
            "an array count above its maximum, its items missing: the count decides",
            m.SessionEnd.TYPE,
            bytes([9]),
        ),
    ]
    cases: list[Json] = []
    seq = 1
    for case, msg_type, payload in payloads:
        data = _frame(msg_type, payload, txn=100 + seq, seq=seq)
        code, where = _first_fault(msg_type, payload)
        answers = _answers(firmware, link, data)
        cases.append(
            {
                "case": case,
                "payload": payload.hex(),
                "code": code,
                "field": where,
                "input": data.hex(),
                "answers": answers,
            }
        )
        seq += 1
    status = enums.MsgType.STATUS_REQUEST
    for case, data in (
        (
            "refused at step 4 (version 2): its seq is now the last accepted",
            _frame(status, b"", txn=150, seq=seq, version=2),
        ),
        (
            "the same seq again, a sound request: dropped unanswered as stale",
            _frame(status, b"", txn=151, seq=seq),
        ),
        ("the next seq: answered", _frame(status, b"", txn=152, seq=seq + 1)),
    ):
        cases.append(
            {
                "case": case,
                "payload": "",
                "code": None,
                "field": None,
                "input": data.hex(),
                "answers": _answers(firmware, link, data),
            }
        )
    return {
        "about": "frames a pump (plain link, clinician session open, last seq 0) receives, in order: "
        "payloads with two faults, the Nack code the first fault gets (code) and the field it names "
        "(field; null: the payload's size), then how a refused frame's seq counts; a Nack's detail is "
        "free text and left out",
        "cases": cases,
    }


@dataclass(frozen=True)
class _Step:
    what: str
    request: Message
    txn: int
    session: Callable[[Session], Session] = lambda s: s


def transaction_vectors() -> dict[str, Json]:
    """The transaction-id and session rules, as a script a conforming pump must answer the same way."""
    firmware, _ = _pump()
    pump = firmware.pump
    clinician = Session(role=enums.Role.CLINICIAN, max_frame=MAX_FRAME, client="vectors")
    patient = Session(role=enums.Role.PATIENT, max_frame=MAX_FRAME, client="vectors")
    stage = m.StagePrescription(prescription=PRESCRIPTION)
    steps = [
        _Step("no session yet", m.StatusRequest(), 1, lambda s: CLOSED),
        _Step(
            "Hello opens a session, whatever its id",
            m.Hello(protocol_version=1, role=enums.Role.CLINICIAN, max_frame=MAX_FRAME, client="vectors"),
            77,
        ),
        _Step("a read, any id", m.StatusRequest(), 3),
        _Step("a command with a new id", stage, 10),
        _Step("the identical command again: the stored reply, not applied again", stage, 10),
        _Step("another request with that id", m.SetRate(rate_ul_day=880), 10),
        _Step("an id not newer than last_txn", m.Resume(), 9),
        _Step("transaction id 0", m.Resume(), 0),
        _Step("an id too far ahead", m.Resume(), 10 + 65_537),
        _Step("a role that may not send it", m.SetRate(rate_ul_day=880), 11, lambda s: patient),
        _Step("a refused command uses its id", m.Resume(), 12, lambda s: clinician),
        _Step("and its retry gets the same refusal", m.Resume(), 12),
        _Step("SessionEnd", m.SessionEnd(ack=m.Acknowledgement(rules=("STOP-001",), by="vectors")), 13),
        _Step(
            "after SessionEnd, even a reused id is not authenticated",
            m.SessionEnd(ack=m.Acknowledgement(rules=("STOP-001",), by="vectors")),
            13,
        ),
    ]
    session, out = CLOSED, list[Json]()
    for seq, step in enumerate(steps):
        session = step.session(session)
        answer = pump.handle(step.request, step.txn, T0, session)
        session = answer.session
        fields = answer.reply.to_json()
        if isinstance(answer.reply, m.Nack):
            fields.pop("detail")
        out.append(
            {
                "step": step.what,
                "role": session.role.name if session.role is not None else None,
                "request": type(step.request).__name__,
                "txn": step.txn,
                "seq": seq,
                "frame": encode(step.request, txn=step.txn, seq=seq).hex(),
                "reply": type(answer.reply).__name__,
                "fields": fields if isinstance(answer.reply, m.Nack | m.Ack) else None,
                "last_txn": pump.state.last_txn,
            }
        )
    return {
        "about": "requests a new pump answers, in order (seq counts up, as on one link); role is the "
        "session's role after the step (the patient step is another programmer's session); a Nack's detail "
        "is left out",
        "steps": out,
    }


def _counter_entropy(label: int) -> Callable[[int], bytes]:
    """Deterministic "random" bytes: a counter after a label byte (vectors only, never for keys in use)."""
    state = {"n": 0}

    def entropy(n: int) -> bytes:
        out = bytes((label + state["n"] + i) % 256 for i in range(n))
        state["n"] += n
        return out

    return entropy


def _spake2_steps(
    pin: str,
    serial: str,
    programmer: ProgrammerPairing,
    pump: PumpPairing,
    start: m.PairStart,
    reply: m.PairReply,
) -> dict[str, Json]:
    """Every intermediate value of one SPAKE2 exchange, read from the library that computed it (python
    ``spake2`` 0.9; specs/protocol.md §6 writes the construction out step by step)."""
    from spake2.ed25519_basic import scalar_to_bytes  # type: ignore[import-untyped]
    from spake2.parameters.ed25519 import ParamsEd25519  # type: ignore[import-untyped]
    from spake2.spake2 import finalize_SPAKE2  # type: ignore[import-untyped]

    group = ParamsEd25519.group
    a, b = programmer.spake2_state, pump.spake2_state
    assert a.pw_scalar == b.pw_scalar == group.password_to_scalar(pin.encode())
    x_msg, y_msg = start.spake2[1:], reply.spake2[1:]
    unblinded = group.bytes_to_element(y_msg).add(ParamsEd25519.N.scalarmult(-a.pw_scalar))
    k = unblinded.scalarmult(a.xy_scalar).to_bytes()
    shared = finalize_SPAKE2(PROGRAMMER_ID, serial.encode(), x_msg, y_msg, k, pin.encode())
    assert pairing_keys(shared, reply.salt) == programmer.keys == pump.keys
    return {
        "M_seed": "M",
        "N_seed": "N",
        "M": ParamsEd25519.M.to_bytes().hex(),
        "N": ParamsEd25519.N.to_bytes().hex(),
        "base": group.Base.to_bytes().hex(),
        "password": pin.encode().hex(),
        "password_scalar": scalar_to_bytes(a.pw_scalar).hex(),
        "programmer_entropy": _counter_entropy(0x11)(64).hex(),
        "programmer_scalar": scalar_to_bytes(a.xy_scalar).hex(),
        "programmer_element": group.Base.scalarmult(a.xy_scalar).to_bytes().hex(),
        "programmer_message": start.spake2.hex(),
        "pump_entropy": _counter_entropy(0x77)(64).hex(),
        "pump_scalar": scalar_to_bytes(b.xy_scalar).hex(),
        "pump_element": group.Base.scalarmult(b.xy_scalar).to_bytes().hex(),
        "pump_message": reply.spake2.hex(),
        "K": k.hex(),
        "spake2_key": shared.hex(),
    }


def security_vectors() -> dict[str, Json]:
    """Pairing with PIN 493817 for pump ITB-000042 (fixed randomness), then a sealed session."""
    pin, serial = "493817", "ITB-000042"
    programmer = ProgrammerPairing(pin, serial, enums.Role.CLINICIAN, entropy=_counter_entropy(0x11))
    pump = PumpPairing(pin, serial, entropy=_counter_entropy(0x77))
    start = programmer.start()
    reply = pump.reply(start)
    confirm = programmer.confirm(reply)
    result, key = pump.result(confirm, key_id=1)
    assert programmer.finish(result) == key
    spake2 = _spake2_steps(pin, serial, programmer, pump, start, reply)
    keys_of = pump.keys
    assert keys_of is not None
    programmer_nonce, pump_nonce = bytes(range(16)), bytes(range(16, 32))
    keys = session_keys(key.long_term, programmer_nonce, pump_nonce)
    request = encode(m.StatusRequest(), txn=5, seq=3, channel=keys.programmer())
    status = encode(SAMPLES[enums.MsgType.STATUS_REPORT], txn=5, seq=4, channel=keys.pump())
    frames = [(msg, encode(msg, txn=1, seq=i)) for i, msg in enumerate((start, reply, confirm, result))]
    return {
        "about": "SPAKE2 pairing (Ed25519, protocol.md §6) with fixed randomness, every intermediate value, "
        "then AES-128-CCM sealed frames; then what a pump answers to wrong PINs and during a lock-out",
        "pin": pin,
        "serial": serial,
        "programmer_identity": PROGRAMMER_ID.decode(),
        "role": "CLINICIAN",
        "spake2": spake2,
        "salt": reply.salt.hex(),
        "confirm_key_programmer": keys_of.programmer_confirm.hex(),
        "confirm_key_pump": keys_of.pump_confirm.hex(),
        "transcript": pump.transcript.hex(),
        "programmer_confirm": confirm.confirm.hex(),
        "pump_confirm": result.confirm.hex(),
        "key_id": result.key_id,
        "pairing": [{"message": type(msg).__name__, "frame": frame.hex()} for msg, frame in frames],
        "long_term_key": key.long_term.hex(),
        "programmer_nonce": programmer_nonce.hex(),
        "pump_nonce": pump_nonce.hex(),
        "key_to_pump": keys.to_pump.hex(),
        "key_to_programmer": keys.to_programmer.hex(),
        "sealed": [
            {"direction": "to pump", "message": "StatusRequest", "txn": 5, "seq": 3, "frame": request.hex()},
            {
                "direction": "to programmer",
                "message": "StatusReport",
                "txn": 5,
                "seq": 4,
                "frame": status.hex(),
            },
        ],
        "pin_refusals": _pin_refusals(pin),
        "link": _pairing_link(pin, serial, programmer_nonce, pump_nonce),
    }


def _pairing_link(pin: str, serial: str, programmer_nonce: bytes, pump_nonce: bytes) -> list[Json]:
    """One link to a pump that shows ``pin`` and requires pairing, from its first frame to a sealed answer:
    the serial asked, the pairing above, the keyed Hello and the first sealed request."""
    firmware, link = _pump(serial)
    firmware.pin, firmware.require_pairing, firmware.entropy = pin, True, _counter_entropy(0x77)
    programmer = ProgrammerPairing(pin, serial, enums.Role.CLINICIAN, entropy=_counter_entropy(0x11))
    out: list[Json] = []
    seq = 0
    channel: SealedChannel | None = None

    def send(what: str, msg: Message, txn: int) -> Message:
        nonlocal seq
        data = (
            encode(msg, txn=txn, seq=seq)
            if channel is None
            else encode(msg, txn=txn, seq=seq, channel=channel)
        )
        seq += 1
        replies = firmware.receive(link, data, T0).get(link, [])
        assert len(replies) == 1
        frame = decode(replies[0]) if channel is None else decode(replies[0], channel)
        fields = frame.message.to_json()
        if isinstance(frame.message, m.Nack):
            fields.pop("detail")
        out.append(
            {
                "step": what,
                "request": type(msg).__name__,
                "input": data.hex(),
                "reply": type(frame.message).__name__,
                "fields": fields,
                "frame": replies[0].hex(),
                "sealed": channel is not None,
            }
        )
        return frame.message

    hello = m.Hello(protocol_version=1, role=enums.Role.CLINICIAN, max_frame=MAX_FRAME, client="vectors")
    info = send("a Hello without a key: who the pump is, and no session", hello, 1)
    assert isinstance(info, m.DeviceInfo)
    assert info.paired
    send("no session was opened", m.StatusRequest(), 2)
    reply = send("PairStart", programmer.start(), 3)
    assert isinstance(reply, m.PairReply)
    result = send("PairConfirm", programmer.confirm(reply), 4)
    assert isinstance(result, m.PairResult)
    key = programmer.finish(result)
    firmware.entropy = lambda n: pump_nonce[:n]
    keyed = replace(hello, key_id=key.key_id, nonce=programmer_nonce)
    opened = send("a Hello with the key: DeviceInfo still plain; sealed from the next frame", keyed, 5)
    assert isinstance(opened, m.DeviceInfo)
    channel = session_keys(key.long_term, programmer_nonce, opened.nonce).programmer()
    send("the first sealed request and its sealed reply", m.StatusRequest(), 6)
    return out


def _pin_refusals(pin: str) -> list[Json]:
    """Wrong PINs and a lock-out, on one plain link of a pump showing ``pin``: what it answers."""
    firmware, link = _pump()
    firmware.pin, firmware.entropy = pin, _counter_entropy(0x77)
    serial = firmware.pump.state.serial
    out: list[Json] = []
    seq = 0

    def send(what: str, msg: Message, txn: int, at: int) -> list[Json]:
        nonlocal seq
        data = encode(msg, txn=txn, seq=seq)
        seq += 1
        answers = _answers(firmware, link, data, at)
        state = firmware.pump.state
        out.append(
            {
                "case": what,
                "device_time": at,
                "input": data.hex(),
                "answers": answers,
                "failures": state.pin_failures,
                "locked_until": state.pin_locked_until,
            }
        )
        return answers

    for n in range(1, 5):
        attempt = ProgrammerPairing("000000", serial, enums.Role.CLINICIAN, _counter_entropy(0x11))
        answers = send(f"PairStart (attempt {n})", attempt.start(), 2 * n - 1, T0 + n)
        reply = decode(bytes.fromhex(str(answers[0]["frame"]))).message  # type: ignore[index,call-overload]
        assert isinstance(reply, m.PairReply)
        send(f"PairConfirm with a wrong PIN (failure {n})", attempt.confirm(reply), 2 * n, T0 + n)
    start = ProgrammerPairing(pin, serial, enums.Role.CLINICIAN, _counter_entropy(0x11)).start()
    send("PairStart while pairing is locked", start, 9, T0 + 10)
    send("PairStart once the lock-out is over (device time)", start, 10, T0 + 4 + 30)
    return out
