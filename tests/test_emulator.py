"""The emulated pump: delivery integrated exactly between events (one call or many, the same pump), alarms
raised at their own second, a ledger an outside tool can recompute every dose from, device and link faults
from tests and plans, the simulation, its plot, and the CLI."""

from __future__ import annotations

import functools
import json
from dataclasses import replace
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factories import DAY, POLICY, T0, prescription, programmed
from itbemu import (
    DeviceFault,
    Emulator,
    FaultPlan,
    LinkFaults,
    RealClock,
    Simulation,
    Store,
    VirtualClock,
    simulate,
)
from itbemu.cli import main
from itbemu.device import START
from itbemu.faults import apply_fault
from itbemu.plot import marks
from itbproto.core.connection import Connection, Side
from itbproto.core.machines.pump import snapshot
from itbproto.core.therapy import daily_dose_scaled, dose_between, forecast
from itbproto.core.therapy.state import Battery
from itbproto.core.wire import Ack, AlarmCode, EventCode, Hello, Role, SetThresholds, decode, encode
from itbproto.io.specfiles import load_drug, load_prescription, load_profile

REPO = Path(__file__).resolve().parent.parent
FLEX = REPO / "examples" / "prescriptions" / "flex-4-step.toml"
STALL = '[[fault]]\nat = 864000\nkind = "motor-stall"\n'  # on day 10


#: specs/export.schema.json: every export a test makes validates (tests/test_export.py)
VALIDATOR = jsonschema.Draft202012Validator(json.loads((REPO / "specs" / "export.schema.json").read_text()))

HELLO = Hello(protocol_version=1, role=Role.CLINICIAN, max_frame=512, client="t")


def open_session(emu: Emulator, link: int) -> None:
    emu.receive(link, encode(HELLO, txn=1, seq=0), T0)


def emulator() -> Emulator:
    return Emulator.create(programmed(), POLICY, serial="EMU-T")


def test_one_long_step_and_many_short_ones_make_the_same_pump() -> None:
    once, stepped = emulator(), emulator()
    once.advance_to(T0 + 30 * DAY)
    for hour in range(1, 30 * 24 + 1):
        stepped.advance_to(T0 + hour * 3_600)
    assert snapshot.dump(once.pump.state) == snapshot.dump(stepped.pump.state)
    assert [(e.at, e.code, e.value) for e in once.pump.log.since(0)] == [
        (e.at, e.code, e.value) for e in stepped.pump.log.since(0)
    ]
    assert sum(f.volume_scaled for f in once.ledger) == sum(f.volume_scaled for f in stepped.ledger)


@pytest.mark.parametrize("rate", [800, 880, 997])
def test_alarms_are_raised_at_their_own_second_however_seldom_time_is_given(rate: int) -> None:
    emu = Emulator.create(programmed(prescription(rate)), POLICY, serial="EMU-T")
    ahead = forecast(emu.therapy)
    emu.advance_to(T0 + 60 * DAY)  # one call
    raised = {AlarmCode(e.value): e.at for e in emu.pump.log.since(0) if e.code is EventCode.ALARM_RAISED}
    assert raised[AlarmCode.LOW_RESERVOIR] == ahead.low_reservoir_at
    assert ahead.empty_at is not None
    # the forecast rounds down; the last drop may leave in the second after it, and the alarm comes then
    assert raised[AlarmCode.EMPTY_RESERVOIR] - ahead.empty_at in (0, 1)


