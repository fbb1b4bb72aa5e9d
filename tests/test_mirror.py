"""The programmer's mirror of the pump: with everything read, it holds what the rules read from the pump's own
state; with less read, it errs towards more drug delivered."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from factories import DAY, T0, confirm, patient, programmed, refill_staged
from itbproto.core.therapy import Battery, TherapyState, apply
from itbproto.core.wire import (
    AlarmCode,
    BolusKind,
    BolusStart,
    PatientGroup,
    Procedure,
    RecordProcedure,
    TherapyMode,
)
from itbproto.errors import SafetyViolation, SessionError
from machines_link import Link


def read_all(link: Link) -> TherapyState:
    s = link.ready()
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    link.exchange(s.read_alarms())
    link.exchange(s.read_thresholds())
    mirror = s.mirror()
    assert mirror is not None
    return mirror


def what_rules_read(t: TherapyState) -> dict[str, object]:
    return {
        "now": t.now,
        "concentration": t.concentration_ug_ml,
        "reservoir_ul": t.reservoir_ul,
        "prescription": t.prescription,
        "prescription_id": t.prescription_id,
        "record": t.record,
        "boluses": t.boluses,
        "needs_priming": t.needs_priming,
        "concentration_changed_at": t.concentration_changed_at,
        "bridge_given": t.bridge_given,
        "last_delivery_at": t.last_delivery_at,
        "filled_at": t.filled_at,
        "path": t.path,
        "thresholds": t.thresholds,
        "battery": t.battery,
        "motor_stalled": t.motor_stalled,
        "doses": [(e.since, e.daily_scaled, e.peak_ng_day) for e in t.dose_log],
    }


def bridged() -> TherapyState:
    state = programmed()
    strong = refill_staged(state, volume=5_000, conc=2000)
    return apply(strong, replace(confirm(strong, volume=5_000, conc=2000), bridge=True))


SCENES: dict[str, Callable[[], TherapyState]] = {
    "in therapy": lambda: programmed(),
    "a child": lambda: programmed(record=patient(group=PatientGroup.CHILD)),
    "after surgery": lambda: apply(
        programmed(), RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=150)
    ),
    "a bridge running": bridged,
    "an old fill": lambda: programmed(filled_at=T0 - 80 * DAY),
    "at the replacement indicator": lambda: programmed(battery=Battery.ERI),
    "suspended": lambda: replace(programmed(), mode=TherapyMode.SUSPENDED),
}


@pytest.mark.parametrize("scene", SCENES)
def test_the_mirror_holds_what_the_rules_read(scene: str) -> None:
    link = Link.new(SCENES[scene]())
    pump = link.pump.therapy
    mirror = read_all(link)
    assert what_rules_read(mirror) == what_rules_read(pump)
    assert mirror.mode is pump.mode


def test_a_running_bolus_is_mirrored_as_its_remainder_at_once() -> None:
    state = apply(programmed(), BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=3600))
    link = Link.new(state)
    link.wait(1800)
    mirror = read_all(link)
    assert mirror.bolus is not None
    assert mirror.bolus.start == mirror.now == link.now
    (flow,) = mirror.bolus.flows
    assert (flow.start, flow.end, flow.volume_scaled) == (link.now, link.now + 1, 20 * 86_400)
    assert mirror.mode is TherapyMode.INFUSING


def test_a_second_bolus_is_refused_naming_the_running_one_only_as_far_as_known() -> None:
    """Issue 25: BOL-004's refusal named "bolus 0 ... until" a second after now while bolus 1 ran for an hour
    (the mirror, rebuilt from a status, invented an id and an end it does not know)."""
    state = apply(programmed(), BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=3600))
    link = Link.new(state)  # started before this session: the status says a bolus runs, not which
    read_all(link)
    with pytest.raises(SafetyViolation) as refused:
        link.session.start_bolus(BolusKind.CLINICIAN, 10, 600)
    assert refused.value.rule_ids == ("BOL-004",)
    assert "a bolus is still being delivered" in str(refused.value)
    assert "bolus 0" not in str(refused.value)
    assert "until" not in str(refused.value)
    link.wait(3600)
    link.exchange(link.session.read_status())
    link.exchange(link.session.read_history())
    link.exchange(link.session.start_bolus(BolusKind.CLINICIAN, 40, 3600))
    started = link.session.pump.bolus_started
    assert started is not None
    link.exchange(link.session.read_status())
    link.exchange(link.session.read_history())
    with pytest.raises(SafetyViolation) as refused:  # this session started it: its id and end are known
        link.session.start_bolus(BolusKind.CLINICIAN, 10, 600)
    assert f"bolus {started.bolus_id} is still being delivered until {started.ends_at}" in str(refused.value)


def test_end_of_service_and_a_stalled_motor_are_mirrored() -> None:
    link = Link.new(programmed())
    link.pump.drain_battery(100, link.now)
    mirror = read_all(link)
    assert mirror.battery is Battery.EOS
    assert mirror.mode is TherapyMode.STOPPED
    link = Link.new(programmed())
    link.pump.set_motor_stalled(True, link.now)
    mirror = read_all(link)
    assert mirror.motor_stalled
    assert AlarmCode.MOTOR_STALL in {a.code for a in mirror.alarms}
    assert mirror.mode is TherapyMode.INFUSING  # halted, as far as the rules go: it would flow again


def test_without_the_history_the_mirror_counts_the_last_day_at_its_last_second() -> None:
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_prescription())
    mirror = s.mirror()
    assert mirror is not None
    (flow,) = mirror.delivered  # 400 µg delivered in the last 24 h, all of it now
    assert (flow.start, flow.end) == (link.now - 1, link.now)
    assert flow.dose_scaled >= 400_000 * 86_400
    assert mirror.path.volume_scaled == 250 * 86_400  # full of the reservoir's drug
    assert mirror.dose_log[0].daily_scaled == 400_000 * 86_400


def test_without_the_record_the_mirror_takes_the_strictest_category() -> None:
    link = Link.new(programmed())
    s = link.session
    link.exchange(s.open("t"))
    link.exchange(s.authenticated())
    mirror = s.mirror()
    assert mirror is not None
    assert mirror.record.group is PatientGroup.CHILD
    assert mirror.record.phase is link.pump.therapy.record.phase


def test_a_history_older_than_the_status_must_be_read_again_before_a_check() -> None:
    # found driving the emulator: a status read days after the history made the mirror count the whole
    # day's delivery (status minus a stale history) in its last second: a safe refill refused by DOSE-001
    link = Link.new(programmed())
    s = link.ready()
    link.exchange(s.read_prescription())
    link.exchange(s.read_history())
    assert s.pump.to_reread() == []
    link.wait(3 * DAY)
    link.exchange(s.read_status())
    assert s.pump.to_reread() == ["history"]
    with pytest.raises(SessionError, match="read the history again first"):
        s.set_rate(810)
    link.exchange(s.read_history())
    assert s.pump.to_reread() == []
    mirror = s.mirror()
    assert mirror is not None
    assert max(f.rate_ul_day for f in mirror.delivered) == 800  # no lump of "unknown" delivery at the end
