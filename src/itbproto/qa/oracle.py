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
  acknowledgement, logged with it (STOP-002).

Flows are accumulated across steps, so windows reach back past the 24 h a history holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

from itbproto.safety import SafetyPolicy
from itbproto.wire import messages as m
from itbproto.wire.enums import AlarmCode, BolusKind, EventCode, TherapyMode

__all__ = ["DAY", "PROTOCOL", "REPLAY", "ROLE", "TXN", "Oracle", "Violation"]

DAY = 86_400
#: the protocol's own rules, reported beside the catalog's: each transaction applied once (specs/protocol.md
#: §5), stale frames dropped (§2, §6), roles enforced by the pump (§4)
TXN, REPLAY, ROLE = "TXN", "REPLAY", "ROLE"
PROTOCOL = (TXN, REPLAY, ROLE, "DIGEST", "LOCK", "PAIR", "REPLY")
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
    ) -> list[Violation]:
        found: list[Violation] = []
        now = status.device_time
        ceiling = self._param("DOSE-003", "adult_ceiling_ng_day")
        if prescription is not None and prescription.committed_at not in self.maxima:
            self.maxima[prescription.committed_at] = prescription.prescription.max_daily_dose_ng
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
        found += self._reservoir(status, events)
        found += self._events(events)
        found += self._alarms(status, thresholds)
        return found

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

    def _alarms(self, status: m.StatusReport, thresholds: m.AlarmThresholds) -> list[Violation]:
        codes = status.alarms
        if 0 < status.reservoir_ul <= thresholds.low_reservoir_ul and status.mode is TherapyMode.INFUSING:
            self.exercised.add("RES-001")
            if not codes & {AlarmCode.LOW_RESERVOIR, AlarmCode.EMPTY_RESERVOIR}:
                return [Violation("RES-001", f"{status.reservoir_ul} µL left and no low-reservoir alarm")]
        return []
