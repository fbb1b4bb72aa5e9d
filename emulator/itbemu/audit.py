"""A reference auditor: the dose rules re-checked from an export alone (``itbemu audit EXPORT``).

It reads nothing but the export (specs/export.md: its header, events and ledger rows), and it shares no code
with the rule engine (:mod:`itbproto.core.safety` is not imported): every dose is an exact integer
(ng × 86 400, µL × 86 400) or a :class:`~fractions.Fraction`, never a float. What it checks is what the
export shows happened:

- DOSE-001: the drug that reached the catheter tip in every 24 h window [s, s + 86 400), over the ledger,
  at most the maximum daily dose of the prescription in force at the window's last second and DOSE-003's
  ceiling for the patient record's group in force then (the ceiling alone with no prescription);
- BOL-001: every clinician and patient bolus, at the tip (the fluid path it pushes out first, then the
  reservoir's drug), and every periodic bolus of every prescription, at most the prescription's maximum
  bolus and the policy's absolute maximum;
- PBOL-001/002/003: patient boluses apart by the lockout, at most the number per 24 h, as prescribed;
- TITR-001/002: each raise of the programmed daily dose at most the titration percentage above the lowest
  daily dose programmed during the last 24 h (inclusive), and at most one raise per interval;
- REFILL-001: the volume put in plus what stayed behind, at most the reservoir's capacity;
- RES-001 and BATT-002: every alarm threshold set at least the policy's minimum; BATT-001: nothing reaches
  the tip after end of service, and BATT-002: end of service came at least the minimum lead after the
  replacement indicator (unless a battery fault intervened).

A finding names the rule and the window, bolus or change that broke it, one line each.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

__all__ = ["DAY", "Export", "Finding", "audit", "audit_text", "parse"]

#: seconds in a day: a 24 h window, and the scale of every µL/day × s product
DAY = 86_400
_LIMITED = ("CLINICIAN", "PATIENT")
_UNCOMMANDED = " (uncommanded: the valves opened)"
_ERI, _EOS = 3, 4  # AlarmCode values (specs/protocol.md): BATTERY_ERI, BATTERY_EOS


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken: where (a window [start, end), a bolus or a change at ``start``) and how."""

    rule: str
    start: int
    end: int | None
    what: str

    def __str__(self) -> str:
        where = f"window [{self.start}, {self.end})" if self.end is not None else f"at {self.start}"
        return f"{self.rule} {where}: {self.what}"

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "start": self.start, "end": self.end, "what": self.what}


@dataclass(slots=True)
class Export:
    """An export, parsed: its header, its event lines and its ledger rows, as read."""

    header: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    ledger: list[dict[str, Any]] = field(default_factory=list)


def parse(text: str) -> Export:
    """The export in ``text`` (JSON lines); ValueError naming the line when it is not one."""
    export: Export | None = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"line {number}: not JSON ({exc.msg})") from None
        kind = item.get("kind") if isinstance(item, dict) else None
        if export is None:
            if kind != "header" or item.get("format") != "itbemu-export" or item.get("version") != 1:
                raise ValueError(f"line {number}: an export starts with its header (itbemu-export version 1)")
            export = Export(item)
        elif kind == "event":
            export.events.append(item)
        elif kind == "ledger":
            export.ledger.append(item)
        else:
            raise ValueError(f"line {number}: a line of kind {kind!r}: expected an event or a ledger row")
    if export is None:
        raise ValueError("an empty export: no header")
    return export


def audit_text(text: str) -> list[Finding]:
    """:func:`audit` of the export in ``text``."""
    return audit(parse(text))


def audit(export: Export) -> list[Finding]:
    """Every rule the export shows broken, in rule order, then time order."""
    timeline = _Timeline(export)
    return [
        *_dose(export, timeline),
        *_boluses(export, timeline),
        *_titration(export, timeline),
        *_refills(export, timeline),
        *_thresholds(timeline),
        *_battery(export, timeline),
    ]


# --- the state over time, from the header and the events' facts -----------------------------------------


@dataclass(frozen=True, slots=True)
class _Change:
    at: int
    index: int  # the event's index (-1: the header's start)
    value: Any


