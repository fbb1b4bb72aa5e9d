"""The export an auditor reads (specs/export.md): a header line, every event, every ledger row, as JSON lines.

``itbemu export-log --store F`` writes it; ``itbemu audit EXPORT`` re-checks the dose rules from it alone
(:mod:`itbemu.audit`); specs/export.schema.json is its schema.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterator, Mapping
from typing import Any

from itbemu.store import Store
from itbproto.core.machines.pump import snapshot
from itbproto.core.machines.pump.facts import path_json
from itbproto.core.wire.fields import RecordType
from itbproto.core.wire.messages import AlarmThresholds, PatientRecord, Prescription
from itbproto.errors import ItbError

__all__ = ["VERSION", "export_lines"]

#: the export format's version (specs/export.md); a change an old reader would misread changes it
VERSION = 1

_PRESCRIPTION = RecordType(Prescription)
_RECORD = RecordType(PatientRecord)
_THRESHOLDS = RecordType(AlarmThresholds)


def _plain(value: object) -> dict[str, Any]:
    """A profile or drug record as JSON: enums by name, tuples as lists."""
    assert dataclasses.is_dataclass(value)
    assert not isinstance(value, type)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(value):
        v = getattr(value, f.name)
        out[f.name] = v.name if isinstance(v, enum.Enum) else list(v) if isinstance(v, tuple) else v
    return out


def export_lines(store: Store, policy: Mapping[str, int]) -> Iterator[dict[str, Any]]:
    """The export of ``store``, line by line; ``policy``: the parameters in force when the store does not
    say which (a store from before they were kept)."""
    saved = store.load(0)
    if saved is None:
        raise ItbError(f"{store.path} holds no pump")
    start_json = store.start()
    if start_json is None:
        raise ItbError(f"{store.path} is from before the export format: it has no starting state")
    start = snapshot.load(start_json)
    t = start.therapy
    ledger = list(store.ledger())
    entries = list(store.entries())
    yield {
        "kind": "header",
        "format": "itbemu-export",
        "version": VERSION,
        "serial": start.serial,
        "profile": _plain(t.profile),
        "drug": _plain(t.drug),
        "policy": dict(sorted((store.policy() or policy).items())),
        "start": {
            "at": t.now,
            "reservoir_scaled": t.reservoir_scaled,
            "concentration_ug_ml": t.concentration_ug_ml,
            "filled_at": t.filled_at,
            "mode": t.mode.name,
            "record": _RECORD.to_json(t.record),
            "thresholds": _THRESHOLDS.to_json(t.thresholds),
            "path": path_json(t.path),
            "catheter_ul": t.catheter_ul,
            "prescription_id": t.prescription_id,
            "prescription": None if t.prescription is None else _PRESCRIPTION.to_json(t.prescription),
            "battery": t.battery.name,
            "charge_scaled": t.charge_scaled,
        },
        "end": {"at": saved.state.therapy.now},
        "events": len(entries),
        "ledger": len(ledger),
    }
    for record, stranger, facts in entries:
        yield {
            "kind": "event",
            "index": record.index,
            "at": record.at,
            "code": record.code.name,
            "code_value": int(record.code),
            "txn": record.txn,
            "value": record.value,
            "detail": record.detail,
            "stranger": stranger,
            "facts": facts,
        }
    for flow in ledger:
        yield {
            "kind": "ledger",
            "start": flow.start,
            "end": flow.end,
            "rate_ul_day": flow.rate_ul_day,
            "concentration_ug_ml": flow.conc_ug_ml,
        }
