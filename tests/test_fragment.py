"""BLE fragmentation: round trip for every MTU and message, typed refusal of gaps, repeats, overruns."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itbproto import errors
from itbproto.qa.strategies import messages
from itbproto.wire import MAX_FRAME, Message, Reassembler, encode, fragment
from itbproto.wire.fragment import ATT_OVERHEAD

mtus = st.integers(23, 517)
counters = st.integers(0, 255)


@given(msg=messages(), mtu=mtus, counter=counters)
def test_round_trip_any_message_any_mtu(msg: Message, mtu: int, counter: int) -> None:
    wire = encode(msg, txn=1)
    chunks = list(fragment(wire, mtu, counter))
    assert all(len(chunk) <= mtu - ATT_OVERHEAD for chunk in chunks)
    receiver = Reassembler()
    out = [receiver.feed(chunk) for chunk in chunks]
    assert out[:-1] == [None] * (len(chunks) - 1)
    assert out[-1] == wire
    assert receiver.idle


@given(payloads=st.lists(st.binary(max_size=MAX_FRAME), min_size=1, max_size=5), mtu=mtus)
def test_consecutive_messages(payloads: list[bytes], mtu: int) -> None:
    receiver = Reassembler()
    for counter, payload in enumerate(payloads):
        done = [m for chunk in fragment(payload, mtu, counter) if (m := receiver.feed(chunk)) is not None]
        assert done == [payload]


def _chunks(size: int = 100, mtu: int = 23, counter: int = 7) -> list[bytes]:
    return list(fragment(bytes(range(size)), mtu, counter))


def test_gap_is_refused_and_partial_message_dropped() -> None:
    chunks = _chunks()
    receiver = Reassembler()
    receiver.feed(chunks[0])
    with pytest.raises(errors.FragmentGapError) as info:
        receiver.feed(chunks[2])
    assert (info.value.expected, info.value.got) == (1, 2)
    assert receiver.idle
    with pytest.raises(errors.FragmentGapError):
        receiver.feed(chunks[3])  # the dropped message cannot be continued


def test_duplicate_fragment_is_refused() -> None:
    chunks = _chunks()
    receiver = Reassembler()
    receiver.feed(chunks[0])
    receiver.feed(chunks[1])
    with pytest.raises(errors.DuplicateFragmentError):
        receiver.feed(chunks[1])
    assert receiver.idle


def test_repeated_whole_message_is_refused() -> None:
    (single,) = _chunks(size=10)
    receiver = Reassembler()
    assert receiver.feed(single) == bytes(range(10))
    with pytest.raises(errors.DuplicateFragmentError):
        receiver.feed(single)


def test_new_message_while_one_is_incomplete_is_a_gap() -> None:
    receiver = Reassembler()
    receiver.feed(_chunks(counter=1)[0])
    with pytest.raises(errors.FragmentGapError):
        receiver.feed(_chunks(counter=2)[0])


def test_announced_length_over_limit_is_refused() -> None:
    receiver = Reassembler()
    with pytest.raises(errors.MessageTooLongError) as info:
        receiver.feed(bytes([1, 0]) + (MAX_FRAME + 1).to_bytes(2, "little") + b"x")
    assert info.value.limit == MAX_FRAME


def test_more_bytes_than_announced_is_refused() -> None:
    receiver = Reassembler()
    with pytest.raises(errors.MessageTooLongError):
        receiver.feed(bytes([1, 0]) + (3).to_bytes(2, "little") + b"abcd")
    assert receiver.idle


def test_too_short_fragments() -> None:
    receiver = Reassembler()
    with pytest.raises(errors.FragmentError):
        receiver.feed(b"\x01")
    with pytest.raises(errors.FragmentError):
        receiver.feed(b"\x01\x00\x05")


def test_sender_refuses_oversized_messages_and_bad_mtu() -> None:
    with pytest.raises(errors.MessageTooLongError):
        list(fragment(bytes(MAX_FRAME + 1), 23, 0))
    with pytest.raises(ValueError, match="MTU"):
        list(fragment(b"x", 22, 0))
    with pytest.raises(ValueError, match="counter"):
        list(fragment(b"x", 23, 256))


@given(data=st.data(), mtu=mtus)
def test_any_reordering_or_loss_is_refused_or_exact(data: st.DataObject, mtu: int) -> None:
    """Whatever order fragments arrive in, the receiver yields the original message or raises."""
    payload = data.draw(st.binary(min_size=1, max_size=600))
    chunks = list(fragment(payload, mtu, 3))
    delivered = data.draw(st.lists(st.sampled_from(chunks), max_size=len(chunks) + 3))
    receiver = Reassembler()
    for chunk in delivered:
        try:
            out = receiver.feed(chunk)
        except errors.FragmentError:
            continue
        assert out is None or out == payload
