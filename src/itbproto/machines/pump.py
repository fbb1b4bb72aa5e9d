"""PumpMachine: the device's behaviour, sans-IO. Requests in, one reply out; time is a parameter.

The mode table (:data:`PUMP`) says which transitions exist; the safety engine is
the guard of every transition that changes delivery; the therapy model
(:mod:`itbproto.therapy.state`) holds the quantities. A refused or impossible
command gets a :class:`~itbproto.wire.messages.Nack` and changes nothing. The
emulator wraps this class with hardware, faults, persistence and servers.

At most once: the reply to the last delivery-changing transaction is kept; the
same transaction id again gets that reply, never a second application, and an
older id is refused as a replay.
"""

from __future__ import annotations

import binascii
import struct
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from itbproto.errors import SessionError, TherapyStateError
from itbproto.machines.alarm import ALARM, Alarm
from itbproto.machines.definition import Definition, fire
from itbproto.safety import SafetyPolicy, Verdict, evaluate
from itbproto.safety.rules import residual_needs_acknowledgement
from itbproto.therapy.flows import SCALE, Flow, clip, scaled_to_ng, volume_between
from itbproto.therapy.schedule import daily_dose_scaled
from itbproto.therapy.state import Battery, TherapyState, advance, apply, planned_flows
from itbproto.units import Rounding
from itbproto.wire import messages as m
from itbproto.wire.enums import AlarmCode, BolusKind, ErrorCode, EventCode, Role, Severity, TherapyMode
from itbproto.wire.message import Kind, Message

__all__ = ["PUMP", "REFILL_TIMEOUT_S", "PumpMachine"]

REFILL_TIMEOUT_S = 3_600
EVENT_LOG_LIMIT = 10_000
_SEVERITY = {
    AlarmCode.LOW_RESERVOIR: Severity.NON_CRITICAL,
    AlarmCode.EMPTY_RESERVOIR: Severity.CRITICAL,
    AlarmCode.BATTERY_ERI: Severity.NON_CRITICAL,
    AlarmCode.BATTERY_EOS: Severity.CRITICAL,
    AlarmCode.MOTOR_STALL: Severity.CRITICAL,
    AlarmCode.DELIVERY_STOPPED: Severity.NON_CRITICAL,
}

_REFILL = ["refill_begun", "residual_measured", "drug_staged"]
_RUNNING = ["stopped", "infusing", "bolus", "suspended"]


def _landing(trigger: str, sources: list[str] | str, dests: list[str]) -> list[dict[str, Any]]:
    """One transition per possible destination; the therapy model decides which one applies."""
    return [
        {"trigger": trigger, "source": sources, "dest": d, "conditions": ["safe", f"lands_{d}"]}
        for d in dests
    ]


PUMP = Definition(
    name="pump",
    states=(*_RUNNING, *_REFILL, "end_of_service"),
    transitions=(
        *_landing("commit", "stopped", ["infusing", "bolus"]),
        {
            "trigger": "commit",
            "source": ["infusing", "bolus", "suspended"],
            "dest": "=",
            "conditions": "safe",
        },
        {
            "trigger": "set_rate",
            "source": ["infusing", "bolus", "suspended"],
            "dest": "=",
            "conditions": "safe",
        },
        {"trigger": "start_bolus", "source": ["stopped", "infusing"], "dest": "bolus", "conditions": "safe"},
        *_landing("cancel_bolus", "bolus", ["infusing", "stopped"]),
        *_landing("bolus_done", "bolus", ["infusing", "stopped"]),
        {"trigger": "suspend", "source": ["infusing", "bolus"], "dest": "suspended", "conditions": "safe"},
        {"trigger": "resume", "source": ["suspended", "stopped"], "dest": "infusing", "conditions": "safe"},
        {"trigger": "auto_resume", "source": "suspended", "dest": "infusing"},
        {"trigger": "begin_refill", "source": ["stopped", "infusing", "suspended"], "dest": "refill_begun"},
        {"trigger": "record_residual", "source": "refill_begun", "dest": "residual_measured"},
        {
            "trigger": "stage_drug",
            "source": ["residual_measured", "drug_staged"],
            "dest": "drug_staged",
            "conditions": "safe",
        },
        *_landing("confirm_refill", "drug_staged", ["stopped", "infusing", "suspended"]),
        *_landing("abort_refill", _REFILL, ["stopped", "infusing", "suspended"]),
        *_landing("refill_timeout", _REFILL, ["stopped", "infusing", "suspended"]),
        {"trigger": "end_of_service", "source": [*_RUNNING, *_REFILL], "dest": "end_of_service"},
    ),
    initial="stopped",
)

