"""The drug, refills and the reservoir: DRUG-*, REFILL-*, RES-*."""

from __future__ import annotations

from dataclasses import replace
from itertools import pairwise

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    AlarmCode,
    BolusKind,
    ErrorCode,
    PatientGroup,
    TherapyMode,
)
from itbproto.qa.bench import DAY, Bench, continuous
from itbproto.qa.probes.common import (
    Therapy,
    bolus,
    ceiling,
    drug_table,
    fastest,
    first_dose_limit,
    flex,
    rx,
    start,
)
from itbproto.qa.probes.registry import Hands, probe

# --- drug and refills ---------------------------------------------------------------------------------------


@probe("DRUG-001", "DRUG-002")
async def drug_table_and_rescale(b: Bench, hands: Hands) -> None:
    """Refills at a concentration not in the table, a prescription at another than the reservoir's; refills
    to a stronger and then the weakest drug, bridged: the rates rescaled, rounded down, to the same dose
    (its maximum the dose itself, so the oracle's windows hold the pump to it)."""
    record = await b.record()
    rough = first_dose_limit(b, record) // 500 - 1  # a rate the rescaling must round
    t = await start(b, daily=(rough | 1) * 500, max_daily=(rough | 1) * 500)
    table = drug_table()
    # strengths not in the table: a unit off each listed one, the midpoints between them, a multiple of the
    # smallest (a compounded drug)
    listed = sorted(table)
    near = {c + d for c in listed for d in (-1, 1)} | {(a + b) // 2 for a, b in pairwise(listed)}
    unlisted = sorted(c for c in near | {3 * listed[0]} if c > 0 and c not in table)
    for conc in unlisted:
        await b.over(
            "DRUG-001",
            b.refill(None, b.profile.reservoir_capacity_ul // 2, conc),
            f"a refill of {conc} ug/mL",
        )
    other = next(c for c in table if c > t.conc)
    await b.over(
        "DRUG-002",
        b.program(continuous(t.rate_for(t.daily) * t.conc // other, other, ceiling(b, PatientGroup.ADULT))),
        f"a prescription at {other} ug/mL, the reservoir {t.conc}",
    )
    # a periodic bolus joins the basal flow, which gives up as much: the maximum leaves room for the windows
    # that span the change (the old flow behind, the bolus ahead)
    volume = t.rate // 10 | 1
    slow = fastest(b, volume * t.conc // min(table)) + 60  # slow enough for its volume at the weakest drug
    periodic = (m.PeriodicBolus(start_s=DAY // 2, volume_ul=volume, duration_s=slow),)
    steps = flex(t, [t.rate - volume] * 2)
    shaped = rx(
        t, 0, b, steps=steps, boluses=periodic, max_daily=t.daily + volume * t.conc, max_bolus_ng=t.daily
    )
    await b.ok("DOSE-002", b.program(shaped), f"a periodic bolus of {volume} uL a day")
    await b.settle()
    step = b.info.rate_step_ul_day
    for conc in (other, min(table)):
        was = (await b.read(m.ReadPrescription(), m.PrescriptionReport)).prescription
        refill = b.refill(None, b.profile.reservoir_capacity_ul // 2, conc, bridge=True)
        # (the bridge gives the daily dose evenly: where the periodic bolus falls in it, the tip may get less
        # than a tight FLOW-001 asks for a while: acknowledged, as a clinician would)
        await b.ok("DRUG-001", refill, f"a refill of {conc} ug/mL, bridged", ack=("FLOW-001",))
        b.tally.allowed["DRUG-002"] += 1
        now = (await b.read(m.ReadPrescription(), m.PrescriptionReport)).prescription
        old = was.concentration_ug_ml
        rates = [s.rate_ul_day * old // conc // step * step for s in was.steps]
        volumes = [v for pb in was.boluses if (v := pb.volume_ul * old // conc)]
        b.expect(
            "DRUG-002",
            [s.rate_ul_day for s in now.steps] == rates and [pb.volume_ul for pb in now.boluses] == volumes,
            f"at {conc} ug/mL: {now.steps} and {now.boluses}, not rates {rates} and volumes {volumes}",
        )
        b.expect(
            "DRUG-002", now.concentration_ug_ml == conc, f"rescaled to {now.concentration_ug_ml}, not {conc}"
        )
        await b.settle()


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


async def _residual(b: Bench, t: Therapy, sign: int, fill_ul: int) -> None:
    """Two refills, each back to ``fill_ul``: one that withdraws the threshold's worth more (``sign`` 1) or
    less (-1) than the pump expects (no acknowledgement), one a µL beyond it (acknowledged)."""
    floor, pct = b.param("REFILL-003", "discrepancy_floor_ul"), b.param("REFILL-003", "discrepancy_pct")
    for beyond in (0, 1):
        begun = await b.ask(m.RefillBegin())
        assert isinstance(begun, m.RefillSession)
        await b.ask(m.RefillAbort(refill_id=begun.refill_id))
        expected = begun.expected_residual_ul
        allowed = max(expected * pct // 100, floor)
        measured = expected + sign * (allowed + beyond)
        what = f"{measured} uL withdrawn, {expected} expected"
        step = b.over if beyond else b.ok
        await step("REFILL-003", b.refill(measured, fill_ul, t.conc), what)


@probe("REFILL-003")
async def residual_short(b: Bench, hands: Hands) -> None:
    """Less withdrawn than the pump expects (a pocket fill, a leak): the percentage of it is the threshold."""
    t = await start(b)
    await _residual(b, t, -1, b.profile.reservoir_capacity_ul // 2)


@probe("REFILL-003")
async def residual_over(b: Bench, hands: Hands) -> None:
    """More withdrawn than the pump expected (a blocked catheter, an underdose) is a discrepancy too."""
    t = await start(b)
    await _residual(b, t, 1, b.profile.reservoir_capacity_ul // 2)


@probe("REFILL-003")
async def residual_at_the_floor(b: Bench, hands: Hands) -> None:
    """A reservoir so low that the percentage of it is under the floor: the floor is the threshold."""
    t = await start(b)
    low = b.param("REFILL-003", "discrepancy_floor_ul") * 100 // b.param("REFILL-003", "discrepancy_pct") // 2
    await b.ok("REFILL-001", b.refill(None, low, t.conc), f"a refill of {low} uL")
    await _residual(b, t, 1, low)


@probe("REFILL-003")
async def residual_none(b: Bench, hands: Hands) -> None:
    """Nothing withdrawn where millilitres were expected (a leak, a pocket fill): a discrepancy."""
    t = await start(b)
    begun = await b.ask(m.RefillBegin())
    assert isinstance(begun, m.RefillSession)
    await b.ask(m.RefillAbort(refill_id=begun.refill_id))
    volume = b.profile.reservoir_capacity_ul - begun.expected_residual_ul - 10
    await b.over(
        "REFILL-003", b.refill(0, volume, t.conc), f"0 uL withdrawn, {begun.expected_residual_ul} expected"
    )


@probe("REFILL-004", "RES-003")
async def drug_stability(b: Bench, hands: Hands) -> None:
    """A refill lasting past the drug's stability is acknowledged; drug past it alarms and is acknowledged."""
    from itbproto.io.specfiles import load_drug

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
    # under the volume threshold the alarm stands while delivery is suspended (the reservoir is still low)
    await b.advance((s.reservoir_ul - th.low_reservoir_ul) * DAY // t.rate + 3_600)
    suspend = m.Suspend(duration_s=0, ack=m.NO_ACK)
    await b.ok("STOP-002", b.command(suspend), "suspended", ack=("STOP-002",))
    s = await b.status()
    b.expect("RES-001", AlarmCode.LOW_RESERVOIR in s.alarms, f"suspended at {s.reservoir_ul} uL: {s.alarms}")


async def _low_at(b: Bench, by_days: bool) -> None:
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    # slow: the volume threshold lasts twice the days; fast: the days' volume is twice the threshold
    rate = (
        th.low_reservoir_ul * 2 // th.low_reservoir_days
        if by_days
        else th.low_reservoir_ul // (2 * th.low_reservoir_days)
    )
    t = await start(b, daily=rate * 500)
    volume = t.rate * th.low_reservoir_days if by_days else th.low_reservoir_ul
    await b.ok("RES-001", b.refill(None, volume, t.conc), f"refilled to {volume} uL at {t.rate} uL/day")
    s = await b.status()
    b.expect(
        "RES-001", AlarmCode.LOW_RESERVOIR in s.alarms, f"refilled to the threshold ({volume} uL): {s.alarms}"
    )


@probe("RES-001")
async def low_reservoir_at_its_volume(b: Bench, hands: Hands) -> None:
    """Refilled to exactly the low-reservoir volume, at a rate it lasts longer than the days: the alarm."""
    await _low_at(b, by_days=False)


@probe("RES-001")
async def low_reservoir_at_its_days(b: Bench, hands: Hands) -> None:
    """Refilled to exactly the days' volume, more than the volume threshold: the alarm."""
    await _low_at(b, by_days=True)


@probe("STOP-002", "RESTART-001")
async def a_refill_during_a_timed_suspension(b: Bench, hands: Hands) -> None:
    """A timed suspension ends at its time, a refill in between or not."""
    t = await start(b)
    await b.ok(
        "STOP-002", b.command(m.Suspend(duration_s=3_600, ack=m.NO_ACK)), "suspended 1 h", ack=("STOP-002",)
    )
    await b.advance(600)
    refill = b.refill(None, b.profile.reservoir_capacity_ul // 2, t.conc, taking_s=1_800)
    await b.ok("REFILL-001", refill, "a refill meanwhile, half an hour long")
    s = await b.status()
    b.expect("STOP-002", s.mode is TherapyMode.SUSPENDED, f"refilled during a suspension: mode {s.mode.name}")
    await b.advance(1_200)
    s = await b.status()
    b.expect(
        "RESTART-001", s.mode is TherapyMode.INFUSING, f"the suspension's hour is over: mode {s.mode.name}"
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
