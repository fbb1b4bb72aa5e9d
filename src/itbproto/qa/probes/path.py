"""The fluid path: BRIDGE-001, PRIME-001, FLOW-001."""

from __future__ import annotations

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    AlarmCode,
    BolusKind,
    ErrorCode,
    EventCode,
    Procedure,
    TherapyMode,
)

# --- the fluid path -----------------------------------------------------------------------------------------
from itbproto.core.wire.message import Message
from itbproto.qa.bench import DAY, Bench, refused
from itbproto.qa.probes.common import (
    Therapy,
    bolus,
    drug_table,
    fastest,
    rx,
    start,
)
from itbproto.qa.probes.registry import Hands, probe


async def _stronger_unbridged(b: Bench, shorter: bool = False) -> Therapy:
    """A pump refilled with a stronger drug and no bridge (FLOW-001 acknowledged): its path holds the old,
    weaker drug. ``shorter``: its catheter first replaced by one of half the volume, primed."""
    t = await start(b)
    if shorter:
        catheter = b.profile.catheter_ul // 2
        work = m.RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=catheter)
        await b.ok("PRIME-001", b.command(work), f"a catheter of {catheter} uL")
        await b.ok("PRIME-001", b.command(bolus(BolusKind.PRIMING, catheter, fastest(b, catheter))), "primed")
        await b.settle()
    other = next(c for c in drug_table() if c > t.conc)
    refill = b.refill(None, b.profile.reservoir_capacity_ul // 2, other)
    await b.ok("FLOW-001", refill, f"a refill of {other} ug/mL, no bridge", ack=("FLOW-001",))
    return t


async def _bridge_bounds(b: Bench) -> tuple[int, int]:
    """The path's volume (µL) and the shortest time (s) that brings its drug to the tip at the daily dose."""
    history = await b.history()
    path_ul = sum(s.volume_scaled for s in history.path) // DAY
    tip_ng = sum(s.volume_scaled * s.concentration_ug_ml for s in history.path)  # ng x 86 400
    p = (await b.read(m.ReadPrescription(), m.PrescriptionReport)).prescription
    daily = p.steps[0].rate_ul_day * p.concentration_ug_ml
    return path_ul, -(-tip_ng // daily)


@probe("BRIDGE-001", "BOL-004")
async def bridge(b: Bench, hands: Hands) -> None:
    """After a concentration change: a bridge of at most the path's volume, at most the daily dose at the
    tip, one bolus at a time, once."""
    await _stronger_unbridged(b, shorter=True)
    path_ul, shortest = await _bridge_bounds(b)
    too_much = bolus(BolusKind.BRIDGE, path_ul + 1, 2 * shortest)  # slow enough: only the volume is over
    await b.over("BRIDGE-001", b.command(too_much), f"a bridge of the path's {path_ul} uL + 1")
    too_fast = bolus(BolusKind.BRIDGE, path_ul, shortest - 1)
    await b.over("BRIDGE-001", b.command(too_fast), f"{path_ul} uL in {shortest - 1} s")
    await b.ok(
        "BRIDGE-001", b.command(bolus(BolusKind.BRIDGE, path_ul, shortest)), f"{path_ul} uL in {shortest} s"
    )
    await b.over("BOL-004", b.command(bolus(BolusKind.CLINICIAN, 1, 60)), "a clinician's bolus on the bridge")
    await b.advance(shortest + 60)
    await b.over(
        "BRIDGE-001", b.command(bolus(BolusKind.BRIDGE, 1, shortest)), "a second bridge, the first over"
    )


@probe("BRIDGE-001")
async def bridge_window(b: Bench, hands: Hands) -> None:
    await _stronger_unbridged(b)
    changed = (await b.history()).concentration_changed_at
    await b.advance(changed + b.param("BRIDGE-001", "window_s") + 1 - (await b.status()).device_time)
    path_ul, shortest = await _bridge_bounds(b)
    late = bolus(BolusKind.BRIDGE, path_ul, shortest)
    await b.over("BRIDGE-001", b.command(late), "a bridge a second after the window")


@probe("DOSE-001", "BRIDGE-001")
async def bridge_after_a_dilution(b: Bench, hands: Hands) -> None:
    """A weaker drug, bridged: the path's stronger drug leaves at the daily dose; cancelling the bridge
    half-way would push the rest at the new, faster rate: refused."""
    t = await start(b, max_daily=(await b.start_dose()))
    weakest = min(drug_table())
    refill = b.refill(None, b.profile.reservoir_capacity_ul // 2, weakest, bridge=True)
    await b.ok("BRIDGE-001", refill, f"a refill of {weakest} ug/mL, bridged")
    s = await b.status()
    b.expect("BRIDGE-001", s.mode is TherapyMode.BOLUS and s.bolus_remaining_ul > 0, f"bridged: {s}")
    tip_hours = (b.profile.pump_path_ul + b.profile.catheter_ul) * t.conc * 24 // t.daily
    await b.advance(tip_hours * 3_600 // 3)

    async def cancel(ack: m.Acknowledgement) -> Message:
        for bolus_id in range(1, 64):  # the bridge's id is the pump's: the one it does not call unknown
            reply = await b.ask(m.BolusCancel(bolus_id=bolus_id))
            if not refused(reply, ErrorCode.UNKNOWN_ID):
                return reply
        return reply

    await b.over("DOSE-001", cancel, "the bridge cancelled a third of the way")


def saline_ul(history: m.TherapyHistory) -> tuple[int, int]:
    """The saline in the path and the whole path, in µL, as the pump reports them."""
    total = sum(s.volume_scaled for s in history.path)
    return sum(s.volume_scaled for s in history.path if s.concentration_ug_ml == 0) // DAY, total // DAY


@probe("PRIME-001")
async def pump_work(b: Bench, hands: Hands) -> None:
    """An implant or a pump replacement leaves the whole path (the pump's tubing and the catheter) saline;
    a priming bolus of all of it, and not a µL more."""
    await start(b)
    tubing, catheter = b.profile.pump_path_ul, b.profile.catheter_ul * 2
    for procedure, volume in ((Procedure.PUMP_IMPLANT, catheter), (Procedure.PUMP_REPLACEMENT, 0)):
        work = m.RecordProcedure(procedure=procedure, catheter_volume_ul=volume)
        await b.ok("PRIME-001", b.command(work), f"{procedure.name.lower()} recorded")
        dry, total = saline_ul(await b.history())
        b.expect(
            "PRIME-001", dry == total == tubing + catheter, f"{procedure.name}: {dry} of {total} uL saline"
        )
        await b.over(
            "PRIME-001", b.command(bolus(BolusKind.PRIMING, dry + 1, fastest(b, dry + 1))), "a uL over"
        )
        await b.ok(
            "PRIME-001", b.command(bolus(BolusKind.PRIMING, dry, fastest(b, dry))), f"priming {dry} uL"
        )
        await b.advance(fastest(b, dry) + 60)


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
    b.expect("PRIME-001", dry == saline, f"a revision with a {saline} uL catheter: {dry} uL of saline")
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


@probe("DOSE-001", "FLOW-001")
async def surgery_that_shortens_the_path(b: Bench, hands: Hands) -> None:
    """Surgery is never refused. A low dose committed behind a long path of saline (its drug a day or more
    away) after a high one: a second implant with a shorter catheter brings that drug into a 24 h window
    that still holds the high dose. The pump holds delivery: mode SUSPENDED, DELIVERY_STOPPED, a SUSPENDED
    entry of its own (txn 0, the hold in seconds, DOSE-001); at most a day; then it resumes by itself (the
    oracle checks every window against the low maximum)."""
    t = await start(b, settle=False)
    tubing = b.profile.pump_path_ul
    low = tubing * 3 // 2  # µL/day: the pump's tubing alone reaches the tip in 16 h at it
    await b.advance(low * t.conc * DAY // t.daily + 600)  # as much of the high dose as a day of the low
    given = (await b.status()).delivered_24h_ng
    long = m.RecordProcedure(procedure=Procedure.PUMP_IMPLANT, catheter_volume_ul=low * 2)
    await b.ok("FLOW-001", b.command(long), f"an implant with a {low * 2} uL catheter: its drug 2 days away")
    p = rx(t, low, b, max_daily=given + 1_000)  # the high dose given so far fits in it, with the low one
    await b.ok("DOSE-001", b.program(p), f"{low} uL/day behind the saline", ack=("DECR-001", "FLOW-001"))
    logged = await b.log_size()
    short = m.RecordProcedure(procedure=Procedure.PUMP_IMPLANT, catheter_volume_ul=1)
    await b.ok("DOSE-001", b.command(short), "an implant with a 1 uL catheter: the drug 16 h away")
    s = await b.status()
    holds = [e for e in await b.events_from(logged) if e.code is EventCode.SUSPENDED and e.txn == 0]
    b.expect(
        "DOSE-001", len(holds) == 1 and holds[0].detail.startswith("DOSE-001"), f"no hold logged: {holds}"
    )
    b.expect("DOSE-001", s.mode is TherapyMode.SUSPENDED, f"held: mode {s.mode.name}")
    b.expect("DOSE-001", AlarmCode.DELIVERY_STOPPED in s.alarms, f"held: {s.alarms}")
    hold = holds[0].value if holds else DAY
    b.expect("DOSE-001", 0 < hold <= DAY, f"a hold of {hold} s")
    await b.advance(hold + 1)
    s = await b.status()
    b.expect("DOSE-001", s.mode is not TherapyMode.SUSPENDED, f"the hold over: mode {s.mode.name}")
    b.expect("DOSE-001", AlarmCode.DELIVERY_STOPPED not in s.alarms, f"the hold over: {s.alarms}")
