"""The pump and session machines: every flow by example, through the bytes, and the committed diagrams."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import ROOT
from factories import DAY, POLICY, T0, ack, commit, empty_pump, prescription, programmed
from itbproto.core.machines import (
    ALARM,
    PUMP,
    SESSION,
    AlarmAnnounced,
    Definition,
    Mismatch,
    Refused,
    Resolved,
    Verified,
    mode_of,
)
from itbproto.core.machines.pump import REFILL_TIMEOUT_S, PumpMachine
from itbproto.core.therapy import TherapyState
from itbproto.core.wire import (
    Ack,
    AlarmCode,
    BolusKind,
    BolusStart,
    CommitPrescription,
    ErrorCode,
    EventCode,
    EventLogRead,
    Message,
    MsgType,
    Nack,
    PrescriptionStaged,
    RefillBegin,
    Resume,
    Role,
    SessionEnd,
    SetClock,
    SetRate,
    Severity,
    StagePrescription,
    StatusReport,
    StatusRequest,
    Suspend,
    TherapyMode,
)
from itbproto.errors import AcknowledgementRequired, SafetyViolation, SessionError
from itbproto.io.specfiles import load_profile
from itbproto.tools.samples import PRESCRIPTION
from machines_link import CLINICIAN, Link, answer, new_pump


@pytest.mark.parametrize("definition", [PUMP, SESSION, ALARM], ids=lambda d: d.name)
def test_committed_diagram_matches_the_machine(definition: Definition) -> None:
    committed = (ROOT / "specs" / "diagrams" / f"{definition.name}.mmd").read_text(encoding="utf-8")
    assert committed == definition.mermaid(), "run `itbproto specs --write`"


def test_a_table_refuses_unknown_states() -> None:
    with pytest.raises(ValueError, match="unknown state"):
        Definition("x", ("a",), ({"trigger": "go", "source": "a", "dest": "b"},), "a")


# --- the programmer's session ---------------------------------------------------------------------------


def program(link: Link, p: object = PRESCRIPTION) -> list[object]:
    s = link.session
    s.draft(p)  # type: ignore[arg-type]
    s.check()
    assert s.state == "validated"
    link.exchange(s.send_stage())
    assert s.state == "awaiting_confirmation"
    assert s.summary is not None
    link.exchange(s.confirm_summary(s.summary.digest))
    assert s.state == "verifying"
    return list(link.exchange(s.verify()))


@pytest.mark.parametrize("mtu", [None, 23, 185])
def test_a_session_programs_confirms_and_verifies(mtu: int | None) -> None:
    link = Link.new(mtu=mtu)
    s = link.ready()
    events = program(link)
    assert Verified(PRESCRIPTION) in events
    assert s.state == "ready"
    assert link.pump.mode == "infusing"
    assert link.pump.therapy.prescription == PRESCRIPTION


def test_summary_shows_old_and_new_and_must_be_confirmed_as_shown() -> None:
    link = Link.new()
    s = link.ready()
    program(link)
    link.exchange(s.read_status())
    newer = replace(PRESCRIPTION, max_daily_dose_ng=650_000)
    s.draft(newer)
    s.check()
    link.exchange(s.send_stage())
    assert s.summary is not None
    assert (s.summary.old, s.summary.new) == (PRESCRIPTION, newer)
    assert s.summary.daily_dose_ng == 420_000
    with pytest.raises(SessionError):
        s.confirm_summary(s.summary.digest ^ 1)  # not what the user was shown
    assert s.state == "awaiting_confirmation"


def test_a_read_back_that_differs_is_reported() -> None:
    link = Link.new()
    s = link.ready()
    s.draft(PRESCRIPTION)
    s.check()
    link.exchange(s.send_stage())
    assert s.summary is not None
    link.exchange(s.confirm_summary(s.summary.digest))
    s.draft_prescription = replace(PRESCRIPTION, max_bolus_ng=1)  # as if the pump had applied something else
    events = link.exchange(s.verify())
    assert Mismatch(replace(PRESCRIPTION, max_bolus_ng=1), PRESCRIPTION) in events
    assert s.state == "ready"


def test_client_engine_refuses_before_sending() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_history())
    with pytest.raises(SafetyViolation) as info:
        s.start_bolus(BolusKind.CLINICIAN, 500, 3600)  # 250 µg > 50 µg max bolus
    assert "BOL-001" in info.value.rule_ids
    assert s.state == "ready"
    assert s.pending is None


def test_the_programmer_refuses_to_guess_a_bolus_without_the_history() -> None:
    link = Link.new(programmed())
    s = link.session
    link.exchange(s.open("test"))
    link.exchange(s.authenticated())  # the status read; not the history with its boluses
    with pytest.raises(SessionError, match="history"):
        s.start_bolus(BolusKind.CLINICIAN, 20, 3600)
    assert s.pending is None
    link.exchange(s.read_history())
    assert s.start_bolus(BolusKind.CLINICIAN, 20, 3600)  # now checked, and sent


def test_pump_refusal_reaches_the_session_and_changes_nothing() -> None:
    # another programmer raised the dose an hour ago; this one only sees the dose in force now
    link = Link.new(programmed(prescription(max_daily_dose_ng=1_000_000)))
    answer(link.pump, SetRate(rate_ul_day=900), 1_000)
    link.now += 3600
    s = link.ready()
    link.exchange(s.read_prescription())
    before = link.pump.state
    events = link.exchange(s.set_rate(1_000))  # +11 %: fine for its mirror, a second increase for the pump
    (refused,) = [e for e in events if isinstance(e, Refused)]
    assert refused.nack.code is ErrorCode.SAFETY_RULE
    assert refused.nack.rules == ("TITR-002",)
    assert link.pump.state.therapy == before.therapy
    assert s.state == "ready"


def test_programmer_refuses_what_it_cannot_check() -> None:
    link = Link.new(programmed())
    s = link.ready()  # status read, prescription not read
    with pytest.raises(SessionError, match="known here"):
        s.set_rate(900)
    assert s.state == "ready"


def test_a_change_outdates_what_the_programmer_read() -> None:
    # found by the demo: checks ran on a status and a history from before the programmer's own last command
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    link.exchange(s.set_rate(850))
    assert s.pump.to_reread() == ["history", "prescription", "status"]
    with pytest.raises(SessionError, match="read the history, prescription, status again"):
        s.set_rate(840)
    link.exchange(s.read_status())
    link.exchange(s.read_history())
    assert s.pump.to_reread() == ["prescription"]
    link.exchange(s.read_prescription())
    assert s.pump.to_reread() == []
    link.exchange(s.set_rate(840))
    assert link.pump.therapy.prescription is not None
    assert link.pump.therapy.prescription.steps[0].rate_ul_day == 840
    # handling an alarm reads nothing: the alarm list is kept as alarms are announced and handled
    link.pump.set_motor_stalled(True, link.now)
    link.exchange(s.read_alarms())
    (alarm,) = s.pump.alarms.values()
    events = link.exchange(s.acknowledge_alarm(alarm.alarm_id))
    assert not [e for e in events if isinstance(e, Refused)]


def test_a_new_session_numbers_its_requests_above_the_pumps_last() -> None:
    """Issue 12: transaction ids carry over sessions; a programmer learns where to start from DeviceInfo."""
    link = Link.new(programmed())
    answer(link.pump, Suspend(duration_s=60, ack=ack("STOP-002")), 5_000)
    s = link.ready()
    assert s.connection.last_txn >= 5_000
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    events = link.exchange(s.resume())
    assert not [e for e in events if isinstance(e, Refused)]
    assert link.pump.state.last_txn > 5_000


@pytest.mark.parametrize("drop", [True, False])
def test_a_lost_reply_is_resolved_by_the_pumps_memory(drop: bool) -> None:
    link = Link.new(programmed())
    s = link.ready()
    sent = s.suspend(600, ack("STOP-002"))
    link.exchange(sent, lose_reply=True)  # the pump applied it; the reply was lost
    if drop:
        link.drop()
        with pytest.raises(SessionError):
            s.resume()  # nothing may be sent while the suspend is uncertain
        link.exchange(s.open())
        link.exchange(s.authenticated())
    else:
        link.exchange(s.response_lost())
    assert s.state == "uncertain"
    assert s.uncertain is not None
    assert s.uncertain.answered
    suspends = len([e for e in link.pump.log.page(0, 1000) if e.code is EventCode.SUSPENDED])
    events = link.exchange(s.resolve())
    (resolved,) = [e for e in events if isinstance(e, Resolved)]
    assert resolved.applied is True
    assert isinstance(resolved.reply, Ack)
    assert len([e for e in link.pump.log.page(0, 1000) if e.code is EventCode.SUSPENDED]) == suspends
    assert s.state == "ready"
    assert s.uncertain is None


def test_a_command_that_never_reached_the_pump_resolves_as_not_applied() -> None:
    link = Link.new(programmed())
    s = link.ready()
    s.suspend(600, ack("STOP-002"))  # lost before it reached the pump
    link.drop()
    link.exchange(s.open())
    events = link.exchange(s.authenticated())
    assert [e for e in events if isinstance(e, Resolved)] == [
        Resolved(Suspend(duration_s=600, ack=ack("STOP-002")), applied=False)
    ]
    assert link.pump.mode == "infusing"
    assert s.state == "ready"


def test_a_command_the_pump_refused_resolves_as_not_applied() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    link.pump.drain_battery(100, link.now)  # the pump will refuse anything now
    link.exchange(s.set_rate(800), lose_reply=True)
    link.exchange(s.response_lost())
    (resolved,) = [e for e in link.exchange(s.resolve()) if isinstance(e, Resolved)]
    assert resolved.applied is False
    assert isinstance(resolved.reply, Nack)
    assert resolved.reply.code is ErrorCode.HARDWARE_FAULT


def test_a_non_delivery_command_is_simply_sent_again() -> None:
    link = Link.new()
    s = link.ready()
    s.draft(PRESCRIPTION)
    s.check()
    link.exchange(s.send_stage(), lose_reply=True)
    link.exchange(s.response_lost())  # the identical StagePrescription, same id: the stored reply
    assert s.state == "awaiting_confirmation"
    staged = link.pump.therapy.staged
    assert staged is not None
    assert s.summary is not None
    assert (s.summary.stage_id, s.summary.digest) == (staged.stage_id, staged.digest)


def test_withdrawal_guard() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.suspend(0, ack("STOP-002")))
    link.exchange(s.read_status())
    assert s.pump.stopped
    with pytest.raises(AcknowledgementRequired, match="STOP-001"):
        s.end()
    assert s.state == "ready"
    link.exchange(s.end(ack("STOP-001")))
    assert s.state == "closed"
    assert EventCode.SESSION_ENDED_STOPPED in [e.code for e in link.pump.log.page(0, 100)]


def test_device_refuses_an_unacknowledged_stop_even_from_a_careless_programmer() -> None:
    pump = new_pump(programmed())
    answer(pump, Suspend(duration_s=0, ack=ack("STOP-002")), 90)
    reply = answer(pump, SessionEnd(), 91)
    assert isinstance(reply, Nack)
    assert reply.rules == ("STOP-001",)


def test_refill_flow_with_discrepancy_acknowledgement() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.start_refill())
    assert s.pump.refill is not None
    link.exchange(s.record_residual(s.pump.refill.expected_residual_ul - 5_000))
    assert s.pump.residual is not None
    assert s.pump.residual.needs_acknowledgement
    link.exchange(s.stage_drug(15_000, 500))  # 5 mL may still be in it: 15 mL fill it
    assert s.state == "refill_staged"
    with pytest.raises(SessionError, match="differs"):
        s.confirm_refill_drug(14_000, 500, ack=ack("REFILL-003"))
    with pytest.raises(AcknowledgementRequired, match="REFILL-003"):
        s.confirm_refill_drug(15_000, 500)
    link.exchange(s.confirm_refill_drug(15_000, 500, ack=ack("REFILL-003")))
    assert s.state == "ready"
    assert link.pump.therapy.reservoir_ul == 15_000
    logged = [e.detail for e in link.pump.log.page(0, 100) if e.code is EventCode.ACKNOWLEDGED]
    assert logged == ["REFILL-003 by test"]


def test_alarms_are_announced_and_critical_ones_again() -> None:
    link = Link.new(programmed())
    s = link.ready()
    (announced,) = link.deliver(link.firmware.notify(link.pump.set_motor_stalled(True, link.now)))
    assert isinstance(announced, AlarmAnnounced)
    assert announced.alarm.code is AlarmCode.MOTOR_STALL
    assert s.due_alarms(link.now + 599, 600) == []
    assert s.due_alarms(link.now + 600, 600) == [announced]
    with pytest.raises(SafetyViolation, match="ALARM-001"):
        s.silence_alarm(announced.alarm.alarm_id, 3_600)  # a critical alarm: at most 600 s
    link.exchange(s.silence_alarm(announced.alarm.alarm_id, 600))
    assert link.wait(600) != []  # the pump sounds it again when the silence runs out
    link.exchange(s.acknowledge_alarm(announced.alarm.alarm_id))
    assert s.due_alarms(link.now + 2_000, 600) == []
    # the pump re-annunciates the acknowledged critical alarm after its period
    assert link.wait(600) != []


def test_invalid_steps_raise_and_change_nothing() -> None:
    link = Link.new()
    s = link.session
    with pytest.raises(SessionError):
        s.send_stage()
    assert s.state == "disconnected"
    s2 = link.ready()
    with pytest.raises(SessionError):
        s2.confirm_summary(0)
    assert s2.state == "ready"
    with pytest.raises(SessionError):
        s2.resolve()


# --- the pump ------------------------------------------------------------------------------------------


def test_commit_needs_the_staged_id_and_digest() -> None:
    pump = new_pump()
    staged = answer(pump, StagePrescription(prescription=prescription()), 1, T0)
    assert isinstance(staged, PrescriptionStaged)
    wrong = answer(pump, CommitPrescription(stage_id=staged.stage_id, digest=staged.digest ^ 1), 2, T0)
    assert isinstance(wrong, Nack)
    assert wrong.code is ErrorCode.STALE_STAGE
    assert pump.mode == "stopped"
    assert isinstance(
        answer(pump, CommitPrescription(stage_id=staged.stage_id, digest=staged.digest), 3, T0), Ack
    )
    assert pump.mode == "infusing"


def test_the_staged_digest_is_the_crc32_of_the_stage_payload() -> None:
    import binascii

    request = StagePrescription(prescription=prescription())
    staged = answer(new_pump(), request, 1, T0)
    assert isinstance(staged, PrescriptionStaged)
    assert staged.digest == binascii.crc32(request.CODEC.encode(request))


def test_bolus_ends_by_itself_and_suspension_expires() -> None:
    pump = new_pump(programmed())
    answer(pump, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=20, duration_s=600), 1, T0)
    assert pump.mode == "bolus"
    pump.tick(T0 + 601)
    assert pump.mode == "infusing"
    answer(pump, Suspend(duration_s=600, ack=ack("STOP-002")), 2, T0 + 700)
    assert pump.mode == "suspended"
    pump.tick(T0 + 1_301)
    assert pump.mode == "infusing"
    assert [
        e.code
        for e in pump.log.page(0, 100)
        if e.code in (EventCode.BOLUS_COMPLETED, EventCode.RESUMED) and e.txn == 0
    ] == [EventCode.BOLUS_COMPLETED, EventCode.RESUMED]


def test_refill_times_out() -> None:
    pump = new_pump(programmed())
    answer(pump, RefillBegin(), 1, T0)
    assert pump.mode == "refill_begun"
    pump.tick(T0 + REFILL_TIMEOUT_S)
    assert pump.mode == "infusing"
    assert pump.therapy.refill is None


def test_a_refill_begun_while_suspended_delivers_nothing() -> None:
    """Found rewriting the pump: delivery ran during a refill begun while suspended."""
    pump = new_pump(programmed())
    answer(pump, Suspend(duration_s=0, ack=ack("STOP-002")), 1, T0)
    answer(pump, RefillBegin(), 2, T0)
    before = pump.therapy.reservoir_scaled
    pump.tick(T0 + 1_800)
    assert pump.therapy.reservoir_scaled == before
    assert pump.status().mode is TherapyMode.REFILL
    assert pump.status().rate_ul_day == 0


def test_wrong_state_is_a_typed_nack_and_changes_nothing() -> None:
    pump = new_pump(programmed())
    answer(pump, RefillBegin(), 1, T0)
    before = pump.state.therapy
    reply = answer(pump, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=20, duration_s=600), 2, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.WRONG_STATE
    assert (pump.mode, pump.state.therapy) == ("refill_begun", before)
    assert isinstance(answer(pump, Resume(), 3, T0), Nack)


def test_end_of_service_stops_everything_and_status_says_so() -> None:
    pump = new_pump(programmed())
    pump.drain_battery(100, T0 + 10)
    assert pump.mode == "end_of_service"
    assert AlarmCode.BATTERY_EOS in pump.status().alarms
    reply = answer(pump, SetRate(rate_ul_day=700), 1, T0 + 20)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.HARDWARE_FAULT
    status = pump.status()
    assert (status.mode, status.rate_ul_day) == (TherapyMode.END_OF_SERVICE, 0)


def test_an_empty_reservoir_halts_and_status_says_so() -> None:
    pump = new_pump(replace(programmed(), reservoir_scaled=2_100 * DAY))
    pump.tick(T0 + 1)
    assert AlarmCode.LOW_RESERVOIR in pump.status().alarms  # 2.1 mL at 0.8 mL/day: empty within 7 days
    pump.tick(T0 + 3 * DAY)
    status = pump.status()
    assert AlarmCode.EMPTY_RESERVOIR in status.alarms
    assert AlarmCode.LOW_RESERVOIR not in status.alarms
    assert (status.mode, status.rate_ul_day) == (TherapyMode.HALTED, 0)
    (empty,) = [a for a in pump.therapy.alarms if a.code is AlarmCode.EMPTY_RESERVOIR]
    assert empty.severity is Severity.CRITICAL


def test_a_stalled_motor_halts_and_status_says_so() -> None:
    pump = new_pump(programmed())
    pump.set_motor_stalled(True, T0 + 5)
    status = pump.status()
    assert (status.mode, status.rate_ul_day) == (TherapyMode.HALTED, 0)
    pump.set_motor_stalled(False, T0 + 6)
    assert pump.status().mode is TherapyMode.INFUSING


@pytest.mark.parametrize("profile", ["itb-20", "itb-40"])
def test_alarm_thresholds_come_from_the_device_profile(profile: str) -> None:
    """Issue 12: the 20 mL thresholds were hard-coded; itb-40's were never read."""
    p = load_profile(profile)
    state = TherapyState.new(
        now=T0, profile=p, drug=empty_pump().drug, concentration_ug_ml=500, reservoir_ul=1
    )
    assert state.thresholds.low_reservoir_ul == p.low_reservoir_ul
    assert state.thresholds == p.thresholds