class _Timeline:
    """What was in force when: prescriptions, patient records, thresholds, as the export tells."""

    def __init__(self, export: Export) -> None:
        h = export.header
        start = h["start"]
        self.profile: dict[str, Any] = h["profile"]
        self.drug: dict[str, Any] = h["drug"]
        self.policy: dict[str, int] = h["policy"]
        self.start_at: int = start["at"]
        self.prescriptions = [_Change(start["at"], -1, start["prescription"])]
        self.records = [_Change(start["at"], -1, start["record"])]
        self.thresholds = [_Change(start["at"], -1, start["thresholds"])]
        self.boluses: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (event, its bolus)
        for event in export.events:
            facts = event["facts"]
            at, index = event["at"], event["index"]
            if "prescription" in facts:
                self.prescriptions.append(_Change(at, index, facts["prescription"]))
            if "record" in facts:
                self.records.append(_Change(at, index, facts["record"]))
            if "thresholds" in facts:
                self.thresholds.append(_Change(at, index, facts["thresholds"]))
            if "bolus" in facts:
                self.boluses.append((event, facts["bolus"]))

    @staticmethod
    def at(changes: Sequence[_Change], t: int, before_index: int | None = None) -> _Change:
        """The change in force at ``t`` (the last one made at or before it; ``before_index``: before that
        event, for what an event found in force)."""
        found = changes[0]
        for change in changes:
            if change.at > t or (before_index is not None and change.index >= before_index):
                break
            found = change
        return found

    @staticmethod
    def during(changes: Sequence[_Change], start: int, end: int, before_index: int) -> list[Any]:
        """The values in force at some time in [start, end], before event ``before_index``."""
        values = [_Timeline.at(changes, start).value]
        values += [c.value for c in changes if start < c.at <= end and c.index < before_index]
        return values

    def ceiling_ng_day(self, record: dict[str, Any]) -> int:
        """DOSE-003's ceiling for the record's group: the drug's, or the policy's if lower."""
        group = "child" if record["group"] == "CHILD" else "adult"
        drug = int(self.drug[f"ceiling_{group}_ng_day"])
        return min(drug, self.policy.get(f"DOSE-003.{group}_ceiling_ng_day", drug))


def _daily_scaled(p: dict[str, Any]) -> int:
    """The programmed daily dose (ng × 86 400) of a prescription: basal steps plus periodic boluses."""
    steps = p["steps"]
    bounds = [s["start_s"] for s in steps[1:]] + [DAY]
    pairs = zip(steps, bounds, strict=True)
    basal = sum(s["rate_ul_day"] * max(0, until - s["start_s"]) for s, until in pairs)
    boluses = sum(b["volume_ul"] * DAY for b in p["boluses"])
    return int((basal + boluses) * p["concentration_ug_ml"])


def _day(t: int, origin: int) -> str:
    return f"day {Fraction(t - origin, DAY).__float__():.3f}"


def _ug(scaled_ng: int | Fraction) -> str:
    """ng × 86 400 as µg, for reading (the comparison was exact)."""
    return f"{float(Fraction(scaled_ng) / DAY / 1000):.3f} µg"


# --- DOSE-001 ----------------------------------------------------------------------------------------------


class _Tip:
    """The drug at the tip as a function of time: F(t), the ng × 86 400 delivered before t."""

    def __init__(self, ledger: Iterable[dict[str, Any]]) -> None:
        steps: dict[int, int] = {}
        for row in ledger:
            dose = row["rate_ul_day"] * row["concentration_ug_ml"]  # ng/day: ng × 86 400 per second
            steps[row["start"]] = steps.get(row["start"], 0) + dose
            steps[row["end"]] = steps.get(row["end"], 0) - dose
        self.times = sorted(steps)
        self.total: list[int] = []  # F at each time
        self.slope: list[int] = []  # after it
        total = slope = 0
        previous = self.times[0] if self.times else 0
        for t in self.times:
            total += slope * (t - previous)
            slope += steps[t]
            self.total.append(total)
            self.slope.append(slope)
            previous = t

    def before(self, t: int) -> int:
        k = bisect_right(self.times, t) - 1
        return 0 if k < 0 else self.total[k] + self.slope[k] * (t - self.times[k])

    def window(self, start: int) -> int:
        return self.before(start + DAY) - self.before(start)


