"""Stateful properties of the pump and session machines under random commands, time and faults."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from factories import DAY, POLICY, T0, prescription, programmed
from itbproto.errors import SafetyViolation, SessionError, TherapyStateError
from itbproto.machines import PUMP, SESSION, Outgoing, Resolved, state_of
from itbproto.qa.strategies import messages
from itbproto.safety import evaluate
from itbproto.therapy import Battery
from itbproto.wire import (
    Ack,
    AlarmAcknowledge,
    AlarmSilence,
    BolusCancel,
    BolusKind,
    BolusStart,
    CommitPrescription,
    Hello,
    Kind,
    Message,
    Nack,
    PrescriptionStaged,
    RefillBegin,
    RefillConfirm,
    RefillResidual,
    RefillSession,
    RefillStaged,
    RefillStageDrug,
    ResidualRecorded,
    Resume,
    Role,
    SetRate,
    Severity,
    StagePrescription,
    StatusRequest,
    Suspend,
)
from machines_link import Link, open_pump, say_hello

MAX_SILENCE = POLICY("ALARM-001", "max_reannunciate_s")


class PumpProperties(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pump = open_pump(programmed(prescription(max_daily_dose_ng=900_000, max_bolus_ng=100_000)))
        self.now = T0
        self.txn = 0
        self.last: tuple[Message, int, Message] | None = None  # last delivery change, its txn and reply
        self.refill_steps: dict[int, set[str]] = {}
        self.staged: PrescriptionStaged | None = None
        self.refill: RefillSession | None = None
        self.refill_staged: RefillStaged | None = None

    def send(self, request: Message) -> Message:
        self.pump.tick(self.now)
        before = self.pump.therapy
        self.txn += 1
        reply = self.pump.handle(request, self.txn, self.now)
        if isinstance(reply, Nack):
            assert self.pump.therapy == before, "a refused command changed the pump"
        elif request.CHANGES_DELIVERY:
            assert evaluate(request, before, POLICY).accepted, "delivery changed without an accepted verdict"
            self.last = (request, self.txn, reply)
        self._track(request, reply)
        return reply

    def _track(self, request: Message, reply: Message) -> None:
        match reply:
            case PrescriptionStaged():
                self.staged = reply
            case RefillSession():
                self.refill, self.refill_steps[reply.refill_id] = reply, set()
            case ResidualRecorded():
                self.refill_steps[reply.refill_id].add("residual")
            case RefillStaged():
                self.refill_staged = reply
                self.refill_steps[reply.refill_id].add("staged")
            case Ack() if isinstance(request, RefillConfirm):
                assert self.refill_steps[request.refill_id] == {"residual", "staged"}, (
                    "refill confirmed early"
                )

    @rule(rate=st.integers(40, 1_400))
    def set_rate(self, rate: int) -> None:
        self.send(SetRate(rate_ul_day=rate))

    @rule(rate=st.integers(40, 1_400), limit=st.integers(100_000, 1_000_000))
    def stage_and_commit(self, rate: int, limit: int) -> None:
        self.send(
            StagePrescription(
                prescription=prescription(rate=rate, max_daily_dose_ng=limit, max_bolus_ng=100_000)
            )
        )
        if self.staged is not None:
            self.send(CommitPrescription(stage_id=self.staged.stage_id, digest=self.staged.digest))

    @rule(
        kind=st.sampled_from(BolusKind),
        volume=st.integers(1, 300),
        duration=st.sampled_from([600, 3600, 7200]),
    )
    def bolus(self, kind: BolusKind, volume: int, duration: int) -> None:
        self.send(BolusStart(kind=kind, volume_ul=volume, duration_s=duration))

    @rule()
    def cancel(self) -> None:
        bolus = self.pump.therapy.bolus
        self.send(BolusCancel(bolus_id=bolus.bolus_id if bolus else 999))

    @rule(duration=st.sampled_from([0, 600, DAY]))
    def suspend(self, duration: int) -> None:
        self.send(Suspend(duration_s=duration))

    @rule()
    def resume(self) -> None:
        self.send(Resume())

    @rule(delta=st.integers(-3_000, 3_000), volume=st.integers(5_000, 21_000), early=st.booleans())
    def refill_flow(self, delta: int, volume: int, early: bool) -> None:
        if not isinstance(self.send(RefillBegin()), RefillSession) or self.refill is None:
            return
        rid = self.refill.refill_id
        if early:  # try to confirm before both steps
            self.send(
                RefillConfirm(
                    refill_id=rid,
                    volume_ul=volume,
                    concentration_ug_ml=500,
                    digest=0,
                    discrepancy_acknowledged=True,
                )
            )
        self.send(RefillResidual(refill_id=rid, measured_ul=max(0, self.refill.expected_residual_ul + delta)))
        staged = self.send(RefillStageDrug(refill_id=rid, volume_ul=volume, concentration_ug_ml=500))
        digest = staged.digest if isinstance(staged, RefillStaged) else 0
        self.send(
            RefillConfirm(
                refill_id=rid,
                volume_ul=volume,
                concentration_ug_ml=500,
                digest=digest,
                discrepancy_acknowledged=True,
            )
        )

    @rule(data=st.data())
    def handle_alarm(self, data: st.DataObject) -> None:
        if not self.pump.alarms:
            return
        alarm = data.draw(st.sampled_from(sorted(self.pump.alarms.values(), key=lambda a: a.alarm_id)))
        if data.draw(st.booleans()):
            self.send(AlarmAcknowledge(alarm_id=alarm.alarm_id))
        else:
            self.send(AlarmSilence(alarm_id=alarm.alarm_id, duration_s=data.draw(st.integers(1, 7_200))))

    @rule(stalled=st.booleans())
    def motor(self, stalled: bool) -> None:
        self.pump.set_motor_stalled(stalled, self.now)

    @rule(level=st.sampled_from([Battery.OK, Battery.ERI, Battery.EOS]))
    def battery(self, level: Battery) -> None:
        if self.pump.therapy.battery is not Battery.EOS:  # end of service is final
            self.pump.set_battery(level, self.now)

    @precondition(lambda self: self.last is not None)
    @rule()
    def retry_last(self) -> None:
        assert self.last is not None
        request, txn, reply = self.last
        self.pump.tick(self.now)
        before = self.pump.therapy
        assert self.pump.handle(request, txn, self.now) == reply
        assert self.pump.therapy == before, "a retried transaction was applied again"

    @rule(seconds=st.integers(1, 2 * 3600))
    def wait(self, seconds: int) -> None:
        self.now += seconds
        self.pump.tick(self.now)

    @invariant()
    def state_is_declared_and_matches_the_therapy(self) -> None:
        assert self.pump.state in PUMP.states
        assert self.pump.state == state_of(self.pump.therapy)

    @invariant()
    def critical_alarms_are_never_silent_for_long(self) -> None:
        for alarm in self.pump.alarms.values():
            if alarm.record.severity is Severity.CRITICAL and alarm.state == "silenced":
                assert alarm.record.silenced_until - self.pump.therapy.now <= MAX_SILENCE
                assert alarm.record.silenced_until > self.pump.therapy.now or self.pump.therapy.now < self.now


PumpProperties.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
TestPumpProperties = PumpProperties.TestCase


class SessionProperties(RuleBasedStateMachine):
    """A programmer with lost replies and dropped links: uncertainty is resolved before anything else."""

    def __init__(self) -> None:
        super().__init__()
        self.link = Link.new(programmed(prescription(max_daily_dose_ng=900_000, max_bolus_ng=100_000)))
        self.session = self.link.ready()
        self.link.exchange(self.session.read_prescription())
        self.waiting_resolution = False

    def attempt(self, make: Callable[[], Outgoing], lose: bool) -> None:
        try:
            out = make()
        except (SessionError, SafetyViolation):
            return
        assert not (self.waiting_resolution and out.message.CHANGES_DELIVERY), "sent while uncertain"
        events = self.link.exchange(out, lose_reply=lose)
        if lose and out.message.CHANGES_DELIVERY:
            self.waiting_resolution = True
        if any(isinstance(e, Resolved) for e in events):
            self.waiting_resolution = False

    @rule(rate=st.integers(600, 1_100), lose=st.booleans())
    def set_rate(self, rate: int, lose: bool) -> None:
        self.attempt(lambda: self.session.set_rate(rate), lose)

    @rule(volume=st.integers(1, 200), lose=st.booleans())
    def bolus(self, volume: int, lose: bool) -> None:
        self.attempt(lambda: self.session.start_bolus(BolusKind.CLINICIAN, volume, 3600), lose)

    @rule(lose=st.booleans())
    def suspend_resume(self, lose: bool) -> None:
        self.attempt(lambda: self.session.suspend(600), lose)
        self.attempt(self.session.resume, lose)

    @rule()
    def read_status(self) -> None:
        self.attempt(self.session.read_status, False)

    @rule()
    def timeout(self) -> None:
        if self.session.pending is not None:
            self.attempt(self.session.response_lost, False)

    @rule()
    def reconnect(self) -> None:
        self.session.disconnected()
        self.link.exchange(self.session.open())
        events = self.link.exchange(self.session.authenticated())
        if any(isinstance(e, Resolved) for e in events):
            self.waiting_resolution = False
        self.attempt(self.session.read_prescription, False)

    @rule(seconds=st.integers(1, 3_600))
    def wait(self, seconds: int) -> None:
        self.link.wait(seconds)

    @invariant()
    def state_is_declared(self) -> None:
        assert self.session.state in SESSION.states

    @invariant()
    def uncertainty_blocks_everything_but_the_status_read(self) -> None:
        if self.session.uncertain is not None:
            pending = self.session.pending
            assert pending is None or isinstance(pending.message, StatusRequest | Hello)


SessionProperties.TestCase.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)
TestSessionProperties = SessionProperties.TestCase


@pytest.mark.rule("DOSE-001", "BOL-001", "TITR-001", "TITR-002", "PBOL-001", "PBOL-002")
@settings(max_examples=150, deadline=None)
@given(
    rate=st.integers(400, 1_000),
    events=st.lists(
        st.tuples(
            st.integers(60, 8 * 3600), st.sampled_from(["patient", "clinician", "rate_up", "rate_down"])
        ),
        max_size=6,
    ),
    command=st.one_of(
        st.builds(SetRate, rate_ul_day=st.integers(300, 1_400)),
        st.builds(
            BolusStart,
            kind=st.sampled_from([BolusKind.CLINICIAN, BolusKind.PATIENT]),
            volume_ul=st.sampled_from([10, 50, 100, 250]),
            duration_s=st.sampled_from([600, 3600]),
        ),
    ),
)
def test_programmer_and_pump_reach_the_same_verdict(
    rate: int, events: list[tuple[int, str]], command: Message
) -> None:
    """With status, prescription and history read, the programmer's checks equal the pump's."""
    link = Link.new(programmed(prescription(rate=rate, max_daily_dose_ng=900_000, max_bolus_ng=60_000)))
    say_hello(link.pump)
    txn = 100
    for wait, what in events:
        link.wait(wait)
        txn += 1
        request = {
            "patient": BolusStart(kind=BolusKind.PATIENT, volume_ul=10, duration_s=600),
            "clinician": BolusStart(kind=BolusKind.CLINICIAN, volume_ul=50, duration_s=600),
            "rate_up": SetRate(rate_ul_day=rate * 11 // 10),
            "rate_down": SetRate(rate_ul_day=rate * 9 // 10),
        }[what]
        link.pump.handle(request, txn, link.now)
    link.wait(3_600)  # let any bolus finish: the programmer sees a running bolus only conservatively
    session = link.ready()
    link.exchange(session.read_prescription())
    link.exchange(session.read_history())
    mirror = session.mirror()
    assert mirror is not None
    pump_view = link.pump.therapy
    try:
        expected = evaluate(command, pump_view, POLICY).rule_ids
    except TherapyStateError:
        return
    assert evaluate(command, mirror, POLICY).rule_ids == expected


@settings(max_examples=300, deadline=None)
@given(
    requests=st.lists(st.tuples(messages(), st.integers(0, 2**32 - 1)), max_size=8),
    role=st.sampled_from(Role),
)
def test_any_message_gets_a_reply_and_a_refusal_changes_nothing(
    requests: list[tuple[Message, int]], role: Role
) -> None:
    """Whatever arrives (any type, any values, any txn, any role), the pump answers and never raises."""
    pump = open_pump(programmed(prescription(max_daily_dose_ng=900_000, max_bolus_ng=100_000)), role)
    for request, txn in requests:
        pump.tick(T0)
        before = pump.therapy
        reply = pump.handle(request, txn, T0)
        assert reply.KIND is not Kind.REQUEST
        if isinstance(reply, Nack):
            assert pump.therapy == before
        assert pump.state == state_of(pump.therapy)
