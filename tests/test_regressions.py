"""Defects found by trying the core as a new user would (issue 12); each test failed before its fix."""

from __future__ import annotations

import pytest

from factories import T0, empty_pump, programmed
from itbproto.therapy import Battery
from itbproto.wire import (
    BolusKind,
    BolusStart,
    ErrorCode,
    Nack,
    Reassembler,
    Resume,
    SessionEnd,
    SetRate,
    Suspend,
    TherapyMode,
    decode,
    encode,
    fragment,
)
from machines_link import open_pump, say_hello

pending = pytest.mark.xfail(strict=True, reason="issue 12: fixed with the new core seams")


@pending
def test_a_safety_refusal_can_be_sent() -> None:
    pump = open_pump(empty_pump())
    reply = pump.handle(BolusStart(kind=BolusKind.CLINICIAN, volume_ul=500, duration_s=3600), 1, T0)
    assert isinstance(reply, Nack)
    assert decode(encode(reply, txn=1)).message == reply


@pending
def test_a_new_first_fragment_abandons_a_partial_message() -> None:
    lost_tail = list(fragment(bytes(100), 23, 1))
    retry = list(fragment(bytes(10), 23, 2))
    receiver = Reassembler()
    receiver.feed(lost_tail[0])
    assert receiver.feed(retry[0]) == bytes(10)


@pending
def test_a_reset_reassembler_takes_the_first_message_of_a_new_link() -> None:
    (single,) = fragment(bytes(10), 23, 2)
    receiver = Reassembler()
    receiver.feed(single)
    receiver.reset()
    assert receiver.feed(single) == bytes(10)


@pending
def test_a_different_request_reusing_a_transaction_id_is_not_answered_with_the_old_reply() -> None:
    pump = open_pump(programmed())
    pump.handle(SetRate(rate_ul_day=800), 6, T0)
    reply = pump.handle(Suspend(duration_s=60), 6, T0)
    assert isinstance(reply, Nack)


@pending
def test_transaction_id_zero_is_refused() -> None:
    pump = open_pump(programmed())
    reply = pump.handle(SetRate(rate_ul_day=800), 0, T0)
    assert isinstance(reply, Nack)
    assert reply.code is not ErrorCode.REPLAY


@pending
def test_after_session_end_a_reused_id_is_not_authenticated() -> None:
    pump = say_hello(open_pump(programmed()))
    pump.handle(SessionEnd(acknowledge_stopped=False), 7, T0)
    reply = pump.handle(Resume(), 7, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.NOT_AUTHENTICATED


@pending
def test_status_at_end_of_service_does_not_claim_delivery() -> None:
    pump = open_pump(programmed())
    pump.set_battery(Battery.EOS, T0 + 10)
    status = pump.status()
    assert (status.mode, status.rate_ul_day) != (TherapyMode.INFUSING, 800)


@pending
def test_a_reply_of_the_wrong_type_is_not_consumed() -> None:
    from itbproto.wire import Ack, Frame, MsgType
    from machines_link import Link

    link = Link.new(programmed())
    session = link.ready()
    out = session.read_status()
    session.receive(Frame(Ack(request=MsgType.STATUS_REQUEST, applied_at=T0), txn=out.txn))
    assert session.pending == out


@pending
def test_alarm_thresholds_come_from_the_device_profile() -> None:
    from dataclasses import replace

    from itbproto.specfiles import load_profile

    itb40 = load_profile("itb-40")
    state = replace(empty_pump(), profile=itb40)
    assert state.thresholds.low_reservoir_ul == itb40.low_reservoir_ul
