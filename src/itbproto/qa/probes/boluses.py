"""Boluses: BOL-001, BOL-003, BOL-004, PBOL-*."""

from __future__ import annotations

from itbproto.qa.bench import DAY, Bench
from itbproto.qa.probes.common import (
    PATIENT,
    bolus,
    fastest,
    rx,
    start,
)
from itbproto.qa.probes.registry import Hands, probe
from itbproto.wire import messages as m
from itbproto.wire.enums import (
    BolusKind,
    Role,
)

# --- boluses ------------------------------------------------------------------------------------------------


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