def test_the_ledger_recomputes_every_dose_the_pump_counted() -> None:
    emu = emulator()
    emu.advance_to(T0 + 5 * DAY + 1_234)
    t = emu.therapy
    for end in (t.now, t.now - DAY // 2):  # every window the pump still holds
        assert dose_between(emu.ledger, end - DAY, end) == dose_between(t.delivered, end - DAY, end)
    used = programmed().reservoir_scaled - t.reservoir_scaled  # the path is full of the same drug
    assert sum(f.volume_scaled for f in emu.ledger) == used


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (DeviceFault("motor-stall"), AlarmCode.MOTOR_STALL),
        (DeviceFault("occlusion"), AlarmCode.MOTOR_STALL),
        (DeviceFault("magnetic-field"), AlarmCode.MOTOR_STALL),  # a motor pump's rotor stops
        (DeviceFault("battery-drop", 97), AlarmCode.BATTERY_ERI),
        (DeviceFault("battery-drop", 100), AlarmCode.BATTERY_EOS),
    ],
)
def test_a_device_fault_raises_its_alarm_on_every_link_with_a_session(
    fault: DeviceFault, code: AlarmCode
) -> None:
    emu = emulator()
    link = emu.attach(Connection(Side.PUMP))
    open_session(emu, link)
    out = emu.inject(fault, T0 + 60)
    notes = [decode(chunk).message for chunk in out[link]]
    assert code in {n.alarm.code for n in notes}  # type: ignore[attr-defined]
    assert emu.pump.log.since(0)[-len(notes) - 1].code is EventCode.FAULT or code is AlarmCode.BATTERY_EOS


def test_stalled_motor_delivers_nothing_until_it_recovers() -> None:
    emu = emulator()
    emu.schedule([(T0 + DAY, DeviceFault("motor-stall")), (T0 + 2 * DAY, DeviceFault("motor-recover"))])
    emu.advance_to(T0 + 3 * DAY)
    assert dose_between(emu.ledger, T0 + DAY, T0 + 2 * DAY) == 0
    assert dose_between(emu.ledger, T0 + 2 * DAY, T0 + 3 * DAY) > 0
    assert not emu.therapy.motor_stalled


def test_a_magnetic_field_empties_a_valve_pump() -> None:
    emu = Emulator.create(replace(programmed(), profile=load_profile("itbv-20")), POLICY, serial="EMU-V")
    held = emu.therapy.reservoir_ul
    emu.inject(DeviceFault("magnetic-field"), T0 + 10)
    emu.advance_to(T0 + DAY)
    assert emu.therapy.reservoir_ul == 0
    assert sum(f.volume_scaled for f in emu.ledger) >= held * DAY - DAY


def test_a_reservoir_discrepancy_is_the_hardware_not_the_pump() -> None:
    emu = emulator()
    counted = emu.therapy.reservoir_ul
    apply_fault(emu, DeviceFault("reservoir-discrepancy", -1_500), T0)
    assert emu.hardware.reservoir_offset_ul == -1_500
    assert emu.therapy.reservoir_ul == counted  # the pump does not know; a refill's measurement will tell


def test_a_fault_plan_is_read_and_checked() -> None:
    plan = FaultPlan.parse(
        {
            "seed": 7,
            "fault": [
                {"at": 86_400, "kind": "motor-stall"},
                {"at": 60, "kind": "battery-drop", "percent": 30},
                {"at": 0, "kind": "reservoir-discrepancy", "offset_ul": -1_500},
            ],
            "link": {"drop": 0.1, "corrupt": 0.05},
        }
    )
    assert [(at, f.kind, f.value) for at, f in plan.faults] == [
        (0, "reservoir-discrepancy", -1_500),
        (60, "battery-drop", 30),
        (86_400, "motor-stall", 0),
    ]
    assert (plan.link.drop, plan.link.corrupt, plan.link.seed) == (0.1, 0.05, 7)
    with pytest.raises(ValueError, match="a fault needs a kind"):
        FaultPlan.parse({"fault": [{"at": 1, "kind": "meteor"}]})
    with pytest.raises(ValueError, match="a fault needs a kind"):
        FaultPlan.parse({"fault": [{"at": -1, "kind": "motor-stall"}]})
    with pytest.raises(ValueError, match="unknown link faults"):
        FaultPlan.parse({"link": {"teleport": 1}})
    with pytest.raises(ValueError, match="probability"):
        LinkFaults(drop=1.5)


