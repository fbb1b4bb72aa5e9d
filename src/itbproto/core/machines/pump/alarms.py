"""When the pump raises, re-annunciates and clears alarms; their records live in the therapy state."""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.therapy.alarms import SEVERITY, alarm_state, sound_again
from itbproto.core.therapy.flows import SCALE
from itbproto.core.therapy.state import Battery, TherapyState, planned_flows
from itbproto.core.wire.enums import AlarmCode, TherapyMode
from itbproto.core.wire.messages import AlarmRecord

__all__ = ["Changes", "conditions", "update"]

Changes = tuple[TherapyState, tuple[AlarmRecord, ...], tuple[AlarmRecord, ...]]


def conditions(t: TherapyState) -> set[AlarmCode]:
    """The alarm conditions that hold in ``t``."""
    active: set[AlarmCode] = set()
    delivering = t.prescription is not None and t.delivery_mode is not TherapyMode.STOPPED
    if delivering and t.empty:
        active.add(AlarmCode.EMPTY_RESERVOIR)
    elif delivering and (t.reservoir_ul <= t.thresholds.low_reservoir_ul or _empties_soon(t)):
        # low: at or below the volume threshold, or empty within the days threshold (the forecast only
        # when the volume does not already say so)
        active.add(AlarmCode.LOW_RESERVOIR)
    if t.battery is Battery.ERI or (t.battery is Battery.OK and t.charge_scaled <= t.eri_reserve_scaled):
        active.add(AlarmCode.BATTERY_ERI)  # (a higher programmed volume can bring it before time latches it)
    if t.battery is Battery.EOS:
        active.add(AlarmCode.BATTERY_EOS)
    if t.motor_stalled:
        active.add(AlarmCode.MOTOR_STALL)
    if t.held:
        active.add(AlarmCode.DELIVERY_STOPPED)  # the pump itself holds delivery (DOSE-001 after surgery)
    if not t.empty and t.now >= t.stability_ends_at:
        active.add(AlarmCode.DRUG_EXPIRED)
    return active


def _empties_soon(t: TherapyState) -> bool:
    """The reservoir empties within the low-reservoir days threshold at what is planned (counting the second
    that has begun: the forecast rounds the empty time down, so the alarm comes at its second)."""
    soon = planned_flows(t, t.now, t.now + t.thresholds.low_reservoir_days * SCALE + 1)
    return sum(f.volume_scaled for f in soon) >= t.reservoir_scaled


def update(t: TherapyState) -> Changes:
    """Raise new alarms, sound silenced ones whose time is up, clear those whose condition ended.

    Returns the new state, the alarms to announce (raised or sounding again) and the cleared ones.
    """
    active = conditions(t)
    kept, announce, cleared = [], [], []
    for record in t.alarms:
        if record.code not in active:
            cleared.append(record)
        elif alarm_state(record) == "silenced" and t.now >= record.silenced_until:
            record = sound_again(record)
            announce.append(record)
            kept.append(record)
        else:
            kept.append(record)
    next_id = t.next_id
    for code in sorted(active - {a.code for a in t.alarms}):
        record = AlarmRecord(
            alarm_id=next_id,
            code=code,
            severity=SEVERITY[code],
            raised_at=t.now,
            silenced_until=0,
            acknowledged=False,
        )
        next_id += 1
        announce.append(record)
        kept.append(record)
    if not announce and not cleared:
        return t, (), ()
    return replace(t, alarms=tuple(kept), next_id=next_id), tuple(announce), tuple(cleared)
