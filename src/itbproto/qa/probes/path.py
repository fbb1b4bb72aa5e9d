"""The fluid path: BRIDGE-001, PRIME-001, FLOW-001."""

from __future__ import annotations

from itbproto.qa.bench import DAY, Bench
from itbproto.qa.probes.common import (
    bolus,
    drug_table,
    fastest,
    start,
)
from itbproto.qa.probes.registry import Hands, probe
from itbproto.wire import messages as m
from itbproto.wire.enums import (
    BolusKind,
    Procedure,
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
