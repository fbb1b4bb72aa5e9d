"""ProgrammingSession: the programmer's side of a session, sans-IO.

Methods that send return an :class:`Outgoing` (message + transaction id) for the
transport to encode; :meth:`ProgrammingSession.receive` takes each decoded
:class:`~itbproto.wire.frame.Frame` and returns :class:`Event` values for the
app. The table :data:`SESSION` is the whole life of a session::

    disconnected → connecting → connected → authenticated → ready
    ready → draft → validated → staging → awaiting_confirmation → committing → verifying → ready
    ready → commanding → ready                          (rate, bolus, suspend, resume, alarms)
    ready → refill_begun → residual_recorded → refill_staged → refill_confirming → ready
    any request that changes delivery, reply lost → uncertain → (reconnect, status read) → ready
    ready → closing → closed                              (withdrawal guard: STOP-001)

The programmer checks every delivery change with the same safety engine the pump
uses, on a conservative mirror of the pump built from what it has read; the pump
checks again with its exact state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from itbproto.errors import SessionError, TherapyStateError
from itbproto.machines.definition import Definition, fire
from itbproto.safety import SafetyPolicy, evaluate
from itbproto.therapy.flows import SCALE, Flow, dose_between
from itbproto.therapy.profile import DeviceProfile, Drug
from itbproto.therapy.schedule import daily_dose_scaled
from itbproto.therapy.state import ActiveBolus, Battery, BolusRecord, RefillProgress, TherapyState
from itbproto.units import Rounding, divide
from itbproto.wire import messages as m
from itbproto.wire.enums import AlarmCode, BolusKind, Role, Severity, TherapyMode
from itbproto.wire.frame import Frame
from itbproto.wire.message import Message

__all__ = [
    "SESSION",
    "AlarmAnnounced",
    "Event",
    "Outgoing",
    "ProgrammingSession",
    "Refused",
    "Replied",
    "Resolved",
    "Summary",
    "Verified",
]

_WORKING = [
    "ready",
    "draft",
    "validated",
    "staging",
    "awaiting_confirmation",
    "committing",
    "verifying",
    "commanding",
    "refill_begun",
    "residual_recorded",
    "refill_staged",
    "refill_confirming",
    "closing",
]
_ONLINE = ["connecting", "connected", "authenticated", "uncertain", *_WORKING]

SESSION = Definition(
    name="session",
    states=("disconnected", *_ONLINE, "closed"),
    transitions=(
        {"trigger": "connect", "source": "disconnected", "dest": "connecting"},
        {"trigger": "device_known", "source": "connecting", "dest": "connected"},
        {"trigger": "authenticate", "source": "connected", "dest": "authenticated"},
        {"trigger": "status_read", "source": ["authenticated", "uncertain"], "dest": "ready"},
        {"trigger": "edit", "source": ["ready", "draft", "validated"], "dest": "draft"},
        {"trigger": "validate", "source": "draft", "dest": "validated"},
        {"trigger": "stage", "source": "validated", "dest": "staging"},
        {"trigger": "staged", "source": "staging", "dest": "awaiting_confirmation"},
        {"trigger": "confirm", "source": "awaiting_confirmation", "dest": "committing"},
        {"trigger": "commit_refused", "source": "committing", "dest": "awaiting_confirmation"},
        {"trigger": "committed", "source": "committing", "dest": "verifying"},
        {"trigger": "verified", "source": "verifying", "dest": "ready"},
        {"trigger": "discard", "source": ["draft", "validated", "awaiting_confirmation"], "dest": "ready"},
        {"trigger": "command", "source": "ready", "dest": "commanding"},
        {"trigger": "answered", "source": "commanding", "dest": "ready"},
        {"trigger": "begin_refill", "source": "ready", "dest": "refill_begun"},
        {"trigger": "residual_recorded_", "source": "refill_begun", "dest": "residual_recorded"},
        {"trigger": "refill_staged_", "source": "residual_recorded", "dest": "refill_staged"},
        {"trigger": "confirm_refill", "source": "refill_staged", "dest": "refill_confirming"},
        {"trigger": "refill_confirm_refused", "source": "refill_confirming", "dest": "refill_staged"},
        {
            "trigger": "refill_done",
            "source": ["refill_confirming", "refill_begun", "residual_recorded", "refill_staged"],
            "dest": "ready",
        },
        {"trigger": "refused", "source": ["staging", "verifying"], "dest": "ready"},
        {
            "trigger": "reply_lost",
            "source": ["committing", "commanding", "refill_confirming", "closing"],
            "dest": "uncertain",
        },
        {"trigger": "close", "source": "ready", "dest": "closing"},
        {"trigger": "closed_", "source": "closing", "dest": "closed"},
        {"trigger": "close_refused", "source": "closing", "dest": "ready"},
        {"trigger": "link_lost", "source": _ONLINE, "dest": "disconnected"},
    ),
    initial="disconnected",
)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A request to encode and send with this transaction id."""

    message: Message
    txn: int


