"""The QA suite's independent oracle: what the device reports, checked against the catalog's numbers.

It never calls the rule engine. After every step it reads the pump's own records through the protocol (the
status with its active alarms, the therapy history's flows at the catheter tip, the new entries of the event
log, the prescription in force) and checks them by brute force with exact fractions:

- every 24 h window of drug at the catheter tip is at most the maximum daily dose of the prescription in
  force when it ends, and the ceiling (DOSE-001); a prescription keeps to its own maximum and that to the
  ceiling (DOSE-002, DOSE-003); every bolus is at most the absolute maximum (BOL-001);
- the reservoir never holds more than the pump can, and grows only by an accepted refill (REFILL-001);
  nothing flows from an empty reservoir (RES-002);
- each command transaction is applied once, whatever was retried or replayed (protocol.md §5; reported as
  TXN), and nothing changes delivery without a command the suite saw accepted;
- a low reservoir is annunciated while the pump infuses (RES-001); a suspension by command carries its
  acknowledgement, logged with it (STOP-002); nothing flows while suspended, in an MRI or at end of
  service (STOP-002, MRI-001, BATT-001);
- every clinician and patient bolus is at most the maximum bolus of the prescription in force when it
  started (BOL-001); patient boluses keep the prescription's lockout and count in any 24 h (PBOL-001,
  PBOL-002) and its volume (PBOL-003);
- every programmed increase of the daily dose is at most the titration step above the lowest dose in force
  in the 24 h before it, for the strictest patient category of those 24 h (TITR-001), increases are at least
  the interval apart (TITR-002), peaks rise at most their step (FLEX-003), and a large decrease or a large
  step above the maintenance range was acknowledged in the log (DECR-001, TITR-003).

Flows are accumulated across steps, so windows reach back past the 24 h a history holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from itertools import pairwise

from itbproto.core.safety import SafetyPolicy
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    AlarmCode,
    BolusKind,
    EventCode,
    Origin,
    PatientGroup,
    Severity,
    TherapyMode,
)

__all__ = ["CRITICAL", "DAY", "PROTOCOL", "REPLAY", "ROLE", "TXN", "Oracle", "Violation"]

DAY = 86_400
#: the protocol's own rules, reported beside the catalog's: each transaction applied once (specs/protocol.md
#: §5), stale frames dropped (§2, §6), roles enforced by the pump (§4)
TXN, REPLAY, ROLE = "TXN", "REPLAY", "ROLE"
PROTOCOL = (TXN, REPLAY, ROLE, "DIGEST", "LOCK", "PAIR", "REPLY")
#: the critical alarms (specs/protocol.md §8): they sound again after the re-annunciation period until their
#: condition clears; every other alarm is non-critical
CRITICAL = frozenset({AlarmCode.EMPTY_RESERVOIR, AlarmCode.BATTERY_EOS, AlarmCode.MOTOR_STALL})
#: events the pump logs for a change of delivery a programmer commanded (each names its transaction)
COMMANDED = frozenset(
    {
        EventCode.PRESCRIPTION_COMMITTED,
        EventCode.RATE_CHANGED,
        EventCode.SUSPENDED,
        EventCode.RESUMED,
        EventCode.REFILL_CONFIRMED,
    }
)


@dataclass(frozen=True)
class Violation:
    rule_id: str
    what: str


@dataclass(frozen=True)
class Piece:
    start: int
    end: int
    rate_ul_day: int
    conc_ug_ml: int

    def ng(self, start: Fraction, end: Fraction) -> Fraction:
        """ng at the tip during [start, end): µL/day × µg/mL is ng/day."""
        seconds = max(Fraction(0), min(Fraction(self.end), end) - max(Fraction(self.start), start))
        return self.rate_ul_day * self.conc_ug_ml * seconds / DAY


@dataclass
class Oracle:
    """Checks one pump; :meth:`check` after every step returns what it found wrong."""

    policy: SafetyPolicy
    capacity_ul: int
    pieces: list[Piece] = field(default_factory=list)
    checked_until: int | None = None
    reservoir_ul: int | None = None
    next_event: int = 0
    applied: dict[int, EventCode] = field(default_factory=dict)
    #: transactions the suite saw the pump accept (it adds them); refills among them
    accepted: set[int] = field(default_factory=set)
    refills: set[int] = field(default_factory=set)
    #: after a concentration change: the old drug the path held, [µL×86400, µg/mL] tip first, which the tip
    #: must deliver before the new; and the time up to which tip flows were matched against it
    old_drug: list[list[int]] = field(default_factory=list)
    matched_until: int = 0
    last_path: tuple[m.PathSegment, ...] = ()
    last_conc: int | None = None
    last_seen_at: int = 0
    #: since when the status has said 0 µL left while infusing
    dry_since: int | None = None
    #: the maximum daily dose of each prescription, by when it was committed
    maxima: dict[int, int] = field(default_factory=dict)
    #: each prescription in force, by when it was committed; every bolus seen, by (start, kind)
    prescriptions: dict[int, m.Prescription] = field(default_factory=dict)
    boluses: dict[tuple[int, BolusKind], m.BolusEntry] = field(default_factory=dict)
    #: dose changes seen (since -> entry), patient records seen (since -> record)
    doses: dict[int, m.DoseChange] = field(default_factory=dict)
    records: dict[int, m.PatientRecord] = field(default_factory=dict)
    #: times delivery stopped and started again by the log ([start, end), end None while it lasts)
    stops: list[list[int | None]] = field(default_factory=list)
    #: the device time of the first check: what the pump did before it is history, not judged
    started_at: int | None = None
    #: when the status first said end of service
    end_of_service: int | None = None
    #: hazards acknowledged, by the time of the command that met them
    acknowledged: dict[int, set[str]] = field(default_factory=dict)
    #: rule IDs whose checks had something to check, per step (the report's "exercised")
    exercised: set[str] = field(default_factory=set)

    def _param(self, rule_id: str, name: str) -> int:
        return self.policy(rule_id, name)

    def check(
        self,
        status: m.StatusReport,
        history: m.TherapyHistory,
        thresholds: m.AlarmThresholds,
        events: list[m.EventRecord],
        prescription: m.PrescriptionReport | None,
        records: tuple[m.RecordChange, ...] = (),
    ) -> list[Violation]:
        found: list[Violation] = []
        now = status.device_time
        path_before = self.last_path  # the path as the last look found it: what a bolus since pushed first
        if self.started_at is None:  # the first look: what the pump did before it (in this second too: a
            self.started_at = now  # remote pump goes on between examples) is history, judged by no one here
            self.doses.update((d.since, d) for d in history.doses)
            self.boluses.update(((b.start, b.kind), b) for b in history.boluses)
        ceiling = self._param("DOSE-003", "adult_ceiling_ng_day")
        if prescription is not None and prescription.committed_at not in self.maxima:
            self.maxima[prescription.committed_at] = prescription.prescription.max_daily_dose_ng
            self.prescriptions[prescription.committed_at] = prescription.prescription
        self.records.update((r.since, r.record) for r in records)
        found += self._windows(history, now, ceiling)
        found += self._first_in_first_out(status, history, events)
        programmed = status.rate_ul_day * status.concentration_ug_ml
        self.exercised.add("DOSE-002")
        if programmed > ceiling:
            found.append(
                Violation("DOSE-002", f"{programmed} ng/day flowing, over the {ceiling} ng/day ceiling")
            )
        if prescription is not None:
            found += self._prescription(prescription.prescription, ceiling)
        most_bolus = self._param("BOL-001", "absolute_max_bolus_ng")
        for bolus in history.boluses:
            if bolus.kind not in (BolusKind.CLINICIAN, BolusKind.PATIENT):
                continue  # a bridge or priming bolus pushes out the path (BRIDGE-001, PRIME-001)
            self.exercised.add("BOL-001")
            if bolus.dose_ng > most_bolus:
                found.append(
                    Violation("BOL-001", f"a {bolus.kind.name} bolus of {bolus.dose_ng} ng at {bolus.start}")
                )
        fresh = [e for e in events if e.index >= self.next_event]
        found += self._reservoir(status, events)
        found += self._events(events)
        found += self._alarms(status, thresholds)
        found += self._stopped(status, history, fresh)
        found += self._boluses(history, path_before)
        found += self._titration(history)
        return found

    def _in_force(self, at: int) -> m.Prescription | None:
        since = [t for t in self.prescriptions if t <= at]
        return self.prescriptions[max(since)] if since else None

    def _stopped(
        self, status: m.StatusReport, history: m.TherapyHistory, events: list[m.EventRecord]
    ) -> list[Violation]:
        """Nothing reaches the tip while the log says delivery is suspended, in an MRI, at end of service."""
        for e in events:
            if e.code in (EventCode.SUSPENDED, EventCode.MRI_BEGUN) and not self._stopped_now:
                self.stops.append([e.at, None])
            elif e.code is EventCode.RESUMED and self._stopped_now:
                self.stops[-1][1] = e.at
        if status.mode is TherapyMode.END_OF_SERVICE and self.end_of_service is None:
            self.end_of_service = status.device_time
        found: list[Violation] = []
        spans = [(start, end, "STOP-002") for start, end in self.stops]
        if self.end_of_service is not None:
            spans.append((self.end_of_service, None, "BATT-001"))
        for start, end, rule in spans:
            assert start is not None
            if end is not None and end <= start:
                continue  # resumed the second it stopped: nothing could flow in between
            late = [
                f for f in history.flows if f.rate_ul_day and f.end > start and (end is None or f.start < end)
            ]
            self.exercised.add(rule)
            if late:
                found.append(
                    Violation(rule, f"drug flowed while delivery was stopped from {start}: {late[0]}")
                )
        return found

    @property
    def _stopped_now(self) -> bool:
        return bool(self.stops) and self.stops[-1][1] is None

    def _boluses(self, history: m.TherapyHistory, path: tuple[m.PathSegment, ...]) -> list[Violation]:
        """Each bolus against the prescription in force when it started; patient boluses against its
        lockout, count and volume."""
        found: list[Violation] = []
        for b in history.boluses:
            key = (b.start, b.kind)
            if key in self.boluses or b.kind not in (BolusKind.CLINICIAN, BolusKind.PATIENT):
                continue
            self.boluses[key] = b
            p = self._in_force(b.start)
            if p is None or b.start < (self.started_at or 0):
                continue
            # a bolus's dose is its volume at the reservoir's concentration: the dose at the tip when the path
            # held that drug only (else the probes judge BOL-001 at the tip)
            uniform = all(s.concentration_ug_ml * b.volume_ul == b.dose_ng for s in path)
            self.exercised.add("BOL-001")
            if uniform and b.dose_ng > p.max_bolus_ng:
                found.append(
                    Violation(
                        "BOL-001", f"a {b.kind.name} bolus of {b.dose_ng} ng, its maximum {p.max_bolus_ng}"
                    )
                )
            if b.kind is not BolusKind.PATIENT:
                continue
            self.exercised.update(("PBOL-001", "PBOL-002", "PBOL-003"))
            if b.volume_ul != p.patient.volume_ul:
                found.append(
                    Violation(
                        "PBOL-003", f"a patient bolus of {b.volume_ul} uL, {p.patient.volume_ul} prescribed"
                    )
                )
            earlier = [s for (s, k) in self.boluses if k is BolusKind.PATIENT and s < b.start]
            if earlier and b.start - max(earlier) < p.patient.lockout_s:
                found.append(
                    Violation(
                        "PBOL-001",
                        f"patient boluses {b.start - max(earlier)} s apart, lockout {p.patient.lockout_s}",
                    )
                )
            within = [s for s in earlier if s > b.start - DAY]
            if len(within) >= p.patient.max_per_day:
                found.append(
                    Violation("PBOL-002", f"{len(within) + 1} patient boluses in 24 h up to {b.start}")
                )
        return found

    def _titration(self, history: m.TherapyHistory) -> list[Violation]:
        """Each increase of the programmed daily dose (and of its peak) against the lowest in force in the
        24 h before it; increases the interval apart; large steps acknowledged."""
        found: list[Violation] = []
        fresh = [d for d in history.doses if d.since not in self.doses and d.since >= (self.started_at or 0)]
        self.doses.update((d.since, d) for d in history.doses)
        entries = sorted(self.doses.values(), key=lambda d: d.since)
        interval = self._param("TITR-002", "interval_s")
        for d in fresh:
            before = [e for e in entries if e.since < d.since]
            if not before:
                continue
            window = [e for e in before if e.since > d.since - DAY] + [
                max((e for e in before if e.since <= d.since - DAY), key=lambda e: e.since, default=before[0])
            ]
            lowest, lowest_peak, current = (
                min(e.daily_dose_scaled for e in window),
                min(e.peak_ng_day for e in window),
                before[-1],
            )
            pct = self._titration_pct(d.since)
            if d.daily_dose_scaled > current.daily_dose_scaled:
                self.exercised.update(("TITR-001", "TITR-002"))
                if lowest and d.daily_dose_scaled * 100 > lowest * (100 + pct):
                    found.append(
                        Violation(
                            "TITR-001",
                            f"{d.daily_dose_scaled // DAY} ng/day at {d.since}: {pct} % over {lowest // DAY}",
                        )
                    )
                raised = [
                    e.since
                    for a, e in pairwise(entries)
                    if e.daily_dose_scaled > a.daily_dose_scaled and e.since < d.since
                ]
                if raised and d.since - max(raised) < interval:
                    found.append(Violation("TITR-002", f"raised at {max(raised)} and again at {d.since}"))
            peak_pct = self._param("FLEX-003", "peak_pct")
            if d.peak_ng_day > current.peak_ng_day and lowest_peak:
                self.exercised.add("FLEX-003")
                if d.peak_ng_day * 100 > lowest_peak * (100 + peak_pct):
                    found.append(
                        Violation(
                            "FLEX-003",
                            f"a peak of {d.peak_ng_day} ng/day at {d.since}, the lowest {lowest_peak}",
                        )
                    )
            drop = self._param("DECR-001", "max_decrease_pct")
            if d.daily_dose_scaled and d.daily_dose_scaled * 100 < current.daily_dose_scaled * (100 - drop):
                self.exercised.add("DECR-001")
                if "DECR-001" not in self.acknowledged.get(d.since, set()):
                    found.append(
                        Violation("DECR-001", f"a drop of more than {drop} % at {d.since}, unacknowledged")
                    )
        return found

    def _titration_pct(self, at: int) -> int:
        """TITR-001's percentage for the strictest patient record in force in the 24 h before ``at``."""
        since = sorted(self.records)
        live = [self.records[t] for t in since if at - DAY < t <= at]
        live += [self.records[t] for t in since if t <= at - DAY][-1:]
        pcts = [self._param("TITR-001", "spinal_pct")]
        for r in live:
            pcts.append(
                self._param("TITR-001", "cerebral_pct" if r.origin is Origin.CEREBRAL else "spinal_pct")
            )
            if r.group is PatientGroup.CHILD:
                pcts.append(self._param("TITR-001", "child_pct"))
        return min(pcts[1:] or pcts)

    def _prescription(self, p: m.Prescription, ceiling: int) -> list[Violation]:
        """A prescription in force keeps its own maximum, and the ceiling its maximum."""
        found = []
        self.exercised.update(("DOSE-002", "DOSE-003"))
        steps = sorted(p.steps, key=lambda s: s.start_s)
        ends = [s.start_s for s in steps[1:]] + [DAY]
        basal = sum(s.rate_ul_day * (end - s.start_s) for s, end in zip(steps, ends, strict=True))
        periodic = sum(b.volume_ul for b in p.boluses) * DAY
        daily = Fraction((basal + periodic) * p.concentration_ug_ml, DAY)
        if daily > p.max_daily_dose_ng:
            found.append(
                Violation(
                    "DOSE-002", f"{float(daily):.0f} ng/day programmed, its maximum {p.max_daily_dose_ng}"
                )
            )
        if p.max_daily_dose_ng > ceiling:
            found.append(Violation("DOSE-003", f"a maximum of {p.max_daily_dose_ng} ng/day, over {ceiling}"))
        return found

    def _first_in_first_out(
        self, status: m.StatusReport, history: m.TherapyHistory, events: list[m.EventRecord]
    ) -> list[Violation]:
        """After a refill with another concentration, the tip delivers what the path held first (DOSE-001
        counts every dose at the tip, first in first out)."""
        refills = [e for e in events if e.code is EventCode.REFILL_CONFIRMED]
        if refills and self.last_conc is not None and status.concentration_ug_ml != self.last_conc:
            self.old_drug = [[s.volume_scaled, s.concentration_ug_ml] for s in self.last_path]
            # what left the tip between the last look at the path and the refill came out of it already
            self._match(self.last_seen_at, refills[-1].at, None)
            self.matched_until = refills[-1].at
        self.last_path, self.last_conc = history.path, status.concentration_ug_ml
        self.last_seen_at = status.device_time
        found: list[Violation] = []
        if self.old_drug and status.device_time - self.matched_until > DAY:
            self.old_drug = []  # the history holds a day of flows: a longer gap cannot be followed
        if self.old_drug:
            self._match(self.matched_until, status.device_time, found)
            self.matched_until = status.device_time
        return found

    def _match(self, start: int, end: int, found: list[Violation] | None) -> None:
        """Take what left the tip in [start, end) off the old drug; with ``found``, check it was that. A
        second that two concentrations shared is reported as two flows of that second, in no particular
        order: they are taken in the path's order."""
        pieces = sorted((p for p in self.pieces if p.end > start and p.start < end), key=lambda p: p.start)
        while pieces and self.old_drug:
            head = self.old_drug[0]
            same = [p for p in pieces if (p.start, p.end) == (pieces[0].start, pieces[0].end)]
            p = next((q for q in same if q.conc_ug_ml == head[1]), same[0])
            pieces.remove(p)
            volume = p.rate_ul_day * (min(p.end, end) - max(p.start, start))  # µL×86400
            while volume and self.old_drug:
                head = self.old_drug[0]
                if p.conc_ug_ml != head[1] and head[0] <= p.rate_ul_day:  # a residue under a second's flow
                    self.old_drug.pop(0)
                    continue
                if p.conc_ug_ml != head[1] and found is not None:
                    self.exercised.add("DOSE-001")
                    found.append(
                        Violation(
                            "DOSE-001",
                            f"the tip gets {p.conc_ug_ml} µg/mL at {p.start} while the path still holds "
                            f"{head[0] // DAY} µL of {head[1]} µg/mL",
                        )
                    )
                    self.old_drug = []
                    return
                taken = min(volume, head[0])
                head[0] -= taken
                volume -= taken
                if not head[0]:
                    self.old_drug.pop(0)

    def _windows(self, history: m.TherapyHistory, now: int, ceiling: int) -> list[Violation]:
        """Join the history's flows to what came before, then every window ending since the last check. A
        history cut short (``complete`` false) holds the newest flows: what came before them is kept."""
        cut = now - DAY
        if not history.complete and history.flows:
            cut = max(cut, min(f.start for f in history.flows))
        kept = [p for p in self.pieces if p.start < cut]
        kept = [Piece(p.start, min(p.end, cut), p.rate_ul_day, p.conc_ug_ml) for p in kept]
        fresh = [Piece(max(f.start, cut), f.end, f.rate_ul_day, f.concentration_ug_ml) for f in history.flows]
        self.pieces = kept + [p for p in fresh if p.end > p.start]
        since = now if self.checked_until is None else self.checked_until
        self.checked_until = now
        edges = {now} | {b for p in self.pieces for b in (p.start, p.end, p.start + DAY, p.end + DAY)}
        found: list[Violation] = []
        for end in sorted(e for e in edges if since <= e <= now):
            dose = sum((p.ng(Fraction(end - DAY), Fraction(end)) for p in self.pieces), Fraction(0))
            if dose:
                self.exercised.add("DOSE-001")
            in_force = [at for at in self.maxima if at <= end]
            limit = min(ceiling, self.maxima[max(in_force)]) if in_force else ceiling
            if dose > limit:
                found.append(
                    Violation("DOSE-001", f"{float(dose):.0f} ng in the 24 h before {end}, over {limit}")
                )
        return found

    def _reservoir(self, status: m.StatusReport, events: list[m.EventRecord]) -> list[Violation]:
        found: list[Violation] = []
        before, self.reservoir_ul = self.reservoir_ul, status.reservoir_ul
        self.exercised.update(("REFILL-001", "RES-002"))
        if status.reservoir_ul > self.capacity_ul:
            found.append(
                Violation("REFILL-001", f"{status.reservoir_ul} µL in a {self.capacity_ul} µL reservoir")
            )
        refilled = any(e.code is EventCode.REFILL_CONFIRMED for e in events)
        if before is not None and status.reservoir_ul > before and not refilled:
            found.append(
                Violation("REFILL-001", f"the reservoir grew {before} -> {status.reservoir_ul} µL unrefilled")
            )
        # the status counts whole µL (rounded down): 0 while infusing is empty once a µL's time has passed
        infusing_dry = status.reservoir_ul == 0 and status.rate_ul_day and status.mode is TherapyMode.INFUSING
        if not infusing_dry:
            self.dry_since = None
        elif self.dry_since is None:
            self.dry_since = status.device_time
        elif (status.device_time - self.dry_since) * status.rate_ul_day > DAY:
            found.append(Violation("RES-002", f"infusing from an empty reservoir since {self.dry_since}"))
        return found

    def _events(self, events: list[m.EventRecord]) -> list[Violation]:
        found: list[Violation] = []
        fresh = [e for e in events if e.index >= self.next_event]
        acknowledged = {(e.txn, e.detail.split(" ", 1)[0]) for e in fresh if e.code is EventCode.ACKNOWLEDGED}
        for e in fresh:
            if e.code is EventCode.ACKNOWLEDGED:
                self.acknowledged.setdefault(e.at, set()).add(e.detail.split(" ", 1)[0])
        for event in fresh:
            self.next_event = event.index + 1
            if event.code is EventCode.SUSPENDED and event.txn:  # a suspension by command (STOP-002)
                self.exercised.add("STOP-002")
                if (event.txn, "STOP-002") not in acknowledged:
                    found.append(Violation("STOP-002", f"transaction {event.txn} suspended unacknowledged"))
            if event.code not in COMMANDED or event.txn == 0:
                continue
            self.exercised.add(TXN)
            if event.txn in self.applied and self.applied[event.txn] is event.code:
                found.append(Violation(TXN, f"transaction {event.txn} applied twice ({event.code.name})"))
            self.applied[event.txn] = event.code
            if event.txn not in self.accepted:
                found.append(
                    Violation(TXN, f"{event.code.name} by transaction {event.txn}, which no one saw accepted")
                )
        return found

    def severities(self, alarms: tuple[m.AlarmRecord, ...]) -> list[Violation]:
        """Each alarm listed with the severity specs/protocol.md §8 gives its code."""
        self.exercised.add("ALARM-001")
        return [
            Violation("ALARM-001", f"{a.code.name} listed as {a.severity.name}")
            for a in alarms
            if (a.severity is Severity.CRITICAL) != (a.code in CRITICAL)
        ]

    def _alarms(self, status: m.StatusReport, thresholds: m.AlarmThresholds) -> list[Violation]:
        codes = status.alarms
        if (
            0 < status.battery_days <= thresholds.eri_lead_days
            and status.mode is not TherapyMode.END_OF_SERVICE
        ):
            self.exercised.add("BATT-002")
            if AlarmCode.BATTERY_ERI not in codes:
                return [Violation("BATT-002", f"{status.battery_days} days of battery left and no ERI alarm")]
        if 0 < status.reservoir_ul <= thresholds.low_reservoir_ul and status.mode is TherapyMode.INFUSING:
            self.exercised.add("RES-001")
            if not codes & {AlarmCode.LOW_RESERVOIR, AlarmCode.EMPTY_RESERVOIR}:
                return [Violation("RES-001", f"{status.reservoir_ul} µL left and no low-reservoir alarm")]
        return []
