"""Frames on a byte stream (TCP): cut however the stream arrives, they come out whole and in order."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itbproto.core.connection import Connection, Dropped, Reply, Request, Side
from itbproto.core.wire import MsgType, StatusRequest, encode
from itbproto.core.wire.frame import FLAG_SEALED, HEADER_SIZE
from itbproto.core.wire.stream import StreamSplitter
from itbproto.errors import FrameLengthError, LocalProtocolError
from itbproto.qa.strategies import messages
from itbproto.tools.samples import SAMPLES


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (anywhere, repeated or not)."""
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(
    frames=st.lists(messages().map(lambda m: encode(m, txn=1)), min_size=1, max_size=6),
    points=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_frames_come_out_whole_however_the_stream_is_cut(frames: list[bytes], points: list[int]) -> None:
    splitter = StreamSplitter()
    out = [frame for chunk in cut(b"".join(frames), points) for frame in splitter.feed(chunk)]
    assert out == frames
    assert splitter.pending == 0
    assert not splitter.broken


def test_a_sealed_frame_ends_after_its_tag() -> None:
    header = bytes([1, FLAG_SEALED]) + bytes(9) + (3).to_bytes(2, "little")
    sealed = header + b"abc" + bytes(8)
    splitter = StreamSplitter()
    assert splitter.feed(sealed[:-1]) == []
    assert splitter.feed(sealed[-1:] + b"\x01") == [sealed]
    assert splitter.pending == 1


def test_a_length_past_the_maximum_breaks_the_stream_once() -> None:
    frame = encode(StatusRequest(), txn=1)
    bad = bytearray(frame)
    bad[HEADER_SIZE - 2 : HEADER_SIZE] = (2_000).to_bytes(2, "little")
    splitter = StreamSplitter()
    (first, error) = splitter.feed(frame + bytes(bad))
    assert first == frame
    assert isinstance(error, FrameLengthError)
    assert splitter.broken
    assert splitter.feed(frame) == []  # nothing more is taken: close the link


def test_connections_talk_over_a_stream_cut_anywhere() -> None:
    programmer, pump = Connection(Side.PROGRAMMER, stream=True), Connection(Side.PUMP, stream=True)
    wire = b"".join(programmer.send(StatusRequest()))
    events = [e for chunk in cut(wire, [1, 5, 13, 14]) for e in pump.receive(chunk)]
    (request,) = events
    assert isinstance(request, Request)
    report = SAMPLES[MsgType.STATUS_REPORT]
    reply = b"".join(pump.send(report, request.txn))
    (answer,) = [e for chunk in cut(reply, [2, 40]) for e in programmer.receive(chunk)]
    assert isinstance(answer, Reply)
    assert answer.message == report


def test_a_broken_stream_is_said_and_then_silent() -> None:
    pump = Connection(Side.PUMP, stream=True)
    garbage = bytes([1, 0]) + bytes(9) + (65_000).to_bytes(2, "little")
    (dropped,) = pump.receive(garbage)
    assert isinstance(dropped, Dropped)
    assert pump.broken
    assert pump.receive(encode(StatusRequest(), txn=1)) == []


def test_a_stream_has_no_att_mtu() -> None:
    with pytest.raises(LocalProtocolError):
        Connection(Side.PUMP, stream=True, mtu=23)