def test_status_reports_the_pump() -> None:
    pump = new_pump(programmed())
    status = pump.status()
    assert isinstance(status, StatusReport)
    assert status.mode is TherapyMode.INFUSING
    assert status.rate_ul_day == 800
    assert status.delivered_24h_ng == 400_000
    assert mode_of(pump.therapy) == pump.mode


def test_event_pages_and_history_fit_the_programmers_frame() -> None:
    from itbproto.core.machines import Session
    from itbproto.core.wire import MIN_MAX_FRAME, ReadHistory, encode

    pump = new_pump(programmed())
    for i in range(40):
        answer(pump, SetClock(device_time=T0 + 60 * (i + 1)), 10 + i, T0 + 60 * i)
    small = Session(role=Role.CLINICIAN, max_frame=MIN_MAX_FRAME)
    page = pump.handle(EventLogRead(first=0, count=32), 1, T0 + 3_000, small).reply
    history = pump.handle(ReadHistory(), 2, T0 + 3_000, small).reply
    for reply in (page, history):
        assert len(encode(reply, txn=1)) + 6 <= MIN_MAX_FRAME  # room for the 8-byte sealed trailer too
    assert 0 < len(page.events) < 32  # type: ignore[attr-defined]


# --- sessions, roles and transactions -----------------------------------------------------------------


