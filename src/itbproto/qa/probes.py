"""Boundary probes: for each rule of the catalog (and the protocol's own checks), steps that bring the pump
to the rule's boundary and go just inside it and just outside, with every number derived from the rule's
parameters, the drug table, the device profile and the pump's own records, never hand-picked.

A probe needs what its target can give (``needs``): ``fresh`` a new pump in a known state (in-process),
``clock`` device time moved, ``faults`` hardware events (battery, motor), ``pairing`` the PIN the pump shows,
``links`` a second link beside the first. Where the target cannot, the report names the probe and why.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Protocol

from itbproto.qa.bench import DAY, Bench, Op, continuous, refused
from itbproto.wire.message import Message
from itbproto.qa.wire import Probe
from itbproto.transport import Transport
from itbproto.wire import messages as m
from itbproto.wire.enums import (
    AlarmCode,
    BolusKind,
    ErrorCode,
    EventCode,
    Origin,
    PatientGroup,
    Phase,
    PrescriptionMode,
    Procedure,
    Role,
    ScreeningResponse,
    Severity,
    TherapyMode,
)

__all__ = ["NEEDS", "PROBES", "Hands", "ProbeSpec"]

#: what each need means, for the report
NEEDS = {
    "fresh": "a new pump in a known state for each probe (in-process targets)",
    "clock": "device time moved by the suite (in-process targets)",
    "faults": "hardware faults injected (battery, motor: in-process targets)",
    "pairing": "the PIN the pump shows (--itb-pin, or in-process)",
    "links": "a second link beside the first (not one bumble hub host)",
    "screening": "a new patient in screening (in-process targets)",
}


class Hands(Protocol):
    """What the target offers a probe beyond the clinician's link."""

    async def link(self, role: Role) -> Probe:
        """A new link with a session open in ``role`` (paired and sealed when the target pairs)."""
        ...

    async def fault(self, kind: str, value: int = 0) -> None:
        """A hardware event (itbemu's fault kinds)."""
        ...

    async def pair(self, pin: str, role: Role) -> bool:
        """Try to pair with ``pin``: True if the pump took it."""
        ...

    async def hand_over(self) -> None:
        """End the clinician's session (a new one opens on its link, holding no programming lock)."""
        ...

    async def transport(self) -> Transport:
        """A new link, no session."""
        ...

    pin: str | None
    requires_pairing: bool


Run = Callable[[Bench, Hands], Awaitable[None]]


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    rules: tuple[str, ...]
    needs: frozenset[str]
    run: Run


PROBES: list[ProbeSpec] = []
#: pairing's guard against guessing (specs/protocol.md §6): free wrong PINs, then the first lock
FREE_PINS, FIRST_LOCK_S = 3, 30


def probe(*rules: str, needs: tuple[str, ...] = ("fresh", "clock")) -> Callable[[Run], Run]:
    def register(run: Run) -> Run:
        PROBES.append(ProbeSpec(run.__name__, rules, frozenset(needs), run))
        return run

    return register


# --- the catalog's numbers, computed here (not by the rule engine) -------------------------------------------


@dataclass
class Therapy:
    """What a probe set up: the rate, the concentration, the daily dose and the device's numbers."""

    rate: int
    conc: int
    info: m.DeviceInfo

    @property
    def daily(self) -> int:
        return self.rate * self.conc

    def rate_for(self, ng_day: int) -> int:
        """The highest rate, in whole rate steps, whose dose is at most ``ng_day``."""
        step = self.info.rate_step_ul_day
        return ng_day // self.conc // step * step


def first_dose_limit(b: Bench, record: m.PatientRecord) -> int:
    """SCREEN-001: twice the effective screening dose a day, or the dose itself after a long effect."""
    if record.screening_effect_s >= b.param("SCREEN-001", "long_effect_s"):
        return record.screening_dose_ng
    return record.screening_dose_ng * b.param("SCREEN-001", "factor_pct") // 100


def titration_pct(b: Bench, record: m.PatientRecord) -> int:
    """TITR-001: the record's category's percentage (the strictest that applies)."""
    pcts = [b.param("TITR-001", "spinal_pct" if record.origin is Origin.SPINAL else "cerebral_pct")]
    if record.group is PatientGroup.CHILD:
        pcts.append(b.param("TITR-001", "child_pct"))
    return min(pcts)


def ceiling(b: Bench, group: PatientGroup) -> int:
    return b.param(
        "DOSE-003", "child_ceiling_ng_day" if group is PatientGroup.CHILD else "adult_ceiling_ng_day"
    )


PATIENT = m.PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3)


async def start(
    b: Bench,
    *,
    daily: int | None = None,
    max_daily: int | None = None,
    patient: m.PatientBolusPolicy | None = None,
    max_bolus: int = 0,
    settle: bool = True,
) -> Therapy:
    """A first prescription on a new pump (at the SCREEN-001 limit unless ``daily``), its maximum daily dose
    the ceiling (unless ``max_daily``); then a day and a minute pass, so the last 24 h hold only it."""
    status, record = await b.status(), await b.record()
    t = Therapy(0, status.concentration_ug_ml, b.info)
    t.rate = t.rate_for(first_dose_limit(b, record) if daily is None else daily)
    top = ceiling(b, record.group) if max_daily is None else max_daily
    p = continuous(t.rate, t.conc, top, patient=patient, max_bolus_ng=max_bolus)
    await b.ok("SCREEN-001", b.program(p), f"first prescription {t.rate} uL/day at {t.conc} ug/mL")
    if settle:
        await b.settle()
    return t


def rx(
    t: Therapy,
    rate: int,
    b: Bench,
    *,
    max_daily: int | None = None,
    max_bolus_ng: int = 0,
    steps: tuple[m.FlexStep, ...] = (),
    boluses: tuple[m.PeriodicBolus, ...] = (),
) -> m.Prescription:
    """A prescription at ``rate`` (or ``steps``), its maximum the adult ceiling unless ``max_daily``."""
    top = ceiling(b, PatientGroup.ADULT) if max_daily is None else max_daily
    return continuous(rate, t.conc, top, max_bolus_ng=max_bolus_ng, steps=steps, boluses=boluses)


# --- dose ---------------------------------------------------------------------------------------------------


@probe("SCREEN-001")
async def first_dose_after_screening(b: Bench, hands: Hands) -> None:
    """The first prescription of therapy: at the SCREEN-001 limit accepted, a rate step above refused."""
    status, record = await b.status(), await b.record()
    t = Therapy(0, status.concentration_ug_ml, b.info)
    limit = first_dose_limit(b, record)
    t.rate = t.rate_for(limit)
    top = ceiling(b, record.group)
    step = b.info.rate_step_ul_day
    over = continuous(t.rate + step, t.conc, top)
    await b.over(
        "SCREEN-001", b.program(over), f"first prescription {t.daily + step * t.conc} ng/day > {limit}"
    )
    await b.ok(
        "SCREEN-001", b.program(continuous(t.rate, t.conc, top)), f"first prescription {t.daily} ng/day"
    )


@probe("DOSE-002")
async def own_maximum(b: Bench, hands: Hands) -> None:
    """A prescription's daily dose against its own maximum, with a periodic bolus counted."""
    t = await start(b)
    await b.over(
        "DOSE-002", b.program(rx(t, t.rate, b, max_daily=t.daily - 1)), "maximum 1 ng under the dose"
    )
    await b.ok("DOSE-002", b.program(rx(t, t.rate, b, max_daily=t.daily)), "maximum equal to the dose")
    # a periodic bolus joins a basal flow lowered by its volume: the day before ran at that flow, so no 24 h
    # window across the change holds more than the new daily dose (DOSE-001 would refuse it otherwise)
    volume = t.rate // 10
    lower = rx(t, t.rate - volume, b, max_daily=t.daily)
    await b.ok("DOSE-002", b.program(lower), f"{t.rate - volume} uL/day for a day")
    await b.settle()
    periodic = (m.PeriodicBolus(start_s=3_600, volume_ul=volume, duration_s=3_600),)
    steps = flex(t, [t.rate - volume, t.rate - volume])

    def shaped(top: int) -> m.Prescription:
        return rx(t, 0, b, max_daily=top, steps=steps, boluses=periodic, max_bolus_ng=volume * t.conc)

    await b.over("DOSE-002", b.program(shaped(t.daily - 1)), "a periodic bolus counted, 1 ng over")
    await b.ok("DOSE-002", b.program(shaped(t.daily)), "a periodic bolus counted, at the maximum")
    s = await b.status()
    b.expect(
        "DOSE-002",
        s.rate_ul_day == t.rate - volume,
        f"status rate {s.rate_ul_day}, {t.rate - volume} committed",
    )


