"""Property proofs that dose limits are never exceeded, checked by a brute-force oracle.

The oracle below does not call the rule engine or the window sweep: it keeps its
own record of every flow delivered, every prescription in force and every refill,
and checks each 24 h window one by one with exact fractions.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from factories import DAY, POLICY, T0, commit, empty_pump, in_force, prescription
from itbproto.errors import TherapyStateError
from itbproto.safety import evaluate
from itbproto.therapy import SCALE, Flow, TherapyState, advance, apply
from itbproto.wire import (
    BolusCancel,
    BolusKind,
    BolusStart,
    FlexStep,
    Message,
    Origin,
    PatientGroup,
    PeriodicBolus,
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
    SetRate,
    StagePrescription,
    Suspend,
)

ABSOLUTE_BOLUS_NG = POLICY("BOL-001", "absolute_max_bolus_ng")
ADULT_CEILING_NG = POLICY("DOSE-003", "adult_ceiling_ng_day")
CONCENTRATIONS = (50, 500, 1000, 2000)


# --- the oracle -------------------------------------------------------------------------------------------


def window_dose(flows: list[Flow], start: int, end: int) -> Fraction:
    """Dose in ng delivered in [start, end), the obvious way."""
    total = Fraction(0)
    for f in flows:
        seconds = max(0, min(f.end, end) - max(f.start, start))
        total += Fraction(f.rate_ul_day * f.conc_ug_ml * seconds, SCALE)
    return total


@dataclass
class Oracle:
    """An independent record of what happened, and the checks against it."""

    flows: list[Flow]
    limits: list[tuple[int, int]]  # (from, max daily dose in force) in time order
    boluses: list[tuple[int, int, int]]  # (start, dose ng, max bolus in force)
    fills: list[tuple[int, int]]  # (time, scaled volume the reservoir was set to)
    checked_until: int

    def limit_over(self, start: int, end: int) -> int:
        """The daily limit a window is held to: the latest one in force during it.

        Committing a prescription re-checks every window that overlaps its time, so a
        window that spans two prescriptions answers to the later one (a raised limit is a
        clinical decision, itself bounded by DOSE-003 and the titration rules).
        """
        in_force = [limit for since, limit in self.limits if since < end]
        return in_force[-1] if in_force else ADULT_CEILING_NG

    def check_windows(self, now: int) -> None:
        recent = [f for f in self.flows if f.end > self.checked_until - 2 * DAY]
        starts = {self.checked_until - DAY, now - DAY}
        for f in recent:
            starts |= {f.start, f.end, f.start - DAY, f.end - DAY}
        for t in sorted(s for s in starts if self.checked_until - DAY <= s <= now - DAY):
            dose = window_dose(recent, t, t + DAY)
            limit = self.limit_over(t, t + DAY)
            assert dose <= limit, f"{float(dose)} ng delivered in [{t}, {t + DAY}), limit {limit}"
        self.checked_until = now

    def check_reservoir(self) -> None:
        """Between refills, no more was delivered than the reservoir was filled with."""
        marks = [*self.fills, (2**62, 0)]
        for (since, volume), (until, _) in itertools.pairwise(marks):
            used = sum(f.rate_ul_day * max(0, min(f.end, until) - max(f.start, since)) for f in self.flows)
            assert used <= volume, f"delivered {used} from a fill of {volume}"

    def check_boluses(self) -> None:
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
            origin=draw(st.sampled_from(Origin)),
            group=draw(st.sampled_from(PatientGroup)),
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
        self.oracle = Oracle(
            flows=[], limits=[], boluses=[], fills=[(T0, self.state.reservoir_scaled)], checked_until=T0
        )
        self.accepted = 0

    @initialize(conc=st.sampled_from(CONCENTRATIONS), volume=st.integers(2_000, 20_000), data=st.data())
    def implant(self, conc: int, volume: int, data: st.DataObject) -> None:
        self.state = empty_pump(concentration_ug_ml=conc, reservoir_scaled=volume * SCALE)
        self.oracle.fills = [(T0, self.state.reservoir_scaled)]
        for _ in range(5):  # most drawn prescriptions are valid; try a few
            self.program(data)
            if self.state.prescription is not None:
                break

    # commands ------------------------------------------------------------------------------------------

    def submit(self, command: Message) -> bool:
        before = self.state
        try:
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
        if isinstance(command, BolusStart):
            limit = before.prescription.max_bolus_ng if before.prescription else ABSOLUTE_BOLUS_NG
            self.oracle.boluses.append((after.now, command.volume_ul * before.concentration_ug_ml, limit))
        if isinstance(command, RefillConfirm):
            self.oracle.fills.append((after.now, after.reservoir_scaled))

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

    @rule()
    def catheter_work(self) -> None:
        self.submit(RecordProcedure(procedure=Procedure.CATHETER_REVISION))

    @rule(
        measured_delta=st.integers(-3_000, 3_000),
        volume=st.integers(1_000, 21_000),
        conc=st.sampled_from(CONCENTRATIONS),
        acknowledge=st.booleans(),
    )
    def refill(self, measured_delta: int, volume: int, conc: int, acknowledge: bool) -> None:
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
            discrepancy_acknowledged=acknowledge,
        )
        if not self.submit(confirm):
            self.submit(RefillAbort(refill_id=rid))

    @rule(step=st.integers(-400, 400))
    def set_clock(self, step: int) -> None:
        self.submit(SetClock(device_time=max(0, self.state.now + step)))

    @rule(seconds=st.integers(1, 3_600))
    def wait(self, seconds: int) -> None:
        self.state, flows = advance(self.state, self.state.now + seconds)
        self.oracle.flows += flows

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


# 1,000 sequences of up to 40 steps in every run (about 25 s); HYPOTHESIS_PROFILE=thorough raises it
PumpSafety.TestCase.settings = settings(
    max_examples=max(1_000, settings().max_examples), stateful_step_count=40, deadline=None
)
TestPumpSafety = pytest.mark.rule("DOSE-001", "BOL-001", "RES-002")(PumpSafety.TestCase)


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
    p = replace(prescription(rate=old), origin=origin, max_daily_dose_ng=2_000_000, max_bolus_ng=50_000)
    state = replace(empty_pump(now=T0 - 2 * DAY), reservoir_scaled=20_000 * SCALE)
    state = in_force(state, p)
    state, _ = advance(state, T0)
    refused = set(evaluate(SetRate(rate_ul_day=new), state, POLICY).rule_ids)
    pct = 30 if origin is Origin.SPINAL else 15
    assert ("TITR-001" in refused) == (new > old and new * 100 > old * (100 + pct))
