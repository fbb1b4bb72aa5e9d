"""What the pump reports: status, device info, prescription, history, alarms, log pages.

Reports tell the truth about delivery: the mode says HALTED when a prescription
is meant to run but nothing flows (empty reservoir, stalled motor) and
END_OF_SERVICE when the battery is spent, and the rate is what flows now.
List replies are cut to fit the frame size the programmer announced (newest
entries kept; TherapyHistory says so with ``complete`` false).
"""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.machines.pump.log import EventLog
from itbproto.core.machines.pump.state import DeviceState
from itbproto.core.therapy.flows import SCALE, clip, dose_between, joined, scaled_to_ng
from itbproto.core.therapy.schedule import basal_flows
from itbproto.core.therapy.state import Battery, TherapyState
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import TherapyMode
from itbproto.core.wire.fields import U16, U32, RecordType
from itbproto.core.wire.frame import HEADER_SIZE, MAX_FRAME, TAG_SIZE
from itbproto.units import Rounding

__all__ = [
    "FIRMWARE",
    "device_info",
    "event_page",
    "flowing_rate",
    "history",
    "reported_mode",
    "status",
]

FIRMWARE = "itbproto-0.2"
_FLOW_SIZE = RecordType(m.FlowRecord).max_size
_EVENT_FIXED = RecordType(m.EventRecord).max_size - m.MAX_LOG_DETAIL  # all but the detail's characters


def _room(max_frame: int) -> int:
    """Payload bytes that fit a frame of ``max_frame`` bytes, whatever its trailer."""
    return max_frame - HEADER_SIZE - TAG_SIZE


def reported_mode(t: TherapyState) -> TherapyMode:
    """What the pump is doing, as StatusReport says it."""
    if t.battery is Battery.EOS:
        return TherapyMode.END_OF_SERVICE
    if t.refill is not None:
        return TherapyMode.REFILL
    mode = t.delivery_mode
    if mode in (TherapyMode.SUSPENDED, TherapyMode.MRI):
        return mode
    if t.bolus is None and (t.prescription is None or mode is not TherapyMode.INFUSING):
        return TherapyMode.STOPPED
    if t.empty or t.motor_stalled:
        return TherapyMode.HALTED
    return TherapyMode.BOLUS if t.bolus is not None else TherapyMode.INFUSING


def flowing_rate(t: TherapyState) -> int:
    """The basal rate (µL/day) flowing now; 0 when nothing flows."""
    p = t.prescription
    if p is None or not t.delivering or t.delivery_mode is not TherapyMode.INFUSING:
        return 0
    return sum(f.rate_ul_day for f in basal_flows(p, t.now, t.now + 1))


def status(state: DeviceState) -> m.StatusReport:
    t = state.therapy
    remaining = 0
    if t.bolus is not None:
        given = sum(f.rate_ul_day * f.overlap(t.bolus.start, t.now) for f in t.bolus.flows)
        remaining = t.bolus.volume_ul - given // SCALE
    delivered = scaled_to_ng(dose_between(t.delivered, t.now - SCALE, t.now), Rounding.UP)
    return m.StatusReport(
        device_time=t.now,
        mode=reported_mode(t),
        phase=t.record.phase,
        alarms=frozenset(a.code for a in t.alarms),
        reservoir_ul=t.reservoir_ul,
        concentration_ug_ml=t.concentration_ug_ml,
        rate_ul_day=flowing_rate(t),
        bolus_remaining_ul=remaining,
        delivered_24h_ng=min(delivered, U32.hi),
        battery_days=min(t.battery_days, U16.hi),
        prescription_id=t.prescription_id,
        last_txn=state.last_txn,
    )


def device_info(state: DeviceState) -> m.DeviceInfo:
    p = state.therapy.profile
    return m.DeviceInfo(
        protocol_version=m.PROTOCOL_VERSION,
        model=p.model,
        serial=state.serial,
        firmware=FIRMWARE,
        profile=p.id,
        reservoir_capacity_ul=p.reservoir_capacity_ul,
        min_rate_ul_day=p.min_rate_ul_day,
        max_rate_ul_day=p.max_rate_ul_day,
        rate_step_ul_day=p.rate_step_ul_day,
        max_flex_steps=p.max_flex_steps,
        device_time=state.therapy.now,
        paired=False,
        pump_kind=p.pump_kind,
        max_frame=MAX_FRAME,
        last_txn=state.last_txn,
    )


def history(t: TherapyState, max_frame: int) -> m.TherapyHistory:
    """The last 24 h as the rules see them: delivery, dose changes, boluses (newest kept)."""
    doses = tuple(
        m.DoseChange(since=max(0, e.since), daily_dose_scaled=e.daily_scaled, peak_ng_day=e.peak_ng_day)
        for e in t.dose_log
    )
    boluses = tuple(
        m.BolusEntry(
            start=b.start,
            kind=b.kind,
            volume_ul=b.volume_ul,
            dose_ng=b.dose_ng,
            screening=b.screening,
            response=b.response,
        )
        for b in t.boluses
    )
    flows = tuple(
        m.FlowRecord(start=f.start, end=f.end, rate_ul_day=f.rate_ul_day, concentration_ug_ml=f.conc_ug_ml)
        for f in joined(sorted(clip(t.delivered, t.now - SCALE, t.now)))
    )
    report = m.TherapyHistory(
        complete=True,
        needs_priming=t.needs_priming,
        concentration_changed_at=t.concentration_changed_at or 0,
        bridge_given=t.bridge_given,
        last_delivery_at=max(0, t.last_delivery_at),
        filled_at=max(0, t.filled_at),
        path=tuple(
            m.PathSegment(volume_scaled=s.volume_scaled, concentration_ug_ml=s.conc_ug_ml)
            for s in t.path.segments
        )[: m.MAX_PATH_SEGMENTS],
        flows=(),
        doses=doses[-m.MAX_HISTORY_DOSES :],
        boluses=boluses[-m.MAX_HISTORY_BOLUSES :],
    )
    room = (_room(max_frame) - len(report.CODEC.encode(report))) // _FLOW_SIZE
    keep = flows[len(flows) - min(len(flows), room, m.MAX_HISTORY_FLOWS) :]
    whole_path = len(report.path) == len(t.path.segments)
    complete = len(keep) == len(flows) and len(report.doses) == len(doses) and whole_path
    return replace(report, flows=keep, complete=complete)


def event_page(log: EventLog, request: m.EventLogRead, max_frame: int) -> m.EventLogPage:
    """Entries from ``request.first``, as many as asked and as fit the programmer's frame size (each
    counted at its own size: most entries have little or no detail)."""
    empty = m.EventLogPage(total=log.total, events=())
    room = min(_room(max_frame) - len(empty.CODEC.encode(empty)), m.MAX_EVENT_BYTES)
    events = log.page(request.first, request.count)
    fit = 0
    for entry in events:
        room -= _EVENT_FIXED + len(entry.detail)  # ASCII: a byte a character
        if room < 0:
            break
        fit += 1
    return m.EventLogPage(total=log.total, events=events[:fit])
