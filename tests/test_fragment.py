"""BLE fragmentation: round trips for every MTU and message; gaps, repeats, overruns reported, not raised."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from itbproto import errors
from itbproto.core.wire import MAX_FRAME, Message, Reassembler, encode, fragment
from itbproto.core.wire.fragment import ATT_OVERHEAD, first_part
from itbproto.qa.strategies import messages

mtus = st.integers(23, 517)
counters = st.integers(0, 255)


def feed_all(receiver: Reassembler, chunks: list[bytes]) -> list[bytes | errors.FragmentError]:
    return [out for chunk in chunks for out in receiver.feed(chunk)]


@given(msg=messages(), mtu=mtus, counter=counters)
def test_round_trip_any_message_any_mtu(msg: Message, mtu: int, counter: int) -> None:
    wire = encode(msg, txn=1)
    chunks = list(fragment(wire, mtu, counter))
    assert all(len(chunk) <= mtu - ATT_OVERHEAD for chunk in chunks)
    receiver = Reassembler()
    assert [receiver.feed(chunk) for chunk in chunks] == [[]] * (len(chunks) - 1) + [[wire]]
    assert receiver.idle


@given(payloads=st.lists(st.binary(max_size=MAX_FRAME), min_size=1, max_size=5), mtu=mtus)
def test_consecutive_messages(payloads: list[bytes], mtu: int) -> None:
    receiver = Reassembler()
    for counter, payload in enumerate(payloads):
        assert feed_all(receiver, list(fragment(payload, mtu, counter))) == [payload]


def _chunks(size: int = 100, mtu: int = 23, counter: int = 7) -> list[bytes]:
    return list(fragment(bytes(range(size)), mtu, counter))


def test_gap_drops_the_partial_message() -> None:
    chunks = _chunks()
    receiver = Reassembler()
    receiver.feed(chunks[0])
    (gap,) = receiver.feed(chunks[2])
    assert isinstance(gap, errors.FragmentGapError)
    assert (gap.expected, gap.got) == (1, 2)
    assert receiver.idle
    (again,) = receiver.feed(chunks[3])  # the dropped message cannot be continued
    assert isinstance(again, errors.FragmentGapError)


def test_a_repeated_fragment_is_refused_and_changes_nothing() -> None:
    chunks = _chunks()
    receiver = Reassembler()
    receiver.feed(chunks[0])
    receiver.feed(chunks[1])
    (dup,) = receiver.feed(chunks[1])
    assert isinstance(dup, errors.DuplicateFragmentError)
    (first,) = receiver.feed(chunks[0])
    assert isinstance(first, errors.DuplicateFragmentError)
    assert feed_all(receiver, chunks[2:]) == [bytes(range(100))]


def test_repeated_whole_message_is_refused() -> None:
    (single,) = _chunks(size=10)
    receiver = Reassembler()
    assert receiver.feed(single) == [bytes(range(10))]
    (dup,) = receiver.feed(single)
    assert isinstance(dup, errors.DuplicateFragmentError)


def test_a_new_message_abandons_the_incomplete_one_and_is_kept() -> None:
    """Issue 12: the tail of a message was lost and its sender moved on; the next message must get through."""
    receiver = Reassembler()
    receiver.feed(_chunks(counter=1)[0])
    dropped, whole = receiver.feed(_chunks(size=10, counter=2)[0])
    assert isinstance(dropped, errors.IncompleteMessageError)
    assert (dropped.counter, dropped.received, dropped.total, dropped.new_counter) == (1, 16, 100, 2)
    assert whole == bytes(range(10))


def test_a_new_message_in_several_fragments_after_an_abandoned_one() -> None:
    receiver = Reassembler()
    receiver.feed(_chunks(counter=1)[0])
    out = feed_all(receiver, _chunks(size=60, counter=2))
    assert isinstance(out[0], errors.IncompleteMessageError)
    assert out[1:] == [bytes(range(60))]


def test_a_reset_starts_a_new_link() -> None:
    """Issue 12: after a reconnect the sender's counter starts again; its first message is not a repeat."""
    (single,) = _chunks(size=10, counter=0)
    receiver = Reassembler()
    assert receiver.feed(single) == [bytes(range(10))]
    receiver.reset()
    assert receiver.feed(single) == [bytes(range(10))]


def test_announced_length_over_limit_is_refused() -> None:
    receiver = Reassembler()
    (error,) = receiver.feed(bytes([1, 0]) + (MAX_FRAME + 1).to_bytes(2, "little") + b"x")
    assert isinstance(error, errors.MessageTooLongError)
    assert error.limit == MAX_FRAME


def test_more_bytes_than_announced_is_refused() -> None:
    receiver = Reassembler()
    (error,) = receiver.feed(bytes([1, 0]) + (3).to_bytes(2, "little") + b"abcd")
    assert isinstance(error, errors.MessageTooLongError)
    assert receiver.idle


def test_too_short_fragments() -> None:
    receiver = Reassembler()
    assert all(isinstance(e, errors.FragmentError) for e in receiver.feed(b"\x01"))
    assert all(isinstance(e, errors.FragmentError) for e in receiver.feed(b"\x01\x00\x05"))


def test_sender_refuses_oversized_messages_and_bad_mtu() -> None:
    with pytest.raises(errors.MessageTooLongError):
        list(fragment(bytes(MAX_FRAME + 1), 23, 0))
    with pytest.raises(ValueError, match="MTU"):
        list(fragment(b"x", 22, 0))
    with pytest.raises(ValueError, match="counter"):
        list(fragment(b"x", 23, 256))


@given(data=st.data(), mtu=mtus)
def test_any_reordering_or_loss_yields_the_message_or_reports(data: st.DataObject, mtu: int) -> None:
    """Whatever order fragments arrive in, the receiver yields the original message or reports why not."""
    payload = data.draw(st.binary(min_size=1, max_size=600))
    chunks = list(fragment(payload, mtu, 3))
    delivered = data.draw(st.lists(st.sampled_from(chunks), max_size=len(chunks) + 3))
    receiver = Reassembler()
    for out in feed_all(receiver, delivered):
        assert out == payload or isinstance(out, errors.FragmentError)


@given(
    first=st.binary(min_size=1, max_size=300),
    second=st.binary(min_size=1, max_size=300),
    mtu=mtus,
    lost=st.integers(0, 20),
)
def test_a_message_after_a_lost_tail_always_arrives(first: bytes, second: bytes, mtu: int, lost: int) -> None:
    """Any prefix of one message, then a whole next message: the next one comes out intact."""
    receiver = Reassembler()
    head = list(fragment(first, mtu, 10))
    feed_all(receiver, head[: max(0, len(head) - 1 - lost)])
    assert feed_all(receiver, list(fragment(second, mtu, 11)))[-1] == second


@given(data=st.binary(min_size=1, max_size=MAX_FRAME), mtu=st.integers(23, 517), counter=st.integers(0, 255))
def test_a_first_fragment_shows_the_start_of_its_message_and_no_other_does(
    data: bytes, mtu: int, counter: int
) -> None:
    first, *rest = fragment(data, mtu, counter)
    start = first_part(first)
    assert start is not None
    assert data.startswith(start)
    assert all(first_part(chunk) is None for chunk in rest)
