"""The pump's and the session's details, each pinned: what is logged and reported, the transaction bounds,
the alarm conditions at their thresholds, the session's events and its refusals to misuse."""

from __future__ import annotations

from dataclasses import replace

import pytest

from factories import T0, ack, prescription, programmed
from itbproto.core.machines import Refused, Replied, Resolved
from itbproto.core.machines.pump import REFILL_TIMEOUT_S
from itbproto.core.machines.pump.alarms import conditions
from itbproto.core.machines.pump.reports import device_info, event_page, flowing_rate, history, status
from itbproto.core.machines.pump.state import MAX_TXN_STEP
from itbproto.core.therapy import SCALE, advance, apply
from itbproto.core.wire import (
    MAX_EVENTS_PER_PAGE,
    Ack,
    AlarmAcknowledge,
    AlarmCode,
    BolusCancel,
    BolusCancelled,
    BolusKind,
    BolusStart,
    BolusStarted,
    CommitPrescription,
    ErrorCode,
    EventCode,
    EventLogPage,
    EventLogRead,
    FlexStep,
    Hello,
    Nack,
    PrescriptionMode,
    PrescriptionStaged,
    RefillBegin,
    RefillResidual,
    ResidualRecorded,
    Role,
    SessionEnd,
    SetRate,
    StagePrescription,
    StatusRequest,
    TherapyMode,
    decode,
)
from itbproto.core.wire.frame import HEADER_SIZE, TAG_SIZE
from itbproto.errors import SessionError
from machines_link import CLINICIAN, Link, answer, new_pump

# --- the pump: the log, transactions, time --------------------------------------------------------


def test_applied_and_refused_commands_are_logged_with_their_time_txn_and_value() -> None:
    pump = new_pump(programmed())
    answer(pump, SetRate(rate_ul_day=840), 5, T0 + 10)
    answer(pump, SetRate(rate_ul_day=5_000), 6, T0 + 20)  # far past the titration step
    entries = [(e.at, e.code, e.txn, e.value) for e in pump.log.page(0, 100)]
    assert (T0 + 10, EventCode.RATE_CHANGED, 5, 840) in entries
    assert (T0 + 20, EventCode.COMMAND_REFUSED, 6, int(ErrorCode.SAFETY_RULE)) in entries


def test_alarm_log_entries_carry_the_time() -> None:
    pump = new_pump(programmed())
    pump.set_motor_stalled(True, T0 + 30)
    pump.set_motor_stalled(False, T0 + 90)
    entries = [(e.at, e.code, e.txn, e.value) for e in pump.log.page(0, 100)]
    assert (T0 + 30, EventCode.ALARM_RAISED, 0, int(AlarmCode.MOTOR_STALL)) in entries
    assert (T0 + 90, EventCode.ALARM_CLEARED, 0, int(AlarmCode.MOTOR_STALL)) in entries


def test_transaction_ids_must_be_newer_and_not_too_far_ahead() -> None:
    pump = new_pump(programmed())
    answer(pump, SetRate(rate_ul_day=820), 10, T0)
    again = answer(pump, SetRate(rate_ul_day=810), 10 + 0, T0)  # same id, another request
    assert isinstance(again, Nack)
    assert again.code is ErrorCode.TXN_REUSED
    answer(pump, SetRate(rate_ul_day=815), 11, T0)
    older = answer(pump, SetRate(rate_ul_day=812), 10 - 1, T0)
    assert isinstance(older, Nack)
    assert older.code is ErrorCode.REPLAY
    at_limit = answer(pump, SetRate(rate_ul_day=811), 11 + MAX_TXN_STEP, T0)
    assert isinstance(at_limit, Ack)
    past = answer(pump, SetRate(rate_ul_day=810), 11 + 2 * MAX_TXN_STEP + 1, T0)
    assert isinstance(past, Nack)
    assert past.code is ErrorCode.BAD_TXN


def test_an_open_refill_is_aborted_exactly_at_its_time_out() -> None:
    pump = new_pump(programmed())
    answer(pump, RefillBegin(), 1, T0)
    pump.tick(T0 + REFILL_TIMEOUT_S - 1)
    assert pump.mode == "refill_begun"
    pump.tick(T0 + REFILL_TIMEOUT_S)
    assert pump.mode == "infusing"
    aborted = [e for e in pump.log.page(0, 100) if e.code is EventCode.REFILL_ABORTED]
    assert [e.at for e in aborted] == [T0 + REFILL_TIMEOUT_S]