#: request type -> trigger of the mode machine (other requests do not change the mode)
TRIGGERS: dict[type[Message], str] = {
    m.CommitPrescription: "commit",
    m.SetRate: "set_rate",
    m.BolusStart: "start_bolus",
    m.BolusCancel: "cancel_bolus",
    m.Suspend: "suspend",
    m.Resume: "resume",
    m.RefillBegin: "begin_refill",
    m.RefillResidual: "record_residual",
    m.RefillStageDrug: "stage_drug",
    m.RefillConfirm: "confirm_refill",
    m.RefillAbort: "abort_refill",
}

_EVENTS: dict[type[Message], EventCode] = {
    m.CommitPrescription: EventCode.PRESCRIPTION_COMMITTED,
    m.SetRate: EventCode.RATE_CHANGED,
    m.BolusStart: EventCode.BOLUS_STARTED,
    m.BolusCancel: EventCode.BOLUS_CANCELLED,
    m.Suspend: EventCode.SUSPENDED,
    m.Resume: EventCode.RESUMED,
    m.RefillConfirm: EventCode.REFILL_CONFIRMED,
    m.RefillAbort: EventCode.REFILL_ABORTED,
    m.AlarmAcknowledge: EventCode.ALARM_ACKNOWLEDGED,
    m.AlarmSilence: EventCode.ALARM_SILENCED,
    m.SetThresholds: EventCode.THRESHOLDS_CHANGED,
    m.SetClock: EventCode.CLOCK_SET,
    m.RecordProcedure: EventCode.PROCEDURE_RECORDED,
}


def state_of(therapy: TherapyState) -> str:
    """The mode-machine state that a therapy state corresponds to."""
    if therapy.battery is Battery.EOS:
        return "end_of_service"
    if therapy.refill is not None:
        refill = therapy.refill
        if refill.staged_volume_ul is not None:
            return "drug_staged"
        return "residual_measured" if refill.measured_ul is not None else "refill_begun"
    if therapy.bolus is not None:
        return "bolus"
    return {
        TherapyMode.STOPPED: "stopped",
        TherapyMode.INFUSING: "infusing",
        TherapyMode.SUSPENDED: "suspended",
    }.get(therapy.mode, "stopped")


class _RefusedError(Exception):
    def __init__(self, code: ErrorCode, detail: str, rules: tuple[str, ...] = ()) -> None:
        super().__init__(detail)
        self.code, self.detail, self.rules = code, detail, rules


