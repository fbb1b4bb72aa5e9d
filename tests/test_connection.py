"""The sans-IO Connection: bytes in -> events out, message in -> bytes out, on both sides."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from factories import T0
from itbproto.core.connection import BadRequest, Connection, Dropped, Notification, Reply, Request, Side
from itbproto.core.wire import (
    CATALOG,
    Ack,
    ErrorCode,
    Kind,
    Message,
    MsgType,
    Nack,
    PrescriptionStaged,
    SetRate,
    StatusReport,
    StatusRequest,
    encode,
)
from itbproto.errors import (
    FieldRangeError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StaleFrameError,
)
from itbproto.qa.strategies import message_of, messages
from itbproto.tools.samples import SAMPLES
from machines_link import Link

RESPONSES = [c for c in CATALOG.values() if c.KIND is not Kind.REQUEST]
REQUESTS = [c for c in CATALOG.values() if c.KIND is Kind.REQUEST]
mtus = st.sampled_from([None, 23, 24, 50, 185, 517])


def pair(mtu: int | None = None) -> tuple[Connection, Connection]:
    return Connection(Side.PROGRAMMER, mtu=mtu), Connection(Side.PUMP, mtu=mtu)


def carry(chunks: list[bytes], to: Connection) -> list[object]:
    return [event for chunk in chunks for event in to.receive(chunk)]


def test_a_request_and_its_reply_cross_as_bytes() -> None:
    programmer, pump = pair(mtu=23)
    (request,) = carry(programmer.send(StatusRequest()), pump)
    assert request == Request(StatusRequest(), 1)
    status = SAMPLES[MsgType.STATUS_REPORT]
    (reply,) = carry(pump.send(status, 1), programmer)
    assert reply == Reply(status, 1, StatusRequest())
    assert programmer.outstanding is None


@given(cls=st.sampled_from(REQUESTS), data=st.data(), mtu=mtus)
def test_every_request_crosses_the_link(cls: type[Message], data: st.DataObject, mtu: int | None) -> None:
    programmer, pump = pair(mtu)
    message = data.draw(message_of(cls))
    assert carry(programmer.send(message), pump) == [Request(message, 1)]


@given(cls=st.sampled_from(RESPONSES), data=st.data(), mtu=mtus)
def test_every_reply_and_notification_crosses_the_link(
    cls: type[Message], data: st.DataObject, mtu: int | None
) -> None:
    programmer, pump = pair(mtu)
    message = data.draw(message_of(cls))
    if cls.KIND is Kind.NOTIFICATION:
        assert carry(pump.send(message), programmer) == [Notification(message)]
        return
    request = next(r for r in REQUESTS if cls in r.REPLIES or cls is Nack)
    asked = data.draw(message_of(request))
    carry(programmer.send(asked), pump)
    assert carry(pump.send(message, 1), programmer) == [Reply(message, 1, asked)]


@given(data=st.binary(max_size=300), side=st.sampled_from(Side), mtu=mtus)
def test_arbitrary_bytes_become_events_never_exceptions(data: bytes, side: Side, mtu: int | None) -> None:
    conn = Connection(side, mtu=mtu)
    for event in conn.receive(data):
        assert isinstance(event, Dropped | BadRequest | Request | Reply | Notification)


def test_programmer_numbers_requests_and_allows_one_at_a_time() -> None:
    programmer, _ = pair()
    programmer.last_txn = 41
    programmer.send(StatusRequest())
    assert programmer.outstanding is not None
    assert programmer.outstanding.txn == 42
    with pytest.raises(LocalProtocolError, match="one request at a time"):
        programmer.send(StatusRequest())
    programmer.forget()
    programmer.send(SetRate(rate_ul_day=1), txn=42)  # a retry names its id
    assert programmer.last_txn == 42


def test_local_misuse_raises_and_sends_nothing() -> None:
    programmer, pump = pair()
    with pytest.raises(LocalProtocolError):
        programmer.send(SAMPLES[MsgType.STATUS_REPORT])  # a programmer sends requests
    with pytest.raises(LocalProtocolError):
        pump.send(StatusRequest())  # a pump does not
    with pytest.raises(LocalProtocolError, match="answers no request"):
        pump.send(SAMPLES[MsgType.STATUS_REPORT], 5)
    carry(programmer.send(StatusRequest()), pump)
    with pytest.raises(LocalProtocolError, match="does not answer"):
        pump.send(Ack(request=MsgType.STATUS_REQUEST, applied_at=T0), 1)
    with pytest.raises(LocalProtocolError, match="notification"):
        pump.send(SAMPLES[MsgType.ALARM_NOTIFY], 1)
    pump.peer_max_frame = 40
    with pytest.raises(LocalProtocolError, match="accepts 40"):
        pump.send(SAMPLES[MsgType.STATUS_REPORT], 1)
    programmer.forget()
    with pytest.raises(FieldRangeError):
        programmer.send(SetRate(rate_ul_day=-1))
    assert programmer.outstanding is None


@pytest.mark.parametrize(
    "reply",
    [
        Ack(request=MsgType.STATUS_REQUEST, applied_at=T0),
        SAMPLES[MsgType.EVENT_LOG_PAGE],
        SAMPLES[MsgType.PRESCRIPTION_REPORT],
        PrescriptionStaged(stage_id=1, digest=2, daily_dose_ng=3, acknowledge=()),
    ],
    ids=lambda m: type(m).__name__,
)
def test_a_reply_its_request_does_not_allow_is_dropped_and_the_request_still_waits(reply: Message) -> None:
    """Issue 12: any reply with a matching txn was consumed, even one that answers something else."""
    programmer, _ = pair()
    programmer.send(StatusRequest())
    (dropped,) = programmer.receive(encode(reply, txn=1))
    assert isinstance(dropped, Dropped)
    assert isinstance(dropped.error, RemoteProtocolError)
    assert programmer.outstanding is not None
    assert programmer.outstanding.request == StatusRequest()


def test_the_session_ignores_a_reply_of_the_wrong_type() -> None:
    """Issue 12, through the session: a PrescriptionReport answering a status read replaced the program."""
    link = Link.new()
    session = link.ready()
    session.read_status()
    before = (session.state, session.pump.prescription, session.pending)
    events = session.receive(encode(SAMPLES[MsgType.PRESCRIPTION_REPORT], txn=session.connection.last_txn))
    assert [type(e).__name__ for e in events] == ["Ignored"]
    assert (session.state, session.pump.prescription, session.pending) == before


def test_replies_to_nothing_and_stray_kinds_are_dropped() -> None:
    programmer, _ = pair()
    for data in (
        encode(SAMPLES[MsgType.STATUS_REPORT], txn=9),  # nothing outstanding
        encode(StatusRequest(), txn=3, seq=1),  # the pump sent a request
        encode(SAMPLES[MsgType.ALARM_NOTIFY], txn=4, seq=2),  # a notification with an id
    ):
        (event,) = programmer.receive(data)
        assert isinstance(event, Dropped)


def test_a_frame_not_newer_than_the_last_is_dropped_on_both_sides() -> None:
    programmer, pump = pair()
    chunks = programmer.send(StatusRequest())
    carry(chunks, pump)
    (again,) = carry(chunks, pump)
    assert isinstance(again, Dropped)
    assert isinstance(again.error, StaleFrameError)
    status = pump.send(SAMPLES[MsgType.STATUS_REPORT], 1)
    carry(status, programmer)
    (stale,) = carry(status, programmer)
    assert isinstance(stale, Dropped)
    assert isinstance(stale.error, StaleFrameError)


def test_the_pump_is_told_what_to_answer_a_request_it_cannot_take() -> None:
    _, pump = pair()
    (bad,) = pump.receive(encode(Ack(request=MsgType.SET_RATE, applied_at=0), txn=7))
    assert isinstance(bad, BadRequest)
    assert (bad.txn, bad.reply.code) == (7, ErrorCode.UNKNOWN_MESSAGE)
    assert pump.send(bad.reply, 7)  # the only answer it may give


def test_the_programmer_learns_where_transaction_ids_stand() -> None:
    programmer, pump = pair()
    carry(programmer.send(StatusRequest()), pump)
    status = SAMPLES[MsgType.STATUS_REPORT]
    assert isinstance(status, StatusReport)
    carry(pump.send(replace(status, last_txn=900), 1), programmer)
    assert programmer.last_txn == 900


def test_reset_starts_a_new_link_and_returns_the_request_that_will_not_be_answered() -> None:
    programmer, pump = pair(mtu=23)
    carry(programmer.send(StatusRequest()), pump)
    forgotten = programmer.reset()
    assert forgotten is not None
    assert forgotten.request == StatusRequest()
    pump.reset()
    assert carry(programmer.send(StatusRequest()), pump) == [Request(StatusRequest(), 2)]


@given(msg=messages(), txn=st.integers(0, 3))
def test_any_message_to_either_side_is_taken_or_explained(msg: Message, txn: int) -> None:
    """Whatever one side receives, it is an event; nothing but a ProtocolError explains a refusal."""
    for side in pair():
        for event in side.receive(encode(msg, txn=txn)):
            if isinstance(event, Dropped | BadRequest):
                assert isinstance(event.error, ProtocolError)