def test_a_refill_timed_out_while_waiting_still_delivers_until_now() -> None:
    pump = new_pump(programmed())
    answer(pump, RefillBegin(), 1, T0)
    before = pump.therapy.reservoir_scaled
    pump.tick(T0 + REFILL_TIMEOUT_S + 3600)  # the pump slept through the time-out
    assert pump.therapy.now == T0 + REFILL_TIMEOUT_S + 3600
    assert before - pump.therapy.reservoir_scaled == 800 * (REFILL_TIMEOUT_S + 3600)


# --- the pump's replies ------------------------------------------------------------------------------


def test_a_cancelled_bolus_reports_what_was_and_was_not_delivered() -> None:
    pump = new_pump(programmed())
    started = answer(pump, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=3600), 1, T0)
    assert isinstance(started, BolusStarted)
    cancelled = answer(pump, BolusCancel(bolus_id=pump.therapy.bolus.bolus_id), 2, T0 + 900)  # type: ignore[union-attr]
    assert isinstance(cancelled, BolusCancelled)
    assert (cancelled.delivered_ul, cancelled.not_delivered_ul) == (10, 30)


def test_a_residual_reply_says_how_far_off_it_was() -> None:
    pump = new_pump(replace(programmed(), reservoir_scaled=2_000 * SCALE))
    session = answer(pump, RefillBegin(), 1, T0)
    recorded = answer(pump, RefillResidual(refill_id=session.refill_id, measured_ul=1_400), 2, T0)  # type: ignore[attr-defined]
    assert isinstance(recorded, ResidualRecorded)
    assert (recorded.expected_ul, recorded.measured_ul, recorded.discrepancy_ul) == (2_000, 1_400, -600)
    assert recorded.needs_acknowledgement


def test_staging_reports_the_daily_dose_rounded_up_and_the_hazards_to_acknowledge() -> None:
    pump = new_pump(programmed(prescription(rate=1600, max_daily_dose_ng=2_000_000)))
    raised = prescription(rate=1921, max_daily_dose_ng=2_000_000)
    staged = answer(pump, StagePrescription(prescription=raised), 1, T0)
    assert isinstance(staged, PrescriptionStaged)
    assert staged.acknowledge == ("TITR-003",)
    assert staged.daily_dose_ng == 960_500
    odd = prescription(
        mode=PrescriptionMode.FLEX,
        steps=(FlexStep(start_s=0, rate_ul_day=801), FlexStep(start_s=1, rate_ul_day=800)),
    )
    again = answer(new_pump(programmed()), StagePrescription(prescription=odd), 1, T0)
    assert isinstance(again, PrescriptionStaged)
    assert again.daily_dose_ng == 400_001  # 400 000.0058 ng: rounded up for the summary
    commit = answer(pump, CommitPrescription(stage_id=staged.stage_id, digest=staged.digest), 2, T0)
    assert isinstance(commit, Nack)
    assert commit.code is ErrorCode.NEEDS_ACKNOWLEDGEMENT


def test_the_session_ends_logged_as_it_leaves_the_pump() -> None:
    pump = new_pump(programmed())
    answer(pump, SessionEnd(), 1, T0)
    stopped = new_pump(replace(programmed(), mode=TherapyMode.STOPPED))
    answer(stopped, SessionEnd(ack=ack("STOP-001")), 1, T0)
    assert EventCode.SESSION_ENDED in [e.code for e in pump.log.page(0, 100)]
    assert EventCode.SESSION_ENDED_STOPPED in [e.code for e in stopped.log.page(0, 100)]


def test_replies_are_cut_to_the_frame_the_programmer_accepts() -> None:
    pump = new_pump(programmed())
    for hour in range(1, 20):
        answer(pump, SetRate(rate_ul_day=800 + (hour % 2) * 4, ack=ack("DECR-001")), hour, T0 + hour * 60)
    small = Hello(protocol_version=1, role=Role.CLINICIAN, max_frame=272, client="small")
    reply = pump.handle(small, 100, T0 + 3600, CLINICIAN)
    page = pump.handle(EventLogRead(first=0, count=20), 101, T0 + 3600, reply.session).reply
    assert reply.session.max_frame == 272
    assert reply.session.client == "small"
    assert isinstance(page, EventLogPage)
    # as many entries as fit a sealed frame, each counted at its own size
    more = replace(page, events=pump.log.page(0, len(page.events) + 1))
    assert len(page.CODEC.encode(page)) + HEADER_SIZE + TAG_SIZE <= 272
    assert len(more.CODEC.encode(more)) + HEADER_SIZE + TAG_SIZE > 272
    full = event_page(pump.log, EventLogRead(first=0, count=MAX_EVENTS_PER_PAGE), 1045)
    assert len(full.events) > len(page.events)


