"""One handler per request: how the pump answers it, what it moves, what it logs.

The common steps (session, role, transaction id, end of service) are the
pump's (:mod:`itbproto.core.machines.pump.machine`); a handler adds what is specific:
whether the safety engine checks and the therapy model applies it, the move it
makes in the mode table, the event it logs, how it changes the link's session,
and the reply it builds from the state before and after.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from itbproto.core.machines.alarm import ALARM
from itbproto.core.machines.pump import reports
from itbproto.core.machines.pump.log import EventLog
from itbproto.core.machines.pump.state import CLOSED, DeviceState, Session
from itbproto.core.safety import SafetyPolicy, evaluate, residual_needs_acknowledgement
from itbproto.core.therapy.alarms import alarm_state
from itbproto.core.therapy.flows import SCALE, bolus_dose_ng, scaled_to_ng
from itbproto.core.therapy.schedule import daily_dose_scaled
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import ErrorCode, EventCode
from itbproto.core.wire.message import Message
from itbproto.errors import TherapyStateError
from itbproto.units import Rounding

__all__ = ["EOS_ALLOWED", "HANDLERS", "Handler", "Refusal", "Step"]


class Refusal(Exception):  # noqa: N818  (not an error: the pump's answer is a Nack)
    """The pump refuses the request: it answers with a Nack and changes nothing."""

    def __init__(self, code: ErrorCode, detail: str, rules: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.code, self.detail, self.rules = code, detail, rules


@dataclass(frozen=True, slots=True)
class Step:
    """One request being answered: what a handler sees."""

    request: Message
    txn: int
    session: Session
    before: DeviceState
    after: DeviceState
    policy: SafetyPolicy
    log: EventLog


@dataclass(frozen=True, slots=True)
class Handler:
    """How the pump answers one request type."""

    reply: Callable[[Step], Message]
    #: checked by the safety engine and applied to the therapy (every command but Hello's kind)
    engine: bool = True
    #: the move a command makes in the mode table (None: the mode stays)
    trigger: str | None = None
    #: what the event log records when the request is applied
    event: EventCode | Callable[[Step], EventCode] | None = None
    #: how the request changes the link's session
    session: Callable[[Session, Message], Session] | None = None
    #: protocol checks on the result, before anything is kept
    check: Callable[[Step], None] | None = None


def _ack(step: Step) -> Message:
    return m.Ack(request=step.request.TYPE, applied_at=step.after.therapy.now)


def _refuse(code: ErrorCode, detail: str) -> Callable[[Step], Message]:
    def reply(step: Step) -> Message:
        raise Refusal(code, detail)

    return reply


def _open(session: Session, request: Message) -> Session:
    assert isinstance(request, m.Hello)
    return Session(role=request.role, max_frame=request.max_frame, client=request.client)


def _ended(step: Step) -> EventCode:
    return EventCode.SESSION_ENDED if step.before.therapy.delivering else EventCode.SESSION_ENDED_STOPPED


def _prescription(step: Step) -> Message:
    t = step.before.therapy
    if t.prescription is None:
        raise Refusal(ErrorCode.WRONG_STATE, "no prescription in force")
    return m.PrescriptionReport(
        prescription_id=t.prescription_id, committed_at=t.committed_at, prescription=t.prescription
    )


def _staged(step: Step) -> Message:
    therapy = step.after.therapy
    staged = therapy.staged
    assert staged is not None
    daily = scaled_to_ng(daily_dose_scaled(staged.prescription), Rounding.UP)  # what the user confirms
    try:  # the hazards the commit will meet: the summary shows them and the commit acknowledges them
        hazards = evaluate(staged.commit, therapy, step.policy).to_acknowledge
    except TherapyStateError:
        hazards = ()
    return m.PrescriptionStaged(
        stage_id=staged.stage_id,
        digest=staged.digest,
        daily_dose_ng=daily,
        acknowledge=hazards[: m.MAX_ACKNOWLEDGED],
    )


def _patient_record(step: Step) -> Message:
    records = step.before.therapy.records[-m.MAX_HISTORY_DOSES :]
    return m.PatientRecordReport(records=tuple(m.RecordChange(since=max(0, t), record=r) for t, r in records))


def _bolus_started(step: Step) -> Message:
    t = step.after.therapy
    assert t.bolus is not None
    b = t.bolus
    return m.BolusStarted(
        bolus_id=b.bolus_id, dose_ng=bolus_dose_ng(b.volume_ul, t.concentration_ug_ml), ends_at=b.end
    )


def _bolus_cancelled(step: Step) -> Message:
    bolus, now = step.before.therapy.bolus, step.before.therapy.now
    assert bolus is not None
    given = sum(f.rate_ul_day * f.overlap(bolus.start, now) for f in bolus.flows) // SCALE
    return m.BolusCancelled(
        bolus_id=bolus.bolus_id, delivered_ul=given, not_delivered_ul=bolus.volume_ul - given
    )


def _refill_session(step: Step) -> Message:
    t = step.after.therapy
    assert t.refill is not None
    return m.RefillSession(
        refill_id=t.refill.refill_id,
        expected_residual_ul=t.refill.expected_residual_ul,
        capacity_ul=t.profile.reservoir_capacity_ul,
    )


def _residual(step: Step) -> Message:
    refill = step.after.therapy.refill
    assert refill is not None
    assert refill.measured_ul is not None
    expected, measured = refill.expected_residual_ul, refill.measured_ul
    return m.ResidualRecorded(
        refill_id=refill.refill_id,
        expected_ul=expected,
        measured_ul=measured,
        discrepancy_ul=measured - expected,
        needs_acknowledgement=residual_needs_acknowledgement(step.policy, expected, measured),
    )


def _refill_staged(step: Step) -> Message:
    refill = step.after.therapy.refill
    assert refill is not None
    assert refill.staged_volume_ul is not None
    assert refill.staged_conc_ug_ml is not None
    assert refill.digest is not None
    return m.RefillStaged(
        refill_id=refill.refill_id,
        volume_ul=refill.staged_volume_ul,
        concentration_ug_ml=refill.staged_conc_ug_ml,
        digest=refill.digest,
    )


def _alarm_move(trigger: str) -> Callable[[Step], None]:
    """The alarm table decides whether an acknowledge or silence may move this alarm."""

    def check(step: Step) -> None:
        alarm_id = getattr(step.request, "alarm_id")  # noqa: B009  (both alarm requests carry it)
        before = next(a for a in step.before.therapy.alarms if a.alarm_id == alarm_id)
        after = next(a for a in step.after.therapy.alarms if a.alarm_id == alarm_id)
        if not ALARM.allows(trigger, alarm_state(before), alarm_state(after)):
            raise Refusal(
                ErrorCode.WRONG_STATE, f"alarm {alarm_id} is {alarm_state(before)}: cannot {trigger} it"
            )

    return check


def _event_page(step: Step) -> Message:
    assert isinstance(step.request, m.EventLogRead)
    return reports.event_page(step.log, step.request, step.session.max_frame)


def _read(fn: Callable[[Step], Message]) -> Handler:
    return Handler(reply=fn, engine=False)


HANDLERS: dict[type[Message], Handler] = {
    m.Hello: Handler(
        reply=lambda s: reports.device_info(s.before),
        engine=False,
        event=EventCode.SESSION_STARTED,
        session=_open,
    ),
    m.SessionEnd: Handler(reply=_ack, event=_ended, session=lambda _s, _r: CLOSED),
    m.PairStart: Handler(
        reply=_refuse(ErrorCode.WRONG_STATE, "pairing comes with the security layer"), engine=False
    ),
    m.PairConfirm: Handler(
        reply=_refuse(ErrorCode.WRONG_STATE, "pairing comes with the security layer"), engine=False
    ),
    m.StatusRequest: _read(lambda s: reports.status(s.before)),
    m.SetClock: Handler(reply=_ack, event=EventCode.CLOCK_SET),
    m.ReadPrescription: _read(_prescription),
    m.StagePrescription: Handler(reply=_staged, event=EventCode.PRESCRIPTION_STAGED),
    m.CommitPrescription: Handler(reply=_ack, trigger="commit", event=EventCode.PRESCRIPTION_COMMITTED),
    m.SetRate: Handler(reply=_ack, trigger="set_rate", event=EventCode.RATE_CHANGED),
    m.BolusStart: Handler(reply=_bolus_started, trigger="start_bolus", event=EventCode.BOLUS_STARTED),
    m.BolusCancel: Handler(reply=_bolus_cancelled, trigger="cancel_bolus", event=EventCode.BOLUS_CANCELLED),
    m.Suspend: Handler(reply=_ack, trigger="suspend", event=EventCode.SUSPENDED),
    m.Resume: Handler(reply=_ack, trigger="resume", event=EventCode.RESUMED),
    m.RefillBegin: Handler(reply=_refill_session, trigger="begin_refill", event=EventCode.REFILL_BEGUN),
    m.RefillResidual: Handler(reply=_residual, trigger="record_residual"),
    m.RefillStageDrug: Handler(reply=_refill_staged, trigger="stage_drug"),
    m.RefillConfirm: Handler(reply=_ack, trigger="confirm_refill", event=EventCode.REFILL_CONFIRMED),
    m.RefillAbort: Handler(reply=_ack, trigger="abort_refill", event=EventCode.REFILL_ABORTED),
    m.RecordProcedure: Handler(reply=_ack, trigger="record_procedure", event=EventCode.PROCEDURE_RECORDED),
    m.ReadPatientRecord: _read(_patient_record),
    m.SetPatientRecord: Handler(reply=_ack, event=EventCode.PATIENT_RECORD_SET),
    m.RecordScreeningResponse: Handler(reply=_ack, event=EventCode.SCREENING_RESPONSE),
    m.MriBegin: Handler(reply=_ack, trigger="begin_mri", event=EventCode.MRI_BEGUN),
    m.MriEnd: Handler(reply=_ack, trigger="end_mri", event=EventCode.MRI_ENDED),
    m.AlarmListRequest: _read(lambda s: m.AlarmList(alarms=s.before.therapy.alarms[: m.MAX_ALARMS])),
    m.AlarmAcknowledge: Handler(
        reply=_ack, event=EventCode.ALARM_ACKNOWLEDGED, check=_alarm_move("acknowledge")
    ),
    m.AlarmSilence: Handler(reply=_ack, event=EventCode.ALARM_SILENCED, check=_alarm_move("silence")),
    m.ReadThresholds: _read(lambda s: m.ThresholdsReport(thresholds=s.before.therapy.thresholds)),
    m.SetThresholds: Handler(reply=_ack, event=EventCode.THRESHOLDS_CHANGED),
    m.EventLogRead: _read(_event_page),
    m.ReadHistory: _read(lambda s: reports.history(s.before.therapy, s.session.max_frame)),
}

#: the commands a pump at end of service still takes (besides reads and Hello)
EOS_ALLOWED = (m.SessionEnd, m.AlarmAcknowledge, m.AlarmSilence)


def event_value(request: Message) -> int:
    """A number worth keeping in the log for the request: µL, µL/day, s, an id or a code."""
    names = (
        "rate_ul_day",
        "volume_ul",
        "duration_s",
        "alarm_id",
        "device_time",
        "procedure",
        "role",
        "phase",
    )
    for name in (*names, "response", "emptied_ul"):
        value = getattr(request, name, None)
        if isinstance(value, int):
            return int(value)
    return 0
