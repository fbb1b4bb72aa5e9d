"""The pump and session machines: every flow by example, and the committed diagrams."""

from __future__ import annotations

from dataclasses import replace

import pytest

from conftest import ROOT
from factories import DAY, POLICY, T0, empty_pump, prescription, programmed
from itbproto.errors import SafetyViolation, SessionError
from itbproto.machines import (
    ALARM,
    PUMP,
    SESSION,
    AlarmAnnounced,
    PumpMachine,
    Refused,
    Resolved,
    Verified,
    state_of,
)
from itbproto.machines.pump import REFILL_TIMEOUT_S
from itbproto.samples import PRESCRIPTION
from itbproto.therapy import Battery
from itbproto.wire import (
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
from machines_link import Link, open_pump, say_hello


@pytest.mark.parametrize("definition", [PUMP, SESSION, ALARM], ids=lambda d: d.name)
def test_committed_diagram_matches_the_machine(definition: object) -> None:
    from itbproto.machines import Definition

    assert isinstance(definition, Definition)
    committed = (ROOT / "specs" / "diagrams" / f"{definition.name}.mmd").read_text(encoding="utf-8")
    assert committed == definition.mermaid(), "run `itbproto specs --write`"


# --- the programmer's session -------------------------------------------------------------------------


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


def test_a_session_programs_confirms_and_verifies() -> None:
    link = Link.new()
    s = link.ready()
    events = program(link)
    assert Verified(PRESCRIPTION) in events
    assert s.state == "ready"
    assert link.pump.state == "infusing"
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


def test_client_engine_refuses_before_sending() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_status())
    with pytest.raises(SafetyViolation) as info:
        s.start_bolus(BolusKind.CLINICIAN, 500, 3600)  # 250 µg > 50 µg max bolus
    assert "BOL-001" in info.value.rule_ids
    assert s.state == "ready"
    assert s.pending is None


def test_pump_refusal_reaches_the_session_and_changes_nothing() -> None:
    # another programmer raised the dose an hour ago; this one only sees the dose in force now
    link = Link.new(programmed(prescription(max_daily_dose_ng=1_000_000)))
    say_hello(link.pump).handle(SetRate(rate_ul_day=900), 1_000, link.now)
    link.now += 3600
    s = link.ready()
    link.exchange(s.read_prescription())
    before = link.pump.therapy
    events = link.exchange(s.set_rate(1_000))  # +11 %: fine for its mirror, a second increase for the pump
    (refused,) = [e for e in events if isinstance(e, Refused)]
    assert refused.nack.code is ErrorCode.SAFETY_RULE
    assert refused.nack.rules == ("TITR-002",)
    assert link.pump.therapy == before
    assert s.state == "ready"


def test_programmer_refuses_what_it_cannot_check() -> None:
    link = Link.new(programmed())
    s = link.ready()  # status read, prescription not read
    with pytest.raises(SessionError, match="known here"):
        s.set_rate(900)
    assert s.state == "ready"


@pytest.mark.parametrize("lose", [True, False])
def test_lost_reply_is_resolved_from_last_txn_before_anything_else(lose: bool) -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_status())
    out = s.suspend(600)
    link.exchange(out, lose_reply=True)  # the pump applied it; the reply was lost
    if lose:
        s.disconnected()
        with pytest.raises(SessionError):
            s.resume()  # nothing may be sent while the suspend is uncertain
        link.exchange(s.open())
        events = link.exchange(s.authenticated())
    else:
        events = link.exchange(s.response_lost())
    assert Resolved(out.message, applied=True) in events
    assert s.state == "ready"
    assert s.uncertain is None


def test_a_retried_transaction_is_never_applied_twice() -> None:
    link = Link.new(programmed(prescription(max_bolus_ng=100_000)))
    link.ready()
    bolus = BolusStart(kind=BolusKind.CLINICIAN, volume_ul=50, duration_s=3600)
    first = link.pump.handle(bolus, 50, link.now)
    again = link.pump.handle(bolus, 50, link.now + 5)
    assert first == again
    assert len([b for b in link.pump.therapy.boluses if b.kind is BolusKind.CLINICIAN]) == 1
    stale = link.pump.handle(bolus, 49, link.now + 5)
    assert isinstance(stale, Nack)
    assert stale.code is ErrorCode.REPLAY


def test_unapplied_command_resolves_as_not_applied() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_status())
    out = s.suspend(600)
    s.disconnected()  # lost before it reached the pump
    link.exchange(s.open())
    events = link.exchange(s.authenticated())
    assert Resolved(out.message, applied=False) in events
    assert link.pump.state == "infusing"


def test_withdrawal_guard() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.suspend(0))
    link.exchange(s.read_status())
    assert s.stopped
    with pytest.raises(SessionError, match="withdrawal"):
        s.end()
    assert s.state == "ready"
    link.exchange(s.end(acknowledge_stopped=True))
    assert s.state == "closed"
    log = say_hello(link.pump).handle(EventLogRead(first=0, count=32), 0, link.now)
    assert EventCode.SESSION_ENDED_STOPPED in [e.code for e in log.events]  # type: ignore[attr-defined]


def test_device_refuses_an_unacknowledged_stop_even_from_a_careless_programmer() -> None:
    link = Link.new(programmed())
    link.ready()
    link.pump.handle(Suspend(duration_s=0), 90, link.now)
    from itbproto.wire import SessionEnd

    reply = link.pump.handle(SessionEnd(acknowledge_stopped=False), 91, link.now)
    assert isinstance(reply, Nack)
    assert reply.rules == ("STOP-001",)