class PumpMachine:
    """The pump: ``handle(request, txn, now)`` answers one request; ``tick(now)`` lets time pass.

    Both return the unsolicited alarm notifications raised meanwhile as well (see
    :attr:`outbox`). Nothing here reads a clock or does I/O.
    """

    state: str

    def __init__(self, therapy: TherapyState, policy: SafetyPolicy, *, serial: str = "ITB-000001") -> None:
        self.therapy = therapy
        self.policy = policy
        self.serial = serial
        self.machine = PUMP.bind(self)
        self.machine.set_state(state_of(therapy))
        self.events: list[m.EventRecord] = []
        self.event_total = 0
        self.alarms: dict[AlarmCode, Alarm] = {}
        self.outbox: list[m.AlarmNotify] = []
        self.role: Role | None = None  # set by Hello, cleared by SessionEnd (bound to a key by pairing)
        self.last_txn = 0
        self.last_reply: Message | None = None
        self.staged: tuple[int, int] | None = None  # (stage id, digest)
        self.refill_digest: int | None = None
        self.refill_started = 0
        self.prescription_id = 0
        self.committed_at = 0
        self._next_id = 1
        self._command: Message | None = None
        self._verdict: Verdict | None = None
        self._after: TherapyState | None = None
        self._before = therapy
        self._log(EventCode.BOOT, 0, 0)

    # --- trigger stubs, replaced by the machine (model_override=True) ------------------------------------

    def commit(self, *args: Any) -> bool:
        raise NotImplementedError

    def set_rate(self, *args: Any) -> bool:
        raise NotImplementedError

    def start_bolus(self, *args: Any) -> bool:
        raise NotImplementedError

    def cancel_bolus(self, *args: Any) -> bool:
        raise NotImplementedError

    def bolus_done(self, *args: Any) -> bool:
        raise NotImplementedError

    def suspend(self, *args: Any) -> bool:
        raise NotImplementedError

    def resume(self, *args: Any) -> bool:
        raise NotImplementedError

    def auto_resume(self, *args: Any) -> bool:
        raise NotImplementedError

    def begin_refill(self, *args: Any) -> bool:
        raise NotImplementedError

    def record_residual(self, *args: Any) -> bool:
        raise NotImplementedError

    def stage_drug(self, *args: Any) -> bool:
        raise NotImplementedError

    def confirm_refill(self, *args: Any) -> bool:
        raise NotImplementedError

    def abort_refill(self, *args: Any) -> bool:
        raise NotImplementedError

    def refill_timeout(self, *args: Any) -> bool:
        raise NotImplementedError

    def end_of_service(self, *args: Any) -> bool:
        raise NotImplementedError

    # --- guards ------------------------------------------------------------------------------------------

    def safe(self) -> bool:
        """The engine's verdict on the command being applied (the guard of delivery changes)."""
        return self._verdict is None or self._verdict.accepted

    def _lands(self, dest: str) -> bool:
        return self._after is not None and state_of(self._after) == dest

    def lands_stopped(self) -> bool:
        return self._lands("stopped")

    def lands_infusing(self) -> bool:
        return self._lands("infusing")

    def lands_bolus(self) -> bool:
        return self._lands("bolus")

    def lands_suspended(self) -> bool:
        return self._lands("suspended")

    # --- the request path --------------------------------------------------------------------------------

    def handle(self, request: Message, txn: int, now: int) -> Message:
        """The reply to ``request`` at device time ``now``."""
        self.tick(now)
        if request.CHANGES_DELIVERY and txn == self.last_txn and self.last_reply is not None:
            return self.last_reply  # a retry: the stored reply, never a second application
        try:
            if request.CHANGES_DELIVERY and txn <= self.last_txn:
                raise _RefusedError(ErrorCode.REPLAY, f"transaction {txn} is not newer than {self.last_txn}")
            reply = self._dispatch(request, txn)
        except _RefusedError as refused:
            self._log(EventCode.COMMAND_REFUSED, txn, int(refused.code))
            return m.Nack(
                request=request.TYPE, code=refused.code, rules=refused.rules[:8], detail=refused.detail[:96]
            )
        if request.CHANGES_DELIVERY:
            self.last_txn, self.last_reply = txn, reply
        return reply

    def _check_role(self, request: Message) -> None:
        if request.KIND is not Kind.REQUEST:
            raise _RefusedError(ErrorCode.UNKNOWN_MESSAGE, f"{type(request).__name__} is not a request")
        if isinstance(request, m.Hello):
            return
        if self.role is None:
            raise _RefusedError(ErrorCode.NOT_AUTHENTICATED, "open a session with Hello first")
        if self.role not in request.ROLES:
            raise _RefusedError(
                ErrorCode.ROLE_FORBIDDEN, f"{self.role.name.lower()} may not send {type(request).__name__}"
            )
        if (
            isinstance(request, m.BolusStart)
            and self.role is Role.PATIENT
            and request.kind is not BolusKind.PATIENT
        ):
            raise _RefusedError(
                ErrorCode.ROLE_FORBIDDEN, "a patient may start only the prescribed patient bolus"
            )

    def _dispatch(self, request: Message, txn: int) -> Message:
        reads: dict[type[Message], Callable[[Message], Message]] = {
            m.StatusRequest: lambda _: self.status(),
            m.ReadPrescription: lambda _: self._prescription_report(),
            m.AlarmListRequest: lambda _: m.AlarmList(
                alarms=tuple(a.record for a in self.alarms.values())[:16]
            ),
            m.ReadThresholds: lambda _: m.ThresholdsReport(thresholds=self.therapy.thresholds),
            m.EventLogRead: self._event_page,
            m.ReadHistory: lambda _: self.history(),
        }
        self._check_role(request)
        if type(request) in reads:
            return reads[type(request)](request)
        if isinstance(request, m.PairStart | m.PairConfirm):
            raise _RefusedError(ErrorCode.WRONG_STATE, "pairing arrives with the security layer")
        self._check_protocol(request)
        self._apply(request)
        return self._reply(request, txn)

    def _check_protocol(self, request: Message) -> None:
        """What the protocol needs beyond the rules: matching stage ids, digests, known alarms."""
        match request:
            case m.CommitPrescription(stage_id=sid, digest=digest) if self.staged != (sid, digest):
                raise _RefusedError(
                    ErrorCode.STALE_STAGE, "stage id or digest does not match the staged prescription"
                )
            case m.RefillConfirm(digest=digest) if digest != self.refill_digest:
                raise _RefusedError(ErrorCode.STALE_STAGE, "digest does not match the staged refill")
            case (
                m.RefillResidual(refill_id=rid)
                | m.RefillStageDrug(refill_id=rid)
                | m.RefillConfirm(refill_id=rid)
                | m.RefillAbort(refill_id=rid)
            ) if self.therapy.refill is None or self.therapy.refill.refill_id != rid:
                raise _RefusedError(ErrorCode.UNKNOWN_ID, f"no refill {rid} in progress")
            case m.BolusCancel(bolus_id=bid) if (
                self.therapy.bolus is None or self.therapy.bolus.bolus_id != bid
            ):
                raise _RefusedError(ErrorCode.UNKNOWN_ID, f"no bolus {bid} running")
            case m.AlarmAcknowledge(alarm_id=aid) | m.AlarmSilence(alarm_id=aid):
                alarm = next((a for a in self.alarms.values() if a.alarm_id == aid), None)
                trigger = "acknowledge" if isinstance(request, m.AlarmAcknowledge) else "silence"
                if alarm is None:
                    raise _RefusedError(ErrorCode.UNKNOWN_ID, f"no active alarm {aid}")
                if trigger not in alarm.machine.get_triggers(alarm.state):
                    raise _RefusedError(ErrorCode.WRONG_STATE, f"alarm {aid} is {alarm.state}")
            case _:
                pass
        if self.state == "end_of_service" and not isinstance(request, m.SessionEnd | m.AlarmAcknowledge):
            raise _RefusedError(ErrorCode.HARDWARE_FAULT, "end of service: the pump accepts no commands")

    def _apply(self, request: Message) -> None:
        """Guard with the engine, move the mode machine, apply to the therapy, or change nothing."""
        try:
            verdict = evaluate(request, self.therapy, self.policy)
            if not verdict.accepted:
                raise _RefusedError(ErrorCode.SAFETY_RULE, verdict.violations[0].reason, verdict.rule_ids)
            after = verdict.after  # an accepted verdict carries the state the command produces
            assert after is not None
        except TherapyStateError as exc:
            raise _RefusedError(ErrorCode.WRONG_STATE, str(exc)) from None
        trigger = TRIGGERS.get(type(request))
        if trigger is not None:
            self._transition(trigger, after, verdict)
        self._before, self.therapy = self.therapy, after

    def _transition(self, trigger: str, after: TherapyState, verdict: Verdict | None) -> None:
        self._verdict, self._after = verdict, after
        try:
            if not fire(self, PUMP, trigger):
                raise _RefusedError(
                    ErrorCode.WRONG_STATE, f"{trigger} cannot land in {state_of(after)} from {self.state}"
                )
        except SessionError as exc:
            raise _RefusedError(ErrorCode.WRONG_STATE, str(exc)) from None
        finally:
            self._verdict = self._after = None

    def _reply(self, request: Message, txn: int) -> Message:
        now, therapy = self.therapy.now, self.therapy
        if type(request) in _EVENTS:
            self._log(_EVENTS[type(request)], txn, _event_value(request))
        match request:
            case m.StagePrescription(prescription=p):
                digest = binascii.crc32(request.CODEC.encode(request))
                self.staged = (self._take_id(), digest)
                daily = scaled_to_ng(daily_dose_scaled(p), Rounding.UP)  # the summary the user confirms
                return m.PrescriptionStaged(stage_id=self.staged[0], digest=digest, daily_dose_ng=daily)
            case m.CommitPrescription():
                self.staged, self.prescription_id, self.committed_at = None, self._take_id(), now
            case m.BolusStart():
                assert therapy.bolus is not None
                b = therapy.bolus
                return m.BolusStarted(
                    bolus_id=b.bolus_id, dose_ng=b.volume_ul * therapy.concentration_ug_ml, ends_at=b.end
                )
            case m.BolusCancel(bolus_id=bid):
                bolus = self._before.bolus
                assert bolus is not None
                given = sum(f.rate_ul_day * f.overlap(bolus.start, now) for f in bolus.flows) // SCALE
                return m.BolusCancelled(
                    bolus_id=bid, delivered_ul=given, not_delivered_ul=bolus.volume_ul - given
                )
            case m.RefillBegin():
                assert therapy.refill is not None
                self.refill_started = now
                return m.RefillSession(
                    refill_id=therapy.refill.refill_id,
                    expected_residual_ul=therapy.refill.expected_residual_ul,
                    capacity_ul=therapy.profile.reservoir_capacity_ul,
                )
            case m.RefillResidual(measured_ul=measured):
                assert therapy.refill is not None
                expected = therapy.refill.expected_residual_ul
                return m.ResidualRecorded(
                    refill_id=request.refill_id,
                    expected_ul=expected,
                    measured_ul=measured,
                    discrepancy_ul=measured - expected,
                    needs_acknowledgement=residual_needs_acknowledgement(self.policy, expected, measured),
                )
            case m.RefillStageDrug(refill_id=rid, volume_ul=volume, concentration_ug_ml=conc):
                self.refill_digest = binascii.crc32(struct.pack("<III", rid, volume, conc))
                return m.RefillStaged(
                    refill_id=rid, volume_ul=volume, concentration_ug_ml=conc, digest=self.refill_digest
                )
            case m.RefillConfirm() | m.RefillAbort():
                self.refill_digest = None
            case m.AlarmAcknowledge(alarm_id=aid):
                self._quiet(aid, now + therapy.thresholds.reannunciate_s, "acknowledge")
            case m.AlarmSilence(alarm_id=aid, duration_s=duration):
                self._quiet(aid, now + duration, "silence")
            case m.SessionEnd(acknowledge_stopped=ack):
                self.role = None
                stopped = therapy.mode in (TherapyMode.STOPPED, TherapyMode.SUSPENDED)
                self._log(
                    EventCode.SESSION_ENDED_STOPPED if stopped and ack else EventCode.SESSION_ENDED, txn, 0
                )
            case m.Hello(role=role):
                self.role = role
                self._log(EventCode.SESSION_STARTED, txn, 0)
                return self.device_info()
            case _:
                pass
        return m.Ack(request=request.TYPE, applied_at=now)

    # --- time --------------------------------------------------------------------------------------------

    def tick(self, now: int) -> list[m.AlarmNotify]:
        """Let delivery run until ``now``; raise, clear and re-annunciate alarms; return new notifications."""
        if now > self.therapy.now:
            self.therapy, _ = advance(self.therapy, now)
        therapy = self.therapy
        if self.state == "bolus" and therapy.bolus is None:
            self._transition("bolus_done", therapy, None)
        if self.state == "suspended" and therapy.mode is TherapyMode.INFUSING:
            self._transition("auto_resume", therapy, None)
        if (
            self.state in ("refill_begun", "residual_measured", "drug_staged")
            and now - self.refill_started >= REFILL_TIMEOUT_S
        ):
            assert therapy.refill is not None
            after = apply(therapy, m.RefillAbort(refill_id=therapy.refill.refill_id))
            self._transition("refill_timeout", after, None)
            self.therapy, self.refill_digest = after, None
            self._log(EventCode.REFILL_ABORTED, 0, 0)
        if therapy.battery is Battery.EOS and self.state != "end_of_service":
            fire(self, PUMP, "end_of_service")
        return self._update_alarms(now)

    def _conditions(self) -> set[AlarmCode]:
        t = self.therapy
        active: set[AlarmCode] = set()
        delivering = t.prescription is not None and t.mode is not TherapyMode.STOPPED
        if t.reservoir_scaled <= 0 and delivering:
            active.add(AlarmCode.EMPTY_RESERVOIR)
        elif delivering:
            # low: at or below the volume threshold, or empty within the days threshold
            soon = planned_flows(t, t.now, t.now + t.thresholds.low_reservoir_days * SCALE)
            if (
                t.reservoir_ul <= t.thresholds.low_reservoir_ul
                or volume_between(soon, t.now, 2**62) >= t.reservoir_scaled
            ):
                active.add(AlarmCode.LOW_RESERVOIR)
        if t.battery is Battery.ERI:
            active.add(AlarmCode.BATTERY_ERI)
        if t.battery is Battery.EOS:
            active.add(AlarmCode.BATTERY_EOS)
        if t.motor_stalled:
            active.add(AlarmCode.MOTOR_STALL)
        return active

    def _update_alarms(self, now: int) -> list[m.AlarmNotify]:
        active = self._conditions()
        new: list[m.AlarmNotify] = []
        for code in list(self.alarms):
            if code not in active:
                fire(self.alarms.pop(code), ALARM, "clear")
        for code in sorted(active):
            alarm = self.alarms.get(code)
            if alarm is None:
                record = m.AlarmRecord(
                    alarm_id=self._take_id(),
                    code=code,
                    severity=_SEVERITY[code],
                    raised_at=now,
                    silenced_until=0,
                    acknowledged=False,
                )
                alarm = self.alarms[code] = Alarm(record)
                self._log(EventCode.ALARM_RAISED, 0, int(code))
                new.append(m.AlarmNotify(alarm=record))
            elif alarm.due(now):
                alarm.sound_again()
                new.append(m.AlarmNotify(alarm=alarm.record))
        self.therapy = replace(self.therapy, alarms=tuple(a.record for a in self.alarms.values()))
        self.outbox += new
        return new

    def _quiet(self, alarm_id: int, until: int, trigger: str) -> None:
        alarm = next(a for a in self.alarms.values() if a.alarm_id == alarm_id)
        alarm.quiet_until(until, trigger)
        self.therapy = replace(self.therapy, alarms=tuple(a.record for a in self.alarms.values()))

    # --- hardware events (the emulator's faults) -------------------------------------------------------

    def set_battery(self, level: Battery, now: int) -> list[m.AlarmNotify]:
        self.tick(now)
        self.therapy = replace(self.therapy, battery=level)
        return self.tick(now)

    def set_motor_stalled(self, stalled: bool, now: int) -> list[m.AlarmNotify]:
        self.tick(now)
        self.therapy = replace(self.therapy, motor_stalled=stalled)
        return self.tick(now)

    # --- reports -----------------------------------------------------------------------------------------

    def status(self) -> m.StatusReport:
        t = self.therapy
        since = t.now - SCALE
        delivered = sum(f.rate_ul_day * f.conc_ug_ml * f.overlap(since, t.now) for f in t.delivered)
        remaining = 0
        if t.bolus is not None:
            given = sum(f.rate_ul_day * f.overlap(t.bolus.start, t.now) for f in t.bolus.flows)
            remaining = t.bolus.volume_ul - given // SCALE
        rate = 0
        if t.prescription is not None and t.mode is TherapyMode.INFUSING:
            offset = t.now % SCALE
            rate = [s.rate_ul_day for s in t.prescription.steps if s.start_s <= offset][-1]
        eri_days = t.profile.battery_life_days if t.battery is Battery.OK else 0
        return m.StatusReport(
            device_time=t.now,
            mode=TherapyMode.BOLUS if t.bolus is not None else t.mode,
            alarms=frozenset(self.alarms),
            reservoir_ul=t.reservoir_ul,
            concentration_ug_ml=t.concentration_ug_ml,
            rate_ul_day=rate,
            bolus_remaining_ul=remaining,
            delivered_24h_ng=min(scaled_to_ng(delivered, Rounding.UP), 2**32 - 1),
            battery_days=min(eri_days, 65_535),
            prescription_id=self.prescription_id,
            last_txn=self.last_txn,
        )

    def history(self) -> m.TherapyHistory:
        """The last 24 h of delivery, dose changes and boluses: what the rules look at."""
        t = self.therapy
        since = t.now - SCALE
        flows = _merge(clip(t.delivered, since, t.now))
        keep = flows[-m.MAX_HISTORY_FLOWS :]
        return m.TherapyHistory(
            complete=len(keep) == len(flows),
            needs_priming=t.needs_priming,
            concentration_changed_at=t.concentration_changed_at or 0,
            bridge_given=t.bridge_given,
            flows=tuple(
                m.FlowRecord(
                    start=f.start, end=f.end, rate_ul_day=f.rate_ul_day, concentration_ug_ml=f.conc_ug_ml
                )
                for f in keep
            ),
            doses=tuple(
                m.DoseChange(since=max(0, at), daily_dose_scaled=dose) for at, dose in t.dose_log[-8:]
            ),
            boluses=tuple(
                m.BolusEntry(
                    start=b.start,
                    kind=b.kind,
                    volume_ul=b.volume_ul,
                    dose_ng=b.dose_ng,
                    screening=b.screening,
                )
                for b in t.boluses[-16:]
            ),
        )

    def device_info(self) -> m.DeviceInfo:
        p = self.therapy.profile
        return m.DeviceInfo(
            protocol_version=m.PROTOCOL_VERSION,
            model=p.model,
            serial=self.serial,
            firmware="itbproto-0.1",
            profile=p.id,
            reservoir_capacity_ul=p.reservoir_capacity_ul,
            min_rate_ul_day=p.min_rate_ul_day,
            max_rate_ul_day=p.max_rate_ul_day,
            rate_step_ul_day=p.rate_step_ul_day,
            max_flex_steps=p.max_flex_steps,
            device_time=self.therapy.now,
            paired=False,
        )

    def _prescription_report(self) -> Message:
        p = self.therapy.prescription
        if p is None:
            raise _RefusedError(ErrorCode.WRONG_STATE, "no prescription in force")
        return m.PrescriptionReport(
            prescription_id=self.prescription_id, committed_at=self.committed_at, prescription=p
        )

    def _event_page(self, request: Message) -> Message:
        assert isinstance(request, m.EventLogRead)
        oldest = self.event_total - len(self.events)
        start = max(request.first, oldest) - oldest
        return m.EventLogPage(
            total=self.event_total, events=tuple(self.events[start : start + request.count])
        )

    def _log(self, code: EventCode, txn: int, value: int) -> None:
        record = m.EventRecord(index=self.event_total, at=self.therapy.now, code=code, txn=txn, value=value)
        self.events.append(record)
        self.event_total += 1
        del self.events[:-EVENT_LOG_LIMIT]

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1


def _merge(flows: tuple[Flow, ...]) -> tuple[Flow, ...]:
    """Adjacent flows at the same rate and concentration as one (history is sent compactly)."""
    out: list[Flow] = []
    for f in sorted(flows):
        last = out[-1] if out else None
        if last is not None and (last.end, last.rate_ul_day, last.conc_ug_ml) == (
            f.start,
            f.rate_ul_day,
            f.conc_ug_ml,
        ):
            out[-1] = Flow(last.start, f.end, f.rate_ul_day, f.conc_ug_ml)
        else:
            out.append(f)
    return tuple(out)


def _event_value(request: Message) -> int:
    """A number worth keeping in the log for the request (µL, µL/day or an id)."""
    for name in ("rate_ul_day", "volume_ul", "duration_s", "alarm_id", "device_time", "procedure"):
        value = getattr(request, name, None)
        if isinstance(value, int):
            return min(int(value), 2**31 - 1)
    return 0
