"""What a programmer knows of the pump, and the therapy state it checks commands against.

The programmer runs the same safety engine as the pump, on a *mirror*: a
therapy state built from what it has read, erring towards more drug delivered.
With the status, the prescription and the history read, its verdicts equal the
pump's (a differential property test proves it); without them it is
conservative, or refuses to guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from itbproto.core.therapy.battery import daily_drain_scaled
from itbproto.core.therapy.flows import SCALE, Flow, dose_between
from itbproto.core.therapy.fluid import Path, Segment
from itbproto.core.therapy.profile import DeviceProfile, Drug
from itbproto.core.therapy.schedule import daily_dose_scaled, peak_ng_day
from itbproto.core.therapy.state import (
    NEW_PATIENT,
    ActiveBolus,
    Battery,
    BolusRecord,
    DoseEntry,
    RefillProgress,
    TherapyState,
)
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import AlarmCode, BolusKind, TherapyMode
from itbproto.core.wire.message import Message
from itbproto.units import Rounding, divide

__all__ = ["ALARM_HANDLING", "PumpView"]

#: commands checked against the alarm list alone (kept up to date as alarms are announced and handled)
ALARM_HANDLING = m.AlarmAcknowledge | m.AlarmSilence

_READ_NAMES: dict[type[Message], str] = {
    m.StatusReport: "status",
    m.TherapyHistory: "history",
    m.PrescriptionReport: "prescription",
    m.PatientRecordReport: "patient record",
}


@dataclass
class PumpView:
    """The replies a programmer has read, newest kept."""

    device: m.DeviceInfo | None = None
    status: m.StatusReport | None = None
    prescription: m.Prescription | None = None
    history: m.TherapyHistory | None = None
    records: tuple[m.RecordChange, ...] = ()
    thresholds: m.AlarmThresholds | None = None
    alarms: dict[int, m.AlarmRecord] = field(default_factory=dict)
    refill: m.RefillSession | None = None
    residual: m.ResidualRecorded | None = None
    refill_stage: m.RefillStaged | None = None
    #: the last bolus this session saw the pump start (its id, to cancel it)
    bolus_started: m.BolusStarted | None = None
    #: the status time the history was read at (it shows the last 24 h as of then)
    history_at: int | None = None
    #: the reads a change applied since has made out of date (``status``, ``history``, ...)
    outdated: set[str] = field(default_factory=set)

    @property
    def stopped(self) -> bool:
        """True when the last status said nothing is delivered (a withdrawal risk)."""
        flowing = (TherapyMode.INFUSING, TherapyMode.BOLUS, TherapyMode.REFILL)  # (a refill: as before it)
        return self.status is not None and self.status.mode not in flowing

    def changed(self, request: Message) -> None:
        """The pump applied ``request``: what was read before is out of date (alarm handling aside)."""
        if isinstance(request, ALARM_HANDLING | m.SessionEnd):
            return
        read: dict[str, object] = {"status": self.status, "history": self.history}
        if isinstance(request, m.CommitPrescription | m.SetRate):
            read["prescription"] = self.prescription
        self.outdated |= {name for name, reply in read.items() if reply is not None}
        if isinstance(request, m.SetPatientRecord | m.RecordScreeningResponse) and self.records:
            self.outdated.add("patient record")

    def to_reread(self) -> list[str]:
        """The reads to repeat before a command can be checked (a prescription only if one is in force)."""
        if self.status is not None and not self.status.prescription_id and "status" not in self.outdated:
            self.outdated.discard("prescription")
        return sorted(self.outdated)

    def learn(self, reply: Message) -> None:
        """Keep what a reply says about the pump."""
        self.outdated.discard(_READ_NAMES.get(type(reply), ""))
        match reply:
            case m.DeviceInfo():
                self.device = reply
            case m.StatusReport():
                self.status = reply
                if self.history is not None and reply.device_time != self.history_at:
                    self.outdated.add("history")  # time passed since: it no longer shows the last 24 h
            case m.PrescriptionReport():
                self.prescription = reply.prescription
            case m.TherapyHistory():
                self.history = reply
                self.history_at = self.status.device_time if self.status is not None else None
            case m.PatientRecordReport():
                self.records = reply.records
            case m.ThresholdsReport():
                self.thresholds = reply.thresholds
            case m.AlarmList():
                self.alarms = {a.alarm_id: a for a in reply.alarms}
            case m.RefillSession():
                self.refill, self.residual, self.refill_stage = reply, None, None
            case m.ResidualRecorded():
                self.residual = reply
            case m.RefillStaged():
                self.refill_stage = reply
            case m.BolusStarted():
                self.bolus_started = reply

    def end_refill(self) -> None:
        self.refill = self.residual = self.refill_stage = None

    def mirror(self, profile: DeviceProfile, drug: Drug) -> TherapyState | None:
        """What the programmer knows of the pump, erring towards more drug delivered.

        Whatever was delivered in the last 24 h beyond what the history shows
        (``StatusReport.delivered_24h_ng`` minus the history) is put at the very last
        second, so every future window counts it. Without a status read there is
        nothing to check against (None).
        """
        status = self.status
        if status is None:
            return None
        conc, now = status.concentration_ug_ml, status.device_time
        h = self.history
        flows = (
            tuple(Flow(f.start, f.end, f.rate_ul_day, f.concentration_ug_ml) for f in h.flows) if h else ()
        )
        unknown = status.delivered_24h_ng * SCALE - dose_between(flows, now - SCALE, now)
        if unknown > 0 and conc:
            flows += (Flow(now - 1, now, divide(unknown, conc, Rounding.UP), conc),)
        p = self.prescription
        mode = {
            TherapyMode.BOLUS: TherapyMode.INFUSING,
            TherapyMode.HALTED: TherapyMode.INFUSING,
            TherapyMode.END_OF_SERVICE: TherapyMode.STOPPED,
        }.get(status.mode, status.mode)
        records = tuple((r.since, r.record) for r in self.records)
        bolus = None
        if status.mode is TherapyMode.BOLUS:  # the remaining volume, as if delivered at once
            volume = max(status.bolus_remaining_ul, 1)
            at_once: tuple[Flow, ...] = (Flow(now, now + 1, volume * SCALE, conc),)
            bolus_id, started = 0, self.bolus_started  # 0: another session's (which, until when: unknown)
            if started is not None and started.ends_at > now:  # this session's: all of it now, until its end
                bolus_id = started.bolus_id
                at_once = (*at_once, Flow(now + 1, max(now + 1, started.ends_at), 0, conc))
            bolus = ActiveBolus(bolus_id, BolusKind.CLINICIAN, now, volume, at_once)
        battery = Battery.OK
        if AlarmCode.BATTERY_EOS in status.alarms or status.mode is TherapyMode.END_OF_SERVICE:
            battery = Battery.EOS
        elif AlarmCode.BATTERY_ERI in status.alarms:
            battery = Battery.ERI
        doses = tuple(DoseEntry(d.since, d.daily_dose_scaled, d.peak_ng_day) for d in h.doses) if h else ()
        if not doses and p is not None:
            doses = (DoseEntry(now, daily_dose_scaled(p), peak_ng_day(p)),)
        state = TherapyState(
            now=now,
            profile=profile,
            drug=drug,
            concentration_ug_ml=conc,
            reservoir_scaled=status.reservoir_ul * SCALE,
            mode=mode,
            prescription=p,
            prescription_id=status.prescription_id,
            bolus=bolus,
            delivered=flows,
            dose_log=doses,
            battery=battery,
            # what the pump reports, in whole days: the charge is at least that
            charge_scaled=status.battery_days * daily_drain_scaled(profile, p),
            motor_stalled=AlarmCode.MOTOR_STALL in status.alarms,
            thresholds=self.thresholds or profile.thresholds,
            last_event_at=now,
            alarms=tuple(self.alarms.values()),
            refill=self._refill_progress(mode, now),
            filled_at=now,  # unknown until the history is read: the pump checks the drug's age
        )
        if records:
            state = replace(state, record=records[-1][1], records=records)
        else:  # the strictest category until the record is read
            record = replace(NEW_PATIENT, phase=status.phase)
            state = replace(state, record=record, records=((now, record),))
        if h is None:  # the path as if it held the reservoir's drug: the pump checks the transients
            path_ul = profile.pump_path_ul + profile.catheter_ul
            return replace(state, path=Path.filled(path_ul, conc))
        return replace(
            state,
            boluses=tuple(
                BolusRecord(b.start, b.kind, b.volume_ul, b.dose_ng, b.screening, b.response)
                for b in h.boluses
            ),
            needs_priming=h.needs_priming,
            concentration_changed_at=h.concentration_changed_at or None,
            bridge_given=h.bridge_given,
            last_delivery_at=h.last_delivery_at,
            filled_at=h.filled_at,
            path=Path(tuple(Segment(s.volume_scaled, s.concentration_ug_ml) for s in h.path)),
        )

    def _refill_progress(self, mode: TherapyMode, now: int) -> RefillProgress | None:
        if self.refill is None:
            return None
        residual, staged = self.residual, self.refill_stage
        return RefillProgress(
            refill_id=self.refill.refill_id,
            expected_residual_ul=self.refill.expected_residual_ul,
            previous_mode=TherapyMode.INFUSING if mode is TherapyMode.REFILL else mode,
            started_at=now,
            measured_ul=residual.measured_ul if residual is not None else None,
            staged_volume_ul=staged.volume_ul if staged is not None else None,
            staged_conc_ug_ml=staged.concentration_ug_ml if staged is not None else None,
            digest=staged.digest if staged is not None else None,
        )