def _dose(export: Export, tl: _Timeline) -> Iterable[Finding]:
    tip = _Tip(export.ledger)
    if not tip.times:
        return
    first, last = tip.times[0], tip.times[-1]
    changes = [c.at for c in (*tl.prescriptions, *tl.records)]
    candidates = {e - shift for e in tip.times for shift in (0, DAY)}
    candidates |= {c - DAY + extra for c in changes for extra in (0, 1)}
    run: list[tuple[int, int, int]] = []  # (start, dose, limit) of the windows over their limit in a row

    def flush() -> Iterable[Finding]:
        if run:
            start, dose, limit = max(run, key=lambda w: w[1] - w[2])
            also = f" (windows starting {run[0][0]} to {run[-1][0]} are over too)" if len(run) > 1 else ""
            yield Finding(
                "DOSE-001",
                start,
                start + DAY,
                f"{_ug(dose)} reached the catheter tip, over the limit of {_ug(limit)} by {_ug(dose - limit)}"
                f" ({_day(start, tl.start_at)} of the export){also}",
            )
            run.clear()

    for start in sorted(s for s in candidates if s + DAY > first and s < last):
        dose = tip.window(start)
        end = start + DAY - 1  # the window's last second: what was in force then limits it
        p = tl.at(tl.prescriptions, end).value
        ceiling = tl.ceiling_ng_day(tl.at(tl.records, end).value)
        limit = min(ceiling, p["max_daily_dose_ng"]) if p is not None else ceiling
        if dose > limit * DAY:
            run.append((start, dose, limit * DAY))
        else:
            yield from flush()
    yield from flush()


# --- BOL-001, PBOL-001/002/003 ------------------------------------------------------------------------------