@probe("DOSE-003")
async def ceilings(b: Bench, hands: Hands) -> None:
    """The maximum daily dose against the group's ceiling; a record change the prescription exceeds."""
    t = await start(b)
    adult, child = ceiling(b, PatientGroup.ADULT), ceiling(b, PatientGroup.CHILD)
    await b.over(
        "DOSE-003", b.program(rx(t, t.rate, b, max_daily=adult + 1)), "maximum 1 ng over the ceiling"
    )
    await b.ok("DOSE-003", b.program(rx(t, t.rate, b, max_daily=adult)), "maximum at the adult ceiling")
    record = await b.record()
    to_child = m.SetPatientRecord(
        group=PatientGroup.CHILD, origin=record.origin, risks=record.risks, phase=record.phase
    )
    await b.over("DOSE-003", b.command(to_child), "a child's record under an adult's maximum")
    await b.ok("DOSE-003", b.program(rx(t, t.rate, b, max_daily=child)), "maximum at the child ceiling")
    await b.ok("DOSE-003", b.command(to_child), "a child's record")
    await b.over(
        "DOSE-003", b.program(rx(t, t.rate, b, max_daily=child + 1)), "a child: 1 ng over its ceiling"
    )


@probe("DOSE-001")
async def a_bolus_fills_the_day(b: Bench, hands: Hands) -> None:
    """A clinician bolus on top of the basal flow: every 24 h window against the prescription's maximum."""
    t = await start(b)
    # the dose flowing, and a bolus that fills the day to the prescription's maximum at the tip
    bolus_max = b.param("BOL-001", "absolute_max_bolus_ng")
    top = t.daily + bolus_max // 2
    await b.ok(
        "DOSE-002",
        b.program(rx(t, t.rate, b, max_daily=top, max_bolus_ng=bolus_max)),
        "maximum above the dose",
    )
    await b.settle()
    room = top - t.daily  # over the next 24 h the basal flow brings t.daily
    volume = room // t.conc
    duration = -(-volume * DAY // b.profile.max_bolus_rate_ul_day) + 60
    over = m.BolusStart(kind=BolusKind.CLINICIAN, volume_ul=volume + 1, duration_s=duration, ack=m.NO_ACK)
    await b.over("DOSE-001", b.command(over), f"a bolus 1 uL past the day's maximum ({top} ng)")
    ok = m.BolusStart(kind=BolusKind.CLINICIAN, volume_ul=volume, duration_s=duration, ack=m.NO_ACK)
    await b.ok("DOSE-001", b.command(ok), f"a bolus up to the day's maximum ({top} ng)")


# --- titration ----------------------------------------------------------------------------------------------


async def _titrate(b: Bench, origin: Origin, group: PatientGroup, by_rate: bool) -> None:
    t = await start(b)
    record = await b.record()
    if (origin, group) != (record.origin, record.group):
        top = ceiling(b, group)
        await b.ok("DOSE-003", b.program(rx(t, t.rate, b, max_daily=top)), f"maximum {top} ng/day")
        change = m.SetPatientRecord(group=group, origin=origin, risks=record.risks, phase=record.phase)
        await b.ok("TITR-001", b.command(change), f"record: {group.name} {origin.name}")
        record = await b.record()
    pct = titration_pct(b, record)
    limit = t.daily * (100 + pct) // 100
    rate = t.rate_for(limit)
    step = b.info.rate_step_ul_day

    def to(r: int) -> Op:
        if by_rate:
            return b.command(m.SetRate(rate_ul_day=r, ack=m.NO_ACK))
        return b.program(rx(t, r, b, max_daily=ceiling(b, group)))

    how = "rate" if by_rate else "prescription"
    await b.over("TITR-001", to(rate + step), f"{how} {pct} % + a step over {t.daily} ng/day")
    await b.ok("TITR-001", to(rate), f"{how} {pct} % over {t.daily} ng/day")
    s = await b.status()
    b.expect("TITR-001", s.rate_ul_day == rate, f"status rate {s.rate_ul_day} after {rate} was accepted")


@probe("TITR-001")
async def titration_spinal(b: Bench, hands: Hands) -> None:
    await _titrate(b, Origin.SPINAL, PatientGroup.ADULT, by_rate=False)


@probe("TITR-001")
async def titration_spinal_by_rate(b: Bench, hands: Hands) -> None:
    await _titrate(b, Origin.SPINAL, PatientGroup.ADULT, by_rate=True)


@probe("TITR-001")
async def titration_cerebral(b: Bench, hands: Hands) -> None:
    await _titrate(b, Origin.CEREBRAL, PatientGroup.ADULT, by_rate=False)


@probe("TITR-001")
async def titration_child(b: Bench, hands: Hands) -> None:
    await _titrate(b, Origin.SPINAL, PatientGroup.CHILD, by_rate=True)


@probe("TITR-002")
async def one_increase_a_day(b: Bench, hands: Hands) -> None:
    """After an increase, the next one a second before the interval is refused; at it, accepted."""
    t = await start(b)
    step = b.info.rate_step_ul_day
    await b.ok(
        "TITR-002", b.command(m.SetRate(rate_ul_day=t.rate + step, ack=m.NO_ACK)), "an increase of a step"
    )
    raised_at = (await b.status()).device_time
    interval = b.param("TITR-002", "interval_s")
    await b.advance(interval - 1)
    higher = m.SetRate(rate_ul_day=t.rate + 2 * step, ack=m.NO_ACK)
    await b.over("TITR-002", b.command(higher), f"another increase {interval - 1} s after {raised_at}")
    await b.advance(1)
    await b.ok("TITR-002", b.command(higher), f"another increase {interval} s after")


@probe("TITR-003", "DECR-001")
async def large_steps(b: Bench, hands: Hands) -> None:
    """Above the maintenance range a step over the percentage is acknowledged; so is a large decrease."""
    t = await start(b)
    record = await b.record()
    upper = await maintenance_upper(b, record)
    pct, titr = b.param("TITR-003", "pct"), titration_pct(b, record)
    # climb once to the maintenance range's top, within TITR-001, a day apart
    while t.daily * (100 + titr) // 100 <= upper:
        t.rate = t.rate_for(t.daily * (100 + titr) // 100)
        await b.ok(
            "TITR-001", b.command(m.SetRate(rate_ul_day=t.rate, ack=m.NO_ACK)), f"titrate to {t.daily}"
        )
        await b.settle()
    inside = t.rate_for(t.daily * (100 + pct) // 100)
    step = b.info.rate_step_ul_day
    await b.over(
        "TITR-003", b.command(m.SetRate(rate_ul_day=inside + step, ack=m.NO_ACK)), f"{pct} % + a step up"
    )
    await b.settle()
    await b.ok(
        "TITR-003", b.command(m.SetRate(rate_ul_day=inside, ack=m.NO_ACK)), f"{pct} % up above {upper}"
    )
    t.rate = inside
    drop = b.param("DECR-001", "max_decrease_pct")
    for n in range(2):  # down at most the percentage: no acknowledgement; a step more: acknowledged
        lowest = -(-t.daily * (100 - drop) // (100 * t.conc))  # the lowest rate at most drop % below
        lowest = -(-lowest // step) * step
        if n == 0:
            await b.ok("DECR-001", b.command(m.SetRate(rate_ul_day=lowest, ack=m.NO_ACK)), f"{drop} % down")
            t.rate = lowest
        else:
            down = m.SetRate(rate_ul_day=lowest - step, ack=m.NO_ACK)
            await b.over("DECR-001", b.command(down), f"{drop} % and a step down")


async def maintenance_upper(b: Bench, record: m.PatientRecord) -> int:
    """The top of the usual maintenance range for the record's group (the drug table, as shipped)."""
    from itbproto.specfiles import load_drug

    drug = load_drug()
    return (
        drug.maintenance_child_ng_day if record.group is PatientGroup.CHILD else drug.maintenance_adult_ng_day
    )[-1]


# --- boluses ------------------------------------------------------------------------------------------------


def fastest(b: Bench, volume: int) -> int:
    """BOL-003: the shortest duration (s) for ``volume`` µL at the profile's maximum bolus rate."""
    return -(-volume * DAY // b.profile.max_bolus_rate_ul_day)


def bolus(kind: BolusKind, volume: int, duration: int) -> m.BolusStart:
    return m.BolusStart(kind=kind, volume_ul=volume, duration_s=duration, ack=m.NO_ACK)


@probe("BOL-001", "BOL-003")
async def bolus_maximum(b: Bench, hands: Hands) -> None:
    """The prescription's maximum bolus, then the absolute maximum; the fastest rate, a second faster."""
    absolute = b.param("BOL-001", "absolute_max_bolus_ng")
    t = await start(b, max_bolus=absolute // 4)
    for most in (absolute // 4, absolute):
        if most == absolute:
            await b.ok(
                "BOL-001", b.program(rx(t, t.rate, b, max_bolus_ng=absolute)), "the absolute maximum bolus"
            )
        volume = most // t.conc
        await b.over(
            "BOL-001",
            b.command(bolus(BolusKind.CLINICIAN, volume + 1, fastest(b, volume + 1))),
            f"{(volume + 1) * t.conc} ng > {most}",
        )
        quick = fastest(b, volume)
        if quick > 1:  # a second less is faster than the motor may
            too_fast = bolus(BolusKind.CLINICIAN, volume, quick - 1)
            await b.over("BOL-003", b.command(too_fast), f"{volume} uL in {quick - 1} s")
        started = await b.ok(
            "BOL-001", b.command(bolus(BolusKind.CLINICIAN, volume, quick)), f"{volume} uL in {quick} s"
        )
        b.tally.allowed["BOL-003"] += 1
        assert isinstance(started, m.BolusStarted)
        b.expect(
            "BOL-001",
            started.dose_ng == volume * t.conc,
            f"BolusStarted.dose_ng {started.dose_ng}, {volume * t.conc} at the tip",
        )
        await b.advance(quick + 60)
        history = await b.history()
        given = [e for e in history.boluses if e.kind is BolusKind.CLINICIAN][-1:]
        b.expect(
            "BOL-001",
            [e.volume_ul for e in given] == [volume],
            f"history's last bolus {given}, {volume} uL given",
        )


@probe("BOL-004")
async def one_bolus_at_a_time(b: Bench, hands: Hands) -> None:
    t = await start(b, max_bolus=b.param("BOL-001", "absolute_max_bolus_ng"))
    volume = t.rate // 24
    first = await b.ok(
        "BOL-004", b.command(bolus(BolusKind.CLINICIAN, volume, 3_600)), "a bolus over an hour"
    )
    assert isinstance(first, m.BolusStarted)
    now = (await b.status()).device_time
    await b.advance(first.ends_at - now - 1)
    await b.over(
        "BOL-004", b.command(bolus(BolusKind.CLINICIAN, volume, 3_600)), "another a second before it ends"
    )
    await b.advance(1)
    await b.ok("BOL-004", b.command(bolus(BolusKind.CLINICIAN, volume, 3_600)), "another as it ends")


@probe("PBOL-001", "PBOL-002", "PBOL-003", needs=("fresh", "clock", "links"))
async def patient_boluses(b: Bench, hands: Hands) -> None:
    """The patient's bolus as prescribed, its lockout and its count in 24 h, from the patient's own link."""
    t = await start(b, patient=PATIENT, max_bolus=PATIENT.volume_ul * 500 * 4)
    del t
    await hands.hand_over()
    patient = await hands.link(Role.PATIENT)
    b_patient = b.on(patient)
    prescribed = bolus(BolusKind.PATIENT, PATIENT.volume_ul, PATIENT.duration_s)
    await b_patient.over(
        "PBOL-003",
        b_patient.command(bolus(BolusKind.PATIENT, PATIENT.volume_ul + 1, PATIENT.duration_s)),
        "a patient bolus a uL larger",
    )
    await b_patient.over(
        "PBOL-003",
        b_patient.command(bolus(BolusKind.PATIENT, PATIENT.volume_ul, PATIENT.duration_s + 1)),
        "a patient bolus a second longer",
    )
    starts = []
    for n in range(PATIENT.max_per_day):
        await b_patient.ok("PBOL-001", b_patient.command(prescribed), f"patient bolus {n + 1}")
        b.tally.allowed["PBOL-003"] += 1
        starts.append((await b_patient.status()).device_time)
        await b.advance(PATIENT.lockout_s - 1)
        await b_patient.over("PBOL-001", b_patient.command(prescribed), "a second before the lockout ends")
        await b.advance(1)
    b.tally.allowed["PBOL-002"] += PATIENT.max_per_day
    await b_patient.over(
        "PBOL-002", b_patient.command(prescribed), f"bolus {PATIENT.max_per_day + 1} within 24 h"
    )
    now = (await b_patient.status()).device_time
    await b.advance(starts[0] + DAY + 1 - now)
    await b_patient.ok("PBOL-002", b_patient.command(prescribed), "a day after the first")
    history = await b_patient.history()
    given = [e for e in history.boluses if e.kind is BolusKind.PATIENT]
    b.expect(
        "PBOL-002", all(e.volume_ul == PATIENT.volume_ul for e in given), f"patient boluses given: {given}"
    )
    await patient.close()


@probe("PBOL-003", needs=("fresh", "clock", "links"))
async def no_patient_bolus_unless_prescribed(b: Bench, hands: Hands) -> None:
    await start(b)
    await hands.hand_over()
    patient = await hands.link(Role.PATIENT)
    b_patient = b.on(patient)
    await b_patient.over(
        "PBOL-003",
        b_patient.command(bolus(BolusKind.PATIENT, PATIENT.volume_ul, PATIENT.duration_s)),
        "a patient bolus no prescription enables",
    )
    await patient.close()


# --- rates and schedules ------------------------------------------------------------------------------------


@probe("RATE-001", "RATE-002")
async def rate_range(b: Bench, hands: Hands) -> None:
    await start(b)
    low, step = b.info.min_rate_ul_day, b.info.rate_step_ul_day
    if low > step:
        await b.over(
            "RATE-001",
            b.command(m.SetRate(rate_ul_day=low - step, ack=m.NO_ACK)),
            "a step under the minimum rate",
            ack=("DECR-001",),
        )
    await b.ok(
        "RATE-001", b.command(m.SetRate(rate_ul_day=low, ack=m.NO_ACK)), "the minimum rate", ack=("DECR-001",)
    )
    s = await b.status()
    b.expect("RATE-001", s.rate_ul_day == low, f"status rate {s.rate_ul_day} after {low}")
    if step == 1:
        b.tally.unreachable["RATE-002"] = (
            "the profile's rate step is 1 uL/day: every rate is a whole multiple"
        )
        return
    await b.over("RATE-002", b.command(m.SetRate(rate_ul_day=low + 1, ack=m.NO_ACK)), "a rate between steps")
    await b.ok("RATE-002", b.command(m.SetRate(rate_ul_day=low + step, ack=m.NO_ACK)), "a rate a step up")


def flex(t: Therapy, rates: list[int]) -> tuple[m.FlexStep, ...]:
    """Steps at ``rates`` spread evenly over the day."""
    return tuple(m.FlexStep(start_s=i * DAY // len(rates), rate_ul_day=r) for i, r in enumerate(rates))


@probe("FLEX-001", "FLEX-002")
async def flex_steps(b: Bench, hands: Hands) -> None:
    t = await start(b)
    most = b.info.max_flex_steps
    two = flex(t, [t.rate, t.rate])
    await b.over(
        "FLEX-001", b.program(replace(rx(t, t.rate, b), steps=two)), "a continuous prescription, two steps"
    )
    one = (m.FlexStep(start_s=0, rate_ul_day=t.rate),)
    await b.over(
        "FLEX-001",
        b.program(replace(rx(t, t.rate, b), mode=PrescriptionMode.FLEX, steps=one)),
        "a flex prescription, one step",
    )
    if most + 1 <= m.MAX_FLEX_STEPS:
        await b.over(
            "FLEX-001", b.program(rx(t, 0, b, steps=flex(t, [t.rate] * (most + 1)))), f"{most + 1} steps"
        )
    await b.ok("FLEX-001", b.program(rx(t, 0, b, steps=flex(t, [t.rate] * most))), f"{most} steps")
    late = (m.FlexStep(start_s=1, rate_ul_day=t.rate), m.FlexStep(start_s=DAY // 2, rate_ul_day=t.rate))
    await b.over("FLEX-002", b.program(rx(t, 0, b, steps=late)), "the first step at 00:00:01")
    same = (
        m.FlexStep(start_s=0, rate_ul_day=t.rate),
        m.FlexStep(start_s=DAY // 2, rate_ul_day=t.rate),
        m.FlexStep(start_s=DAY // 2, rate_ul_day=t.rate),
    )
    await b.over("FLEX-002", b.program(rx(t, 0, b, steps=same)), "two steps starting at once")
    await b.ok(
        "FLEX-002", b.program(rx(t, 0, b, steps=flex(t, [t.rate, t.rate]))), "two steps at 00:00 and 12:00"
    )


@probe("FLEX-003")
async def flex_peak(b: Bench, hands: Hands) -> None:
    """A schedule reshaped at the same daily dose: its peak step against the lowest peak of 24 h."""
    t = await start(b)
    pct, step = b.param("FLEX-003", "peak_pct"), b.info.rate_step_ul_day
    peak = t.rate_for(t.daily * (100 + pct) // 100)
    over = flex(t, [peak + step, 2 * t.rate - peak - step])
    await b.over("FLEX-003", b.program(rx(t, 0, b, steps=over)), f"a peak {pct} % + a step over")
    await b.ok(
        "FLEX-003", b.program(rx(t, 0, b, steps=flex(t, [peak, 2 * t.rate - peak]))), f"a peak {pct} % over"
    )


# --- drug and refills ---------------------------------------------------------------------------------------


def drug_table() -> list[int]:
    from itbproto.specfiles import load_drug

    return list(load_drug().concentrations_ug_ml)


@probe("DRUG-001", "DRUG-002")
async def drug_table_and_rescale(b: Bench, hands: Hands) -> None:
    t = await start(b)
    table = drug_table()
    unlisted = next(c for c in range(t.conc + 1, 10 * t.conc) if c not in table)
    await b.over(
        "DRUG-001",
        b.refill(None, b.profile.reservoir_capacity_ul // 2, unlisted),
        f"a refill of {unlisted} ug/mL",
    )
    other = next(c for c in table if c > t.conc)
    await b.over(
        "DRUG-002",
        b.program(continuous(t.rate_for(t.daily) * t.conc // other, other, ceiling(b, PatientGroup.ADULT))),
        f"a prescription at {other} ug/mL, the reservoir {t.conc}",
    )
    before = (await b.status()).rate_ul_day
    await b.ok(
        "DRUG-001",
        b.refill(None, b.profile.reservoir_capacity_ul // 2, other, bridge=True),
        f"a refill of {other} ug/mL, bridged",
    )
    b.tally.allowed["DRUG-002"] += 1
    p = await b.read(m.ReadPrescription(), m.PrescriptionReport)
    rescaled = before * t.conc // other // b.info.rate_step_ul_day * b.info.rate_step_ul_day
    rates = [s.rate_ul_day for s in p.prescription.steps]
    b.expect(
        "DRUG-002",
        rates == [rescaled] and p.prescription.concentration_ug_ml == other,
        f"rescaled to {rates} at {p.prescription.concentration_ug_ml}, not [{rescaled}] at {other}",
    )


@probe("REFILL-001")
async def no_overfill(b: Bench, hands: Hands) -> None:
    t = await start(b)
    capacity = b.profile.reservoir_capacity_ul
    await b.over("REFILL-001", b.refill(None, capacity + 1, t.conc), "a uL over the capacity")
    await b.ok("REFILL-001", b.refill(None, capacity, t.conc), "the capacity")
    s = await b.status()
    b.expect(
        "REFILL-001", s.reservoir_ul == capacity, f"reservoir {s.reservoir_ul} after a refill to {capacity}"
    )
    await b.advance(DAY)
    begun = await b.ask(m.RefillBegin())
    assert isinstance(begun, m.RefillSession)
    await b.ask(m.RefillAbort(refill_id=begun.refill_id))
    left = 100  # withdrawn 100 uL short of what the pump expects: they may still be in it
    expected = begun.expected_residual_ul
    await b.over(
        "REFILL-001", b.refill(expected - left, capacity - left + 1, t.conc), "short by 100 uL, a uL over"
    )
    await b.ok(
        "REFILL-001", b.refill(expected - left, capacity - left, t.conc), "short by 100 uL, to the capacity"
    )


@probe("REFILL-002")
async def two_step_confirmation(b: Bench, hands: Hands) -> None:
    """A refill confirmed with anything other than what was staged is refused and changes nothing."""
    t = await start(b)
    volume = b.profile.reservoir_capacity_ul // 2
    begun = await b.ask(m.RefillBegin())
    assert isinstance(begun, m.RefillSession)
    refill_id = begun.refill_id
    early = m.RefillConfirm(
        refill_id=refill_id,
        volume_ul=volume,
        concentration_ug_ml=t.conc,
        digest=0,
        bridge=False,
        ack=m.NO_ACK,
    )
    codes = (ErrorCode.WRONG_STATE, ErrorCode.STALE_STAGE, ErrorCode.SAFETY_RULE)
    await b.refuses("REFILL-002", b.command(early), "confirmed before anything was recorded", *codes)
    await b.ask(m.RefillResidual(refill_id=refill_id, measured_ul=begun.expected_residual_ul))
    await b.refuses("REFILL-002", b.command(early), "confirmed before the drug was staged", *codes)
    staged = await b.ask(m.RefillStageDrug(refill_id=refill_id, volume_ul=volume, concentration_ug_ml=t.conc))
    assert isinstance(staged, m.RefillStaged)
    right = m.RefillConfirm(
        refill_id=refill_id,
        volume_ul=volume,
        concentration_ug_ml=t.conc,
        digest=staged.digest,
        bridge=False,
        ack=m.NO_ACK,
    )
    other = next(c for c in drug_table() if c != t.conc)
    for wrong, what in (
        (replace(right, volume_ul=volume + 1), "another volume"),
        (replace(right, concentration_ug_ml=other), "another concentration"),
        (replace(right, digest=staged.digest ^ 1), "another digest"),
    ):
        await b.refuses("REFILL-002", b.command(wrong), f"confirmed with {what}", *codes)
    await b.ok("REFILL-002", b.command(right), "confirmed as staged")
    s = await b.status()
    b.expect(
        "REFILL-002", s.reservoir_ul == volume, f"reservoir {s.reservoir_ul} after {volume} uL were confirmed"
    )


@probe("REFILL-003")
async def residual_discrepancy(b: Bench, hands: Hands) -> None:
    t = await start(b)
    begun = await b.ask(m.RefillBegin())
    assert isinstance(begun, m.RefillSession)
    await b.ask(m.RefillAbort(refill_id=begun.refill_id))
    expected = begun.expected_residual_ul
    allowed = max(
        expected * b.param("REFILL-003", "discrepancy_pct") // 100,
        b.param("REFILL-003", "discrepancy_floor_ul"),
    )
    volume = b.profile.reservoir_capacity_ul - allowed - 10
    await b.over(
        "REFILL-003", b.refill(expected - allowed - 1, volume, t.conc), f"withdrawn {allowed + 1} uL short"
    )
    await b.ok("REFILL-003", b.refill(expected - allowed, volume, t.conc), f"withdrawn {allowed} uL short")


@probe("REFILL-004", "RES-003")
async def drug_stability(b: Bench, hands: Hands) -> None:
    """A refill lasting past the drug's stability is acknowledged; drug past it alarms and is acknowledged."""
    from itbproto.specfiles import load_drug

    days = load_drug().stability_days
    t = await start(b, daily=b.profile.reservoir_capacity_ul * 500 // (days + 10))
    history = await b.history()
    now = (await b.status()).device_time
    expires = history.filled_at + days * DAY  # the pump was filled when made: the drug expires first
    await b.advance(expires - now - 1)
    step = b.info.rate_step_ul_day
    t.rate -= step
    await b.ok(
        "RES-003", b.command(m.SetRate(rate_ul_day=t.rate, ack=m.NO_ACK)), "reprogrammed a second before"
    )
    s = await b.status()
    b.expect("RES-003", AlarmCode.DRUG_EXPIRED not in s.alarms, f"DRUG_EXPIRED before its date: {s.alarms}")
    await b.advance(1)
    s = await b.status()
    b.expect("RES-003", AlarmCode.DRUG_EXPIRED in s.alarms, f"no DRUG_EXPIRED alarm at its date: {s.alarms}")
    t.rate -= step
    await b.over(
        "RES-003", b.command(m.SetRate(rate_ul_day=t.rate, ack=m.NO_ACK)), "reprogrammed at the date"
    )
    lasting = days * t.rate
    await b.over("REFILL-004", b.refill(None, lasting + 1, t.conc), f"{lasting + 1} uL at {t.rate} uL/day")
    await b.ok("REFILL-004", b.refill(None, lasting, t.conc), f"{lasting} uL lasts {days} days")
    s = await b.status()
    b.expect("RES-003", AlarmCode.DRUG_EXPIRED not in s.alarms, f"refilled, still DRUG_EXPIRED: {s.alarms}")


# --- the reservoir ------------------------------------------------------------------------------------------


@probe("RES-001", "ALARM-001", "BATT-002", needs=())
async def alarm_thresholds(b: Bench, hands: Hands) -> None:
    """Thresholds a clinician may set, each a unit past the policy's minimum (or maximum), and at it."""
    report = await b.read(m.ReadThresholds(), m.ThresholdsReport)
    least_ul, least_days = (
        b.param("RES-001", "min_low_reservoir_ul"),
        b.param("RES-001", "min_low_reservoir_days"),
    )
    most_s, least_eri = b.param("ALARM-001", "max_reannunciate_s"), b.param("BATT-002", "min_eri_lead_days")
    bounds = m.AlarmThresholds(
        low_reservoir_ul=least_ul,
        low_reservoir_days=least_days,
        eri_lead_days=least_eri,
        reannunciate_s=most_s,
    )
    await b.ok(
        "RES-001", b.command(m.SetThresholds(thresholds=bounds)), "every threshold at the policy's bound"
    )
    for rule_id, name, past, at in (
        ("RES-001", "low_reservoir_ul", least_ul - 1, least_ul),
        ("RES-001", "low_reservoir_days", least_days - 1, least_days),
        ("ALARM-001", "reannunciate_s", most_s + 1, most_s),
        ("BATT-002", "eri_lead_days", least_eri - 1, least_eri),
    ):
        await b.over(
            rule_id, b.command(m.SetThresholds(thresholds=replace(bounds, **{name: past}))), f"{name} {past}"
        )
        await b.ok(
            rule_id, b.command(m.SetThresholds(thresholds=replace(bounds, **{name: at}))), f"{name} {at}"
        )
    await b.ok(
        "RES-001", b.command(m.SetThresholds(thresholds=report.thresholds)), "the thresholds as they were"
    )


@probe("RES-001")
async def low_reservoir_alarm(b: Bench, hands: Hands) -> None:
    """Refilled to a day above the low-reservoir threshold: no alarm; a day on: the alarm."""
    t = await start(b)
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    low = max(th.low_reservoir_ul, t.rate * th.low_reservoir_days)
    await b.ok(
        "RES-001", b.refill(None, low + t.rate + t.rate // 24, t.conc), f"{low + t.rate} uL + an hour's"
    )
    s = await b.status()
    b.expect(
        "RES-001",
        AlarmCode.LOW_RESERVOIR not in s.alarms,
        f"{s.reservoir_ul} uL: low-reservoir alarm a day early",
    )
    await b.advance(DAY + 3_600)
    s = await b.status()
    b.expect("RES-001", s.reservoir_ul <= low, f"{s.reservoir_ul} uL left after a day at {t.rate} uL/day")
    b.expect(
        "RES-001", AlarmCode.LOW_RESERVOIR in s.alarms, f"{s.reservoir_ul} uL (threshold {low}): no alarm"
    )


@probe("RES-002")
async def empty_reservoir(b: Bench, hands: Hands) -> None:
    t = await start(b, max_bolus=b.param("BOL-001", "absolute_max_bolus_ng"))
    left = t.rate // 4
    await b.ok("RES-002", b.refill(None, left, t.conc), f"a refill of {left} uL")
    s = await b.status()
    await b.over(
        "RES-002",
        b.command(bolus(BolusKind.CLINICIAN, s.reservoir_ul + 1, 3_600)),
        "a bolus a uL more than is left",
    )
    await b.advance(DAY // 2)
    s = await b.status()
    b.expect("RES-002", s.reservoir_ul == 0, f"{s.reservoir_ul} uL left after twice the time to empty")
    b.expect(
        "RES-002", AlarmCode.EMPTY_RESERVOIR in s.alarms, f"empty: no EMPTY_RESERVOIR alarm ({s.alarms})"
    )
    b.expect("RES-002", s.mode is not TherapyMode.INFUSING, f"empty and still {s.mode.name}")
    history = await b.history()
    empty_at = max(f.end for f in history.flows if f.rate_ul_day) if history.flows else 0
    await b.advance(3_600)
    later = await b.history()
    late = [f for f in later.flows if f.rate_ul_day and f.end > empty_at]
    b.expect("RES-002", not late, f"flows after the reservoir emptied: {late}")
    await b.ok("STOP-002", b.command(m.Suspend(duration_s=0, ack=m.NO_ACK)), "suspend", ack=("STOP-002",))
    await b.over(
        "RES-002", b.command(m.Resume(ack=m.NO_ACK)), "resume from an empty reservoir", ack=("RESTART-001",)
    )


# --- the fluid path -----------------------------------------------------------------------------------------


@probe("BRIDGE-001")
async def bridge(b: Bench, hands: Hands) -> None:
    """After a concentration change: a bridge of at most the path's volume, at most the daily dose at the tip,
    once, within the window."""
    t = await start(b)
    other = next(c for c in drug_table() if c > t.conc)
    await b.ok(
        "FLOW-001",
        b.refill(None, b.profile.reservoir_capacity_ul // 2, other),
        f"a refill of {other} ug/mL, no bridge",
        ack=("FLOW-001",),
    )
    history = await b.history()
    path_ul = sum(s.volume_scaled for s in history.path) // DAY
    tip_ng = sum(s.volume_scaled * s.concentration_ug_ml for s in history.path)  # ng x 86 400
    p = (await b.read(m.ReadPrescription(), m.PrescriptionReport)).prescription
    daily = sum(s.rate_ul_day for s in p.steps) * p.concentration_ug_ml  # one step: its dose
    shortest = -(-tip_ng // daily)
    await b.over(
        "BRIDGE-001",
        b.command(bolus(BolusKind.BRIDGE, path_ul + 1, shortest + 60)),
        f"a bridge of the path's {path_ul} uL + 1",
    )
    await b.over(
        "BRIDGE-001",
        b.command(bolus(BolusKind.BRIDGE, path_ul, shortest - 1)),
        f"{path_ul} uL in {shortest - 1} s",
    )
    await b.ok(
        "BRIDGE-001", b.command(bolus(BolusKind.BRIDGE, path_ul, shortest)), f"{path_ul} uL in {shortest} s"
    )
    await b.over("BRIDGE-001", b.command(bolus(BolusKind.BRIDGE, 1, shortest)), "a second bridge")


@probe("PRIME-001", "FLOW-001")
async def priming(b: Bench, hands: Hands) -> None:
    """Catheter work leaves saline: a session may end with the tip dry for the gap, not longer; a priming
    bolus of at most the saline."""
    t = await start(b)
    await b.over(
        "PRIME-001", b.command(bolus(BolusKind.PRIMING, 10, 3_600)), "priming with no surgery recorded"
    )
    gap = b.param("FLOW-001", "max_gap_s")
    saline = t.rate * gap // DAY  # at most the gap's worth of flow
    work = m.RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=saline + 1)
    await b.ok("PRIME-001", b.command(work), f"catheter revision: {saline + 1} uL of saline")
    history = await b.history()
    b.expect("PRIME-001", history.needs_priming, "catheter work recorded: the path does not need priming")
    await b.over(
        "FLOW-001",
        b.command(m.SessionEnd(ack=m.NO_ACK)),
        f"the session ends: {saline + 1} uL of saline ahead",
    )
    work = m.RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=saline)
    await b.ok("PRIME-001", b.command(work), f"catheter revision: {saline} uL of saline")
    await b.ok(
        "FLOW-001", b.command(m.SessionEnd(ack=m.NO_ACK)), f"the session ends: {saline} uL of saline ahead"
    )
    history = await b.history()
    dry = sum(s.volume_scaled for s in history.path if s.concentration_ug_ml == 0) // DAY
    await b.over(
        "PRIME-001",
        b.command(bolus(BolusKind.PRIMING, dry + 1, fastest(b, dry + 1))),
        f"priming {dry + 1} uL, {dry} of saline",
    )
    await b.ok("PRIME-001", b.command(bolus(BolusKind.PRIMING, dry, fastest(b, dry))), f"priming {dry} uL")
    await b.advance(fastest(b, dry) + 60)
    history = await b.history()
    b.expect("PRIME-001", not history.needs_priming, "primed: the path still needs priming")
    saline_left = [s for s in history.path if s.concentration_ug_ml == 0]
    b.expect("PRIME-001", not saline_left, f"primed: saline left in the path {saline_left}")


# --- stopping, restarting -----------------------------------------------------------------------------------


@probe("STOP-001", "STOP-002", "RESTART-001")
async def stop_and_restart(b: Bench, hands: Hands) -> None:
    await start(b)
    await b.ok("STOP-001", b.command(m.SessionEnd(ack=m.NO_ACK)), "the session ends while infusing")
    gap = b.param("RESTART-001", "max_gap_s")
    await b.over(
        "RESTART-001",
        b.command(m.Suspend(duration_s=gap + 1, ack=m.NO_ACK)),
        f"suspended {gap + 1} s, resuming at the same dose",
        ack=("STOP-002",),
    )
    await b.ok("STOP-002", b.command(m.Resume(ack=m.NO_ACK)), "resumed at once")
    await b.over("STOP-002", b.command(m.Suspend(duration_s=gap, ack=m.NO_ACK)), f"suspended {gap} s")
    b.tally.allowed["RESTART-001"] += 1
    s = await b.status()
    b.expect("STOP-002", s.mode is TherapyMode.SUSPENDED, f"suspended: mode {s.mode.name}")
    await b.over("STOP-001", b.command(m.SessionEnd(ack=m.NO_ACK)), "the session ends while suspended")
    before = await b.history()
    await b.advance(gap // 2)
    after = await b.history()
    moving = [
        f for f in after.flows if f.rate_ul_day and f.end > max((f.end for f in before.flows), default=0)
    ]
    b.expect("STOP-002", not moving, f"delivery while suspended: {moving}")
    await b.advance(gap - gap // 2 + 60)
    s = await b.status()
    b.expect("RESTART-001", s.mode is TherapyMode.INFUSING, f"a timed suspension over: mode {s.mode.name}")
    await b.ok(
        "STOP-002",
        b.command(m.Suspend(duration_s=0, ack=m.NO_ACK)),
        "suspended until resumed",
        ack=("STOP-002",),
    )
    await b.advance(gap + 1)
    await b.over("RESTART-001", b.command(m.Resume(ack=m.NO_ACK)), f"resumed after {gap + 1} s")


@probe("MRI-001", "MRI-002")
async def mri(b: Bench, hands: Hands) -> None:
    from itbproto.wire.enums import PumpKind

    await start(b)
    s = await b.status()
    if b.info.pump_kind is PumpKind.VALVE:
        pct, floor = b.param("REFILL-003", "discrepancy_pct"), b.param("REFILL-003", "discrepancy_floor_ul")
        short = max(s.reservoir_ul * pct // 100, floor)
        await b.over(
            "MRI-001",
            b.command(m.MriBegin(emptied_ul=s.reservoir_ul - short - 1, ack=m.NO_ACK)),
            "emptied short",
            ack=("MRI-002",),
        )
    await b.over(
        "MRI-002", b.command(m.MriBegin(emptied_ul=s.reservoir_ul, ack=m.NO_ACK)), "prepared for an MRI"
    )
    b.tally.allowed["MRI-001"] += 1
    s = await b.status()
    b.expect("MRI-001", s.mode is TherapyMode.MRI, f"prepared for an MRI: mode {s.mode.name}")
    before = await b.history()
    await b.advance(3_600)
    after = await b.history()
    moving = [
        f for f in after.flows if f.rate_ul_day and f.end > max((f.end for f in before.flows), default=0)
    ]
    b.expect("MRI-001", not moving, f"delivery during the MRI: {moving}")
    await b.ok("MRI-002", b.command(m.MriEnd()), "the scan is over")
    s = await b.status()
    b.expect("MRI-002", s.mode is TherapyMode.STOPPED, f"after the MRI: mode {s.mode.name}, not STOPPED")


# --- alarms and the battery ---------------------------------------------------------------------------------


@probe("ALARM-001", needs=("fresh", "clock", "faults"))
async def critical_alarm(b: Bench, hands: Hands) -> None:
    await start(b)
    await hands.fault("motor-stall")
    alarms = (await b.read(m.AlarmListRequest(), m.AlarmList)).alarms
    stalls = [a for a in alarms if a.code is AlarmCode.MOTOR_STALL]
    b.expect(
        "ALARM-001", bool(stalls) and stalls[0].severity is Severity.CRITICAL, f"a stalled motor: {alarms}"
    )
    s = await b.status()
    b.expect("ALARM-001", s.mode is TherapyMode.HALTED, f"a stalled motor: mode {s.mode.name}")
    alarm = stalls[0]
    period = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds.reannunciate_s
    await b.over(
        "ALARM-001",
        b.command(m.AlarmSilence(alarm_id=alarm.alarm_id, duration_s=period + 1)),
        f"silenced {period + 1} s",
    )
    await b.ok(
        "ALARM-001",
        b.command(m.AlarmSilence(alarm_id=alarm.alarm_id, duration_s=period)),
        f"silenced {period} s",
    )
    now = (await b.status()).device_time
    listed = (await b.read(m.AlarmListRequest(), m.AlarmList)).alarms
    mine = [a for a in listed if a.alarm_id == alarm.alarm_id]
    b.expect(
        "ALARM-001",
        [a.silenced_until for a in mine] == [now + period],
        f"silenced {period} s at {now}: {mine}",
    )
    await b.advance(period)
    listed = (await b.read(m.AlarmListRequest(), m.AlarmList)).alarms
    mine = [a for a in listed if a.alarm_id == alarm.alarm_id]
    b.expect(
        "ALARM-001",
        bool(mine) and mine[0].silenced_until <= now + period and not mine[0].acknowledged,
        f"{period} s on: {mine}",
    )
    await b.ok("ALARM-001", b.command(m.AlarmAcknowledge(alarm_id=alarm.alarm_id)), "acknowledged")
    listed = (await b.read(m.AlarmListRequest(), m.AlarmList)).alarms
    mine = [a for a in listed if a.alarm_id == alarm.alarm_id]
    b.expect("ALARM-001", bool(mine) and mine[0].acknowledged, f"acknowledged, listed as {mine}")
    await hands.fault("motor-recover")
    s = await b.status()
    b.expect("ALARM-001", AlarmCode.MOTOR_STALL not in s.alarms, f"the motor runs again: {s.alarms}")


@probe("BATT-001", "BATT-002", needs=("fresh", "clock", "faults"))
async def battery(b: Bench, hands: Hands) -> None:
    t = await start(b)
    s = await b.status()
    lead = b.param("BATT-002", "min_eri_lead_days")
    # a cell fault leaves a little less than the lead time
    lost = 100 - lead * 100 // max(s.battery_days, 1)  # whole percent: a little less than the lead left
    await hands.fault("battery-drop", max(lost, 0))
    s = await b.status()
    b.expect("BATT-002", 0 < s.battery_days <= lead, f"{s.battery_days} days left after losing {lost} %")
    b.expect(
        "BATT-002",
        AlarmCode.BATTERY_ERI in s.alarms,
        f"{s.battery_days} days to EOS and no ERI alarm: {s.alarms}",
    )
    await hands.fault("battery-drop", 100)
    s = await b.status()
    b.expect("BATT-001", AlarmCode.BATTERY_EOS in s.alarms, f"a spent battery: {s.alarms}")
    b.expect("BATT-001", s.mode is TherapyMode.END_OF_SERVICE, f"a spent battery: mode {s.mode.name}")
    for what, request in (
        ("a rate change", m.SetRate(rate_ul_day=t.rate - 1, ack=m.NO_ACK)),
        ("a bolus", bolus(BolusKind.CLINICIAN, 1, 3_600)),
        ("a resumption", m.Resume(ack=m.NO_ACK)),
        ("a refill", m.RefillBegin()),
    ):
        await b.refuses("BATT-001", b.command(request), f"{what} at end of service", ErrorCode.HARDWARE_FAULT)
    before = await b.history()
    await b.advance(3_600)
    after = await b.history()
    moving = [
        f for f in after.flows if f.rate_ul_day and f.end > max((f.end for f in before.flows), default=0)
    ]
    b.expect("BATT-001", not moving, f"delivery after end of service: {moving}")


# --- the therapy path ---------------------------------------------------------------------------------------


@probe("BOL-002", "PHASE-001", "SCREEN-001", "PRIME-001", needs=("fresh", "clock", "screening"))
async def screening_to_therapy(b: Bench, hands: Hands) -> None:
    """A new patient: screening doses in the label's order a day apart, implant, priming, the first dose."""
    from itbproto.specfiles import load_drug

    drug = load_drug()
    s = await b.status()
    conc = s.concentration_ug_ml
    record = await b.record()

    def phase(p: Phase) -> m.SetPatientRecord:
        return m.SetPatientRecord(group=record.group, origin=record.origin, risks=record.risks, phase=p)

    await b.over("PHASE-001", b.command(phase(Phase.IMPLANTED)), "implanted with no effective screening dose")
    await b.over("PHASE-001", b.program(continuous(100, conc, 100 * conc)), "a prescription in screening")
    doses = list(drug.screening_doses_ng)

    def dose(ng: int) -> m.BolusStart:
        volume = ng // conc
        return bolus(BolusKind.CLINICIAN, volume, fastest(b, volume))

    off_label = doses[0] + conc
    await b.over(
        "BOL-002", b.command(dose(off_label)), f"a screening dose of {off_label} ng, not the label's"
    )
    await b.over("BOL-002", b.command(dose(doses[1])), f"{doses[1]} ng first")
    await b.ok("BOL-002", b.command(dose(doses[0])), f"{doses[0]} ng")
    interval = max(b.param("BOL-002", "interval_s"), drug.screening_interval_s)
    await b.advance(interval - 1)
    await b.over("BOL-002", b.command(dose(doses[1])), "the next before its response is recorded")
    await b.ok(
        "BOL-002",
        b.command(m.RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0)),
        "no response",
    )
    await b.over("BOL-002", b.command(dose(doses[1])), f"the next {interval - 1} s after the first")
    await b.advance(1)
    await b.over("BOL-002", b.command(dose(doses[2])), f"{doses[2]} ng: a step skipped")
    await b.ok("BOL-002", b.command(dose(doses[1])), f"{doses[1]} ng a day later")
    effect = b.param("SCREEN-001", "long_effect_s") - 1
    await b.ok(
        "BOL-002",
        b.command(m.RecordScreeningResponse(response=ScreeningResponse.EFFECTIVE, effect_s=effect)),
        "effective",
    )
    await b.advance(interval)
    await b.over("BOL-002", b.command(dose(doses[2])), "a screening dose after an effective one")
    await b.over("PHASE-001", b.command(phase(Phase.THERAPY)), "screening to therapy, a phase skipped")
    await b.ok("PHASE-001", b.command(phase(Phase.IMPLANTED)), "implanted")
    await b.ok(
        "PHASE-001",
        b.command(m.RecordProcedure(procedure=Procedure.PUMP_IMPLANT, catheter_volume_ul=0)),
        "the implant",
    )
    await b.over("PHASE-001", b.command(phase(Phase.THERAPY)), "therapy before priming")
    history = await b.history()
    saline = sum(p.volume_scaled for p in history.path if p.concentration_ug_ml == 0) // DAY
    await b.ok(
        "PRIME-001", b.command(bolus(BolusKind.PRIMING, saline, fastest(b, saline))), f"priming {saline} uL"
    )
    await b.advance(fastest(b, saline) + 60)
    await b.ok("PHASE-001", b.command(phase(Phase.THERAPY)), "therapy")
    record = await b.record()
    b.expect(
        "SCREEN-001",
        record.screening_dose_ng == doses[1],
        f"the effective dose on record: {record.screening_dose_ng}",
    )
    await first_dose_after_screening(b, hands)


# --- the clock ----------------------------------------------------------------------------------------------


@probe("CLOCK-001")
async def clock(b: Bench, hands: Hands) -> None:
    t = await start(b)
    most = b.param("CLOCK-001", "max_step_s")
    now = (await b.status()).device_time
    await b.over("CLOCK-001", b.command(m.SetClock(device_time=now + most + 1)), f"the clock {most + 1} s on")
    await b.ok("CLOCK-001", b.command(m.SetClock(device_time=now + most)), f"the clock {most} s on")
    s = await b.status()
    b.expect("CLOCK-001", s.device_time == now + most, f"the clock set to {now + most} reads {s.device_time}")
    await b.ok("TITR-001", b.command(m.SetRate(rate_ul_day=t.rate - 1, ack=m.NO_ACK)), "a rate change")
    changed = (await b.status()).device_time
    await b.advance(most // 2)
    await b.over("CLOCK-001", b.command(m.SetClock(device_time=changed - 1)), "back past the rate change")
    await b.ok("CLOCK-001", b.command(m.SetClock(device_time=changed)), "back to the rate change")


# --- the protocol's own checks (specs/protocol.md §5, §6, §7) ------------------------------------------------


@probe("TXN", needs=())
async def transactions(b: Bench, hands: Hands) -> None:
    """A retry gets the stored answer (applied once); an id used again with another body, an old id, an id
    too far ahead are refused and change nothing; a refused command uses its id."""
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    change = m.SetThresholds(thresholds=replace(th, low_reservoir_days=th.low_reservoir_days + 1))
    logged = await b.log_size()
    first = await b.ok("TXN", b.command(change), "new thresholds")
    txn = b.link.last_command
    again = await b.ask(change, txn)
    b.expect("TXN", again == first, f"the retry of transaction {txn} answered {again}, first {first}")
    applied = [
        e for e in await b.events_from(logged) if e.code is EventCode.THRESHOLDS_CHANGED and e.txn == txn
    ]
    b.expect("TXN", len(applied) == 1, f"transaction {txn} retried: {len(applied)} THRESHOLDS_CHANGED logged")
    other = m.SetThresholds(thresholds=th)

    def with_txn(n: int) -> Op:
        async def op(ack: m.Acknowledgement) -> Message:
            return await b.ask(other, n)

        return op

    reads = b.link.connection.last_txn
    await b.refuses("TXN", with_txn(txn), f"transaction {txn} again, other thresholds", ErrorCode.TXN_REUSED)
    await b.refuses("TXN", with_txn(txn - 1), "an older id (a read's)", ErrorCode.REPLAY)
    await b.refuses("TXN", with_txn(txn + 65_537), "an id 65,537 ahead", ErrorCode.BAD_TXN)
    b.link.connection.last_txn = reads
    s = await b.status()
    b.expect("TXN", s.last_txn == txn, f"refusals at steps 5-7 used ids: last_txn {s.last_txn}, not {txn}")
    low = b.param("RES-001", "min_low_reservoir_ul") - 1
    nack = await b.ask(m.SetThresholds(thresholds=replace(th, low_reservoir_ul=low)))
    used = b.link.last_command
    s = await b.status()
    b.expect(
        "TXN", refused(nack) and s.last_txn == used, f"a refused command ({used}) left last_txn {s.last_txn}"
    )
    await b.ok("TXN", b.command(other), "the thresholds as they were")


@probe("DIGEST", needs=())
async def digests(b: Bench, hands: Hands) -> None:
    """A commit must name the staged prescription by stage id and digest; what is in force is exactly it."""
    s = await b.status()
    if not s.prescription_id:
        await b.ok(
            "SCREEN-001",
            b.program(
                continuous(
                    b.info.min_rate_ul_day,
                    s.concentration_ug_ml,
                    b.info.min_rate_ul_day * s.concentration_ug_ml,
                )
            ),
            "a first prescription",
        )
    current = (await b.read(m.ReadPrescription(), m.PrescriptionReport)).prescription
    staged = await b.stage(current)
    if not isinstance(staged, m.PrescriptionStaged):
        b.fail("DIGEST", f"staging the prescription in force again: {staged}")
    assert isinstance(staged, m.PrescriptionStaged)
    codes = (ErrorCode.STALE_STAGE, ErrorCode.UNKNOWN_ID, ErrorCode.WRONG_STATE)
    for what, commit in (
        (
            "another digest",
            m.CommitPrescription(stage_id=staged.stage_id, digest=staged.digest ^ 1, ack=m.NO_ACK),
        ),
        (
            "another stage id",
            m.CommitPrescription(stage_id=staged.stage_id + 1, digest=staged.digest, ack=m.NO_ACK),
        ),
    ):
        await b.refuses("DIGEST", b.command(commit), f"a commit with {what}", *codes)
    import zlib

    payload = m.StagePrescription(prescription=current).CODEC.encode(
        m.StagePrescription(prescription=current)
    )
    b.expect(
        "DIGEST",
        staged.digest == zlib.crc32(payload),
        f"digest {staged.digest:#x}, CRC-32 of the staged payload {zlib.crc32(payload):#x}",
    )
    await b.ok(
        "DIGEST",
        b.command(m.CommitPrescription(stage_id=staged.stage_id, digest=staged.digest, ack=m.NO_ACK)),
        "the commit",
    )
    report = await b.read(m.ReadPrescription(), m.PrescriptionReport)
    b.expect(
        "DIGEST",
        report.prescription == current and report.prescription_id == staged.stage_id,
        f"in force: {report}",
    )
    await b.refuses(
        "DIGEST",
        b.command(m.CommitPrescription(stage_id=staged.stage_id, digest=staged.digest, ack=m.NO_ACK)),
        "the same stage committed twice",
        *codes,
    )


@probe("ROLE", needs=("links",))
async def roles(b: Bench, hands: Hands) -> None:
    """A patient sends only the patient bolus; service changes no therapy; the role is checked before the
    programming lock (a BUSY where the spec says ROLE_FORBIDDEN is a finding)."""
    s = await b.status()
    await b.ask(m.SetThresholds(thresholds=(await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds))
    forbidden = {
        Role.PATIENT: (
            m.SetRate(rate_ul_day=s.rate_ul_day or b.info.min_rate_ul_day, ack=m.NO_ACK),
            bolus(BolusKind.CLINICIAN, 1, 3_600),
            m.RefillBegin(),
            m.Suspend(duration_s=60, ack=m.NO_ACK),
            m.SetClock(device_time=s.device_time),
        ),
        Role.SERVICE: (
            m.SetRate(rate_ul_day=s.rate_ul_day or b.info.min_rate_ul_day, ack=m.NO_ACK),
            bolus(BolusKind.PATIENT, 1, 3_600),
            m.StagePrescription(prescription=continuous(100, s.concentration_ug_ml or 500, 100 * 500)),
        ),
    }
    for role, requests in forbidden.items():
        link = await hands.link(role)
        other = b.on(link)
        for request in requests:
            await other.refuses(
                "ROLE",
                other.command(request),
                f"{role.name.lower()}: {type(request).__name__}",
                ErrorCode.ROLE_FORBIDDEN,
            )
        read = await link.ask(m.StatusRequest())
        b.expect("ROLE", isinstance(read, m.StatusReport), f"a {role.name.lower()} reads the status: {read}")
        await link.close()


@probe("LOCK", needs=("links",))
async def programming_lock(b: Bench, hands: Hands) -> None:
    """One programs at a time: another clinician reads and quiets alarms, its commands meet BUSY until the
    first one's session ends."""
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    await b.ok("LOCK", b.command(m.SetThresholds(thresholds=th)), "the first clinician commands")
    second = await hands.link(Role.CLINICIAN)
    other = b.on(second)
    await other.refuses(
        "LOCK", other.command(m.SetThresholds(thresholds=th)), "a second clinician commands", ErrorCode.BUSY
    )
    read = await second.ask(m.StatusRequest())
    b.expect("LOCK", isinstance(read, m.StatusReport), f"the second reads: {read}")
    await hands.hand_over()
    await other.ok(
        "LOCK", other.command(m.SetThresholds(thresholds=th)), "the second commands once the first ended"
    )
    await b.refuses(
        "LOCK", b.command(m.SetThresholds(thresholds=th)), "the first commands again", ErrorCode.BUSY
    )
    await second.close()


@probe("REPLAY", needs=())
async def replay(b: Bench, hands: Hands) -> None:
    """A command's frames sent again as captured are dropped unanswered and applied once."""
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    logged = await b.log_size()
    await b.ok("REPLAY", b.command(m.SetThresholds(thresholds=th)), "a command")
    txn, chunks = b.link.last_command, list(b.link.last_chunks)
    answered = await b.link.silent(chunks, b.link.timeout_s / 4)
    b.expect("REPLAY", not answered, f"the pump answered {answered} replayed frame(s)")
    applied = [
        e for e in await b.events_from(logged) if e.code is EventCode.THRESHOLDS_CHANGED and e.txn == txn
    ]
    b.expect("REPLAY", len(applied) == 1, f"a replayed command logged {len(applied)} times")


@probe("PAIR", needs=("pairing",))
async def pairing(b: Bench, hands: Hands) -> None:
    """A wrong PIN pairs nothing and is logged; wrong PINs past the free ones lock pairing; an unknown key and
    a role its key does not carry open no session."""
    from itbproto.security import PairedKey

    assert hands.pin is not None
    wrong = "".join("1" if c != "1" else "2" for c in hands.pin)
    logged = await b.log_size()
    took = await hands.pair(wrong, Role.CLINICIAN)
    b.expect("PAIR", not took, "a wrong PIN paired")
    failed = [e for e in await b.events_from(logged) if e.code is EventCode.PAIRING_FAILED]
    b.expect("PAIR", len(failed) == 1, f"a wrong PIN: {len(failed)} PAIRING_FAILED logged")
    stranger = Probe(
        await hands.transport(), key=PairedKey(key_id=0xFFFF, role=Role.CLINICIAN, long_term=bytes(32))
    )
    answer = await stranger.hello()
    b.expect("PAIR", refused(answer, ErrorCode.NOT_AUTHENTICATED), f"a Hello with an unknown key: {answer}")
    await stranger.close()
    patient = await hands.link(Role.PATIENT)
    key = patient.key
    await patient.close()
    if key is not None:
        posing = Probe(await hands.transport(), role=Role.CLINICIAN, key=key)
        answer = await posing.hello()
        b.expect(
            "PAIR",
            refused(answer, ErrorCode.ROLE_FORBIDDEN),
            f"a patient's key opening a clinician session: {answer}",
        )
        await posing.close()
    if hands.requires_pairing:
        plain = Probe(await hands.transport())
        answer = await plain.hello()
        b.expect(
            "PAIR",
            refused(answer, ErrorCode.NOT_AUTHENTICATED),
            f"a Hello without a key, pairing required: {answer}",
        )
        await plain.close()
    if b.advance_by is None:
        return
    for _ in range(FREE_PINS + 1):  # specs/protocol.md §6: three free wrong PINs, then 30 s locked, doubling
        await hands.pair(wrong, Role.CLINICIAN)
    took = await hands.pair(hands.pin, Role.CLINICIAN)
    b.expect(
        "PAIR", not took, f"the right PIN taken while pairing is locked after {FREE_PINS + 1} wrong ones"
    )
    await b.advance(FIRST_LOCK_S)
    took = await hands.pair(hands.pin, Role.CLINICIAN)
    b.expect("PAIR", took, "the right PIN refused a minute after the lock began")
