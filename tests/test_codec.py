"""The codec: round trips for every message, refusal of bad input with typed errors only."""

from __future__ import annotations

import contextlib
import dataclasses
import struct
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from construct_reference import reference
from itbproto import errors
from itbproto.core.wire import (
    CATALOG,
    FLAG_SEALED,
    HEADER_SIZE,
    MAX_PAYLOAD,
    ErrorCode,
    Frame,
    FrameHeader,
    Kind,
    Message,
    MsgType,
    Nack,
    SetRate,
    crc16,
    decode,
    encode,
    open_frame,
)
from itbproto.core.wire.enums import EventCode
from itbproto.core.wire.fields import IntType, RecordType
from itbproto.core.wire.messages import MAX_EVENTS_PER_PAGE, MAX_LOG_DETAIL, EventLogPage, EventRecord
from itbproto.qa.strategies import message_of, messages, out_of_range
from itbproto.tools.samples import SAMPLES

ALL_TYPES = sorted(CATALOG.values(), key=lambda c: c.TYPE)
INT_TYPES = [c for c in ALL_TYPES if any(isinstance(s.wire, IntType) for s in c.specs())]
u32 = st.integers(0, 2**32 - 1)


def _id(cls: type[Message]) -> str:
    return cls.__name__


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data(), txn=u32, seq=u32)
def test_round_trip_every_message(cls: type[Message], data: st.DataObject, txn: int, seq: int) -> None:
    msg = data.draw(message_of(cls))
    wire = encode(msg, txn=txn, seq=seq)
    assert decode(wire) == Frame(msg, txn=txn, seq=seq)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
@given(data=st.data())
def test_the_construct_declaration_agrees(cls: type[Message], data: st.DataObject) -> None:
    """The construct declaration is the reference: construct builds and parses the same bytes."""
    msg = data.draw(message_of(cls))
    payload = msg.CODEC.encode(msg)
    construct = reference(cls)
    assert construct.build(msg) == payload
    assert _plain(construct.parse(payload)) == _plain(msg)


