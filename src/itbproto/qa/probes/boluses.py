"""Boluses: BOL-001, BOL-003, BOL-004, PBOL-*."""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    BolusKind,
    Role,
)
from itbproto.qa.bench import DAY, Bench, refused
from itbproto.qa.probes.common import (
    PATIENT,
    PATIENT_BOLUS_MAX,
    bolus,
    drug_table,
    fastest,
    flex,
    rx,
    start,
)
from itbproto.qa.probes.registry import Hands, probe

# --- boluses ------------------------------------------------------------------------------------------------


@probe("BOL-001", "BOL-003")
async def bolus_maximum(b: Bench, hands: Hands) -> None:
    """The prescription's maximum bolus to the ng, then the absolute maximum; the fastest rate, a second
    faster; what the pump reports it gave."""
    absolute = b.param("BOL-001", "absolute_max_bolus_ng")
    t = await start(b)
    volume = absolute // 4 // t.conc
    dose = volume * t.conc
    await b.ok(
        "BOL-001", b.program(rx(t, t.rate, b, max_bolus_ng=dose - 1)), f"a bolus maximum of {dose - 1} ng"
    )
    quick = fastest(b, volume)
    given = bolus(BolusKind.CLINICIAN, volume, quick)
    await b.over("BOL-001", b.command(given), f"{dose} ng, 1 ng over the prescription's maximum")
    await b.ok("BOL-001", b.program(rx(t, t.rate, b, max_bolus_ng=dose)), f"a bolus maximum of {dose} ng")
    for size in (volume, absolute // t.conc):
        volume = size
        if volume * t.conc > dose:
            above = rx(t, t.rate, b, max_bolus_ng=absolute + 10 * t.conc)  # the absolute maximum binds
            await b.ok("BOL-001", b.program(above), "a prescription's maximum above the absolute one")
            over = bolus(BolusKind.CLINICIAN, volume + 1, fastest(b, volume + 1))
            await b.over("BOL-001", b.command(over), f"{(volume + 1) * t.conc} ng > {absolute}")
        quick = fastest(b, volume)
        if quick > 1:  # a second less is faster than the motor may
            await b.over(
                "BOL-003", b.command(bolus(BolusKind.CLINICIAN, volume, quick - 1)), f"in {quick - 1} s"
            )
        started = await b.ok("BOL-001", b.command(bolus(BolusKind.CLINICIAN, volume, quick)), f"in {quick} s")
        b.tally.allowed["BOL-003"] += 1
        assert isinstance(started, m.BolusStarted)
        b.expect(
            "BOL-001",
            started.dose_ng == volume * t.conc,
            f"dose_ng {started.dose_ng}, {volume * t.conc} given",
        )
        await b.advance(quick + 60)
        history = await b.history()
        last = [e.volume_ul for e in history.boluses if e.kind is BolusKind.CLINICIAN][-1:]
        b.expect("BOL-001", last == [volume], f"the history's last bolus {last}, {volume} uL given")


@probe("BOL-003")
async def bolus_rate(b: Bench, hands: Hands) -> None:
    """At the weakest drug (the largest volumes), the bolus closest above the motor's fastest rate that the
    bolus maximum allows is refused; the same volume at the fastest rate is given."""
    await start(b)
    weakest = min(drug_table())
    capacity = b.profile.reservoir_capacity_ul
    await b.ok("DRUG-001", b.refill(None, capacity, weakest, bridge=True), f"{weakest} ug/mL, bridged")
    await b.settle()
    p = (await b.read(m.ReadPrescription(), m.PrescriptionReport)).prescription
    absolute = b.param("BOL-001", "absolute_max_bolus_ng")
    await b.ok("BOL-001", b.program(replace(p, max_bolus_ng=absolute)), "the absolute bolus maximum")
    fastest_rate, most = b.profile.max_bolus_rate_ul_day, min(absolute // weakest, capacity // 2)
    # the pump delivers V in D at the whole µL/day rate V/D rounds down to (a bolus then takes a few seconds
    # longer): the first rate over the fastest is one more; find a volume and time that give exactly it
    over = next(
        (v, d)
        for d in range(1, most * DAY // fastest_rate + 1)
        if (v := -(-(fastest_rate + 1) * d // DAY)) <= most and v * DAY // d == fastest_rate + 1
    )
    volume, duration = over
    quick = volume * DAY // (fastest_rate + 1) + 1  # the shortest time at the fastest rate, rounded down
    await b.over(
        "BOL-003", b.command(bolus(BolusKind.CLINICIAN, volume, duration)), f"{volume} uL in {duration} s"
    )
    started = await b.ok("BOL-003", b.command(bolus(BolusKind.CLINICIAN, volume, quick)), f"in {quick} s")
    assert isinstance(started, m.BolusStarted)
    history = await b.history()
    fastest_flow = max((f.rate_ul_day for f in history.flows), default=0)
    b.expect(
        "BOL-003", fastest_flow <= fastest_rate + p.steps[0].rate_ul_day, f"a flow at {fastest_flow} uL/day"
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
    third = await b.ok("BOL-004", b.command(bolus(BolusKind.CLINICIAN, volume, 3_600)), "another as it ends")
    assert isinstance(third, m.BolusStarted)
    await b.advance(1_800)
    cancelled = await b.ok("BOL-004", b.command(m.BolusCancel(bolus_id=third.bolus_id)), "cancelled half-way")
    assert isinstance(cancelled, m.BolusCancelled)
    given = cancelled.delivered_ul + cancelled.not_delivered_ul
    b.expect("BOL-004", given == volume, f"cancelled: {cancelled}, of {volume} uL")
    b.expect("BOL-004", 0 < cancelled.delivered_ul < volume, f"half-way through: {cancelled}")
    await b.ok(
        "BOL-004", b.command(bolus(BolusKind.CLINICIAN, volume, 3_600)), "another once it was cancelled"
    )


@probe("PBOL-001", "PBOL-002", "PBOL-003", needs=("fresh", "clock", "links"))
async def patient_boluses(b: Bench, hands: Hands) -> None:
    """The patient's bolus as prescribed, its lockout and its count in any 24 h (across midnight), from the
    patient's own link; a clinician's bolus in between does not reset the lockout."""
    lockout, most = PATIENT.lockout_s, PATIENT.max_per_day
    await start(b, patient=PATIENT, max_bolus=PATIENT_BOLUS_MAX)
    now = (await b.status()).device_time
    first_at = (DAY - (most - 1) * lockout - lockout // 2) % DAY  # the day's count ends after midnight
    await b.advance((first_at - now) % DAY)
    await hands.hand_over()
    patient = b.on(await hands.link(Role.PATIENT))
    prescribed = bolus(BolusKind.PATIENT, PATIENT.volume_ul, PATIENT.duration_s)
    larger = bolus(BolusKind.PATIENT, PATIENT.volume_ul + 1, PATIENT.duration_s)
    await patient.over("PBOL-003", patient.command(larger), "a patient bolus a uL larger")
    longer = bolus(BolusKind.PATIENT, PATIENT.volume_ul, PATIENT.duration_s + 1)
    await patient.over("PBOL-003", patient.command(longer), "a patient bolus a second longer")
    starts = []
    for n in range(most):
        await patient.ok("PBOL-001", patient.command(prescribed), f"patient bolus {n + 1}")
        b.tally.allowed["PBOL-003"] += 1
        starts.append((await patient.status()).device_time)
        await b.advance(lockout - 1)
        await patient.over("PBOL-001", patient.command(prescribed), "a second before the lockout ends")
        await b.advance(1)
    b.tally.allowed["PBOL-002"] += most
    await patient.over(
        "PBOL-002", patient.command(prescribed), f"bolus {most + 1} within 24 h, after midnight"
    )
    now = (await patient.status()).device_time
    await b.advance(starts[0] + DAY + 1 - now)
    await patient.ok("PBOL-002", patient.command(prescribed), "a day after the first")
    given = [e for e in (await patient.history()).boluses if e.kind is BolusKind.PATIENT]
    b.expect("PBOL-002", all(e.volume_ul == PATIENT.volume_ul for e in given), f"patient boluses: {given}")
    last = (await patient.status()).device_time
    await patient.link.close()
    await b.advance(PATIENT.duration_s)
    await b.ok("BOL-001", b.command(bolus(BolusKind.CLINICIAN, 1, 60)), "a clinician's bolus in between")
    await b.advance(last + lockout - 1 - (await b.status()).device_time)
    await hands.hand_over()
    patient = b.on(await hands.link(Role.PATIENT))
    await patient.over(
        "PBOL-001", patient.command(prescribed), "a second before the lockout, a clinician's since"
    )
    await patient.link.close()


@probe("BOL-001", needs=("fresh", "clock", "links"))
async def patient_bolus_maximum(b: Bench, hands: Hands) -> None:
    """A patient bolus larger than the prescription's bolus maximum is refused, where the prescription
    itself is not."""
    t = await start(b)
    dose = PATIENT.volume_ul * t.conc
    p = rx(t, t.rate, b, max_bolus_ng=dose - 1)
    reply = await b.program(replace(p, patient=PATIENT))(m.NO_ACK)
    if refused(reply):
        b.expect("BOL-001", isinstance(reply, m.Nack) and "BOL-001" in reply.rules, f"refused: {reply}")
        return
    await hands.hand_over()
    patient = b.on(await hands.link(Role.PATIENT))
    prescribed = bolus(BolusKind.PATIENT, PATIENT.volume_ul, PATIENT.duration_s)
    await patient.over("BOL-001", patient.command(prescribed), f"a patient bolus of {dose} ng, 1 ng over")
    await patient.link.close()


@probe("PBOL-003", needs=("fresh", "clock", "links"))
async def patient_bolus_as_committed(b: Bench, hands: Hands) -> None:
    """A prescription staged and never committed changes nothing: the patient's bolus is the one in force."""
    t = await start(b, patient=PATIENT, max_bolus=PATIENT_BOLUS_MAX)
    other = replace(PATIENT, volume_ul=PATIENT.volume_ul * 2)
    staged = await b.stage(rx(t, t.rate, b, max_bolus_ng=PATIENT_BOLUS_MAX, patient=other))
    b.expect("PBOL-003", isinstance(staged, m.PrescriptionStaged), f"staging another patient bolus: {staged}")
    await hands.hand_over()
    patient = b.on(await hands.link(Role.PATIENT))
    staged_one = bolus(BolusKind.PATIENT, other.volume_ul, other.duration_s)
    await patient.over("PBOL-003", patient.command(staged_one), "the staged, uncommitted patient bolus")
    prescribed = bolus(BolusKind.PATIENT, PATIENT.volume_ul, PATIENT.duration_s)
    await patient.ok("PBOL-003", patient.command(prescribed), "the patient bolus in force")
    await patient.link.close()


@probe("BOL-001")
async def periodic_bolus_maximum(b: Bench, hands: Hands) -> None:
    """Every periodic bolus of a prescription, not only the first, to the ng of its bolus maximum."""
    t = await start(b)
    small, large = 1, t.rate // 10
    periodic = (
        m.PeriodicBolus(start_s=3_600, volume_ul=small, duration_s=600),
        m.PeriodicBolus(start_s=7_200, volume_ul=large, duration_s=3_600),
    )
    steps = flex(t, [t.rate - small - large] * 2)
    dose = large * t.conc
    for most, side in ((dose - 1, b.over), (dose, b.ok)):
        p = rx(t, 0, b, steps=steps, boluses=periodic, max_bolus_ng=most)
        await side("BOL-001", b.program(p), f"a second periodic bolus of {dose} ng, the maximum {most}")


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
