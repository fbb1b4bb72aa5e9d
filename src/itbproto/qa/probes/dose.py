"""Dose limits and titration: DOSE-*, SCREEN-001 (the first dose), TITR-*, DECR-001."""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    BolusKind,
    Origin,
    PatientGroup,
)
from itbproto.qa.bench import DAY, Bench, Op, continuous
from itbproto.qa.probes.common import (
    Therapy,
    bolus,
    ceiling,
    drug_table,
    fastest,
    first_dose_limit,
    flex,
    maintenance_upper,
    rx,
    start,
    titration_pct,
)
from itbproto.qa.probes.registry import Hands, probe

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
    other = next(c for c in drug_table() if c != t.conc)
    mismatch = continuous(t.rate_for(limit * other // t.conc) * t.conc // other or 1, other, top)
    await b.over(
        "DRUG-002", b.program(mismatch), f"a first prescription at {other} ug/mL, the reservoir {t.conc}"
    )
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
    to_adult = replace(to_child, group=PatientGroup.ADULT)
    await b.ok("DOSE-003", b.command(to_adult), "an adult's record again")
    await b.over(
        "DOSE-003", b.program(rx(t, t.rate, b, max_daily=child + 1)), "within 24 h: the child's ceiling"
    )
    await b.settle()
    await b.ok("DOSE-003", b.program(rx(t, t.rate, b, max_daily=child + 1)), "a day on: the adult's ceiling")


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
    await b.advance(
        duration + 60
    )  # delivered: the next 24 h hold only the basal flow, the last 24 h the bolus
    more = m.BolusStart(kind=BolusKind.CLINICIAN, volume_ul=1, duration_s=60, ack=m.NO_ACK)
    await b.over("DOSE-001", b.command(more), "a uL more while the day's bolus is in the last 24 h")


@probe("DOSE-001")
async def a_periodic_bolus_across_midnight(b: Bench, hands: Hands) -> None:
    """A periodic bolus running past midnight counts whole in every window: a clinician's bolus on top fills
    the day to the maximum, a uL more is refused."""
    t = await start(b)
    volume = t.rate // 10
    absolute = b.param("BOL-001", "absolute_max_bolus_ng")
    top = t.daily + volume * t.conc * 2  # the periodic bolus, and room for as much again
    periodic = (m.PeriodicBolus(start_s=DAY - 1_800, volume_ul=volume, duration_s=3_600),)
    steps = flex(t, [t.rate - volume, t.rate - volume])
    p = rx(t, 0, b, max_daily=top, steps=steps, boluses=periodic, max_bolus_ng=absolute)
    await b.ok("DOSE-002", b.program(p), f"a periodic bolus of {volume} uL from 23:30 to 00:30")
    await b.settle()
    now = (await b.status()).device_time
    await b.advance((DAY - 7_200 - now % DAY) % DAY)  # 22:00: the next periodic bolus is ahead
    room = (top - t.daily) // t.conc  # what the windows through the periodic bolus leave, in µL
    await b.over(
        "DOSE-001", b.command(bolus(BolusKind.CLINICIAN, room + 1, fastest(b, room + 1))), f"{room + 1} uL"
    )
    await b.ok(
        "DOSE-001", b.command(bolus(BolusKind.CLINICIAN, room, fastest(b, room))), f"{room} uL at 22:00"
    )


@probe("DOSE-001", "DOSE-003")
async def child_boluses_without_prescription(b: Bench, hands: Hands) -> None:
    """No prescription in force: a child's boluses in 24 h up to the child ceiling, not the adult's."""
    record = await b.record()
    conc = (await b.status()).concentration_ug_ml
    child = m.SetPatientRecord(
        group=PatientGroup.CHILD, origin=record.origin, risks=record.risks, phase=record.phase
    )
    await b.ok("DOSE-003", b.command(child), "a child's record, no prescription")
    await b.settle()
    limit, most = ceiling(b, PatientGroup.CHILD), b.param("BOL-001", "absolute_max_bolus_ng")
    given = 0
    while given < limit:
        volume = min(most, limit - given) // conc
        if not volume:
            break
        await b.ok(
            "DOSE-001", b.command(bolus(BolusKind.CLINICIAN, volume, fastest(b, volume))), f"{volume} uL"
        )
        given += volume * conc
        await b.advance(fastest(b, volume) + 60)
    await b.over("DOSE-001", b.command(bolus(BolusKind.CLINICIAN, 1, 60)), f"{given} ng given: a uL more")


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
    down = m.SetRate(rate_ul_day=t.rate + step, ack=m.NO_ACK)
    await b.ok("TITR-002", b.command(down), "a step down")
    up = m.SetRate(rate_ul_day=t.rate + 2 * step, ack=m.NO_ACK)
    await b.over("TITR-002", b.command(up), "up again: the increase before the decrease was within 24 h")


@probe("TITR-001")
async def titration_after_a_record_change(b: Bench, hands: Hands) -> None:
    """For 24 h after a record change the stricter category's step applies."""
    t = await start(b)
    record = await b.record()
    stricter, looser = Origin.CEREBRAL, Origin.SPINAL
    change = m.SetPatientRecord(group=record.group, origin=stricter, risks=record.risks, phase=record.phase)
    await b.ok("TITR-001", b.command(change), "record: cerebral origin")
    await b.settle()
    await b.ok("TITR-001", b.command(replace(change, origin=looser)), "record: spinal origin")
    strict = titration_pct(b, replace(record, origin=stricter))
    loose = titration_pct(b, replace(record, origin=looser))
    step = b.info.rate_step_ul_day
    if loose > strict:
        up = t.rate_for(t.daily * (100 + strict) // 100) + step
        await b.over(
            "TITR-001", b.command(m.SetRate(rate_ul_day=up, ack=m.NO_ACK)), f"{strict} % + a step, spinal now"
        )
    await b.ok(
        "TITR-001",
        b.command(m.SetRate(rate_ul_day=t.rate_for(t.daily * (100 + strict) // 100), ack=m.NO_ACK)),
        f"{strict} %",
    )


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