def _tip_dose_ng(bolus: dict[str, Any]) -> int:
    """The drug a bolus pushes out of the tip: the path's next volume at its concentrations, then the
    reservoir's drug (rounded up to whole ng)."""
    left, dose = bolus["volume_ul"] * DAY, 0
    for segment in bolus["path"]:
        take = min(left, segment["volume_scaled"])
        dose, left = dose + take * segment["concentration_ug_ml"], left - take
    dose += left * bolus["concentration_ug_ml"]
    return int(-(-dose // DAY))


def _boluses(export: Export, tl: _Timeline) -> Iterable[Finding]:
    absolute = tl.policy["BOL-001.absolute_max_bolus_ng"]
    for change in tl.prescriptions[1:] if tl.prescriptions[0].value is None else tl.prescriptions:
        p = change.value
        for b in p["boluses"] if p is not None else ():
            dose = b["volume_ul"] * p["concentration_ug_ml"]
            if dose > min(p["max_bolus_ng"], absolute):
                yield Finding(
                    "BOL-001",
                    change.at,
                    None,
                    f"the periodic bolus at {b['start_s']} s of the prescription committed at {change.at} is"
                    f" {dose} ng, over its maximum {p['max_bolus_ng']} ng or the absolute {absolute} ng",
                )
    patient: list[tuple[int, dict[str, Any]]] = []
    for event, bolus in tl.boluses:
        if bolus["kind"] not in _LIMITED:
            continue
        what = f"{bolus['kind'].lower()} bolus {bolus['bolus_id']}{_UNCOMMANDED * (not bolus['bolus_id'])}"
        p = tl.at(tl.prescriptions, event["at"], event["index"]).value
        dose = _tip_dose_ng(bolus)
        limits = [(absolute, "the policy's absolute maximum")]
        if p is not None:
            limits.append((p["max_bolus_ng"], "the prescription's maximum bolus"))
        for limit, name in limits:
            if dose > limit:
                yield Finding(
                    "BOL-001",
                    bolus["start"],
                    None,
                    f"{what} delivers {dose} ng at the tip, over {name} of {limit} ng",
                )
        if bolus["kind"] == "PATIENT":
            patient.append((event["index"], bolus))
    yield from _patient(patient, tl)


def _patient(boluses: list[tuple[int, dict[str, Any]]], tl: _Timeline) -> Iterable[Finding]:
    starts: list[int] = []
    for index, bolus in boluses:
        at, name = bolus["start"], f"patient bolus {bolus['bolus_id']}"
        p = tl.at(tl.prescriptions, at, index).value
        allowed = p["patient"] if p is not None else None
        if allowed is None or allowed["max_per_day"] == 0:
            yield Finding("PBOL-003", at, None, f"{name}: no prescription in force enables patient boluses")
        else:
            asked = (bolus["volume_ul"], bolus["duration_s"])
            if asked != (allowed["volume_ul"], allowed["duration_s"]):
                yield Finding(
                    "PBOL-003",
                    at,
                    None,
                    f"{name} of {asked[0]} µL over {asked[1]} s, not the prescribed {allowed['volume_ul']} µL"
                    f" over {allowed['duration_s']} s",
                )
            if starts and at - starts[-1] < allowed["lockout_s"]:
                yield Finding(
                    "PBOL-001",
                    at,
                    None,
                    f"{name} started {at - starts[-1]} s after the previous one; the lockout is"
                    f" {allowed['lockout_s']} s",
                )
            in_day = 1 + sum(1 for s in starts if s > at - DAY)
            if in_day > allowed["max_per_day"]:
                yield Finding(
                    "PBOL-002",
                    at - DAY + 1,
                    at + 1,
                    f"{name} makes {in_day} patient boluses started in 24 h;"
                    f" at most {allowed['max_per_day']}",
                )
        starts.append(at)


# --- TITR-001/002 -------------------------------------------------------------------------------------------


def _titration(export: Export, tl: _Timeline) -> Iterable[Finding]:
    raised: list[int] = []
    interval = max(tl.policy["TITR-002.interval_s"], tl.drug["titration_interval_s"])
    for k, change in enumerate(tl.prescriptions):
        if k == 0 or change.value is None:
            continue
        now, new = change.at, _daily_scaled(change.value)
        current = tl.prescriptions[k - 1].value
        if current is None or new <= _daily_scaled(current):
            continue
        in_force = [p for p in tl.during(tl.prescriptions, now - DAY, now, change.index) if p is not None]
        reference = min(_daily_scaled(p) for p in in_force)
        pct = min(_titration_pct(tl, r) for r in tl.during(tl.records, now - DAY, now, change.index + 1))
        if new * 100 > reference * (100 + pct):
            yield Finding(
                "TITR-001",
                now,
                None,
                f"the daily dose raised to {_ug(new)}, more than {pct} % above {_ug(reference)}, the lowest"
                " programmed during the last 24 h",
            )
        if raised and now - raised[-1] < interval:
            yield Finding(
                "TITR-002",
                now,
                None,
                f"the daily dose raised again {now - raised[-1]} s after the raise at {raised[-1]};"
                f" at most one per {interval} s",
            )
        raised.append(now)


def _titration_pct(tl: _Timeline, record: dict[str, Any]) -> int:
    if record["group"] == "CHILD":
        return min(tl.policy["TITR-001.child_pct"], int(tl.drug["titration_child_pct"]))
    if record["origin"] == "CEREBRAL":
        return min(tl.policy["TITR-001.cerebral_pct"], int(tl.drug["titration_cerebral_pct"]))
    return min(tl.policy["TITR-001.spinal_pct"], int(tl.drug["titration_spinal_pct"]))


# --- REFILL-001, RES-001, BATT-001/002 ----------------------------------------------------------------------


def _refills(export: Export, tl: _Timeline) -> Iterable[Finding]:
    capacity = tl.profile["reservoir_capacity_ul"]
    for event in export.events:
        refill = event["facts"].get("refill")
        if refill is None:
            continue
        left = max(0, refill["expected_residual_ul"] - refill["measured_residual_ul"])
        if refill["volume_ul"] + left > capacity:
            yield Finding(
                "REFILL-001",
                event["at"],
                None,
                f"refill {refill['refill_id']} put in {refill['volume_ul']} µL with up to {left} µL left"
                f" behind: over the capacity of {capacity} µL",
            )


def _thresholds(tl: _Timeline) -> Iterable[Finding]:
    minimums = (
        ("RES-001", "low_reservoir_ul", tl.policy["RES-001.min_low_reservoir_ul"]),
        ("RES-001", "low_reservoir_days", tl.policy["RES-001.min_low_reservoir_days"]),
        ("BATT-002", "eri_lead_days", tl.policy["BATT-002.min_eri_lead_days"]),
    )
    for change in tl.thresholds:
        for rule, name, minimum in minimums:
            if change.value[name] < minimum:
                yield Finding(
                    rule, change.at, None, f"{name} set to {change.value[name]}, below the minimum {minimum}"
                )


def _battery(export: Export, tl: _Timeline) -> Iterable[Finding]:
    eri = eos = None
    faults: list[int] = []
    for event in export.events:
        facts, at = event["facts"], event["at"]
        code, value = event["code"], event["value"]
        if eri is None and (facts.get("battery") == "ERI" or (code == "ALARM_RAISED" and value == _ERI)):
            eri = at
        if eos is None and (facts.get("battery") == "EOS" or (code == "ALARM_RAISED" and value == _EOS)):
            eos = at
        if code == "FAULT" and event["detail"].startswith("battery"):
            faults.append(at)
    if eos is None:
        return
    late = [row for row in export.ledger if row["end"] > eos]
    if late:
        yield Finding(
            "BATT-001",
            max(eos, late[0]["start"]),
            None,
            f"{len(late)} ledger rows deliver after end of service at {eos}",
        )
    lead = tl.policy["BATT-002.min_eri_lead_days"] * DAY
    if eri is not None and eos - eri < lead and not any(eri <= f <= eos for f in faults):
        yield Finding(
            "BATT-002",
            eri,
            eos,
            f"end of service came {eos - eri} s after the replacement indicator; at least {lead} s",
        )