@dataclass(frozen=True, slots=True)
class Summary:
    """What the user must confirm: old and new settings side by side, as the pump computed them."""

    old: m.Prescription | None
    new: m.Prescription
    daily_dose_ng: int
    stage_id: int
    digest: int


class Event:
    """Base of what :meth:`ProgrammingSession.receive` reports."""


@dataclass(frozen=True, slots=True)
class Replied(Event):
    reply: Message


@dataclass(frozen=True, slots=True)
class Refused(Event):
    nack: m.Nack


@dataclass(frozen=True, slots=True)
class Verified(Event):
    prescription: m.Prescription


@dataclass(frozen=True, slots=True)
class Resolved(Event):
    """The fate of a delivery change whose reply was lost, learned from the pump's last_txn."""

    request: Message
    applied: bool


@dataclass(frozen=True, slots=True)
class AlarmAnnounced(Event):
    """Annunciate this alarm to the user (again, for a critical alarm not yet acknowledged)."""

    alarm: m.AlarmRecord


class ProgrammingSession:
    """One programmer's session with one pump."""

    state: str

    def __init__(self, *, role: Role, profile: DeviceProfile, drug: Drug, policy: SafetyPolicy) -> None:
        self.role, self.profile, self.drug, self.policy = role, profile, drug, policy
        self.machine = SESSION.bind(self)
        self.device: m.DeviceInfo | None = None
        self.status: m.StatusReport | None = None
        self.prescription: m.Prescription | None = None
        self.draft_prescription: m.Prescription | None = None
        self.summary: Summary | None = None
        self.refill: m.RefillSession | None = None
        self.residual: m.ResidualRecorded | None = None
        self.refill_stage: m.RefillStaged | None = None
        self.history: m.TherapyHistory | None = None
        self.thresholds: m.AlarmThresholds | None = None
        self.alarms: dict[int, m.AlarmRecord] = {}
        self.announced_at: dict[int, int] = {}
        self.pending: Outgoing | None = None  # the request awaiting its reply
        self.uncertain: Outgoing | None = None  # a delivery change whose reply was lost
        self._txn = 0

    # --- trigger stubs, replaced by the machine (model_override=True) ---------------------------------

    def connect(self, *args: Any) -> bool:
        raise NotImplementedError

    def device_known(self, *args: Any) -> bool:
        raise NotImplementedError

    def authenticate(self, *args: Any) -> bool:
        raise NotImplementedError

    def status_read(self, *args: Any) -> bool:
        raise NotImplementedError

    def edit(self, *args: Any) -> bool:
        raise NotImplementedError

    def validate(self, *args: Any) -> bool:
        raise NotImplementedError

    def stage(self, *args: Any) -> bool:
        raise NotImplementedError

    def staged(self, *args: Any) -> bool:
        raise NotImplementedError

    def confirm(self, *args: Any) -> bool:
        raise NotImplementedError

    def commit_refused(self, *args: Any) -> bool:
        raise NotImplementedError

    def refill_confirm_refused(self, *args: Any) -> bool:
        raise NotImplementedError

    def close_refused(self, *args: Any) -> bool:
        raise NotImplementedError

    def committed(self, *args: Any) -> bool:
        raise NotImplementedError

    def verified(self, *args: Any) -> bool:
        raise NotImplementedError

    def discard(self, *args: Any) -> bool:
        raise NotImplementedError

    def command(self, *args: Any) -> bool:
        raise NotImplementedError

    def answered(self, *args: Any) -> bool:
        raise NotImplementedError

    def begin_refill(self, *args: Any) -> bool:
        raise NotImplementedError

    def residual_recorded_(self, *args: Any) -> bool:
        raise NotImplementedError

    def refill_staged_(self, *args: Any) -> bool:
        raise NotImplementedError

    def confirm_refill(self, *args: Any) -> bool:
        raise NotImplementedError

    def refill_done(self, *args: Any) -> bool:
        raise NotImplementedError

    def refused(self, *args: Any) -> bool:
        raise NotImplementedError

    def reply_lost(self, *args: Any) -> bool:
        raise NotImplementedError

    def close(self, *args: Any) -> bool:
        raise NotImplementedError

    def closed_(self, *args: Any) -> bool:
        raise NotImplementedError

    def link_lost(self, *args: Any) -> bool:
        raise NotImplementedError

    # --- link ----------------------------------------------------------------------------------------------

    def open(self, client: str = "itbproto") -> Outgoing:
        """Start a session: Hello."""
        self._fire("connect")
        return self._send(
            m.Hello(protocol_version=m.PROTOCOL_VERSION, role=self.role, max_frame=1045, client=client)
        )

    def authenticated(self) -> Outgoing:
        """The link is authenticated (pairing: the security layer); read the status next."""
        self._fire("authenticate")
        return self._send(m.StatusRequest())

    def disconnected(self) -> None:
        """The link dropped. A delivery change in flight becomes uncertain."""
        if self.pending is not None and self.pending.message.CHANGES_DELIVERY:
            self.uncertain = self.pending
        self.pending = None
        if self.state not in ("disconnected", "closed"):
            self._fire("link_lost")

    def response_lost(self) -> Outgoing:
        """No reply came (time-out): resolve by reading the pump's status before anything else."""
        if self.pending is None:
            raise SessionError("session", "response_lost", self.state, "no request is waiting for a reply")
        if self.pending.message.CHANGES_DELIVERY:
            self.uncertain = self.pending
            self._fire("reply_lost")
        self.pending = None
        return self._send(m.StatusRequest())

    # --- programming -----------------------------------------------------------------------------------

    def draft(self, prescription: m.Prescription) -> None:
        self._fire("edit")
        self.draft_prescription = prescription
        self.summary = None

    def check(self) -> None:
        """Validate the draft with the safety engine; SafetyViolation leaves it a draft."""
        if self.state != "draft" or self.draft_prescription is None:
            raise SessionError("session", "validate", self.state, "no draft")
        self._guard(m.StagePrescription(prescription=self.draft_prescription))
        self._fire("validate")

    def send_stage(self) -> Outgoing:
        """Step 1 of 2: the pump validates and stages the draft."""
        self._fire("stage")
        assert self.draft_prescription is not None
        return self._send(m.StagePrescription(prescription=self.draft_prescription))

    def confirm_summary(self, digest: int) -> Outgoing:
        """The user confirmed the summary they were shown (its digest); commit exactly that."""
        summary = self.summary
        if self.state != "awaiting_confirmation" or summary is None or summary.digest != digest:
            raise SessionError("session", "confirm", self.state, "confirm the summary that was shown")
        self._fire("confirm")
        return self._send(m.CommitPrescription(stage_id=summary.stage_id, digest=summary.digest))

    def verify(self) -> Outgoing:
        """After the commit was acknowledged: read the prescription back and compare."""
        if self.state != "verifying":
            raise SessionError("session", "verify", self.state, "nothing committed to verify")
        return self._send(m.ReadPrescription())

    def cancel_draft(self) -> None:
        self._fire("discard")
        self.draft_prescription = self.summary = None

    # --- single commands -------------------------------------------------------------------------------

    def set_rate(self, rate_ul_day: int) -> Outgoing:
        return self._command(m.SetRate(rate_ul_day=rate_ul_day))

    def start_bolus(self, kind: BolusKind, volume_ul: int, duration_s: int) -> Outgoing:
        return self._command(m.BolusStart(kind=kind, volume_ul=volume_ul, duration_s=duration_s))

    def cancel_bolus(self, bolus_id: int) -> Outgoing:
        return self._command(m.BolusCancel(bolus_id=bolus_id))

    def suspend(self, duration_s: int) -> Outgoing:
        return self._command(m.Suspend(duration_s=duration_s))

    def resume(self) -> Outgoing:
        return self._command(m.Resume())

    def acknowledge_alarm(self, alarm_id: int) -> Outgoing:
        return self._command(m.AlarmAcknowledge(alarm_id=alarm_id))

    def silence_alarm(self, alarm_id: int, duration_s: int) -> Outgoing:
        """Silence an alarm for a while; critical alarms at most their re-annunciation period (ALARM-001)."""
        return self._command(m.AlarmSilence(alarm_id=alarm_id, duration_s=duration_s))

    def read_status(self) -> Outgoing:
        return self._command(m.StatusRequest())

    def read_prescription(self) -> Outgoing:
        return self._command(m.ReadPrescription())

    def read_history(self) -> Outgoing:
        """Read the last 24 h (delivery, dose changes, boluses) so the programmer's checks are exact."""
        return self._command(m.ReadHistory())

    def _command(self, message: Message) -> Outgoing:
        self._may_send(message)
        self._guard(message)
        self._fire("command")
        return self._send(message)

    # --- refill ----------------------------------------------------------------------------------------

    def start_refill(self) -> Outgoing:
        self._fire("begin_refill")
        return self._send(m.RefillBegin())

    def record_residual(self, measured_ul: int) -> Outgoing:
        refill = self._refill("refill_begun")
        return self._send(m.RefillResidual(refill_id=refill.refill_id, measured_ul=measured_ul))

    def stage_drug(self, volume_ul: int, concentration_ug_ml: int) -> Outgoing:
        refill = self._refill("residual_recorded")
        message = m.RefillStageDrug(
            refill_id=refill.refill_id, volume_ul=volume_ul, concentration_ug_ml=concentration_ug_ml
        )
        self._guard(message)
        return self._send(message)

    def confirm_refill_drug(
        self, volume_ul: int, concentration_ug_ml: int, *, discrepancy_acknowledged: bool = False
    ) -> Outgoing:
        """Second confirmation: the user types volume and concentration again; they must match the staging."""
        staged, residual = self.refill_stage, self.residual
        if self.state != "refill_staged" or staged is None or residual is None:
            raise SessionError("session", "confirm_refill", self.state, "stage the drug first")
        if (volume_ul, concentration_ug_ml) != (staged.volume_ul, staged.concentration_ug_ml):
            raise SessionError(
                "session", "confirm_refill", self.state, "volume or concentration differs from the staging"
            )
        if residual.needs_acknowledgement and not discrepancy_acknowledged:
            raise SessionError(
                "session", "confirm_refill", self.state, "acknowledge the residual discrepancy"
            )
        self._fire("confirm_refill")
        return self._send(
            m.RefillConfirm(
                refill_id=staged.refill_id,
                volume_ul=volume_ul,
                concentration_ug_ml=concentration_ug_ml,
                digest=staged.digest,
                discrepancy_acknowledged=discrepancy_acknowledged,
            )
        )

    def abort_refill(self) -> Outgoing:
        refill = self._refill(self.state)
        self._fire("refill_done")
        return self._send(m.RefillAbort(refill_id=refill.refill_id))

    def _refill(self, expected_state: str) -> m.RefillSession:
        if self.state != expected_state or self.refill is None or self.pending is not None:
            raise SessionError(
                "session", "refill", self.state, f"expected {expected_state} with no request in flight"
            )
        return self.refill

    # --- closing: the withdrawal guard ---------------------------------------------------------------------

    def end(self, *, acknowledge_stopped: bool = False) -> Outgoing:
        """Close the session. With delivery stopped or suspended the user must acknowledge it (STOP-001)."""
        mode = self.status.mode if self.status is not None else TherapyMode.STOPPED
        if mode in (TherapyMode.STOPPED, TherapyMode.SUSPENDED) and not acknowledge_stopped:
            raise SessionError(
                "session", "close", self.state, "delivery is stopped: acknowledge the withdrawal risk"
            )
        self._fire("close")
        return self._send(m.SessionEnd(acknowledge_stopped=acknowledge_stopped))

    # --- replies ---------------------------------------------------------------------------------------

    def receive(self, frame: Frame) -> list[Event]:
        """Take one frame from the pump; return what the app must know."""
        msg = frame.message
        if isinstance(msg, m.AlarmNotify):
            return self._alarm(msg.alarm)
        pending = self.pending
        if pending is None or frame.txn != pending.txn:
            return []  # stale or unsolicited: never matched to the wrong request
        self.pending = None
        if isinstance(msg, m.Nack):
            return self._nack(pending, msg)
        return self._reply(pending.message, msg)

    def _reply(self, request: Message, msg: Message) -> list[Event]:
        events: list[Event] = [Replied(msg)]
        match msg:
            case m.DeviceInfo():
                if msg.profile != self.profile.id:
                    raise SessionError(
                        "session", "device_known", self.state, f"unknown profile {msg.profile}"
                    )
                self.device = msg
                self._fire("device_known")
            case m.StatusReport():
                events += self._status(msg)
            case m.PrescriptionStaged():
                assert self.draft_prescription is not None
                self.summary = Summary(
                    self.prescription, self.draft_prescription, msg.daily_dose_ng, msg.stage_id, msg.digest
                )
                self._fire("staged")
            case m.PrescriptionReport():
                self.prescription = msg.prescription
                if self.state == "verifying":
                    if msg.prescription != self.draft_prescription:
                        raise SessionError(
                            "session", "verify", self.state, "read-back differs from what was confirmed"
                        )
                    self._fire("verified")
                    self.draft_prescription = self.summary = None
                    events.append(Verified(msg.prescription))
            case m.Ack() if self.state == "committing":
                self._fire("committed")
            case m.TherapyHistory():
                self.history = msg
            case m.ThresholdsReport():
                self.thresholds = msg.thresholds
            case m.RefillSession():
                self.refill = msg
            case m.ResidualRecorded():
                self.residual = msg
                self._fire("residual_recorded_")
            case m.RefillStaged():
                self.refill_stage = msg
                self._fire("refill_staged_")
            case m.Ack() if self.state == "refill_confirming":
                self._fire("refill_done")
                self.refill = self.residual = self.refill_stage = None
            case m.Ack() if self.state == "closing":
                self._fire("closed_")
            case _:
                if isinstance(request, m.AlarmAcknowledge):
                    self.alarm_acknowledged(request.alarm_id)
        if self.state == "commanding":
            self._fire("answered")
        return events

    def _nack(self, pending: Outgoing, nack: m.Nack) -> list[Event]:
        """The pump refused: nothing changed there, so step back to where the user can act."""
        back = {
            "staging": "refused",
            "verifying": "refused",
            "committing": "commit_refused",
            "commanding": "answered",
            "refill_confirming": "refill_confirm_refused",
            "closing": "close_refused",
        }
        if isinstance(pending.message, m.RefillBegin):
            self._fire("refill_done")
        elif self.state in back:
            self._fire(back[self.state])
        return [Refused(nack)]

    def _status(self, status: m.StatusReport) -> list[Event]:
        self.status = status
        self._txn = max(self._txn, status.last_txn)
        events: list[Event] = []
        if self.uncertain is not None:
            events.append(Resolved(self.uncertain.message, applied=status.last_txn >= self.uncertain.txn))
            self.uncertain = None
        if self.state in ("authenticated", "uncertain"):
            self._fire("status_read")
        return events

    def _alarm(self, alarm: m.AlarmRecord) -> list[Event]:
        self.alarms[alarm.alarm_id] = alarm
        return [AlarmAnnounced(alarm)]

    def due_alarms(self, now: int, period_s: int) -> list[Event]:
        """Critical alarms not acknowledged for ``period_s``: annunciate them again (the app calls this)."""
        events: list[Event] = []
        for alarm in self.alarms.values():
            last = self.announced_at.get(alarm.alarm_id, alarm.raised_at)
            if alarm.severity is Severity.CRITICAL and not alarm.acknowledged and now - last >= period_s:
                self.announced_at[alarm.alarm_id] = now
                events.append(AlarmAnnounced(alarm))
        return events

    def alarm_acknowledged(self, alarm_id: int) -> None:
        if alarm_id in self.alarms:
            self.alarms[alarm_id] = replace(self.alarms[alarm_id], acknowledged=True)

    # --- internals -------------------------------------------------------------------------------------

    def _guard(self, message: Message) -> None:
        """The programmer's check: the safety engine on a conservative mirror of the pump."""
        mirror = self.mirror()
        if mirror is None:
            return
        try:
            evaluate(message, mirror, self.policy).raise_if_refused()
        except TherapyStateError as exc:
            raise SessionError(
                "session", type(message).__name__, self.state, f"{exc} (as far as known here)"
            ) from None

    def mirror(self) -> TherapyState | None:
        """What the programmer knows of the pump, erring towards more drug delivered.

        With a history read (:meth:`read_history`) the mirror holds the pump's own
        flows, dose changes and boluses, and the programmer's verdicts equal the
        pump's. Whatever was delivered in the last 24 h beyond what the history
        shows (``StatusReport.delivered_24h_ng`` minus the history) is put at the
        very last second, so every future window counts it. Without a status
        read there is nothing to check against.
        """
        status = self.status
        if status is None:
            return None
        conc, now = status.concentration_ug_ml, status.device_time
        h = self.history
        flows = (
            tuple(Flow(f.start, f.end, f.rate_ul_day, f.concentration_ug_ml) for f in h.flows) if h else ()
        )
        known = dose_between(flows, now - SCALE, now)
        unknown = status.delivered_24h_ng * SCALE - known
        if unknown > 0 and conc:
            flows += (Flow(now - 1, now, divide(unknown, conc, Rounding.UP), conc),)
        p = self.prescription
        mode = TherapyMode.INFUSING if status.mode is TherapyMode.BOLUS else status.mode
        bolus = None
        if status.mode is TherapyMode.BOLUS:  # remaining volume, as if delivered at once
            volume = max(status.bolus_remaining_ul, 1)
            bolus = ActiveBolus(
                0, BolusKind.CLINICIAN, now, volume, (Flow(now, now + 1, volume * SCALE, conc),)
            )
        battery = Battery.OK
        if AlarmCode.BATTERY_EOS in status.alarms:
            battery = Battery.EOS
        elif AlarmCode.BATTERY_ERI in status.alarms:
            battery = Battery.ERI
        doses = tuple((d.since, d.daily_dose_scaled) for d in h.doses) if h else ()
        if not doses and p is not None:
            doses = ((now, daily_dose_scaled(p)),)
        mirror = TherapyState(
            now=now,
            profile=self.profile,
            drug=self.drug,
            concentration_ug_ml=conc,
            reservoir_scaled=status.reservoir_ul * SCALE,
            mode=mode,
            prescription=p,
            bolus=bolus,
            delivered=flows,
            dose_log=doses,
            battery=battery,
            last_event_at=now,
            alarms=tuple(self.alarms.values()),
            refill=self._refill_progress(mode),
        )
        if self.thresholds is not None:
            mirror = replace(mirror, thresholds=self.thresholds)
        if h is not None:
            mirror = replace(
                mirror,
                boluses=tuple(
                    BolusRecord(b.start, b.kind, b.volume_ul, b.dose_ng, b.screening) for b in h.boluses
                ),
                needs_priming=h.needs_priming,
                concentration_changed_at=h.concentration_changed_at or None,
                bridge_given=h.bridge_given,
            )
        return mirror

    def _refill_progress(self, mode: TherapyMode) -> RefillProgress | None:
        if self.refill is None:
            return None
        residual, staged = self.residual, self.refill_stage
        return RefillProgress(
            refill_id=self.refill.refill_id,
            expected_residual_ul=self.refill.expected_residual_ul,
            previous_mode=mode,
            measured_ul=residual.measured_ul if residual is not None else None,
            staged_volume_ul=staged.volume_ul if staged is not None else None,
            staged_conc_ug_ml=staged.concentration_ug_ml if staged is not None else None,
        )

    def _fire(self, trigger: str) -> None:
        if not fire(self, SESSION, trigger):
            raise SessionError("session", trigger, self.state)

    def _may_send(self, message: Message) -> None:
        name = type(message).__name__
        if self.role not in message.ROLES:
            raise SessionError("session", name, self.state, f"a {self.role.name.lower()} may not send it")
        if (
            isinstance(message, m.BolusStart)
            and self.role is Role.PATIENT
            and message.kind is not BolusKind.PATIENT
        ):
            raise SessionError("session", name, self.state, "a patient may start only the patient bolus")
        if self.uncertain is not None and not isinstance(message, m.StatusRequest | m.Hello):
            raise SessionError("session", name, self.state, "resolve the uncertain command first")
        if self.pending is not None:
            raise SessionError("session", name, self.state, "a request is already in flight")

    def _send(self, message: Message) -> Outgoing:
        self._may_send(message)
        self._txn += 1
        self.pending = Outgoing(message, self._txn)
        return self.pending

    @property
    def stopped(self) -> bool:
        return self.status is not None and self.status.mode in (TherapyMode.STOPPED, TherapyMode.SUSPENDED)