def test_refill_flow_with_discrepancy_acknowledgement() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.start_refill())
    assert s.refill is not None
    link.exchange(s.record_residual(s.refill.expected_residual_ul - 5_000))
    assert s.residual is not None
    assert s.residual.needs_acknowledgement
    link.exchange(s.stage_drug(20_000, 500))
    assert s.state == "refill_staged"
    with pytest.raises(SessionError, match="differs"):
        s.confirm_refill_drug(19_000, 500, discrepancy_acknowledged=True)
    with pytest.raises(SessionError, match="discrepancy"):
        s.confirm_refill_drug(20_000, 500)
    link.exchange(s.confirm_refill_drug(20_000, 500, discrepancy_acknowledged=True))
    assert s.state == "ready"
    assert link.pump.therapy.reservoir_ul == 20_000


def test_alarms_are_announced_and_critical_ones_again() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.pump.set_motor_stalled(True, link.now)
    (announced,) = link.deliver_alarms()
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


def test_invalid_triggers_raise_and_change_nothing() -> None:
    link = Link.new()
    s = link.session
    with pytest.raises(SessionError):
        s.send_stage()
    assert s.state == "disconnected"
    s2 = link.ready()
    with pytest.raises(SessionError):
        s2.confirm_summary(0)
    assert s2.state == "ready"


# --- the pump ------------------------------------------------------------------------------------------


def pump_with(p: object = None) -> PumpMachine:
    return open_pump(programmed(p) if p is not None else programmed())  # type: ignore[arg-type]


def test_commit_needs_the_staged_id_and_digest() -> None:
    pump = open_pump(empty_pump())
    staged = pump.handle(StagePrescription(prescription=prescription()), 1, T0)
    assert isinstance(staged, PrescriptionStaged)
    wrong = pump.handle(CommitPrescription(stage_id=staged.stage_id, digest=staged.digest ^ 1), 2, T0)
    assert isinstance(wrong, Nack)
    assert wrong.code is ErrorCode.STALE_STAGE
    assert pump.state == "stopped"
    assert pump.handle(CommitPrescription(stage_id=staged.stage_id, digest=staged.digest), 3, T0).TYPE == 0x7E
    assert pump.state == "infusing"


def test_bolus_ends_by_itself_and_suspension_expires() -> None:
    pump = pump_with()
    pump.handle(BolusStart(kind=BolusKind.CLINICIAN, volume_ul=20, duration_s=600), 1, T0)
    assert pump.state == "bolus"
    pump.tick(T0 + 601)
    assert pump.state == "infusing"
    pump.handle(Suspend(duration_s=600), 2, T0 + 700)
    assert pump.state == "suspended"
    pump.tick(T0 + 1_301)
    assert pump.state == "infusing"


def test_refill_times_out() -> None:
    pump = pump_with()
    pump.handle(RefillBegin(), 1, T0)
    assert pump.state == "refill_begun"
    pump.tick(T0 + REFILL_TIMEOUT_S)
    assert pump.state == "infusing"
    assert pump.therapy.refill is None


def test_wrong_state_is_a_typed_nack_and_changes_nothing() -> None:
    pump = pump_with()
    pump.handle(RefillBegin(), 1, T0)
    before = pump.therapy
    reply = pump.handle(BolusStart(kind=BolusKind.CLINICIAN, volume_ul=20, duration_s=600), 2, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.WRONG_STATE
    assert (pump.state, pump.therapy) == ("refill_begun", before)
    resume = pump.handle(Resume(), 3, T0)
    assert isinstance(resume, Nack)


def test_end_of_service_stops_everything() -> None:
    pump = pump_with()
    pump.set_battery(Battery.EOS, T0 + 10)
    assert pump.state == "end_of_service"
    assert AlarmCode.BATTERY_EOS in pump.alarms
    reply = pump.handle(SetRate(rate_ul_day=700), 1, T0 + 20)
    assert isinstance(reply, Nack)
    status = pump.status()
    assert status.rate_ul_day == 0 or pump.therapy.battery is Battery.EOS


def test_low_and_empty_reservoir_alarms() -> None:
    pump = PumpMachine(replace(programmed(), reservoir_scaled=2_100 * DAY), POLICY)
    pump.tick(T0 + 1)
    assert AlarmCode.LOW_RESERVOIR in pump.alarms  # 2.1 mL at 0.8 mL/day: empty within 7 days
    pump.tick(T0 + 3 * DAY)
    assert AlarmCode.EMPTY_RESERVOIR in pump.alarms
    assert AlarmCode.LOW_RESERVOIR not in pump.alarms
    assert pump.alarms[AlarmCode.EMPTY_RESERVOIR].record.severity is Severity.CRITICAL


def test_status_reports_the_pump() -> None:
    pump = pump_with()
    status = pump.status()
    assert isinstance(status, StatusReport)
    assert status.mode is TherapyMode.INFUSING
    assert status.rate_ul_day == 800
    assert status.delivered_24h_ng == 400_000
    assert state_of(pump.therapy) == pump.state


# --- roles and sessions -------------------------------------------------------------------------------


def test_nothing_before_hello_and_nothing_after_session_end() -> None:
    pump = PumpMachine(programmed(), POLICY)
    reply = pump.handle(StatusRequest(), 1, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.NOT_AUTHENTICATED
    say_hello(pump)
    assert isinstance(pump.handle(StatusRequest(), 2, T0), StatusReport)
    pump.handle(SessionEnd(acknowledge_stopped=False), 3, T0)
    after = pump.handle(StatusRequest(), 4, T0)
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
    pump = open_pump(programmed(), role)
    reply = pump.handle(request_, 5, T0)
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
    reply = open_pump(programmed()).handle(Ack(request=MsgType.SET_RATE, applied_at=0), 1, T0)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.UNKNOWN_MESSAGE