def test_nothing_before_hello_and_nothing_after_session_end() -> None:
    pump = new_pump(programmed())
    from itbproto.core.machines import CLOSED

    reply = pump.handle(StatusRequest(), 1, T0, CLOSED).reply
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.NOT_AUTHENTICATED
    assert isinstance(pump.handle(StatusRequest(), 2, T0, CLINICIAN).reply, StatusReport)
    ended = pump.handle(SessionEnd(), 3, T0, CLINICIAN)
    assert ended.session == CLOSED
    after = pump.handle(StatusRequest(), 4, T0, ended.session).reply
    assert isinstance(after, Nack)
    assert after.code is ErrorCode.NOT_AUTHENTICATED


@pytest.mark.parametrize(
    ("role", "request_", "allowed"),
    [
        (Role.PATIENT, SetRate(rate_ul_day=800), False),
        (Role.PATIENT, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=10, duration_s=600), False),
        (Role.PATIENT, BolusStart(kind=BolusKind.PATIENT, volume_ul=10, duration_s=600), True),
        (Role.PATIENT, StatusRequest(), True),
        (Role.SERVICE, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=10, duration_s=600), False),
        (Role.SERVICE, SetClock(device_time=T0 + 10), True),
        (Role.CLINICIAN, SetRate(rate_ul_day=800), True),
    ],
)
def test_roles(role: Role, request_: Message, allowed: bool) -> None:
    reply = answer(new_pump(programmed()), request_, 5, T0, role)
    refused = isinstance(reply, Nack) and reply.code is ErrorCode.ROLE_FORBIDDEN
    assert refused is not allowed


