"""The export an auditor reads (specs/export.md): every export the tests make validates against
specs/export.schema.json, and the reference auditor (``itbemu audit``) passes the demo's and names the rule,
the window or the bolus a hand-edited export breaks."""

from __future__ import annotations

import ast
import asyncio
import io
import itertools
import json
import sqlite3
import sys
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from conftest import ROOT
from factories import POLICY, T0, programmed
from itbemu import DeviceFault, Emulator, Store, VirtualClock
from itbemu.audit import DAY, audit, audit_text, parse
from itbemu.cli import main
from itbemu.demo import run_demo
from itbemu.device import START, new_therapy
from itbemu.export import export_lines
from itbemu.inprocess import InProcessHub
from itbproto.core.wire import Acknowledgement, BolusKind
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_prescription, load_profile

SCHEMA = json.loads((ROOT / "specs" / "export.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())
CONTINUOUS = load_prescription(ROOT / "examples" / "prescriptions" / "continuous-400ug.toml")


def lines_of(store_path: Path) -> list[dict[str, Any]]:
    """The export of a store, as ``itbemu export-log`` writes it, each line validated."""
    with Store(store_path, create=False) as store:
        lines = [json.loads(json.dumps(line)) for line in export_lines(store, POLICY.values)]
    for line in lines:
        VALIDATOR.validate(line)
    return lines


def text(lines: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo")
    run_demo(out, days=1, say=lambda _: None)
    return lines_of(out / "pump.db")


async def _session(store: Store) -> None:
    """A clinic visit and the days after: programming, titration, a clinician and a patient bolus,
    a refill at a new concentration with a bridge, new alarm thresholds."""
    therapy = new_therapy(
        load_profile("itb-20"), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
    )
    emulator = Emulator.create(therapy, POLICY, serial="EMU-AUDIT", store=store)
    clock = VirtualClock(START)
    hub = InProcessHub(emulator, clock)

    async def advance(seconds: int) -> None:
        clock.advance_to(clock.now() + seconds)
        hub.advance(clock.now())

    async with PumpClient(hub.connect(), load_profile("itb-20"), load_drug(), POLICY, name="audit") as pump:
        await pump.program(CONTINUOUS, lambda s: Acknowledgement(rules=s.acknowledge, by="dr"))
        await advance(DAY)
        await pump.set_rate(880)
        await pump.bolus(BolusKind.CLINICIAN, 40, 600)
        await advance(3_600)
        await pump.bolus(BolusKind.PATIENT, 10, 600)
        await advance(5 * 3_600)
        await pump.bolus(BolusKind.PATIENT, 10, 600)
        await advance(DAY)
        left = (await pump.status()).reservoir_ul
        await pump.refill(left, 18_000, 500)
        thresholds = await pump.thresholds()
        await pump.set_thresholds(type(thresholds)(**{**vars_of(thresholds), "low_reservoir_ul": 3_000}))
        await advance(2 * DAY)
        await pump.end()
    emulator.inject(DeviceFault("motor-stall"), clock.now() + 60)
    emulator.inject(DeviceFault("motor-recover"), clock.now() + 3_600)
    emulator.advance_to(clock.now() + DAY)


def vars_of(record: Any) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


@pytest.fixture(scope="module")
def session_export(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    path = tmp_path_factory.mktemp("session") / "pump.db"
    with Store(path) as store:
        asyncio.run(_session(store))
    return lines_of(path)


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_demo_export_validates_and_starts_with_its_header(demo_export: list[dict[str, Any]]) -> None:
    header = demo_export[0]
    assert header["kind"] == "header"
    assert header["serial"] == "EMU-DEMO"
    assert [line["kind"] for line in demo_export[1:]] == sorted(
        (line["kind"] for line in demo_export[1:]), key=["event", "ledger"].index
    )
    assert header["events"] == sum(1 for line in demo_export if line["kind"] == "event")
    assert header["ledger"] == sum(1 for line in demo_export if line["kind"] == "ledger")
    assert header["policy"] == dict(POLICY.values)
    assert header["start"]["prescription"] is None
    assert header["start"]["path"][0]["concentration_ug_ml"] == 500


def test_the_session_export_validates_and_carries_what_the_auditor_needs(
    session_export: list[dict[str, Any]],
) -> None:
    events = [line for line in session_export if line["kind"] == "event"]
    facts = {e["code"]: e["facts"] for e in events if e["facts"]}
    committed = facts["PRESCRIPTION_COMMITTED"]
    assert committed["prescription"]["max_daily_dose_ng"] == CONTINUOUS.max_daily_dose_ng
    assert committed["prescription_id"] > 0
    assert facts["RATE_CHANGED"]["prescription"]["steps"] == [{"start_s": 0, "rate_ul_day": 880}]
    boluses = [e["facts"]["bolus"] for e in events if "bolus" in e["facts"]]
    assert [(b["kind"], b["volume_ul"], b["duration_s"]) for b in boluses] == [
        ("CLINICIAN", 40, 600),
        ("PATIENT", 10, 600),
        ("PATIENT", 10, 600),
    ]
    assert boluses[0]["dose_ng"] == 40 * 500
    refill = facts["REFILL_CONFIRMED"]["refill"]
    assert (refill["volume_ul"], refill["concentration_ug_ml"]) == (18_000, 500)
    assert refill["measured_residual_ul"] == refill["expected_residual_ul"]
    assert facts["THRESHOLDS_CHANGED"]["thresholds"]["low_reservoir_ul"] == 3_000


@pytest.mark.rule("DOSE-001", "BOL-001", "PBOL-001", "PBOL-002", "PBOL-003", "TITR-001", "TITR-002")
@pytest.mark.rule("REFILL-001", "RES-001", "BATT-001", "BATT-002")
def test_the_auditor_passes_the_demo_and_the_session(
    demo_export: list[dict[str, Any]], session_export: list[dict[str, Any]]
) -> None:
    assert audit_text(text(demo_export)) == []
    assert audit_text(text(session_export)) == []


def test_itbemu_audit_exits_0_on_the_demo_export_and_1_on_a_broken_one(
    demo_export: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "demo.jsonl"
    good.write_text(text(demo_export))
    assert main(["audit", str(good)]) == 0
    assert capsys.readouterr().out.strip() == "no rule broken"
    assert main(["audit", "--json", str(good)]) == 0
    assert json.loads(capsys.readouterr().out) == []
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text(over_by_a_microgram(demo_export)[0]))
    assert main(["audit", str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith("DOSE-001 window [")


def test_export_log_writes_what_the_schema_describes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pump.db"
    with Store(path) as store:
        emu = Emulator.create(
            new_therapy(
                load_profile("itb-20"), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
            ),
            POLICY,
            serial="EMU-X",
            store=store,
        )
        emu.advance_to(START + DAY)
    assert main(["export-log", "--store", str(path)]) == 0
    for line in capsys.readouterr().out.splitlines():
        VALIDATOR.validate(json.loads(line))


def _dose_scaled(ledger: list[dict[str, Any]], start: int, end: int) -> int:
    """ng × 86 400 at the tip over [start, end), by the export's definition (rows over one second add)."""
    return sum(
        r["rate_ul_day"] * r["concentration_ug_ml"] * max(0, min(r["end"], end) - max(r["start"], start))
        for r in ledger
    )


def over_by_a_microgram(lines: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """``lines`` with the longest ledger row's rate raised by the least that takes the 24 h window from its
    start at least 1 µg over the maximum daily dose in force; and that window's start."""
    edited = [dict(line) for line in lines]
    rows = [line for line in edited if line["kind"] == "ledger"]
    row = max(rows, key=lambda r: r["end"] - r["start"])
    start = row["start"]
    events = [line for line in edited if line["kind"] == "event" and "prescription" in line["facts"]]
    limit = [e["facts"]["prescription"] for e in events if e["at"] < start + DAY][-1]["max_daily_dose_ng"]
    missing = (limit + 1_000) * DAY - _dose_scaled(rows, start, start + DAY)
    assert missing > 0
    per_ul_day = row["concentration_ug_ml"] * min(row["end"] - row["start"], DAY)
    row["rate_ul_day"] += -(-missing // per_ul_day)
    assert _dose_scaled(rows, start, start + DAY) >= (limit + 1_000) * DAY
    return edited, start


@pytest.mark.rule("DOSE-001")
def test_one_microgram_over_a_window_is_named_with_its_window(demo_export: list[dict[str, Any]]) -> None:
    edited, start = over_by_a_microgram(demo_export)
    for line in edited:
        VALIDATOR.validate(line)  # still a well-formed export: only the auditor sees what is wrong
    findings = audit(parse(text(edited)))
    assert [f.rule for f in findings] == ["DOSE-001"]
    (finding,) = findings
    assert finding.end == finding.start + DAY
    assert start - DAY < finding.start <= start + DAY  # a window over the raised row
    over = Fraction(finding.what.split(" by ")[1].split(" µg")[0])
    assert Fraction(1) <= over < Fraction(3, 2)  # the least raise of one µL/day at 500 µg/mL: ≤ 0.5 µg more
    assert str(finding).startswith(f"DOSE-001 window [{finding.start}, {finding.start + DAY}): ")


@pytest.mark.rule("DOSE-001")
def test_a_window_exactly_at_the_limit_passes(demo_export: list[dict[str, Any]]) -> None:
    edited = [dict(line) for line in demo_export]
    rows = [line for line in edited if line["kind"] == "ledger"]
    last = rows[-1]
    limit = 600_000
    # one more second-long row after the last delivery: the window ending with it is at the limit exactly
    end = last["end"] + 1
    missing = limit * DAY - _dose_scaled(rows, end - DAY, end)
    edited.append(
        {
            "kind": "ledger",
            "start": end - 1,
            "end": end,
            "rate_ul_day": missing // 500,
            "concentration_ug_ml": 500,
        }
    )
    assert missing % 500 == 0
    assert audit(parse(text(edited))) == []
    edited[-1]["rate_ul_day"] += 2  # 1 ng more
    assert [f.rule for f in audit(parse(text(edited)))] == ["DOSE-001"]


def _edit_first_bolus(lines: list[dict[str, Any]], kind: str, **changes: Any) -> list[dict[str, Any]]:
    edited: list[dict[str, Any]] = json.loads(json.dumps(lines))
    bolus = next(
        line["facts"]["bolus"]
        for line in edited
        if line["kind"] == "event" and line["facts"].get("bolus", {}).get("kind") == kind
    )
    bolus.update(changes)
    return edited


@pytest.mark.rule("BOL-001")
def test_a_bolus_over_its_maximum_is_named(session_export: list[dict[str, Any]]) -> None:
    edited = _edit_first_bolus(session_export, "CLINICIAN", volume_ul=101)  # 50.5 µg at 500 µg/mL
    findings = audit(parse(text(edited)))
    assert [f.rule for f in findings] == ["BOL-001"]
    assert "clinician bolus" in findings[0].what
    assert "50500 ng" in findings[0].what
    assert "maximum bolus of 50000 ng" in findings[0].what
    exact = _edit_first_bolus(session_export, "CLINICIAN", volume_ul=100)  # 50 µg: the maximum itself
    assert audit(parse(text(exact))) == []


@pytest.mark.rule("BOL-001")
def test_a_bolus_counts_the_path_it_pushes_out(session_export: list[dict[str, Any]]) -> None:
    """The first 40 µL at the tip are the path's: a path of 2000 µg/mL makes the 40 µL bolus 80 µg."""
    path = [{"volume_scaled": 250 * DAY, "concentration_ug_ml": 2_000}]
    findings = audit(parse(text(_edit_first_bolus(session_export, "CLINICIAN", path=path))))
    assert [f.rule for f in findings] == ["BOL-001"]
    assert "80000 ng" in findings[0].what


@pytest.mark.rule("PBOL-001", "PBOL-003")
def test_patient_boluses_too_soon_or_not_as_prescribed_are_named(
    session_export: list[dict[str, Any]],
) -> None:
    edited = json.loads(json.dumps(session_export))
    patient = [
        line
        for line in edited
        if line["kind"] == "event" and line["facts"].get("bolus", {}).get("kind") == "PATIENT"
    ]
    second = patient[1]["facts"]["bolus"]
    second["start"] = patient[0]["facts"]["bolus"]["start"] + 3_600  # the lockout is 4 h
    second["duration_s"] = 300
    assert sorted(f.rule for f in audit(parse(text(edited)))) == ["PBOL-001", "PBOL-003"]


@pytest.mark.rule("PBOL-002")
def test_one_patient_bolus_too_many_in_24_h_is_named(session_export: list[dict[str, Any]]) -> None:
    edited = json.loads(json.dumps(session_export))
    events = [line for line in edited if line["kind"] == "event"]
    committed = next(e for e in events if e["code"] == "RATE_CHANGED")
    committed["facts"]["prescription"]["patient"]["max_per_day"] = 1
    findings = audit(parse(text(edited)))
    assert [f.rule for f in findings] == ["PBOL-002"]
    assert "makes 2 patient boluses started in 24 h; at most 1" in findings[0].what


def test_a_store_from_before_the_export_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pump.db"
    with Store(path) as store:
        Emulator.create(
            new_therapy(
                load_profile("itb-20"), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
            ),
            POLICY,
            serial="EMU-OLD",
            store=store,
        )
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'start'")  # as a store written before the export kept it
    db.commit()
    db.close()
    assert main(["export-log", "--store", str(path)]) == 1
    err = capsys.readouterr().err
    assert "from before the export format" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.rule("TITR-001", "TITR-002")
def test_a_titration_too_large_and_too_soon_is_named(session_export: list[dict[str, Any]]) -> None:
    edited = json.loads(json.dumps(session_export))
    raised = next(line for line in edited if line["kind"] == "event" and line["code"] == "RATE_CHANGED")
    raised["facts"]["prescription"]["steps"][0]["rate_ul_day"] = 1_100  # +37.5 % on 800
    assert [f.rule for f in audit(parse(text(edited)))] == ["TITR-001"]
    again = dict(raised, index=raised["index"], at=raised["at"] + 3_600)
    again["facts"] = json.loads(json.dumps(raised["facts"]))
    again["facts"]["prescription"]["steps"][0]["rate_ul_day"] = 1_200
    edited.insert(edited.index(raised) + 1, again)
    assert "TITR-002" in {f.rule for f in audit(parse(text(edited)))}


@pytest.mark.rule("REFILL-001", "RES-001")
def test_an_overfill_and_a_low_threshold_are_named(session_export: list[dict[str, Any]]) -> None:
    edited = json.loads(json.dumps(session_export))
    refill = next(line for line in edited if line["kind"] == "event" and "refill" in line["facts"])
    refill["facts"]["refill"]["volume_ul"] = 20_000
    refill["facts"]["refill"]["measured_residual_ul"] = refill["facts"]["refill"]["expected_residual_ul"] - 1
    changed = next(line for line in edited if line["kind"] == "event" and "thresholds" in line["facts"])
    changed["facts"]["thresholds"]["low_reservoir_ul"] = 1_999
    assert [f.rule for f in audit(parse(text(edited)))] == ["REFILL-001", "RES-001"]


@pytest.mark.rule("BATT-001")
def test_delivery_after_end_of_service_is_named(demo_export: list[dict[str, Any]]) -> None:
    edited = json.loads(json.dumps(demo_export))
    first_row = next(line for line in edited if line["kind"] == "ledger")
    eos = {
        "kind": "event",
        "index": 999,
        "at": first_row["start"],
        "code": "FAULT",
        "code_value": 24,
        "txn": 0,
        "value": 0,
        "detail": "",
        "stranger": False,
        "facts": {"battery": "EOS"},
    }
    edited.insert(edited.index(first_row), eos)
    assert [f.rule for f in audit(parse(text(edited)))] == ["BATT-001"]


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ("", "no header"),
        ('{"kind": "event"}\n', "starts with its header"),
        ("not json\n", "line 1: not JSON"),
    ],
)
def test_what_is_no_export_is_one_line(content: str, error: str, tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    assert main(["audit", str(path)]) == 1
    err = capsys.readouterr().err
    assert error in err
    assert len(err.strip().splitlines()) == 1


def test_the_auditor_imports_no_rule_engine() -> None:
    """Independent of the engine it checks: itbemu/audit.py imports nothing of itbproto, the standard library
    only."""
    tree = ast.parse((ROOT / "emulator" / "itbemu" / "audit.py").read_text())
    imported = {
        name
        for node in ast.walk(tree)
        for name in (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
    }
    assert imported
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in imported)


def _ledger_seconds(lines: list[dict[str, Any]]) -> Iterator[tuple[int, int]]:
    for r in lines:
        if r["kind"] == "ledger":
            yield r["start"], r["end"]


def test_the_session_ledger_ends_where_its_last_event_came_and_never_overlaps_but_by_whole_seconds(
    session_export: list[dict[str, Any]],
) -> None:
    """Rows over one second [t, t+1) may share it (their rates add: a concentration change at the tip);
    longer rows never overlap."""
    spans = sorted(_ledger_seconds(session_export))
    for (a, b), (c, d) in itertools.pairwise(spans):
        assert c >= b or (d - c == 1 and b - a == 1 and a == c)


@pytest.mark.rule("BATT-001", "BATT-002")
def test_an_export_through_end_of_service_validates_and_passes(tmp_path: Path) -> None:
    """A cell fault leaves 1 % of the charge: ERI at once, end of service weeks later, nothing after it."""
    path = tmp_path / "pump.db"
    with Store(path) as store:
        emu = Emulator.create(programmed(), POLICY, serial="EMU-EOS", store=store)
        emu.inject(DeviceFault("battery-drop", 99), T0 + 60)
        for day in range(1, 90):
            emu.advance_to(T0 + day * DAY)
    lines = lines_of(path)
    events = [line for line in lines if line["kind"] == "event"]
    eos = next(e["at"] for e in events if e["facts"].get("battery") == "EOS")
    assert all(r["end"] <= eos for r in lines if r["kind"] == "ledger")
    assert audit(parse(text(lines))) == []
    late = {"kind": "ledger", "start": eos, "end": eos + 60, "rate_ul_day": 800, "concentration_ug_ml": 500}
    assert [f.rule for f in audit(parse(text([*lines, late])))] == ["BATT-001"]


def test_itbemu_audit_reads_stdin_and_says_what_broke_as_json(
    demo_export: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(text(over_by_a_microgram(demo_export)[0])))
    assert main(["audit", "--json", "-"]) == 1
    (finding,) = json.loads(capsys.readouterr().out)
    assert finding["rule"] == "DOSE-001"
    assert finding["end"] - finding["start"] == DAY


@pytest.mark.rule("DOSE-001")
def test_a_policy_ceiling_below_what_reached_the_tip_is_named(demo_export: list[dict[str, Any]]) -> None:
    """With a prescription in force the lower of its maximum and DOSE-003's ceiling (the policy's, if lower
    than the drug's) limits every window: 440 µg a day at 880 µL/day is over a 400 µg ceiling."""
    edited = json.loads(json.dumps(demo_export))
    edited[0]["policy"]["DOSE-003.adult_ceiling_ng_day"] = 400_000
    findings = audit(parse(text(edited)))
    assert findings
    assert {f.rule for f in findings} == {"DOSE-001"}
    assert all("over the limit of 400.000 µg" in f.what for f in findings)