def _plain(value: object) -> object:
    """Field values without their Python types (construct parses arrays as lists, enums as ints)."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(x) for x in value]
    if isinstance(value, frozenset):
        return sorted(int(x) for x in value)
    return int(value) if isinstance(value, int) else value


def test_crc_is_ccitt_false() -> None:
    assert crc16(b"123456789") == 0x29B1


@given(st.binary(max_size=200))
@example(b"")
@example(bytes(15))
def test_arbitrary_bytes_raise_only_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(errors.ProtocolError):
        decode(data)


def _reframe(body: bytes) -> bytes:
    """Give mutated header+payload bytes a valid CRC so the decoder looks past it."""
    return body + struct.pack("<H", crc16(body))


@given(msg=messages(), data=st.data())
def test_mutated_frames_raise_only_protocol_errors(msg: Message, data: st.DataObject) -> None:
    wire = bytearray(encode(msg, txn=1))
    body = wire[:-2]
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(body) - 1))
        body[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(body)))
    candidates = [bytes(wire[:cut]), _reframe(bytes(body)), bytes(body) + wire[-2:]]
    for frame in candidates:
        try:
            decoded = decode(frame)
        except errors.ProtocolError:
            continue
        # whatever is accepted re-encodes to exactly the bytes received (canonical form)
        assert encode(decoded.message, txn=decoded.txn, seq=decoded.seq) == frame


@given(msg=messages(), payload=st.binary(max_size=64))
def test_payload_of_another_shape_is_refused_or_canonical(msg: Message, payload: bytes) -> None:
    body = struct.pack("<BBIIBH", 1, 0, 0, 1, msg.TYPE, len(payload)) + payload
    try:
        frame = decode(_reframe(body))
    except (errors.MalformedPayloadError, errors.FieldRangeError):
        return
    assert frame.message.CODEC.encode(frame.message) == payload


@pytest.mark.parametrize("cls", INT_TYPES, ids=_id)
@given(data=st.data())
def test_out_of_range_fields_are_refused_on_encode(cls: type[Message], data: st.DataObject) -> None:
    name, msg = data.draw(out_of_range(cls))
    with pytest.raises(errors.FieldRangeError) as info:
        encode(msg)
    assert info.value.field.endswith(name)


@given(st.integers(0, 10**6))
def test_rate_above_wire_maximum_is_refused_on_decode(rate: int) -> None:
    # no rule acknowledged, by ""
    body = struct.pack("<BBIIBHIBB", 1, 0, 0, 1, MsgType.SET_RATE, 6, rate, 0, 0)
    frame = _reframe(body)
    if rate <= 100_000:
        assert decode(frame).message == SetRate(rate_ul_day=rate)
    else:
        with pytest.raises(errors.FieldRangeError):
            decode(frame)


def test_wrong_python_types_are_refused_on_encode() -> None:
    bad: Any = "880"
    with pytest.raises(errors.FieldRangeError):
        encode(SetRate(rate_ul_day=bad))
    with pytest.raises(errors.FieldRangeError):
        encode(Nack(request=1, code=bad, rules=(), detail=""))
    with pytest.raises(errors.FieldRangeError):
        encode(Nack(request=1, code=ErrorCode.SAFETY_RULE, rules=("ok", "\x00"), detail=""))


def test_unknown_message_type() -> None:
    frame = _reframe(struct.pack("<BBIIBH", 1, 0, 0, 1, 0xEE, 0))
    with pytest.raises(errors.UnknownMessageError) as info:
        decode(frame)
    assert info.value.msg_type == 0xEE


def test_bad_crc() -> None:
    wire = bytearray(encode(SetRate(rate_ul_day=880), txn=3))
    wire[-1] ^= 0xFF
    with pytest.raises(errors.BadCrcError):
        decode(bytes(wire))


def test_unsupported_version_and_reserved_flags() -> None:
    with pytest.raises(errors.UnsupportedVersionError):
        decode(_reframe(struct.pack("<BBIIBH", 2, 0, 0, 1, MsgType.RESUME, 0)))
    with pytest.raises(errors.ReservedFlagsError):
        decode(_reframe(struct.pack("<BBIIBH", 1, 0x02, 0, 1, MsgType.RESUME, 0)))


def test_lengths() -> None:
    wire = encode(SetRate(rate_ul_day=880), txn=3)
    with pytest.raises(errors.TruncatedFrameError):
        decode(wire[:-1])
    with pytest.raises(errors.FrameLengthError):
        decode(wire + b"\x00")
    with pytest.raises(errors.FrameLengthError):
        decode(_reframe(struct.pack("<BBIIBH", 1, 0, 0, 1, MsgType.RESUME, MAX_PAYLOAD + 1)))


class _Tagged:
    """A stand-in for the sealed channel: the payload in clear, an 8-byte tag of the header's XOR."""

    flags = FLAG_SEALED

    def seal(self, header: bytes, payload: bytes) -> bytes:
        return payload + bytes([sum(header) % 256]) * 8

    def open(self, header: FrameHeader, header_bytes: bytes, body: bytes) -> bytes:
        if body[-8:] != bytes([sum(header_bytes) % 256]) * 8:
            raise errors.BadCrcError(0, 0)
        return body[:-8]


def test_the_channel_slot_seals_and_opens_frames() -> None:
    channel = _Tagged()
    sealed = encode(SetRate(rate_ul_day=880), txn=1, seq=5, channel=channel)
    assert sealed[1] == FLAG_SEALED
    assert len(sealed) == HEADER_SIZE + 6 + 8
    header, payload = open_frame(sealed, channel)
    assert (header.seq, header.txn, payload) == (5, 1, (880).to_bytes(4, "little") + bytes(2))
    assert decode(sealed, channel) == Frame(SetRate(rate_ul_day=880), txn=1, seq=5)
    with pytest.raises(errors.SealedFrameError):
        decode(sealed)  # the plain channel refuses a sealed frame
    with pytest.raises(errors.BadCrcError):
        decode(sealed[:-1] + bytes([sealed[-1] ^ 1]), channel)