def test_a_patient_programmer_cannot_even_send_clinician_commands() -> None:
    link = Link.new(programmed(), role=Role.PATIENT)
    s = link.ready()
    with pytest.raises(SessionError, match="patient may not send"):
        s.set_rate(800)
    with pytest.raises(SessionError, match="only the patient bolus"):
        s.start_bolus(BolusKind.CLINICIAN, 10, 600)


def test_a_response_sent_as_a_request_is_refused() -> None:
    reply = answer(new_pump(programmed()), Ack(request=MsgType.SET_RATE, applied_at=0), 1, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.UNKNOWN_MESSAGE


def test_a_retried_transaction_is_never_applied_twice() -> None:
    pump = new_pump(programmed(prescription(max_bolus_ng=100_000)))
    bolus = BolusStart(kind=BolusKind.CLINICIAN, volume_ul=50, duration_s=3600)
    first = answer(pump, bolus, 50, T0)
    again = answer(pump, bolus, 50, T0 + 5)
    assert first == again
    assert len([b for b in pump.therapy.boluses if b.kind is BolusKind.CLINICIAN]) == 1
    stale = answer(pump, bolus, 49, T0 + 5)
    assert isinstance(stale, Nack)
    assert stale.code is ErrorCode.REPLAY


def test_a_different_request_reusing_a_transaction_id_gets_its_own_error() -> None:
    """Issue 12: the stored reply was keyed on the id alone."""
    pump = new_pump(programmed())
    answer(pump, SetRate(rate_ul_day=800), 6, T0)
    before = pump.state
    reply = answer(pump, Suspend(duration_s=60, ack=ack("STOP-002")), 6, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.TXN_REUSED
    assert pump.state == before
    assert pump.log.page(pump.log.total - 1, 1)[0].code is EventCode.COMMAND_REFUSED


def test_transaction_id_zero_is_refused() -> None:
    """Issue 12: a request with txn 0 was accepted."""
    pump = new_pump(programmed())
    reply = answer(pump, SetRate(rate_ul_day=800), 0, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.BAD_TXN


def test_after_session_end_a_reused_id_is_not_authenticated() -> None:
    """Issue 12: a Resume reusing SessionEnd's id got the stored Ack."""
    pump = new_pump(programmed())
    ended = pump.handle(SessionEnd(), 7, T0, CLINICIAN)
    reply = pump.handle(Resume(), 7, T0, ended.session).reply
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.NOT_AUTHENTICATED


def test_a_refused_command_uses_its_id_and_its_retry_gets_the_same_refusal() -> None:
    pump = new_pump(programmed())
    refused = answer(pump, Resume(), 9, T0)  # nothing to resume
    assert isinstance(refused, Nack)
    assert pump.state.last_txn == 9
    assert answer(pump, Resume(), 9, T0) == refused


def test_the_id_space_cannot_be_exhausted_by_one_jump() -> None:
    pump = new_pump(programmed())
    reply = answer(pump, SetRate(rate_ul_day=800), 2**32 - 1, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.BAD_TXN
    assert pump.state.last_txn == 0


def test_commit_with_the_real_ids_from_the_factories() -> None:
    from itbproto.core.therapy import apply

    staged = apply(empty_pump(), StagePrescription(prescription=prescription()))
    assert apply(staged, commit(staged)).prescription == prescription()
    assert POLICY is not None


def test_a_safety_refusal_with_units_in_its_reason_can_be_sent() -> None:
    """Issue 12: the Nack's reason said "250 µg", which is not ASCII, so the refusal could not be encoded."""
    pump = new_pump()
    reply = answer(pump, BolusStart(kind=BolusKind.CLINICIAN, volume_ul=500, duration_s=3600), 1, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.SAFETY_RULE
    assert "250 ug" in reply.detail
    from itbproto.core.wire import decode, encode

    assert decode(encode(reply, txn=1)).message == reply


def test_a_long_reason_is_cut_to_fit() -> None:
    nack = Nack.refusing(
        MsgType.SET_RATE, ErrorCode.SAFETY_RULE, "µ" * 200, tuple(f"R-{i}" for i in range(12))
    )
    assert len(nack.detail) == 96
    assert nack.detail.endswith("...")
    assert len(nack.rules) == 8


def test_a_command_that_makes_an_alarm_condition_true_raises_it_at_once() -> None:
    """Found by the any-message property: a new low-reservoir threshold waited for the next tick."""
    from itbproto.core.wire import AlarmThresholds, SetThresholds

    pump = new_pump(programmed())
    low = AlarmThresholds(low_reservoir_ul=19_000, low_reservoir_days=7, eri_lead_days=90, reannunciate_s=600)
    answered = pump.handle(SetThresholds(thresholds=low), 1, T0, CLINICIAN)
    assert [n.alarm.code for n in answered.notifications] == [AlarmCode.LOW_RESERVOIR]


def test_a_pump_built_under_a_tighter_policy_starts_with_alarm_thresholds_within_it() -> None:
    """RES-001, BATT-002, ALARM-001: the profile's defaults raised (or lowered) to what the policy asks."""
    from itbproto.core.safety import SafetyPolicy
    from itbproto.io.specfiles import load_rules

    strict = SafetyPolicy(
        load_rules(),
        {
            "RES-001.min_low_reservoir_ul": 3_000,
            "RES-001.min_low_reservoir_days": 10,
            "BATT-002.min_eri_lead_days": 120,
            "ALARM-001.max_reannunciate_s": 300,
        },
    )
    pump = PumpMachine.new(empty_pump(), strict)
    t = pump.therapy.thresholds
    assert (t.low_reservoir_ul, t.low_reservoir_days, t.eri_lead_days, t.reannunciate_s) == (
        3_000,
        10,
        120,
        300,
    )
    assert PumpMachine.new(empty_pump(), POLICY).therapy.thresholds == empty_pump().thresholds
