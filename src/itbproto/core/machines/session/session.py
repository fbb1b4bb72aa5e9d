"""ProgrammingSession: the programmer's side of a session, sans-IO, through its own Connection.

Every method that sends returns the chunks to write (bytes); :meth:`receive`
takes each chunk read and returns :mod:`events <itbproto.core.machines.session.events>`
for the app. The session's life is the table in
:mod:`~itbproto.core.machines.session.table`; nothing but :meth:`StateMachine.fire
<itbproto.core.machines.definition.StateMachine.fire>` moves it.

The programmer checks every delivery change with the same safety engine the
pump uses, on a conservative mirror of the pump built from what it has read
(:class:`~itbproto.core.machines.session.view.PumpView`); the pump checks again
with its exact state. Misuse of this API (a step its state does not allow,
a command its role may not send, a second request in flight) raises
:class:`~itbproto.errors.SessionError` and sends nothing; what the pump sends
that does not fit is reported as :class:`Ignored` and changes nothing.

At most once: a delivery change whose reply is lost (time-out or link drop)
makes the session *uncertain*; only a status read may be sent until the pump
says what became of it. If its ``last_txn`` is older than the request's, the
pump never took it (``Resolved(applied=False)``); otherwise :meth:`resolve`
sends the identical request with the same transaction id, and the pump answers
from its memory without applying it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from itbproto.core.connection import Connection, Dropped, Notification, Outstanding, Reply, Side
from itbproto.core.machines.definition import StateMachine
from itbproto.core.machines.session.events import (
    AlarmAnnounced,
    Ignored,
    Mismatch,
    Refused,
    Replied,
    Resolved,
    SessionEvent,
    Summary,
    Verified,
    WrongDevice,
)
from itbproto.core.machines.session.table import SESSION
from itbproto.core.machines.session.view import ALARM_HANDLING, PumpView
from itbproto.core.safety import SafetyPolicy, evaluate
from itbproto.core.security.keys import session_keys
from itbproto.core.security.pairing import PairedKey
from itbproto.core.therapy.profile import DeviceProfile, Drug
from itbproto.core.therapy.state import TherapyState
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    BolusKind,
    ErrorCode,
    Origin,
    PatientGroup,
    Phase,
    Procedure,
    Role,
    ScreeningResponse,
    Severity,
    WithdrawalRisk,
)
from itbproto.core.wire.frame import MAX_FRAME
from itbproto.core.wire.message import Effect, Message
from itbproto.errors import SessionError, TherapyStateError

__all__ = ["ProgrammingSession", "Uncertain"]

#: where a refusal leaves the session: the state it steps back to
_BACK = {
    "staging": "refused",
    "verifying": "refused",
    "committing": "commit_refused",
    "commanding": "answered",
    "refill_confirming": "refill_confirm_refused",
    "closing": "close_refused",
}

#: replies to the steps of a transaction: the therapy is unchanged until it is committed or confirmed
_STEPS = (m.PrescriptionStaged, m.RefillSession, m.ResidualRecorded, m.RefillStaged)


@dataclass(frozen=True, slots=True)
class Uncertain:
    """A delivery change whose reply was lost; ``answered`` once a status read shows the pump took it."""

    request: Message
    txn: int
    answered: bool = False


class ProgrammingSession:
    """One programmer's session with one pump."""

    def __init__(
        self,
        *,
        role: Role,
        profile: DeviceProfile | None,
        drug: Drug,
        policy: SafetyPolicy,
        connection: Connection | None = None,
        max_frame: int = MAX_FRAME,
        checks: bool = True,
        profiles: Mapping[str, DeviceProfile] | None = None,
    ) -> None:
        if profile is None and not profiles:
            raise ValueError("a session needs the pump's profile, or the profiles to take it from")
        self.role, self.drug, self.policy = role, drug, policy
        self._profile = profile
        #: with no ``profile`` given, the one the pump reports in DeviceInfo is taken from these
        self.profiles: Mapping[str, DeviceProfile] = profiles or {}
        #: False only for QA against a device: commands go out unchecked (the safety engine and the role
        #: table), so that the pump must refuse them by itself (itbproto.qa); never in a clinic
        self.checks = checks
        self.connection = connection if connection is not None else Connection(Side.PROGRAMMER)
        self.max_frame = max_frame
        self.pump = PumpView()
        self.draft_prescription: m.Prescription | None = None
        self.summary: Summary | None = None
        self.uncertain: Uncertain | None = None
        self.announced_at: dict[int, int] = {}
        self._machine: StateMachine = SESSION.machine()
        self._key: PairedKey | None = None
        self._nonce = bytes(16)

    @property
    def profile(self) -> DeviceProfile:
        """The device profile the programmer's checks use: the one given, or the one the pump reported."""
        if self._profile is None:
            raise SessionError("session", "profile", self.state, "the pump has not said what it is yet")
        return self._profile

    @property
    def state(self) -> str:
        return self._machine.state

    @property
    def pending(self) -> Message | None:
        """The request awaiting its reply."""
        out = self.connection.outstanding
        return out.request if out is not None else None

    # --- link ----------------------------------------------------------------------------------------------

    def open(
        self, client: str = "itbproto", key: PairedKey | None = None, nonce: bytes = bytes(16)
    ) -> list[bytes]:
        """Start a session: Hello (the pump answers with DeviceInfo). With a paired ``key`` (and 16 fresh
        random bytes of ``nonce``) the role is the key's, and every frame after DeviceInfo is sealed."""
        if key is not None and key.role is not self.role:
            raise SessionError("session", "connect", self.state, f"the key carries the {key.role.name} role")
        self._key, self._nonce = key, nonce
        hello = m.Hello(
            protocol_version=m.PROTOCOL_VERSION,
            role=self.role,
            max_frame=self.max_frame,
            client=client,
            key_id=key.key_id if key is not None else 0,
            nonce=nonce,
        )
        return self._send(hello, "connect")

    def identify(self, client: str = "itbproto") -> list[bytes]:
        """Ask who the pump is: a Hello without a key, outside the session's states (a pump that requires
        pairing answers its DeviceInfo and opens no session, specs/protocol.md §6; another opens a plain one,
        which :meth:`open` opens again)."""
        hello = m.Hello(
            protocol_version=m.PROTOCOL_VERSION, role=self.role, max_frame=self.max_frame, client=client
        )
        return self.connection.send(hello)

    def authenticated(self) -> list[bytes]:
        """The link is authenticated (pairing: the security layer); read the status next."""
        return self._send(m.StatusRequest(), "authenticate")

    def disconnected(self) -> None:
        """The link dropped. A delivery change in flight becomes uncertain."""
        self._lost(self.connection.reset())
        if self.state not in ("disconnected", "closed"):
            self._machine.fire("link_lost")

    def response_lost(self) -> list[bytes]:
        """No reply came in time. A delivery change becomes uncertain and the status is read;
        anything else is sent again (a command with its id: the pump answers it once)."""
        forgotten = self.connection.forget()
        if forgotten is None:
            raise SessionError("session", "response_lost", self.state, "no request is waiting for a reply")
        if forgotten.request.CHANGES_DELIVERY:
            self._lost(forgotten)
            if self.state != "uncertain":  # (it is, when a resolving retry went unanswered too)
                self._machine.fire("reply_lost")
            return self._send(m.StatusRequest())
        retry = forgotten.txn if forgotten.request.EFFECT is Effect.COMMAND else None
        return self.connection.send(forgotten.request, retry)

    def resolve(self) -> list[bytes]:
        """The pump took the uncertain request (its status said so): ask again, same id, for its answer."""
        u = self.uncertain
        if u is None or not u.answered or self.pending is not None:
            raise SessionError("session", "resolve", self.state, "nothing uncertain the pump has answered")
        return self.connection.send(u.request, u.txn)

    def _lost(self, forgotten: Outstanding | None) -> None:
        if forgotten is not None and forgotten.request.CHANGES_DELIVERY:
            self.uncertain = Uncertain(forgotten.request, forgotten.txn)

    # --- programming -----------------------------------------------------------------------------------

    def draft(self, prescription: m.Prescription) -> None:
        self._machine.fire("edit")
        self.draft_prescription = prescription
        self.summary = None

    def check(self) -> None:
        """Validate the draft with the safety engine; SafetyViolation leaves it a draft."""
        if self.state != "draft" or self.draft_prescription is None:
            raise SessionError("session", "validate", self.state, "no draft")
        self._guard(m.StagePrescription(prescription=self.draft_prescription))
        self._machine.fire("validate")

    def send_stage(self) -> list[bytes]:
        """Step 1 of 2: the pump validates and stages the draft."""
        if self.draft_prescription is None:
            raise SessionError("session", "stage", self.state, "no draft")
        return self._send(m.StagePrescription(prescription=self.draft_prescription), "stage")

    def confirm_summary(self, digest: int, ack: m.Acknowledgement = m.NO_ACK) -> list[bytes]:
        """The user confirmed the summary they were shown (its digest), acknowledging the hazards it listed;
        commit exactly that."""
        summary = self.summary
        if self.state != "awaiting_confirmation" or summary is None or summary.digest != digest:
            raise SessionError("session", "confirm", self.state, "confirm the summary that was shown")
        commit = m.CommitPrescription(stage_id=summary.stage_id, digest=summary.digest, ack=ack)
        missing = [rule for rule in summary.acknowledge if rule not in ack.rules]
        if missing:
            raise SessionError("session", "confirm", self.state, f"acknowledge {', '.join(missing)} first")
        return self._send(commit, "confirm")

    def verify(self) -> list[bytes]:
        """After the commit was acknowledged: read the prescription back and compare."""
        if self.state != "verifying":
            raise SessionError("session", "verify", self.state, "nothing committed to verify")
        return self._send(m.ReadPrescription())

    def cancel_draft(self) -> None:
        self._machine.fire("discard")
        self.draft_prescription = self.summary = None

    # --- single commands and reads ---------------------------------------------------------------------

    def set_rate(self, rate_ul_day: int, ack: m.Acknowledgement = m.NO_ACK) -> list[bytes]:
        return self._command(m.SetRate(rate_ul_day=rate_ul_day, ack=ack))

    def start_bolus(
        self, kind: BolusKind, volume_ul: int, duration_s: int, ack: m.Acknowledgement = m.NO_ACK
    ) -> list[bytes]:
        return self._command(m.BolusStart(kind=kind, volume_ul=volume_ul, duration_s=duration_s, ack=ack))

    def cancel_bolus(self, bolus_id: int) -> list[bytes]:
        return self._command(m.BolusCancel(bolus_id=bolus_id))

    def suspend(self, duration_s: int, ack: m.Acknowledgement = m.NO_ACK) -> list[bytes]:
        """Stop delivery for a while (0: until resumed); a withdrawal hazard to acknowledge (STOP-002)."""
        return self._command(m.Suspend(duration_s=duration_s, ack=ack))

    def resume(self, ack: m.Acknowledgement = m.NO_ACK) -> list[bytes]:
        return self._command(m.Resume(ack=ack))

    def acknowledge_alarm(self, alarm_id: int) -> list[bytes]:
        return self._command(m.AlarmAcknowledge(alarm_id=alarm_id))

    def silence_alarm(self, alarm_id: int, duration_s: int) -> list[bytes]:
        """Silence an alarm for a while; critical alarms at most their re-annunciation period (ALARM-001)."""
        return self._command(m.AlarmSilence(alarm_id=alarm_id, duration_s=duration_s))

    def set_thresholds(self, thresholds: m.AlarmThresholds) -> list[bytes]:
        return self._command(m.SetThresholds(thresholds=thresholds))

    def set_clock(self, device_time: int) -> list[bytes]:
        return self._command(m.SetClock(device_time=device_time))

    def record_procedure(self, procedure: Procedure, catheter_volume_ul: int = 0) -> list[bytes]:
        return self._command(m.RecordProcedure(procedure=procedure, catheter_volume_ul=catheter_volume_ul))

    def set_patient_record(
        self,
        group: PatientGroup,
        origin: Origin,
        phase: Phase,
        risks: frozenset[WithdrawalRisk] = frozenset(),
    ) -> list[bytes]:
        """Set the category the limits read, the withdrawal risks and the phase (PHASE-001)."""
        return self._command(m.SetPatientRecord(group=group, origin=origin, risks=risks, phase=phase))

    def record_screening_response(self, response: ScreeningResponse, effect_s: int = 0) -> list[bytes]:
        """What the last screening dose did (BOL-002, SCREEN-001)."""
        return self._command(m.RecordScreeningResponse(response=response, effect_s=effect_s))

    def begin_mri(self, emptied_ul: int, ack: m.Acknowledgement = m.NO_ACK) -> list[bytes]:
        """Before a scan: stop delivery (a valve-gated pump emptied first: MRI-001, MRI-002)."""
        return self._command(m.MriBegin(emptied_ul=emptied_ul, ack=ack))

    def end_mri(self) -> list[bytes]:
        """After the scan, once the pump was checked: it stays stopped until resumed (RESTART-001)."""
        return self._command(m.MriEnd())

    def read_patient_record(self) -> list[bytes]:
        return self._command(m.ReadPatientRecord())

    def read_status(self) -> list[bytes]:
        """A status read: the one request allowed while a delivery change is uncertain."""
        if self.state == "uncertain":
            return self._send(m.StatusRequest())
        return self._command(m.StatusRequest())

    def read_prescription(self) -> list[bytes]:
        return self._command(m.ReadPrescription())

    def read_history(self) -> list[bytes]:
        """Read the last 24 h (delivery, dose changes, boluses) so the programmer's checks are exact."""
        return self._command(m.ReadHistory())

    def read_thresholds(self) -> list[bytes]:
        return self._command(m.ReadThresholds())

    def read_alarms(self) -> list[bytes]:
        return self._command(m.AlarmListRequest())

    def read_events(self, first: int, count: int = m.MAX_EVENTS_PER_PAGE) -> list[bytes]:
        return self._command(m.EventLogRead(first=first, count=count))

    def _command(self, message: Message) -> list[bytes]:
        self._may_send(message)
        self._guard(message)
        return self._send(message, "command")

    # --- refill ----------------------------------------------------------------------------------------

    def start_refill(self) -> list[bytes]:
        return self._send(m.RefillBegin(), "begin_refill")

    def record_residual(self, measured_ul: int) -> list[bytes]:
        refill = self._refill("refill_begun")
        return self._send(m.RefillResidual(refill_id=refill.refill_id, measured_ul=measured_ul))

    def stage_drug(self, volume_ul: int, concentration_ug_ml: int) -> list[bytes]:
        refill = self._refill("residual_recorded")
        message = m.RefillStageDrug(
            refill_id=refill.refill_id, volume_ul=volume_ul, concentration_ug_ml=concentration_ug_ml
        )
        self._guard(message)
        return self._send(message)

    def confirm_refill_drug(
        self,
        volume_ul: int,
        concentration_ug_ml: int,
        *,
        bridge: bool = False,
        ack: m.Acknowledgement = m.NO_ACK,
    ) -> list[bytes]:
        """Second confirmation: the user types volume and concentration again; they must match the staging.

        ``bridge``: after a concentration change, the pump delivers the old drug still in the fluid path at
        its old rate first (else the change is an overdose or an underdose at the tip: DOSE-001, FLOW-001).
        """
        staged, residual = self.pump.refill_stage, self.pump.residual
        if self.state != "refill_staged" or staged is None or residual is None:
            raise SessionError("session", "confirm_refill", self.state, "stage the drug first")
        if (volume_ul, concentration_ug_ml) != (staged.volume_ul, staged.concentration_ug_ml):
            raise SessionError(
                "session", "confirm_refill", self.state, "volume or concentration differs from the staging"
            )
        confirm = m.RefillConfirm(
            refill_id=staged.refill_id,
            volume_ul=volume_ul,
            concentration_ug_ml=concentration_ug_ml,
            digest=staged.digest,
            bridge=bridge,
            ack=ack,
        )
        self._guard(confirm)
        return self._send(confirm, "confirm_refill")

    def abort_refill(self) -> list[bytes]:
        refill = self._refill(self.state)
        return self._send(m.RefillAbort(refill_id=refill.refill_id), "refill_done")

    def _refill(self, expected_state: str) -> m.RefillSession:
        refill = self.pump.refill
        if self.state != expected_state or refill is None or self.pending is not None:
            raise SessionError(
                "session", "refill", self.state, f"expected {expected_state} with no request in flight"
            )
        return refill

    # --- closing: the withdrawal guard ---------------------------------------------------------------------

    def end(self, ack: m.Acknowledgement = m.NO_ACK) -> list[bytes]:
        """Close the session. With nothing delivered the user must acknowledge it (STOP-001)."""
        end = m.SessionEnd(ack=ack)
        if self.pump.status is None and "STOP-001" not in ack.rules:
            raise SessionError("session", "close", self.state, "the status is unknown: acknowledge STOP-001")
        self._guard(end)
        return self._send(end, "close")

    # --- what the pump says ------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[SessionEvent]:
        """Take one chunk from the pump; return what the app must know."""
        events: list[SessionEvent] = []
        for event in self.connection.receive(data):
            match event:
                case Reply(message=m.Nack() as nack, request=request):
                    events += self._nack(request, nack)
                case Reply(message=reply, request=request):
                    events += self._reply(request, reply)
                case Notification(message=m.AlarmNotify(alarm=alarm)):
                    self.pump.alarms[alarm.alarm_id] = alarm
                    events.append(AlarmAnnounced(alarm))
                case Dropped(error=error):
                    events.append(Ignored(error))
        return events

    def _reply(self, request: Message, reply: Message) -> list[SessionEvent]:
        u = self.uncertain
        if u is not None and request == u.request:
            return self._resolved(u, reply)
        if isinstance(reply, m.DeviceInfo) and (wrong := self._wrong_device(reply)):
            return [WrongDevice(reply, wrong)]
        self.pump.learn(reply)
        events: list[SessionEvent] = [Replied(reply, request)]
        match reply:
            case m.DeviceInfo() if self.state == "connecting":  # (else it answers identify())
                self._machine.fire("device_known")
                if self._key is not None:  # sealed from the next frame on, both ways
                    keys = session_keys(self._key.long_term, self._nonce, reply.nonce)
                    self.connection.channel = keys.programmer()
            case m.StatusReport():
                events += self._status(reply)
            case m.PrescriptionStaged():
                assert (
                    self.draft_prescription is not None
                )  # the connection took it as StagePrescription's reply
                self.summary = Summary(
                    self.pump.prescription,
                    self.draft_prescription,
                    reply.daily_dose_ng,
                    reply.stage_id,
                    reply.digest,
                    reply.acknowledge,
                )
                self._machine.fire("staged")
            case m.PrescriptionReport() if self.state == "verifying":
                confirmed = self.draft_prescription
                assert confirmed is not None  # verifying follows a confirmed draft
                if reply.prescription == confirmed:
                    self._machine.fire("verified")
                    self.draft_prescription = self.summary = None
                    events.append(Verified(reply.prescription))
                else:
                    self._machine.fire("mismatch")
                    events.append(Mismatch(confirmed, reply.prescription))
            case m.ResidualRecorded():
                self._machine.fire("residual_recorded")
            case m.RefillStaged():
                self._machine.fire("refill_staged")
            case m.Ack():
                self._acked(request)
        if request.EFFECT is Effect.COMMAND and not isinstance(reply, _STEPS):
            self.pump.changed(request)
        if self.state == "commanding":
            self._machine.fire("answered")
        return events

    def _acked(self, request: Message) -> None:
        match request:
            case m.CommitPrescription():
                self._machine.fire("committed")
            case m.RefillConfirm():
                self.pump.end_refill()
                self._machine.fire("refill_done")
            case m.RefillAbort():
                self.pump.end_refill()
            case m.SessionEnd():
                self._machine.fire("closed")
            case m.AlarmAcknowledge(alarm_id=alarm_id) if alarm_id in self.pump.alarms:
                self.pump.alarms[alarm_id] = replace(self.pump.alarms[alarm_id], acknowledged=True)

    def _nack(self, request: Message, nack: m.Nack) -> list[SessionEvent]:
        """The pump refused: nothing changed there, so step back to where the user can act."""
        u = self.uncertain
        if u is not None and request == u.request:
            return self._resolved(u, nack)
        if isinstance(request, m.RefillBegin):
            self._machine.fire("refill_done")
        elif self.state in _BACK:
            self._machine.fire(_BACK[self.state])
        return [Refused(nack, request)]

    def _status(self, status: m.StatusReport) -> list[SessionEvent]:
        u = self.uncertain
        if u is not None and not u.answered:
            if status.last_txn < u.txn:  # the pump never took it
                self.uncertain = None
                self._step_out_of_uncertainty()
                return [Resolved(u.request, applied=False)]
            self.uncertain = Uncertain(u.request, u.txn, answered=True)
        if self.state == "authenticated":
            self._machine.fire("unresolved" if self.uncertain is not None else "status_read")
        return []

    def _resolved(self, u: Uncertain, reply: Message) -> list[SessionEvent]:
        self.uncertain = None
        self._step_out_of_uncertainty()
        if isinstance(reply, m.Nack):
            forgotten = reply.code in (ErrorCode.REPLAY, ErrorCode.TXN_REUSED)
            return [Resolved(u.request, applied=None if forgotten else False, reply=reply)]
        self.pump.learn(reply)
        self.pump.changed(u.request)
        if isinstance(u.request, m.RefillConfirm):
            self.pump.end_refill()
        return [Resolved(u.request, applied=True, reply=reply)]

    def _step_out_of_uncertainty(self) -> None:
        if self.state == "uncertain":
            self._machine.fire("resolved")
        elif self.state == "authenticated":
            self._machine.fire("status_read")

    # --- alarms --------------------------------------------------------------------------------------------

    def due_alarms(self, now: int, period_s: int) -> list[SessionEvent]:
        """Critical alarms not acknowledged for ``period_s``: annunciate them again (the app calls this)."""
        events: list[SessionEvent] = []
        for alarm in self.pump.alarms.values():
            last = self.announced_at.get(alarm.alarm_id, alarm.raised_at)
            if alarm.severity is Severity.CRITICAL and not alarm.acknowledged and now - last >= period_s:
                self.announced_at[alarm.alarm_id] = now
                events.append(AlarmAnnounced(alarm))
        return events

    # --- internals -------------------------------------------------------------------------------------

    def _wrong_device(self, info: m.DeviceInfo) -> str:
        """Why this session cannot check commands for the pump ``info`` describes ("" if it can); a profile
        not given is taken from the pump's."""
        if self._profile is None:
            if info.profile not in self.profiles:
                known = ", ".join(sorted(self.profiles))
                return f"the pump is a {info.profile}, a profile this programmer does not know ({known})"
            self._profile = self.profiles[info.profile]
        elif info.profile != self._profile.id:
            return f"the pump is a {info.profile}; this session checks commands for a {self._profile.id}"
        return ""

    def mirror(self) -> TherapyState | None:
        """The therapy state the programmer's checks run on (see :class:`PumpView`)."""
        return self.pump.mirror(self.profile, self.drug)

    def _guard(self, message: Message) -> None:
        """The programmer's check: the safety engine on a conservative mirror of the pump."""
        if message.EFFECT is not Effect.COMMAND or not self.checks:
            return
        stale = [] if isinstance(message, ALARM_HANDLING) else self.pump.to_reread()
        if stale:
            why = f"read the {', '.join(stale)} again first: a change applied since made them out of date"
            raise SessionError("session", type(message).__name__, self.state, why)
        mirror = self.mirror()
        if mirror is None:
            return
        if isinstance(message, m.BolusStart) and self.pump.history is None:  # refuse to guess
            why = "read the therapy history first: the boluses it lists decide BOL-002 and PBOL-001/002"
            raise SessionError("session", type(message).__name__, self.state, why)
        try:
            evaluate(message, mirror, self.policy).raise_if_refused()
        except TherapyStateError as exc:
            raise SessionError(
                "session", type(message).__name__, self.state, f"{exc} (as far as known here)"
            ) from None

    def _may_send(self, message: Message) -> None:
        name = type(message).__name__
        why = m.role_refusal(self.role, message) if self.checks else None
        if why is not None:
            raise SessionError("session", name, self.state, why)
        if self.uncertain is not None and not isinstance(message, m.StatusRequest | m.Hello):
            raise SessionError("session", name, self.state, "resolve the uncertain command first")
        if self.pending is not None:
            raise SessionError("session", name, self.state, "a request is already in flight")

    def _send(self, message: Message, trigger: str | None = None) -> list[bytes]:
        """Encode and send; the state moves only once the bytes exist (nothing changes on an error)."""
        self._may_send(message)
        if trigger is not None and not self._machine.can(trigger):
            raise SessionError("session", trigger, self.state)
        chunks = self.connection.send(message)
        if trigger is not None:
            self._machine.fire(trigger)
        return chunks