def test_non_canonical_length_prefix_is_refused() -> None:
    msg = Nack(request=0x35, code=ErrorCode.SAFETY_RULE, rules=(), detail="abc")
    payload = msg.CODEC.encode(msg)
    assert payload.endswith(b"\x03abc")
    short = payload[:-4] + b"\x05abc"  # claims 5 characters, carries 3
    with pytest.raises(errors.MalformedPayloadError):
        decode(_reframe(struct.pack("<BBIIBH", 1, 0, 0, 1, MsgType.NACK, len(short)) + short))


@pytest.mark.parametrize("cls", ALL_TYPES, ids=_id)
def test_payload_sizes_are_as_declared(cls: type[Message]) -> None:
    msg = SAMPLES[cls.TYPE]
    if cls.CODEC.size is not None:
        assert len(cls.CODEC.encode(msg)) == cls.CODEC.size


def test_messages_are_immutable() -> None:
    msg = SetRate(rate_ul_day=880)
    with pytest.raises(dataclasses.FrozenInstanceError):
        msg.rate_ul_day = 2  # type: ignore[misc]


def test_every_request_names_its_replies() -> None:
    for cls in ALL_TYPES:
        if cls.KIND is Kind.REQUEST:
            assert cls.REPLIES, cls.__name__
            assert all(reply.KIND is Kind.RESPONSE for reply in cls.REPLIES)
        else:
            assert not cls.REPLIES


def test_unknown_alarm_bits_are_refused_on_decode() -> None:
    msg = SAMPLES[MsgType.STATUS_REPORT]
    payload = bytearray(msg.CODEC.encode(msg))
    payload[6:8] = (1 << 15).to_bytes(2, "little")  # alarms: no AlarmCode has bit 15
    with pytest.raises(errors.FieldRangeError) as info:
        decode(_reframe(struct.pack("<BBIIBH", 1, 0, 0, 1, MsgType.STATUS_REPORT, len(payload)) + payload))
    assert info.value.field == "alarms"


def test_every_message_fits_a_frame() -> None:
    for cls in ALL_TYPES:
        assert cls.CODEC.max_size <= MAX_PAYLOAD, cls.__name__


def test_every_reply_but_the_paged_ones_fits_the_smallest_frame_a_programmer_may_announce() -> None:
    from itbproto.core.wire import MIN_MAX_FRAME, TAG_SIZE

    paged = {"EventLogPage", "TherapyHistory"}
    for cls in ALL_TYPES:
        if cls.KIND is not Kind.REQUEST and cls.__name__ not in paged:
            assert HEADER_SIZE + cls.CODEC.max_size + TAG_SIZE <= MIN_MAX_FRAME, cls.__name__


def test_the_core_does_not_need_hypothesis() -> None:
    """hypothesis is the itbproto[qa] extra: importing the library and running a session works without it."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import itbproto, itbproto.cli, itbproto.tools.demo, itbproto.tools.vectors\n"
        "itbproto.tools.demo.run(23, say=lambda line: None)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _entries(n: int, detail: str) -> tuple[EventRecord, ...]:
    return tuple(
        EventRecord(index=i, at=i, code=EventCode.RATE_CHANGED, txn=0, value=i, detail=detail)
        for i in range(n)
    )


def test_an_event_page_holds_many_short_entries_or_fewer_long_ones_within_its_byte_budget() -> None:
    short = EventLogPage(total=50, events=_entries(MAX_EVENTS_PER_PAGE, ""))  # 50 x 19 B
    assert decode(encode(short)).message == short
    long = EventLogPage(total=50, events=_entries(24, "x" * MAX_LOG_DETAIL))  # 24 x 43 B > 1,019 B
    with pytest.raises(errors.FieldRangeError, match="at most 1019 B"):
        encode(long)
    payload = (
        bytes(4) + bytes((24,)) + b"".join(RecordType(EventRecord).encoder()(e, "") for e in long.events)
    )
    with pytest.raises(errors.FieldRangeError, match="at most 1019 B"):
        EventLogPage.CODEC.decode(payload)
    assert EventLogPage.CODEC.max_size <= MAX_PAYLOAD


@given(message_of(EventLogPage))
def test_generated_event_pages_keep_to_the_byte_budget(page: EventLogPage) -> None:
    assert decode(encode(page)).message == page