def test_history_holds_as_many_flows_as_fit_a_sealed_frame() -> None:
    state = programmed()
    for hour in range(1, 7):
        state, _ = advance(state, T0 + hour * 3600)
        state = apply(state, SetRate(rate_ul_day=800 + (hour % 2) * 8))
    cut = history(state, 272)
    whole = history(state, 1045)
    more = replace(cut, flows=whole.flows[-len(cut.flows) - 1 :])
    assert len(cut.CODEC.encode(cut)) + HEADER_SIZE + TAG_SIZE <= 272
    assert len(more.CODEC.encode(more)) + HEADER_SIZE + TAG_SIZE > 272


def test_status_and_device_info_say_what_flows_now() -> None:
    flex = prescription(
        mode=PrescriptionMode.FLEX,
        steps=(FlexStep(start_s=0, rate_ul_day=700), FlexStep(start_s=12 * 3600, rate_ul_day=900)),
    )
    state = programmed(flex)
    state, _ = advance(state, T0 + 12 * 3600 - 1)  # a second before the step
    assert flowing_rate(state) == 700
    pump = new_pump(programmed())
    answer(pump, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=3600), 1, T0)
    assert status(pump.state).mode is TherapyMode.BOLUS
    assert device_info(pump.state).paired is False


# --- alarm conditions at their thresholds -------------------------------------------------------------


def test_the_low_reservoir_alarm_at_its_thresholds() -> None:
    state = programmed(prescription(rate=100))  # 100 µL/day: 7 days is 700 µL, below the 2 mL threshold
    assert AlarmCode.LOW_RESERVOIR in conditions(replace(state, reservoir_scaled=2_000 * SCALE))
    assert AlarmCode.LOW_RESERVOIR not in conditions(replace(state, reservoir_scaled=2_001 * SCALE))
    fast = programmed(prescription(rate=1000, max_daily_dose_ng=900_000))  # 7 days is exactly 7 mL
    assert AlarmCode.LOW_RESERVOIR in conditions(replace(fast, reservoir_scaled=7_000 * SCALE))
    assert AlarmCode.LOW_RESERVOIR not in conditions(replace(fast, reservoir_scaled=7_001 * SCALE))


def test_no_reservoir_alarm_without_a_prescription() -> None:
    state = replace(programmed(), prescription=None, reservoir_scaled=100 * SCALE)
    assert AlarmCode.LOW_RESERVOIR not in conditions(state)


def test_a_silenced_critical_alarm_sounds_again_when_its_time_is_up_and_not_before() -> None:
    pump = new_pump(programmed())
    pump.set_motor_stalled(True, T0)
    (stall,) = pump.therapy.alarms
    answer(pump, AlarmAcknowledge(alarm_id=stall.alarm_id), 1, T0)
    (quiet,) = pump.therapy.alarms
    assert pump.tick(quiet.silenced_until - 1) == ()
    (again,) = pump.tick(quiet.silenced_until)
    assert again.alarm.alarm_id == stall.alarm_id
    assert (again.alarm.silenced_until, again.alarm.acknowledged) == (0, False)
    pump.set_motor_stalled(False, quiet.silenced_until + 1)
    pump.set_motor_stalled(True, quiet.silenced_until + 2)
    (new,) = pump.therapy.alarms
    assert new.alarm_id > stall.alarm_id


# --- the session ---------------------------------------------------------------------------------------


def test_events_name_their_reply_and_request() -> None:
    link = Link.new(programmed())
    s = link.ready()
    (replied,) = [e for e in link.exchange(s.read_status()) if isinstance(e, Replied)]
    assert isinstance(replied.request, StatusRequest)
    assert replied.reply.KIND.name == "RESPONSE"
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    too_much = SetRate(rate_ul_day=5_000)  # past the programmer's checks, straight to the pump
    (no,) = [e for e in link.exchange(s.connection.send(too_much)) if isinstance(e, Refused)]
    assert no.request == too_much
    assert no.nack.code is ErrorCode.SAFETY_RULE
    assert "TITR-001" in no.nack.rules


