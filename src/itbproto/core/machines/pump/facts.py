"""What an auditor needs about a logged event beyond its wire record: the event's facts.

An :class:`~itbproto.core.wire.messages.EventRecord` on the wire carries one number and a short text. An audit
of the delivered dose (specs/export.md) needs more: the prescription a commit put in force, a bolus's kind,
volume, duration and the fluid path it pushed out, a refill's volume, concentration and residuals. The pump
works these out from the therapy before and after the event and keeps them beside the entry (never sent on the
wire); the emulator's store saves them, and ``itbemu export-log`` writes them into the export's events.
"""

from __future__ import annotations

from itbproto.core.therapy.fluid import Path
from itbproto.core.therapy.state import TherapyState
from itbproto.core.wire.fields import Json, RecordType
from itbproto.core.wire.messages import AlarmThresholds, PatientRecord, Prescription

__all__ = ["event_facts", "path_json"]

_PRESCRIPTION = RecordType(Prescription)
_RECORD = RecordType(PatientRecord)
_THRESHOLDS = RecordType(AlarmThresholds)


def path_json(path: Path) -> list[Json]:
    """The fluid path, tip first: each segment's volume (µL × 86 400) and concentration (µg/mL, 0: none)."""
    return [{"volume_scaled": s.volume_scaled, "concentration_ug_ml": s.conc_ug_ml} for s in path.segments]


def event_facts(before: TherapyState, after: TherapyState, *, command: bool = True) -> dict[str, Json]:
    """What changed with an event that an auditor needs (``command``: a command applied, rather than time
    passing): only the parts that changed are given; an empty mapping when none did."""
    facts: dict[str, Json] = {}
    if after.prescription != before.prescription or after.prescription_id != before.prescription_id:
        facts["prescription_id"] = after.prescription_id
        p = after.prescription
        facts["prescription"] = None if p is None else _PRESCRIPTION.to_json(p)
    bolus = after.bolus
    if bolus is not None and (before.bolus is None or before.bolus.bolus_id != bolus.bolus_id):
        facts["bolus"] = {
            "bolus_id": bolus.bolus_id,
            "kind": bolus.kind.name,
            "start": bolus.start,
            "volume_ul": bolus.volume_ul,
            "duration_s": bolus.end - bolus.start,
            "concentration_ug_ml": before.concentration_ug_ml,
            "dose_ng": bolus.volume_ul * before.concentration_ug_ml,
            "path": path_json(before.path),
        }
    if before.refill is not None and after.refill is None and after.filled_at != before.filled_at:
        refill = before.refill
        facts["refill"] = {
            "refill_id": refill.refill_id,
            "volume_ul": refill.staged_volume_ul,
            "concentration_ug_ml": refill.staged_conc_ug_ml,
            "expected_residual_ul": refill.expected_residual_ul,
            "measured_residual_ul": refill.measured_ul,
        }
    if after.record != before.record:
        facts["record"] = _RECORD.to_json(after.record)
    if after.thresholds != before.thresholds:
        facts["thresholds"] = _THRESHOLDS.to_json(after.thresholds)
    if after.concentration_ug_ml != before.concentration_ug_ml:
        facts["concentration_ug_ml"] = after.concentration_ug_ml
    if command and after.reservoir_scaled != before.reservoir_scaled:
        facts["reservoir_scaled"] = after.reservoir_scaled
    if command and after.path != before.path:
        facts["path"] = path_json(after.path)
    if after.battery != before.battery:
        facts["battery"] = after.battery.name
    if after.held_until != before.held_until and after.held_until > after.now:
        facts["held_until"] = after.held_until
    return facts
