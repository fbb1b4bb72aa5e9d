"""Stops, MRI, alarms, the battery, the therapy path and the clock."""

from __future__ import annotations

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    AlarmCode,
    BolusKind,
    ErrorCode,
    EventCode,
    Origin,
    PatientGroup,
    Phase,
    Procedure,
    ScreeningResponse,
    Severity,
    TherapyMode,
)
from itbproto.qa.bench import DAY, Bench, continuous
from itbproto.qa.probes.common import (
    Therapy,
    bolus,
    fastest,
    rx,
    start,
    titration_pct,
)
from itbproto.qa.probes.dose import first_dose_after_screening
from itbproto.qa.probes.registry import Hands, probe

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
    moving = await b.flows_after(before)
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


@probe("STOP-002", "RESTART-001")
async def suspend_with_a_bolus_running(b: Bench, hands: Hands) -> None:
    """Suspending stops a running bolus too; no bolus starts while suspended; a prescription committed while
    stopped does not restart the interruption's clock."""
    t = await start(b, max_bolus=b.param("BOL-001", "absolute_max_bolus_ng") // 4)
    volume = t.rate // 12
    await b.ok("BOL-001", b.command(bolus(BolusKind.CLINICIAN, volume, 7_200)), f"{volume} uL over 2 h")
    await b.advance(1_800)
    suspend = m.Suspend(duration_s=0, ack=m.NO_ACK)
    await b.ok("STOP-002", b.command(suspend), "suspended", ack=("STOP-002",))
    before = await b.history()
    await b.advance(7_200)
    moving = await b.flows_after(before)
    b.expect("STOP-002", not moving, f"the bolus went on after the suspension: {moving}")
    codes = (ErrorCode.WRONG_STATE, ErrorCode.SAFETY_RULE)
    await b.refuses(
        "STOP-002", b.command(bolus(BolusKind.CLINICIAN, 1, 60)), "a bolus while suspended", *codes
    )
    gap, ramp = b.param("RESTART-001", "max_gap_s"), b.param("RESTART-001", "ramp_pct")
    await b.advance(gap)
    # a prescription committed while stopped: the restart is judged against the dose before the interruption
    step = b.info.rate_step_ul_day
    for n, over in enumerate((True, False)):
        if n:
            await b.ok("STOP-002", b.command(suspend), "suspended again", ack=("STOP-002",))
            await b.advance(gap + 1)
        lower = t.rate_for(t.daily * ramp // 100) + (step if over else 0)
        commit = b.program(rx(t, lower, b, max_bolus_ng=1))
        await b.ok("DECR-001", commit, f"{lower} uL/day committed while stopped", ack=("DECR-001",))
        resume = b.command(m.Resume(ack=m.NO_ACK))
        if over:
            await b.over("RESTART-001", resume, f"resumed at {ramp} % + a step of the dose before")
        else:
            await b.ok("RESTART-001", resume, f"resumed at {ramp} % of the dose before")
        t.rate = lower


@probe("MRI-001", needs=("fresh", "clock", "faults", "valve"))
async def a_magnetic_field_on_a_valve_gated_pump(b: Bench, hands: Hands) -> None:
    """Why MRI-001 empties a valve-gated pump: a strong field opens its valves and the reservoir empties into
    the patient at the fastest bolus rate (specs/protocol.md §8), logged as a fault."""
    await start(b)
    held = (await b.status()).reservoir_ul
    logged = await b.log_size()
    await hands.fault("magnetic-field")
    b.discharged = True
    faults = [e for e in await b.events_from(logged) if e.code is EventCode.FAULT]
    b.expect("MRI-001", any("valves open" in e.detail for e in faults), f"a field on a valve pump: {faults}")
    hour = b.profile.max_bolus_rate_ul_day // 24
    await b.advance(3_600)
    s = await b.status()
    b.expect(
        "MRI-001", held - s.reservoir_ul >= hour, f"an hour of discharge took {held - s.reservoir_ul} uL"
    )
    await b.advance(held * DAY // b.profile.max_bolus_rate_ul_day)
    s = await b.status()
    b.expect("MRI-001", s.reservoir_ul == 0 and AlarmCode.EMPTY_RESERVOIR in s.alarms, f"discharged: {s}")


@probe("MRI-002")
async def mri_in_a_timed_suspension(b: Bench, hands: Hands) -> None:
    """An MRI stops delivery until resumed by hand, even from a suspension that would have ended."""
    await start(b)
    await b.ok(
        "STOP-002", b.command(m.Suspend(duration_s=3_600, ack=m.NO_ACK)), "suspended 1 h", ack=("STOP-002",)
    )
    s = await b.status()
    await b.over(
        "MRI-002", b.command(m.MriBegin(emptied_ul=s.reservoir_ul, ack=m.NO_ACK)), "an MRI, suspended"
    )


@probe("MRI-001", needs=("fresh", "clock", "valve"))
async def mri_valve_gated(b: Bench, hands: Hands) -> None:
    """A valve-gated pump is emptied before an MRI, to within the residual-discrepancy threshold of what it
    holds; what was withdrawn is gone from its count."""
    await start(b)
    held = (await b.status()).reservoir_ul
    pct, floor = b.param("REFILL-003", "discrepancy_pct"), b.param("REFILL-003", "discrepancy_floor_ul")
    short = max(held * pct // 100, floor)
    left_in = m.MriBegin(emptied_ul=held - short - 1, ack=m.NO_ACK)
    await b.over("MRI-001", b.command(left_in), f"{short + 1} uL left in", ack=("MRI-002",))
    emptied = m.MriBegin(emptied_ul=held - short, ack=m.NO_ACK)
    await b.ok("MRI-001", b.command(emptied), f"{short} uL left in", ack=("MRI-002",))
    s = await b.status()
    b.expect(
        "MRI-001", s.reservoir_ul <= short, f"{held - short} uL withdrawn of {held}: {s.reservoir_ul} left"
    )


@probe("MRI-001", "MRI-002")
async def mri(b: Bench, hands: Hands) -> None:
    from itbproto.core.wire.enums import PumpKind

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
    moving = await b.flows_after(before)
    b.expect("MRI-001", not moving, f"delivery during the MRI: {moving}")
    await b.refuses("MRI-001", b.command(m.RefillBegin()), "a refill during the MRI", ErrorCode.WRONG_STATE)
    await b.ok("MRI-002", b.command(m.MriEnd()), "the scan is over")
    s = await b.status()
    b.expect("MRI-002", s.mode is TherapyMode.STOPPED, f"after the MRI: mode {s.mode.name}, not STOPPED")


# --- alarms and the battery ---------------------------------------------------------------------------------


@probe("ALARM-001", needs=("fresh", "clock", "faults"))
async def critical_alarm(b: Bench, hands: Hands) -> None:
    """A stalled motor: a critical alarm, silenced for at most the period and acknowledged only for it (it
    sounds again while the motor stays stalled); a session does not end silently with nothing flowing."""
    await start(b)
    await hands.fault("motor-stall")
    s = await b.status()
    b.expect("ALARM-001", s.mode is TherapyMode.HALTED, f"a stalled motor: mode {s.mode.name}")
    await b.over("STOP-001", b.command(m.SessionEnd(ack=m.NO_ACK)), "the session ends with the motor stalled")
    alarm = next(iter(await b.alarms(AlarmCode.MOTOR_STALL)), None)
    if alarm is None or alarm.severity is not Severity.CRITICAL:
        b.fail("ALARM-001", f"a stalled motor raised {alarm}, not a critical MOTOR_STALL")
    assert alarm is not None
    period = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds.reannunciate_s
    for how, quiet in (
        ("silenced", m.AlarmSilence(alarm_id=alarm.alarm_id, duration_s=period)),
        ("acknowledged", m.AlarmAcknowledge(alarm_id=alarm.alarm_id)),
    ):
        if how == "silenced":
            longer = m.AlarmSilence(alarm_id=alarm.alarm_id, duration_s=period + 1)
            await b.over("ALARM-001", b.command(longer), f"silenced {period + 1} s")
        await b.ok("ALARM-001", b.command(quiet), how)
        now = (await b.status()).device_time
        mine = await b.alarms(AlarmCode.MOTOR_STALL)
        b.expect("ALARM-001", [a.silenced_until for a in mine] == [now + period], f"{how} at {now}: {mine}")
        await b.advance(period - 1)
        mine = await b.alarms(AlarmCode.MOTOR_STALL)
        b.expect(
            "ALARM-001", [a.silenced_until for a in mine] == [now + period], f"{how}, {period - 1} s: {mine}"
        )
        await b.advance(1)
        mine = await b.alarms(AlarmCode.MOTOR_STALL)
        sounding = [a for a in mine if not a.silenced_until and not a.acknowledged]
        b.expect("ALARM-001", bool(sounding), f"{how} {period} s ago, the motor still stalled: {mine}")
    await hands.fault("motor-recover")
    s = await b.status()
    b.expect("ALARM-001", AlarmCode.MOTOR_STALL not in s.alarms, f"the motor runs again: {s.alarms}")


@probe("BATT-001", "BATT-002", needs=("fresh", "clock", "faults"))
async def battery(b: Bench, hands: Hands) -> None:
    """The days the battery lasts follow the programmed volume (the profile's drains); the replacement
    warning comes at the lead time, at once when a higher rate brings it closer; at end of service nothing
    flows and nothing but ending and quieting is taken."""
    t = await start(b)
    s = await b.status()
    lead = b.param("BATT-002", "min_eri_lead_days")
    await check_battery_days(b, t, s.battery_days)
    s = await b.status()
    kept = -(-(lead + 5) * 100 // max(s.battery_days, 1))  # whole percent: at least five days over the lead
    await hands.fault("battery-drop", max(100 - kept, 0))
    s = await b.status()
    await b.advance(max(0, s.battery_days - lead - 5) * DAY)  # five days over the lead
    s = await b.status()
    b.expect("BATT-002", AlarmCode.BATTERY_ERI not in s.alarms or s.battery_days <= lead, f"ERI early: {s}")
    pct = titration_pct(b, await b.record())
    higher = t.rate_for(t.daily * (100 + pct) // 100)
    await b.ok("TITR-001", b.command(m.SetRate(rate_ul_day=higher, ack=m.NO_ACK)), f"{pct} % up")
    t.rate = higher
    s = await b.status()
    if s.battery_days <= lead:
        b.expect(
            "BATT-002", AlarmCode.BATTERY_ERI in s.alarms, f"a raise left {s.battery_days} days: {s.alarms}"
        )
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
    moving = await b.flows_after(before)
    b.expect("BATT-001", not moving, f"delivery after end of service: {moving}")


async def check_battery_days(b: Bench, t: Therapy, days: int) -> None:
    """The status's battery days at another rate, from the profile's drains (specs/protocol.md §8): the
    charge that lasted ``days`` at the rate now lasts as many days as it does at half of it (which stays)."""

    def drain(rate: int) -> int:  # nC a day
        return b.profile.battery_idle_na * DAY + b.profile.motor_nc_per_ul * rate

    slower = t.rate // 2
    await b.ok(
        "DECR-001", b.command(m.SetRate(rate_ul_day=slower, ack=m.NO_ACK)), "half the rate", ack=("DECR-001",)
    )
    low, high = days * drain(t.rate) // drain(slower), (days + 1) * drain(t.rate) // drain(slower)
    s = await b.status()
    b.expect(
        "BATT-002",
        low - 1 <= s.battery_days <= high,
        f"{s.battery_days} days at half the rate, not {low}..{high}",
    )
    t.rate = slower


# --- the therapy path ---------------------------------------------------------------------------------------


async def _screening(b: Bench, hands: Hands, effective_at: int | None, effect_s: int) -> None:
    """A new adult patient: the label's screening doses in order a day apart, each response recorded, until
    the one at ``effective_at`` works for ``effect_s``; then implant, priming, therapy, the first dose."""
    from itbproto.io.specfiles import load_drug

    drug = load_drug()
    conc = (await b.status()).concentration_ug_ml
    record = await b.record()

    def phase(p: Phase) -> m.SetPatientRecord:
        return m.SetPatientRecord(group=PatientGroup.ADULT, origin=Origin.SPINAL, risks=record.risks, phase=p)

    await b.ok("PHASE-001", b.command(phase(Phase.SCREENING)), "an adult of spinal origin, in screening")
    await b.settle()  # for a day after a record change the stricter record (a new pump's: a child's) applies
    await b.over("PHASE-001", b.command(phase(Phase.IMPLANTED)), "implanted with no effective screening dose")
    await b.over("PHASE-001", b.program(continuous(100, conc, 100 * conc)), "a prescription in screening")
    doses = list(drug.screening_doses_ng)

    def dose(ng: int) -> m.BolusStart:
        return bolus(BolusKind.CLINICIAN, ng // conc, fastest(b, ng // conc))

    interval = max(b.param("BOL-002", "interval_s"), drug.screening_interval_s)
    await b.over("BOL-002", b.command(dose(doses[0] + conc)), f"{doses[0] + conc} ng, not a label dose")
    await b.over("BOL-002", b.command(dose(doses[1])), f"{doses[1]} ng first")
    child_first = drug.child_first_screening_ng
    await b.over(
        "BOL-002", b.command(dose(child_first)), f"{child_first} ng, a child's first dose, for an adult"
    )
    for n, ng in enumerate(doses):
        if n:
            await b.over("BOL-002", b.command(dose(ng)), f"{ng} ng {interval - 1} s after the last")
            await b.advance(1)
            if n + 1 < len(doses):
                await b.over("BOL-002", b.command(dose(doses[n + 1])), f"{doses[n + 1]} ng: a step skipped")
        await b.ok("BOL-002", b.command(dose(ng)), f"{ng} ng")
        await b.over("BOL-002", b.command(dose(ng)), "the next before the response is recorded")
        worked = n == effective_at
        response = ScreeningResponse.EFFECTIVE if worked else ScreeningResponse.NONE
        said = m.RecordScreeningResponse(response=response, effect_s=effect_s if worked else 0)
        await b.ok("BOL-002", b.command(said), f"{response.name.lower()}")
        await b.advance(interval - 1)
        if worked:
            break
    await b.advance(1)
    last = doses[-1]
    await b.over(
        "BOL-002", b.command(dose(last)), "a screening dose after an effective one, or after the last"
    )
    if effective_at is None:
        await b.over("PHASE-001", b.command(phase(Phase.IMPLANTED)), "implanted: no dose worked")
        return
    await b.over("PHASE-001", b.command(phase(Phase.THERAPY)), "screening to therapy, a phase skipped")
    await b.ok("PHASE-001", b.command(phase(Phase.IMPLANTED)), "implanted")
    implant = m.RecordProcedure(procedure=Procedure.PUMP_IMPLANT, catheter_volume_ul=0)
    await b.ok("PHASE-001", b.command(implant), "the implant")
    await b.over("PHASE-001", b.command(dose(doses[0])), "a clinician's bolus before the path is primed")
    await b.over("PHASE-001", b.command(phase(Phase.THERAPY)), "therapy before priming")
    saline = sum(p.volume_scaled for p in (await b.history()).path if p.concentration_ug_ml == 0) // DAY
    priming = bolus(BolusKind.PRIMING, saline, fastest(b, saline))
    await b.ok("PRIME-001", b.command(priming), f"priming {saline} uL")
    await b.over("PHASE-001", b.command(phase(Phase.THERAPY)), "therapy while the priming bolus runs")
    await b.advance(fastest(b, saline) + 60)
    await b.ok("PHASE-001", b.command(phase(Phase.THERAPY)), "therapy")
    record = await b.record()
    effective = doses[effective_at]
    b.expect("SCREEN-001", record.screening_dose_ng == effective, f"on record: {record.screening_dose_ng} ng")
    await first_dose_after_screening(b, hands)


WALK = ("BOL-002", "PHASE-001", "SCREEN-001", "PRIME-001")


@probe(*WALK, needs=("fresh", "clock", "screening"))
async def screening_long_effect(b: Bench, hands: Hands) -> None:
    """The second dose works for exactly the long-effect time: the first daily dose at most that dose."""
    await _screening(b, hands, 1, b.param("SCREEN-001", "long_effect_s"))


@probe(*WALK, needs=("fresh", "clock", "screening"))
async def screening_short_effect(b: Bench, hands: Hands) -> None:
    """The second dose works a second less: the first daily dose up to the factor times it."""
    await _screening(b, hands, 1, b.param("SCREEN-001", "long_effect_s") - 1)


@probe("BOL-002", "PHASE-001", needs=("fresh", "clock", "screening"))
async def screening_no_response(b: Bench, hands: Hands) -> None:
    """No dose works, up to the largest: not a candidate (no more doses, no implant)."""
    await _screening(b, hands, None, 0)


# --- the clock ----------------------------------------------------------------------------------------------


@probe("CLOCK-001")
async def clock(b: Bench, hands: Hands) -> None:
    t = await start(b)
    most = b.param("CLOCK-001", "max_step_s")
    await b.advance(60)  # a minute of delivery since the last command: what was delivered is recorded
    now = (await b.status()).device_time
    await b.over("CLOCK-001", b.command(m.SetClock(device_time=now - 1)), "a second back, infusing")
    await b.over("CLOCK-001", b.command(m.SetClock(device_time=now + most + 1)), f"the clock {most + 1} s on")
    await b.ok("CLOCK-001", b.command(m.SetClock(device_time=now + most)), f"the clock {most} s on")
    s = await b.status()
    b.expect("CLOCK-001", s.device_time == now + most, f"the clock set to {now + most} reads {s.device_time}")
    await b.ok("TITR-001", b.command(m.SetRate(rate_ul_day=t.rate - 1, ack=m.NO_ACK)), "a rate change")
    changed = (await b.status()).device_time
    await b.advance(most // 2)
    await b.over("CLOCK-001", b.command(m.SetClock(device_time=changed - 1)), "back past the rate change")
    await b.ok("CLOCK-001", b.command(m.SetClock(device_time=changed)), "back to the rate change")
    suspend = m.Suspend(duration_s=0, ack=m.NO_ACK)  # nothing delivered from now on: nothing recorded
    await b.ok("STOP-002", b.command(suspend), "suspended", ack=("STOP-002",))
    suspended = (await b.status()).device_time
    await b.advance(most // 2)
    back = m.SetClock(device_time=suspended - 1)
    await b.over("CLOCK-001", b.command(back), "idle: back past the suspension")
    await b.advance(3 * most)  # idle since: a step back is bounded all the same
    now = (await b.status()).device_time
    await b.over(
        "CLOCK-001", b.command(m.SetClock(device_time=now - most - 1)), f"the clock {most + 1} s back"
    )
    await b.ok("CLOCK-001", b.command(m.SetClock(device_time=now - most)), f"the clock {most} s back")