def test_link_faults_are_repeatable_from_their_seed() -> None:
    def run(seed: int) -> list[tuple[list[bytes], bool]]:
        faults = LinkFaults(drop=0.2, duplicate=0.2, corrupt=0.2, disconnect=0.05, seed=seed)
        return [faults.carry(bytes(range(20))) for _ in range(200)]

    assert run(3) == run(3)
    assert run(3) != run(4)
    outcomes = run(3)
    assert any(parts == [] for parts, _ in outcomes)  # dropped
    assert any(len(parts) == 2 for parts, _ in outcomes)  # duplicated
    assert any(down for _, down in outcomes)  # gone mid-frame: half a frame arrived
    assert any(parts and parts[0] != bytes(range(20)) and not down for parts, down in outcomes)  # corrupted


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16), drop=st.floats(0, 0.5), duplicate=st.floats(0, 0.5), corrupt=st.floats(0, 0.5)
)
def test_through_a_bad_link_each_command_is_applied_at_most_once(
    seed: int, drop: float, duplicate: float, corrupt: float
) -> None:
    emu = emulator()
    link = emu.attach(Connection(Side.PUMP))
    open_session(emu, link)
    faults = LinkFaults(drop=drop, duplicate=duplicate, corrupt=corrupt, seed=seed)
    acked: set[int] = set()
    arrived: set[int] = set()
    for txn in range(1, 40):
        request = SetThresholds(thresholds=replace(emu.therapy.thresholds, low_reservoir_ul=2_000 + txn))
        frame = encode(request, txn=txn, seq=txn)
        for attempt in range(3):  # the programmer retries the same frame
            parts, _ = faults.carry(frame)
            arrived.update(txn for part in parts if part == frame)
            for part in parts:
                for chunk in emu.receive(link, part, T0 + txn * 10 + attempt).get(link, []):
                    if isinstance(decode(chunk).message, Ack):
                        acked.add(txn)
    applied = [e.txn for e in emu.pump.log.since(0) if e.code is EventCode.THRESHOLDS_CHANGED]
    assert len(applied) == len(set(applied))  # never twice
    assert set(applied) == arrived  # each intact frame was applied; nothing corrupted was
    assert acked <= set(applied)


def test_the_clocks() -> None:
    clock = VirtualClock(100)
    clock.advance_to(200)
    assert clock.now() == 200
    with pytest.raises(ValueError, match="time runs forward"):
        clock.advance_to(199)
    with pytest.raises(ValueError, match="speed"):
        RealClock(start=0, speed=0)
    fast = RealClock(start=1_000, speed=1_000_000.0)
    assert fast.now() >= 1_000
    assert fast.seconds_until(0) == 0.0
    assert 0 < fast.seconds_until(fast.now() + 10_000_000) <= 10.0


@functools.cache
def years(days: int = 3_300, refill_every: int = 60) -> Simulation:
    """The flex schedule refilled every ``refill_every`` days (97 days of drug), run once per test session."""
    return simulate(
        days=days,
        profile=load_profile("itb-20"),
        drug=load_drug(),
        policy=POLICY,
        prescription=load_prescription(FLEX),
        refill_every=refill_every,
    )


def raised(sim: Simulation) -> list[tuple[float, AlarmCode]]:
    """Every alarm the pump raised, as its log says (day, code)."""
    assert sim.emulator is not None
    return [
        (round((e.at - START) / DAY, 3), AlarmCode(e.value))
        for e in sim.emulator.pump.log.since(0)
        if e.code is EventCode.ALARM_RAISED
    ]


def test_a_simulation_refills_in_time_and_sees_the_battery_to_its_end() -> None:
    sim = years()
    summary = sim.summary()
    assert summary["empty_reservoir_day"] is None  # 97 days of drug, refilled every 60
    eri, eos = summary["battery_eri_day"], summary["battery_eos_day"]
    assert isinstance(eri, float)
    assert isinstance(eos, float)
    assert eos - eri >= 90  # the lead
    # refilled every 60 days until end of service (day 3209.5): a pump that delivers nothing is not refilled
    assert summary["refills"] == 53
    assert sim.refills == list(range(60, int(eos), 60))
    assert sim.emulator is not None
    confirmed = [e for e in sim.emulator.pump.log.since(0) if e.code is EventCode.REFILL_CONFIRMED]
    assert len(confirmed) == len(sim.refills)  # each refill counted was done
    assert not [e for e in sim.emulator.pump.log.since(0) if e.code is EventCode.COMMAND_REFUSED]
    assert sim.days[-1].delivered_ng == 0  # nothing after end of service
    assert sim.days[100].delivered_ng == daily_dose_scaled(load_prescription(FLEX)) // DAY == 403_333
    assert sim.emulator.therapy.battery is Battery.EOS