def test_a_lost_command_is_retried_with_its_id_and_a_lost_read_with_a_new_one() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    read = s.read_status()
    sent = decode(read[0]).txn
    again = s.response_lost()
    assert decode(again[0]).txn != sent
    link.exchange(again)
    command = s.set_rate(820)
    txn = decode(command[0]).txn
    link.exchange(command, lose_reply=True)
    status = s.response_lost()  # a delivery change: not sent again, the status is read instead
    assert s.state == "uncertain"
    assert isinstance(decode(status[0]).message, StatusRequest)
    events = link.exchange(status)
    assert not [e for e in events if isinstance(e, Resolved)]  # the pump took it: resolve by retrying
    resend = s.resolve()
    assert (decode(resend[0]).txn, decode(resend[0]).message) == (txn, SetRate(rate_ul_day=820))
    (resolved,) = [e for e in link.exchange(resend) if isinstance(e, Resolved)]
    assert (resolved.request, resolved.applied) == (SetRate(rate_ul_day=820), True)
    assert isinstance(resolved.reply, Ack)
    assert s.pump.to_reread() == ["history", "prescription", "status"]


def test_commands_carry_their_acknowledgement() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    rate = decode(s.set_rate(400, ack("DECR-001"))[0]).message
    assert rate == SetRate(rate_ul_day=400, ack=ack("DECR-001"))
    link.exchange(s.response_lost())
    for read in (s.read_status, s.read_history, s.read_prescription):
        link.exchange(read())
    bolus = decode(s.start_bolus(BolusKind.CLINICIAN, 10, 600, ack("STOP-002"))[0]).message
    assert bolus == BolusStart(kind=BolusKind.CLINICIAN, volume_ul=10, duration_s=600, ack=ack("STOP-002"))


def test_a_summary_is_committed_only_with_its_hazards_acknowledged() -> None:
    link = Link.new(programmed(prescription(rate=1600, max_daily_dose_ng=2_000_000)))
    s = link.ready()
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    s.draft(prescription(rate=1921, max_daily_dose_ng=2_000_000))
    s.check()
    link.exchange(s.send_stage())
    assert s.summary is not None
    with pytest.raises(SessionError, match="TITR-003"):
        s.confirm_summary(s.summary.digest)
    with pytest.raises(SessionError):
        s.confirm_summary(s.summary.digest + 1, ack("TITR-003"))
    commit = decode(s.confirm_summary(s.summary.digest, ack("TITR-003"))[0]).message
    assert isinstance(commit, CommitPrescription)
    assert commit.ack == ack("TITR-003")


def test_session_misuse_is_refused() -> None:
    link = Link.new(programmed())
    s = link.ready()
    with pytest.raises(SessionError):
        s.check()  # nothing drafted
    with pytest.raises(SessionError):
        s.record_residual(1_000)  # no refill begun
    with pytest.raises(SessionError):
        s.confirm_refill_drug(1_000, 500)
    s.draft(prescription())
    s.cancel_draft()
    assert (s.draft_prescription, s.summary) == (None, None)
    link.exchange(s.start_refill())
    assert s.pump.refill is not None
    link.exchange(s.abort_refill())
    assert s.pump.refill is None
    assert s.state == "ready"
    link.drop()
    link.drop()
    assert s.state == "disconnected"


def test_ending_without_a_status_needs_stop_001_acknowledged() -> None:
    link = Link.new(programmed())
    s = link.session
    link.exchange(s.open("t"))
    link.exchange(s.authenticated())
    s.pump.status = None
    with pytest.raises(SessionError, match="STOP-001"):
        s.end()
    assert decode(s.end(ack("STOP-001"))[0]).message == SessionEnd(ack=ack("STOP-001"))


def test_due_alarms_repeat_at_their_period_from_the_last_announcement() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.pump.set_motor_stalled(True, link.now)
    link.exchange(s.read_alarms())
    (stall,) = s.pump.alarms.values()
    assert s.due_alarms(stall.raised_at + 599, 600) == []
    assert len(s.due_alarms(stall.raised_at + 600, 600)) == 1
    assert s.due_alarms(stall.raised_at + 1199, 600) == []
    assert len(s.due_alarms(stall.raised_at + 1200, 600)) == 1


def test_a_log_entry_always_reads_over_the_wire() -> None:
    """A detail longer than an entry carries is cut, never left to break the page that holds it (the pump's
    own hold once logged 26 characters, found by the QA suite reading the log)."""
    from itbproto.core.machines.pump.log import EventLog
    from itbproto.core.wire.enums import EventCode
    from itbproto.core.wire.messages import MAX_LOG_DETAIL, EventLogPage

    log = EventLog()
    entry = log.append(0, EventCode.FAULT, detail="x" * (MAX_LOG_DETAIL + 10))
    assert entry.detail == "x" * MAX_LOG_DETAIL
    page = EventLogPage(total=log.total, events=log.page(0, 10))
    assert EventLogPage.CODEC.decode(EventLogPage.CODEC.encode(page)) == page
