"""Property proofs that dose limits are never exceeded, checked by a brute-force oracle.

The oracle below does not call the rule engine or the window sweep: it keeps its
own record of every flow delivered, every prescription in force and every refill,
and checks each 24 h window one by one with exact fractions.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from conftest import examples
from factories import DAY, POLICY, T0, ack, commit, empty_pump, in_force, patient, prescription
from itbproto.core.safety import evaluate
from itbproto.core.therapy import SCALE, Flow, TherapyState, advance, apply
from itbproto.core.wire import (
    BolusCancel,
    BolusKind,
    BolusStart,
    FlexStep,
    Message,
    MriBegin,
    MriEnd,
    Origin,
    PatientGroup,
    PatientRecord,
    PeriodicBolus,
    Phase,
    Prescription,
    PrescriptionMode,
    Procedure,
    RecordProcedure,
    RefillAbort,
    RefillBegin,
    RefillConfirm,
    RefillResidual,
    RefillStageDrug,
    Resume,
    SetClock,
    SetPatientRecord,
    SetRate,
    StagePrescription,
    Suspend,
)
from itbproto.errors import TherapyStateError

ABSOLUTE_BOLUS_NG = POLICY("BOL-001", "absolute_max_bolus_ng")
ADULT_CEILING_NG = POLICY("DOSE-003", "adult_ceiling_ng_day")
CONCENTRATIONS = (50, 500, 1000, 2000)


# --- the oracle -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """Drug at ``conc`` leaving the catheter tip at ``rate`` µL/day during [start, end) (exact times)."""

    start: Fraction
    end: Fraction
    rate: int
    conc: int

    def dose(self, start: int, end: int) -> Fraction:
        """ng of it in [start, end)."""
        seconds = max(Fraction(0), min(self.end, Fraction(end)) - max(self.start, Fraction(start)))
        return self.rate * self.conc * seconds / SCALE


class Fifo:
    """The fluid path as a list of [µL, µg/mL] parts, tip first: drug goes in at the pump end, the same
    volume comes out of the tip, first in first out."""

    def __init__(self, volume_ul: int, conc: int) -> None:
        self.parts: list[list[Fraction | int]] = [[Fraction(volume_ul), conc]]

    def push(self, volume: Fraction, conc: int) -> list[tuple[Fraction, int]]:
        """Push ``volume`` of ``conc`` in; return the (volume, conc) that leave the tip, in order."""
        self.parts.append([volume, conc])
        out: list[tuple[Fraction, int]] = []
        need = volume
        while need > 0:
            part = self.parts[0]
            take = min(Fraction(part[0]), need)
            out.append((take, int(part[1])))
            need -= take
            part[0] = Fraction(part[0]) - take
            if part[0] == 0:
                self.parts.pop(0)
        return out

    def ahead(self, volume: Fraction, conc: int) -> Fraction:
        """ng in the next ``volume`` to leave the tip (the reservoir's ``conc`` behind the path)."""
        dose, left = Fraction(0), volume
        for part_volume, part_conc in self.parts:
            take = min(Fraction(part_volume), left)
            dose, left = dose + take * part_conc, left - take
        return dose + left * conc

    def replace_tip(self, volume_ul: int, keep_ul: Fraction) -> None:
        """The tip end becomes ``volume_ul`` of saline, followed by the last ``keep_ul`` of the path."""
        kept: list[list[Fraction | int]] = []
        left = keep_ul
        for volume, conc in reversed(self.parts):
            if left <= 0:
                break
            take = min(Fraction(volume), left)
            kept.insert(0, [take, conc])
            left -= take
        self.parts = [[Fraction(volume_ul), 0], *kept]


@dataclass
class Oracle:
    """An independent record of what happened, and the checks against it.

    It takes from the pump only the volume leaving the tip second by second (equal to what the
    pump pushed in: the path holds a fixed volume) and works out what concentration that volume
    has with its own first-in-first-out path, in exact fractions of a second."""

    fifo: Fifo
    conc: int  # what the reservoir holds
    catheter_ul: int
    pump_part_ul: int
    pieces: list[Piece]
    flows: list[Flow]  # what the pump says left the tip (for the volume checks)
    limits: list[tuple[int, int]]  # (from, max daily dose in force) in time order
    boluses: list[tuple[int, Fraction, int]]  # (start, dose ng, max bolus in force)
    fills: list[tuple[int, int]]  # (time, scaled volume the reservoir was set to)
    checked_until: int

    def delivered(self, start: int, end: int, flows: tuple[Flow, ...]) -> None:
        """The pump ran from ``start`` to ``end`` and says ``flows`` left the tip."""
        self.flows += flows
        edges = sorted({start, end, *(f.start for f in flows), *(f.end for f in flows)})
        for a, b in itertools.pairwise(edges):
            rate = sum(f.rate_ul_day for f in flows if f.start <= a and f.end >= b)
            if not rate:
                continue
            t = Fraction(a)
            for volume, conc in self.fifo.push(Fraction(rate * (b - a), SCALE), self.conc):
                duration = volume * SCALE / rate
                self.pieces.append(Piece(t, t + duration, rate, conc))
                t += duration
        pumped = sum(
            (Fraction(f.rate_ul_day * f.conc_ug_ml * (f.end - f.start), SCALE) for f in flows), Fraction(0)
        )
        mine = sum((p.dose(start, end) for p in self.pieces if p.end > start), Fraction(0))
        assert mine == pumped, (
            f"the pump says {pumped} ng left the tip in [{start}, {end}); the path gives {mine}"
        )

    def surgery(self, procedure: Procedure, catheter_ul: int, default_ul: int) -> None:
        """What catheter work leaves in the path: saline where parts are new."""
        if procedure is Procedure.CATHETER_REVISION:
            self.catheter_ul = catheter_ul or default_ul
            self.fifo.replace_tip(self.catheter_ul, Fraction(self.pump_part_ul))
        else:
            if procedure is Procedure.PUMP_IMPLANT:
                self.catheter_ul = catheter_ul or default_ul
            self.fifo.replace_tip(self.catheter_ul + self.pump_part_ul, Fraction(0))

    def limit_over(self, start: int, end: int) -> int:
        """The daily limit a window is held to: the latest one in force during it.

        Committing a prescription re-checks every window that overlaps its time, so a
        window that spans two prescriptions answers to the later one (a raised limit is a
        clinical decision, itself bounded by DOSE-003 and the titration rules).
        """
        in_force = [limit for since, limit in self.limits if since < end]
        return in_force[-1] if in_force else ADULT_CEILING_NG

    def check_windows(self, now: int) -> None:
        recent = [p for p in self.pieces if p.end > self.checked_until - 2 * DAY]
        starts = {self.checked_until - DAY, now - DAY}
        for p in recent:  # the dose in a window is piecewise linear in its start: check every corner
            for edge in (p.start, p.end):
                starts |= {math.floor(edge), math.ceil(edge), math.floor(edge) - DAY, math.ceil(edge) - DAY}
        for t in sorted(s for s in starts if self.checked_until - DAY <= s <= now - DAY):
            dose = sum((p.dose(t, t + DAY) for p in recent), Fraction(0))
            limit = self.limit_over(t, t + DAY)
            assert dose <= limit, f"{float(dose)} ng reached the tip in [{t}, {t + DAY}), limit {limit}"
        self.checked_until = now

    def check_reservoir(self) -> None:
        """Between refills, no more was delivered than the reservoir was filled with."""
        marks = [*self.fills, (2**62, 0)]
        for (since, volume), (until, _) in itertools.pairwise(marks):
            used = sum(f.rate_ul_day * max(0, min(f.end, until) - max(f.start, since)) for f in self.flows)
            assert used <= volume, f"delivered {used} from a fill of {volume}"

    def check_boluses(self) -> None:
        """Each bolus: what it pushes out of the tip (the path ahead of it, then the reservoir's drug)."""
        for start, dose, limit in self.boluses:
            assert dose <= min(limit, ABSOLUTE_BOLUS_NG), f"bolus of {dose} ng at {start}, limit {limit}"


# --- strategies for commands that make sense in a state --------------------------------------------------


def prescriptions(conc: int) -> st.SearchStrategy[Prescription]:
    """Mostly plausible prescriptions: a daily dose near a target, a limit a little above it."""

    @st.composite
    def build(draw: st.DrawFn) -> Prescription:
        target = draw(st.integers(20_000, 900_000))  # ng/day
        base = max(48, target // conc)
        n = draw(st.integers(1, 4))
        starts = sorted(draw(st.sets(st.integers(1, DAY - 1), min_size=n - 1, max_size=n - 1)))
        steps = tuple(
            FlexStep(start_s=s, rate_ul_day=max(48, base * draw(st.integers(70, 130)) // 100))
            for s in [0, *starts]
        )
        boluses = tuple(
            PeriodicBolus(
                start_s=draw(st.integers(0, DAY - 1)), volume_ul=draw(st.integers(1, 20)), duration_s=3600
            )
            for _ in range(draw(st.integers(0, 2)))
        )
        return replace(
            prescription(),
            mode=PrescriptionMode.CONTINUOUS if n == 1 else PrescriptionMode.FLEX,
            concentration_ug_ml=conc,
            steps=steps,
            boluses=boluses,
            max_daily_dose_ng=target * draw(st.integers(100, 160)) // 100,
            max_bolus_ng=draw(st.integers(10_000, 150_000)),
        )

    return build()


def bolus_commands() -> st.SearchStrategy[BolusStart]:
    return st.builds(
        BolusStart,
        kind=st.sampled_from(BolusKind),
        volume_ul=st.one_of(st.integers(1, 60), st.integers(1, 400)),
        duration_s=st.sampled_from([1800, 3600, 4 * 3600]),
    )


class PumpSafety(RuleBasedStateMachine):
    """Random sequences of commands and time; whatever the engine accepts, the limits hold."""

    def __init__(self) -> None:
        super().__init__()
        self.state: TherapyState = empty_pump()
        self.oracle = self._oracle()
        self.accepted = 0

    def _oracle(self) -> Oracle:
        profile = self.state.profile
        return Oracle(
            fifo=Fifo(profile.pump_path_ul + profile.catheter_ul, self.state.concentration_ug_ml),
            conc=self.state.concentration_ug_ml,
            catheter_ul=profile.catheter_ul,
            pump_part_ul=profile.pump_path_ul,
            pieces=[],
            flows=[],
            limits=[],
            boluses=[],
            fills=[(T0, self.state.reservoir_scaled)],
            checked_until=T0,
        )

    @initialize(
        conc=st.sampled_from(CONCENTRATIONS),
        volume=st.integers(2_000, 20_000),
        record=st.builds(patient, group=st.sampled_from(PatientGroup), origin=st.sampled_from(Origin)),
        data=st.data(),
    )
    def implant(self, conc: int, volume: int, record: PatientRecord, data: st.DataObject) -> None:
        self.state = empty_pump(record, concentration_ug_ml=conc, reservoir_scaled=volume * SCALE)
        self.oracle = self._oracle()
        for _ in range(5):  # most drawn prescriptions are valid; try a few
            self.program(data)
            if self.state.prescription is not None:
                break

    # commands ------------------------------------------------------------------------------------------

    def submit(self, command: Message) -> bool:
        """Apply ``command`` if the engine accepts it, every hazard acknowledged: no acknowledgement
        may loosen a limit, so the proof holds for a user who acknowledges everything."""
        before = self.state
        try:
            verdict = evaluate(command, before, POLICY)
            if verdict.unacknowledged and not verdict.violations:
                command = replace(cast(Any, command), ack=ack(*verdict.to_acknowledge))
                verdict = evaluate(command, before, POLICY)
        except TherapyStateError:
            return False
        if not verdict.accepted:
            return False
        self.state = apply(before, command)
        self.accepted += 1
        self._record(before, command)
        return True

    def _record(self, before: TherapyState, command: Message) -> None:
        after = self.state
        if after.prescription is not None and after.prescription is not before.prescription:
            self.oracle.limits.append((after.now, after.prescription.max_daily_dose_ng))
        match command:
            case BolusStart(kind=BolusKind.CLINICIAN | BolusKind.PATIENT):
                limit = before.prescription.max_bolus_ng if before.prescription else ABSOLUTE_BOLUS_NG
                dose = self.oracle.fifo.ahead(Fraction(command.volume_ul), self.oracle.conc)
                self.oracle.boluses.append((after.now, dose, limit))
            case BolusStart(kind=BolusKind.PRIMING):
                assert self.oracle.fifo.ahead(Fraction(command.volume_ul), 1) == 0, "priming pushed drug"
            case RefillConfirm():
                self.oracle.fills.append((after.now, after.reservoir_scaled))
                self.oracle.conc = command.concentration_ug_ml
            case RecordProcedure(procedure=procedure, catheter_volume_ul=volume):
                self.oracle.surgery(procedure, volume, self.state.profile.catheter_ul)

    @rule(data=st.data())
    def program(self, data: st.DataObject) -> None:
        p = data.draw(prescriptions(self.state.concentration_ug_ml))
        if self.submit(StagePrescription(prescription=p)):
            self.submit(commit(self.state))

    @rule(rate=st.integers(0, 5_000))
    def set_rate(self, rate: int) -> None:
        self.submit(SetRate(rate_ul_day=rate))

    @rule(command=bolus_commands())
    def bolus(self, command: BolusStart) -> None:
        self.submit(command)

    @rule()
    def cancel_bolus(self) -> None:
        if self.state.bolus is not None:
            self.submit(BolusCancel(bolus_id=self.state.bolus.bolus_id))

    @rule(duration=st.sampled_from([0, 600, 3600, DAY]))
    def suspend(self, duration: int) -> None:
        self.submit(Suspend(duration_s=duration))

    @rule()
    def resume(self) -> None:
        self.submit(Resume())

    @rule(procedure=st.sampled_from(Procedure), catheter=st.sampled_from([0, 60, 120, 300]))
    def catheter_work(self, procedure: Procedure, catheter: int) -> None:
        self.submit(RecordProcedure(procedure=procedure, catheter_volume_ul=catheter))

    @rule(
        group=st.sampled_from(PatientGroup),
        origin=st.sampled_from(Origin),
        phase=st.sampled_from(Phase),
    )
    def relabel(self, group: PatientGroup, origin: Origin, phase: Phase) -> None:
        record = self.state.record
        self.submit(SetPatientRecord(group=group, origin=origin, risks=record.risks, phase=phase))

    @rule()
    def mri(self) -> None:
        if self.submit(MriBegin(emptied_ul=0)):
            self.submit(MriEnd())

    @rule(
        measured_delta=st.integers(-3_000, 3_000),
        volume=st.integers(1_000, 21_000),
        conc=st.sampled_from(CONCENTRATIONS),
        bridge=st.booleans(),
    )
    def refill(self, measured_delta: int, volume: int, conc: int, bridge: bool) -> None:
        if not self.submit(RefillBegin()):
            return
        progress = self.state.refill
        assert progress is not None
        measured = max(0, progress.expected_residual_ul + measured_delta)
        rid = progress.refill_id
        self.submit(RefillResidual(refill_id=rid, measured_ul=measured))
        self.submit(RefillStageDrug(refill_id=rid, volume_ul=volume, concentration_ug_ml=conc))
        staged = self.state.refill
        confirm = RefillConfirm(
            refill_id=rid,
            volume_ul=volume,
            concentration_ug_ml=conc,
            digest=staged.digest or 0 if staged is not None else 0,
            bridge=bridge,
        )
        if not self.submit(confirm):
            self.submit(RefillAbort(refill_id=rid))

    @rule(step=st.integers(-400, 400))
    def set_clock(self, step: int) -> None:
        self.submit(SetClock(device_time=max(0, self.state.now + step)))

    @rule(seconds=st.integers(1, 3_600))
    def wait(self, seconds: int) -> None:
        start = self.state.now
        self.state, flows = advance(self.state, start + seconds)
        self.oracle.delivered(start, self.state.now, flows)

    @rule(seconds=st.integers(3_600, 3 * DAY))
    def wait_long(self, seconds: int) -> None:
        self.wait(seconds)

    # invariants ----------------------------------------------------------------------------------------

    @invariant()
    def reservoir_never_negative(self) -> None:
        assert self.state.reservoir_scaled >= 0

    @invariant()
    def rolling_24h_dose_within_limit(self) -> None:
        self.oracle.check_windows(self.state.now)

    @invariant()
    def boluses_within_limit(self) -> None:
        self.oracle.check_boluses()

    @invariant()
    def no_delivery_beyond_the_reservoir(self) -> None:
        self.oracle.check_reservoir()

    @precondition(lambda self: self.state.refill is not None)
    @rule()
    def abort_refill(self) -> None:
        refill = self.state.refill
        assert refill is not None
        self.submit(RefillAbort(refill_id=refill.refill_id))


# 1,000 sequences of up to 40 steps in every run (about 50 s); HYPOTHESIS_PROFILE=thorough raises it
PumpSafety.TestCase.settings = settings(max_examples=examples(1_000), stateful_step_count=40, deadline=None)
TestPumpSafety = pytest.mark.rule("DOSE-001", "BOL-001", "RES-002", "PRIME-001")(PumpSafety.TestCase)


# --- exactness: refused if and only if a limit would be broken --------------------------------------------


@pytest.mark.rule("DOSE-001")
@pytest.mark.rule("BOL-001")
@given(
    rate=st.integers(48, 2_400),
    conc=st.sampled_from(CONCENTRATIONS),
    limit=st.integers(10_000, 2_000_000),
    max_bolus=st.integers(1_000, 200_000),
    volume=st.integers(1, 2_000),
    duration=st.integers(3_600, 12 * 3_600),
)
def test_bolus_refused_exactly_when_it_breaks_a_dose_limit(
    rate: int, conc: int, limit: int, max_bolus: int, volume: int, duration: int
) -> None:
    p = replace(
        prescription(rate=rate), concentration_ug_ml=conc, max_daily_dose_ng=limit, max_bolus_ng=max_bolus
    )
    state = replace(empty_pump(concentration_ug_ml=conc, now=T0 - 2 * DAY), reservoir_scaled=20_000 * SCALE)
    state = in_force(state, p)
    state, _ = advance(state, T0)
    command = BolusStart(kind=BolusKind.CLINICIAN, volume_ul=volume, duration_s=duration)
    try:
        refused = set(evaluate(command, state, POLICY).rule_ids)
    except TherapyStateError:
        return
    # independent arithmetic: a day of constant basal plus the whole bolus fits in one 24 h window
    daily = rate * conc
    bolus_dose = volume * conc
    if daily <= limit:  # only then was the programmed state itself valid
        assert ("DOSE-001" in refused) == (daily + bolus_dose > limit)
    assert ("BOL-001" in refused) == (bolus_dose > max_bolus or bolus_dose > ABSOLUTE_BOLUS_NG)


@pytest.mark.rule("TITR-001")
@given(old=st.integers(48, 3_000), new=st.integers(48, 6_000), origin=st.sampled_from(Origin))
def test_titration_refused_exactly_above_the_step(old: int, new: int, origin: Origin) -> None:
    p = replace(prescription(rate=old), max_daily_dose_ng=2_000_000, max_bolus_ng=50_000)
    state = replace(empty_pump(patient(origin=origin), now=T0 - 2 * DAY), reservoir_scaled=20_000 * SCALE)
    state = in_force(state, p)
    state, _ = advance(state, T0)
    refused = set(evaluate(SetRate(rate_ul_day=new), state, POLICY).rule_ids)
    pct = 30 if origin is Origin.SPINAL else 15
    assert ("TITR-001" in refused) == (new > old and new * 100 > old * (100 + pct))