def test_a_simulation_records_every_alarm_raised_not_only_the_first() -> None:
    sim = years(500, refill_every=120)  # the reservoir runs low, then empty, before every refill
    assert sim.alarms == raised(sim)
    assert [code for _, code in sim.alarms].count(AlarmCode.LOW_RESERVOIR) == 4
    assert sim.first_alarm == {code: min(d for d, c in sim.alarms if c is code) for _, code in sim.alarms}


def test_the_plot_marks_every_refill_and_alarm_and_names_each_kind_once_in_the_legend() -> None:
    sim = years(500, refill_every=120)
    drawn = marks(sim)
    assert [(m.day, m.code) for m in drawn if m.code is not None] == sim.alarms
    assert [m.day for m in drawn if m.code is None] == sim.refills
    labels = [m.label for m in drawn if m.label is not None]
    assert sorted(labels) == sorted(["refill", "drug expired", "low reservoir", "empty reservoir"])
    first = {m.label: m.day for m in drawn if m.label is not None}
    assert first == {"refill": 120, "drug expired": 77.0, "low reservoir": 89.287, "empty reservoir": 99.194}


def test_the_plot_draws_no_refill_after_end_of_service() -> None:
    sim = years(3_650)
    eos = sim.first_alarm[AlarmCode.BATTERY_EOS]
    drawn = marks(sim)
    assert max(m.day for m in drawn if m.code is None) < eos
    labels = [m.label for m in drawn if m.label is not None]
    assert labels == ["refill", "battery ERI", "battery EOS", "drug expired"]


def test_simulate_with_a_plan_and_a_plot(tmp_path: Path) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(
        '[[fault]]\nat = 864000\nkind = "motor-stall"\n[[fault]]\nat = 950400\nkind = "motor-recover"\n'
    )
    png = tmp_path / "run.png"
    argv = [
        "simulate",
        "--days",
        "30",
        "--prescription",
        str(FLEX),
        "--faults",
        str(plan),
        "--plot",
        str(png),
    ]
    assert main([*argv, "--json", "--quiet"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_prints_its_summary_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text('[[fault]]\nat = 864000\nkind = "motor-stall"\n')
    assert (
        main(["simulate", "--days", "12", "--prescription", str(FLEX), "--faults", str(plan), "--json"]) == 0
    )
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["days"] == 12
    assert summary["refills"] == 0
    assert summary["motor_stall_day"] == 10.0


def test_export_log_writes_the_log_and_a_ledger_to_recompute_doses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pump.db"
    with Store(path) as store:
        emu = Emulator.create(programmed(), POLICY, serial="EMU-X", store=store)
        emu.inject(DeviceFault("motor-stall"), T0 + 3_600)
        emu.inject(DeviceFault("motor-recover"), T0 + 7_200)
        emu.advance_to(T0 + DAY)
        counted = dose_between(emu.therapy.delivered, T0, T0 + DAY)
    assert main(["export-log", "--store", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["kind"] == "header"  # specs/export.md
    for line in lines:
        VALIDATOR.validate(line)
    log = [line for line in lines if line["kind"] == "event"]
    ledger = [line for line in lines if line["kind"] == "ledger"]
    assert [e["code"] for e in log][:1] == ["BOOT"]
    assert "FAULT" in {e["code"] for e in log}
    recomputed = sum(
        f["rate_ul_day"] * f["concentration_ug_ml"] * (min(f["end"], T0 + DAY) - max(f["start"], T0))
        for f in ledger
        if f["end"] > T0
    )
    assert recomputed == counted  # ng × 86 400, exactly


def test_the_cli_says_what_is_wrong_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-log", "--store", str(tmp_path / "none.db")]) == 1
    assert "no store there" in capsys.readouterr().err  # and none is made (test_plain_install)
    bad = tmp_path / "bad.toml"
    bad.write_text('[[fault]]\nat = 1\nkind = "meteor"\n')
    assert main(["simulate", "--days", "1", "--prescription", str(FLEX), "--faults", str(bad)]) == 1
    assert "a fault needs a kind" in capsys.readouterr().err
