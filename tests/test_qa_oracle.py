"""The QA oracle's own bookkeeping, on flows as the pump reports them (test_qa_suite.py runs it whole)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from itbproto.core.safety import SafetyPolicy
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    BolusKind,
    EventCode,
    Phase,
    PrescriptionMode,
    ScreeningResponse,
    TherapyMode,
)
from itbproto.io.specfiles import load_profile, load_rules
from itbproto.qa.oracle import DAY, Oracle, Piece, Violation

T0 = 86_400_000


def oracle(pieces: list[Piece], old_drug: list[list[int]]) -> Oracle:
    o = Oracle(SafetyPolicy(load_rules()), 20_000, pieces=pieces)
    o.old_drug = old_drug
    return o


def test_a_second_two_concentrations_shared_is_taken_in_the_paths_order() -> None:
    """The pump reports a crossing second as two flows of that second, sorted by rate: the 50 µg/mL part
    may come first in the list though the 500 µg/mL part left the tip first."""
    pieces = [
        Piece(T0, T0 + 2_325, 6_970, 500),
        Piece(T0 + 2_325, T0 + 2_326, 1_420, 50),
        Piece(T0 + 2_325, T0 + 2_326, 5_550, 500),
        Piece(T0 + 2_326, T0 + 2_738, 6_970, 50),
    ]
    o = oracle(pieces, [[6_970 * 2_325 + 5_550, 500], [1_420 + 6_970 * 412, 50], [10 * DAY, 500]])
    found: list[Violation] = []
    o._match(T0, T0 + 2_738, found)
    assert found == []
    assert o.old_drug == [[10 * DAY, 500]]


def test_the_tip_getting_the_new_drug_while_the_path_holds_old_is_found() -> None:
    o = oracle([Piece(T0, T0 + 3_600, 800, 50)], [[250 * DAY, 500]])
    found: list[Violation] = []
    o._match(T0, T0 + 3_600, found)
    assert [v.rule_id for v in found] == ["DOSE-001"]


def _status(t: int) -> m.StatusReport:
    return m.StatusReport(
        device_time=t,
        mode=TherapyMode.INFUSING,
        phase=Phase.THERAPY,
        alarms=frozenset(),
        reservoir_ul=10_000,
        concentration_ug_ml=500,
        rate_ul_day=800,
        bolus_remaining_ul=0,
        delivered_24h_ng=0,
        battery_days=2_000,
        prescription_id=1,
        last_txn=9,
    )


def _event(index: int, at: int, code: EventCode) -> m.EventRecord:
    return m.EventRecord(index=index, at=at, code=code, txn=index, value=0, detail="")


def _history(flows: list[m.FlowRecord], boluses: tuple[m.BolusEntry, ...] = ()) -> m.TherapyHistory:
    return m.TherapyHistory(
        complete=True,
        needs_priming=False,
        concentration_changed_at=0,
        bridge_given=False,
        last_delivery_at=T0,
        filled_at=T0,
        path=(),
        flows=tuple(flows),
        doses=(),
        boluses=boluses,
    )


def _stopped(flows: list[m.FlowRecord], events: list[m.EventRecord], now: int) -> list[Violation]:
    o = Oracle(SafetyPolicy(load_rules()), 20_000)
    return o._stopped(_status(now), _history(flows), events)


def test_delivery_while_suspended_is_found_and_a_suspension_resumed_the_same_second_is_not() -> None:
    """STOP-002's consequence: nothing reaches the tip between SUSPENDED and RESUMED (found by the thorough
    profile: a suspension resumed in its own second is no gap, though the pump reports one joined flow)."""
    flow = m.FlowRecord(start=T0, end=T0 + 120, rate_ul_day=800, concentration_ug_ml=500)
    same_second = [_event(1, T0 + 60, EventCode.SUSPENDED), _event(2, T0 + 60, EventCode.RESUMED)]
    assert _stopped([flow], same_second, T0 + 120) == []
    a_minute = [_event(1, T0 + 30, EventCode.SUSPENDED), _event(2, T0 + 90, EventCode.RESUMED)]
    assert [v.rule_id for v in _stopped([flow], a_minute, T0 + 120)] == ["STOP-002"]


def test_a_policy_file_for_the_pump_under_test_may_only_tighten(tmp_path: Path) -> None:
    """--itb-policy: the probes read the pump's numbers from it; a looser value is POLICY-001's error."""
    from itbproto.errors import PolicyError
    from itbproto.io.specfiles import load_policy
    from itbproto.qa.bench import tightened

    strict = tmp_path / "hospital.toml"
    strict.write_text('[policy]\n"TITR-002.interval_s" = 259200\n"BOL-001.absolute_max_bolus_ng" = 150000\n')
    assert load_policy(strict) == {"TITR-002.interval_s": 259_200, "BOL-001.absolute_max_bolus_ng": 150_000}
    loose = tmp_path / "loose.toml"
    loose.write_text('[policy]\n"TITR-001.spinal_pct" = 40\n')
    with pytest.raises(PolicyError):
        load_policy(loose)
    notch = tightened(load_rules())
    assert SafetyPolicy(load_rules(), notch)("TITR-001", "spinal_pct") == 27  # a tenth stricter
    assert notch["TITR-002.interval_s"] == 95_040


def test_a_bolus_is_held_to_its_maximum_at_the_tip() -> None:
    """A bolus's dose_ng is its volume at the reservoir's concentration; BOL-001 counts the tip. Where the
    path held a weaker drug the recorded dose says nothing of the tip (found by the thorough profile)."""
    o = Oracle(SafetyPolicy(load_rules()), 20_000)
    o.prescriptions[T0] = m.Prescription(
        mode=PrescriptionMode.CONTINUOUS,
        concentration_ug_ml=500,
        steps=(m.FlexStep(start_s=0, rate_ul_day=800),),
        boluses=(),
        patient=m.PatientBolusPolicy(volume_ul=0, duration_s=0, lockout_s=0, max_per_day=0),
        max_daily_dose_ng=2_000_000,
        max_bolus_ng=50_000,
    )
    over = m.BolusEntry(
        start=T0 + 60,
        kind=BolusKind.CLINICIAN,
        volume_ul=101,
        dose_ng=50_500,
        screening=False,
        response=ScreeningResponse.PENDING,
    )
    history = _history([], (over,))
    weaker = (m.PathSegment(volume_scaled=250 * DAY, concentration_ug_ml=50),)
    assert o._boluses(history, weaker) == []
    o.boluses.clear()
    same = (m.PathSegment(volume_scaled=250 * DAY, concentration_ug_ml=500),)
    assert [v.rule_id for v in o._boluses(history, same)] == ["BOL-001"]


def test_examples_are_replayed_only_on_the_kind_of_target_that_found_them() -> None:
    """Issue 25: the README's QA lines share one example database; an example the in-process run saved was
    replayed over TCP, where the same choices draw other steps: FlakyStrategyDefinition on a correct pump."""
    from hypothesis.database import InMemoryExampleDatabase

    from itbproto.qa.plugin import ScopedDatabase
    from itbproto.qa.targets import InprocTarget, RemoteTarget

    shared = InMemoryExampleDatabase()
    here, there = (
        ScopedDatabase.of(shared, InprocTarget()),
        ScopedDatabase.of(shared, RemoteTarget("tcp://a:1")),
    )
    here.save(b"key", b"steps")
    assert list(there.fetch(b"key")) == []
    assert list(ScopedDatabase.of(shared, RemoteTarget("tcp://b:2")).fetch(b"key")) == []
    assert list(ScopedDatabase.of(shared, InprocTarget()).fetch(b"key")) == [b"steps"]  # one kind: shared
    there.save(b"key", b"other")
    assert list(ScopedDatabase.of(shared, RemoteTarget("tcp://c:3")).fetch(b"key")) == [b"other"]
    here.move(b"key", b"key2", b"steps")
    here.delete(b"key2", b"steps")
    assert list(here.fetch(b"key")) == list(here.fetch(b"key2")) == []


def test_what_the_pump_did_in_the_second_before_the_oracle_began_is_history_not_judged() -> None:
    """Issue 25 (the README's QA-over-BLE line): on a remote pump the next example's oracle began in the same
    device second as the previous example's acknowledged decrease, did not see its acknowledgement (an
    earlier log entry) and reported DECR-001 on a correct pump."""

    def change(since: int, ug_day: int) -> m.DoseChange:
        return m.DoseChange(since=since, daily_dose_scaled=ug_day * 1000 * DAY, peak_ng_day=ug_day * 1000)

    before = (
        change(T0 - DAY, 400),
        change(T0, 100),
    )  # a 75 % drop, acknowledged where this oracle cannot see
    history = replace(_history([]), doses=before)
    thresholds = load_profile("itb-20").thresholds
    o = Oracle(SafetyPolicy(load_rules()), 20_000)
    assert o.check(_status(T0), history, thresholds, [], None) == []
    later = replace(history, doses=(*before, change(T0 + 60, 20)))  # an 80 % drop now, unacknowledged
    assert [v.rule_id for v in o.check(_status(T0 + 60), later, thresholds, [], None)] == ["DECR-001"]
