"""Stateful properties of the pump and session machines under random commands, time and faults."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from conftest import examples
from factories import DAY, POLICY, T0, ack, patient, prescription, programmed
from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Firmware
from itbproto.core.machines import PUMP, SESSION
from itbproto.core.machines.pump import snapshot
from itbproto.core.safety import evaluate
from itbproto.core.wire import (
    NO_ACK,
    Ack,
    Acknowledgement,
    AlarmAcknowledge,
    AlarmSilence,
    BolusCancel,
    BolusKind,
    BolusStart,
    CommitPrescription,
    Effect,
    Hello,
    Kind,
    Message,
    MriBegin,
    MriEnd,
    Nack,
    Origin,
    PatientGroup,
    PatientRecord,
    Phase,
    PrescriptionStaged,
    Procedure,
    Reassembler,
    RecordProcedure,
    RefillBegin,
    RefillConfirm,
    RefillResidual,
    RefillSession,
    RefillStaged,
    RefillStageDrug,
    Resume,
    Role,
    SetPatientRecord,
    SetRate,
    Severity,
    StagePrescription,
    StatusRequest,
    Suspend,
    WithdrawalRisk,
    decode,
    encode,
    fragment,
)
from itbproto.errors import SafetyViolation, SessionError, TherapyStateError
from itbproto.qa.strategies import messages
from machines_link import CLINICIAN, Link, new_pump

MAX_SILENCE = POLICY("ALARM-001", "max_reannunciate_s")


class PumpProperties(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pump = new_pump(programmed(prescription(max_daily_dose_ng=900_000, max_bolus_ng=100_000)))
        self.now = T0
        self.txn = 0
        self.last: tuple[Message, int, Message] | None = None  # last command, its txn and reply
        self.refill_steps: dict[int, set[str]] = {}
        self.staged: PrescriptionStaged | None = None
        self.refill: RefillSession | None = None

    def send(self, request: Message, acknowledge: bool = False) -> Message:
        """Send ``request``; acknowledging: with exactly the hazards its verdict asks to acknowledge."""
        self.pump.tick(self.now)
        before = self.pump.state
        if acknowledge and isinstance(getattr(request, "ack", None), Acknowledgement):
            try:
                rules = evaluate(request, before.therapy, POLICY).to_acknowledge
            except TherapyStateError:
                rules = ()
            request = replace(cast(Any, request), ack=ack(*rules))
        self.txn += 1
        reply = self.pump.handle(request, self.txn, self.now, CLINICIAN).reply
        assert decode(encode(reply, txn=self.txn)).message == reply, "every reply the pump makes can be sent"
        if isinstance(reply, Nack):
            assert self.pump.state.therapy == before.therapy, "a refused command changed the pump"
        elif request.CHANGES_DELIVERY:
            assert evaluate(request, before.therapy, POLICY).accepted, (
                "delivery changed without an accepted verdict"
            )
        self.last = (request, self.txn, reply)
        self._track(request, reply)
        return reply

    def _track(self, request: Message, reply: Message) -> None:
        match reply:
            case PrescriptionStaged():
                self.staged = reply
            case RefillSession():
                self.refill, self.refill_steps[reply.refill_id] = reply, set()
            case RefillStaged():
                self.refill_steps[reply.refill_id].add("staged")
            case Ack() if isinstance(request, RefillConfirm):
                assert self.refill_steps[request.refill_id] >= {"residual", "staged"}, (
                    "refill confirmed early"
                )
        if isinstance(request, RefillResidual) and not isinstance(reply, Nack):
            self.refill_steps[request.refill_id].add("residual")

    @rule(rate=st.integers(40, 1_400), acknowledge=st.booleans())
    def set_rate(self, rate: int, acknowledge: bool) -> None:
        self.send(SetRate(rate_ul_day=rate), acknowledge)

    @rule(rate=st.integers(40, 1_400), limit=st.integers(100_000, 1_000_000), acknowledge=st.booleans())
    def stage_and_commit(self, rate: int, limit: int, acknowledge: bool) -> None:
        self.send(
            StagePrescription(
                prescription=prescription(rate=rate, max_daily_dose_ng=limit, max_bolus_ng=100_000)
            )
        )
        if self.staged is not None:
            commit = CommitPrescription(stage_id=self.staged.stage_id, digest=self.staged.digest)
            self.send(commit, acknowledge)

    @rule(
        kind=st.sampled_from(BolusKind),
        volume=st.integers(1, 300),
        duration=st.sampled_from([600, 3600, 7200]),
        acknowledge=st.booleans(),
    )
    def bolus(self, kind: BolusKind, volume: int, duration: int, acknowledge: bool) -> None:
        self.send(BolusStart(kind=kind, volume_ul=volume, duration_s=duration), acknowledge)

    @rule(procedure=st.sampled_from(Procedure), catheter=st.integers(0, 300))
    def surgery(self, procedure: Procedure, catheter: int) -> None:
        self.send(RecordProcedure(procedure=procedure, catheter_volume_ul=catheter))

    @rule(
        group=st.sampled_from(PatientGroup),
        origin=st.sampled_from(Origin),
        phase=st.sampled_from(Phase),
        risks=st.frozensets(st.sampled_from(WithdrawalRisk)),
    )
    def patient_record(
        self, group: PatientGroup, origin: Origin, phase: Phase, risks: frozenset[WithdrawalRisk]
    ) -> None:
        self.send(SetPatientRecord(group=group, origin=origin, risks=risks, phase=phase))

    @rule(emptied=st.integers(0, 21_000), acknowledge=st.booleans())
    def mri(self, emptied: int, acknowledge: bool) -> None:
        self.send(MriBegin(emptied_ul=emptied), acknowledge)
        self.send(MriEnd())

    @rule()
    def cancel(self) -> None:
        bolus = self.pump.therapy.bolus
        self.send(BolusCancel(bolus_id=bolus.bolus_id if bolus else 999))

    @rule(duration=st.sampled_from([0, 600, DAY]), acknowledge=st.booleans())
    def suspend(self, duration: int, acknowledge: bool) -> None:
        self.send(Suspend(duration_s=duration), acknowledge)

    @rule(acknowledge=st.booleans())
    def resume(self, acknowledge: bool) -> None:
        self.send(Resume(), acknowledge)

    @rule(
        delta=st.integers(-3_000, 3_000),
        volume=st.integers(5_000, 21_000),
        conc=st.sampled_from([500, 2000]),
        early=st.booleans(),
        bridge=st.booleans(),
        acknowledge=st.booleans(),
    )
    def refill_flow(
        self, delta: int, volume: int, conc: int, early: bool, bridge: bool, acknowledge: bool
    ) -> None:
        if not isinstance(self.send(RefillBegin()), RefillSession) or self.refill is None:
            return
        rid = self.refill.refill_id
        confirm = RefillConfirm(
            refill_id=rid, volume_ul=volume, concentration_ug_ml=conc, digest=0, bridge=bridge
        )
        if early:  # try to confirm before both steps
            self.send(confirm, acknowledge)
        self.send(RefillResidual(refill_id=rid, measured_ul=max(0, self.refill.expected_residual_ul + delta)))
        staged = self.send(RefillStageDrug(refill_id=rid, volume_ul=volume, concentration_ug_ml=conc))
        digest = staged.digest if isinstance(staged, RefillStaged) else 0
        self.send(replace(confirm, digest=digest), acknowledge)

    @rule(data=st.data())
    def handle_alarm(self, data: st.DataObject) -> None:
        alarms = self.pump.therapy.alarms
        if not alarms:
            return
        alarm = data.draw(st.sampled_from(alarms))
        if data.draw(st.booleans()):
            self.send(AlarmAcknowledge(alarm_id=alarm.alarm_id))
        else:
            self.send(AlarmSilence(alarm_id=alarm.alarm_id, duration_s=data.draw(st.integers(1, 7_200))))

    @rule(stalled=st.booleans())
    def motor(self, stalled: bool) -> None:
        self.pump.set_motor_stalled(stalled, self.now)

    @rule(percent=st.sampled_from([0, 30, 97, 100]))
    def battery(self, percent: int) -> None:  # a cell fault: a share of the charge lost at once
        self.pump.drain_battery(percent, self.now)

    @precondition(lambda self: self.last is not None)
    @rule()
    def retry_last(self) -> None:
        assert self.last is not None
        request, txn, reply = self.last
        if request.EFFECT is not Effect.COMMAND:
            return
        self.pump.tick(self.now)
        before = self.pump.state
        assert self.pump.handle(request, txn, self.now, CLINICIAN).reply == reply
        assert self.pump.state == before, "a retried transaction was applied again"

    @rule(seconds=st.integers(1, 2 * 3600))
    def wait(self, seconds: int) -> None:
        self.now += seconds
        self.pump.tick(self.now)

    @invariant()
    def mode_is_declared(self) -> None:
        assert self.pump.mode in PUMP.states

    @invariant()
    def the_state_is_saved_and_restored_exactly(self) -> None:
        state = self.pump.state
        assert snapshot.load(json.loads(json.dumps(snapshot.dump(state)))) == state

    @invariant()
    def critical_alarms_are_never_silent_for_long(self) -> None:
        for alarm in self.pump.therapy.alarms:
            if alarm.severity is Severity.CRITICAL and alarm.silenced_until:
                assert alarm.silenced_until - self.pump.therapy.now <= MAX_SILENCE


PumpProperties.TestCase.settings = settings(max_examples=examples(200), stateful_step_count=30, deadline=None)
TestPumpProperties = PumpProperties.TestCase


class SessionProperties(RuleBasedStateMachine):
    """A programmer with lost replies and dropped links: uncertainty is resolved before anything else."""

    def __init__(self) -> None:
        super().__init__()
        self.link = Link.new(
            programmed(prescription(max_daily_dose_ng=900_000, max_bolus_ng=100_000)), mtu=23
        )
        self.session = self.link.ready()
        self.link.exchange(self.session.read_prescription())
        self.link.exchange(self.session.read_history())

    def attempt(self, make: Callable[[], list[bytes]], lose: bool) -> None:
        try:
            chunks = make()
        except (SessionError, SafetyViolation):
            return
        self.link.exchange(chunks, lose_reply=lose)
        if lose:
            self.attempt(self.session.response_lost, False)

    @rule(rate=st.integers(600, 1_100), lose=st.booleans())
    def set_rate(self, rate: int, lose: bool) -> None:
        self.attempt(lambda: self.session.set_rate(rate), lose)

    @rule(volume=st.integers(1, 200), lose=st.booleans())
    def bolus(self, volume: int, lose: bool) -> None:
        self.attempt(lambda: self.session.start_bolus(BolusKind.CLINICIAN, volume, 3600), lose)

    @rule(lose=st.booleans())
    def suspend_resume(self, lose: bool) -> None:
        self.attempt(lambda: self.session.suspend(600, ack("STOP-002")), lose)
        self.read()
        self.attempt(self.session.resume, lose)

    @rule()
    def read(self) -> None:
        self.attempt(self.session.read_status, False)
        self.attempt(self.session.read_prescription, False)
        self.attempt(self.session.read_history, False)

    @rule()
    def resolve(self) -> None:
        self.attempt(self.session.resolve, False)

    @rule()
    def reconnect(self) -> None:
        self.link.drop()
        self.link.exchange(self.session.open())
        self.link.exchange(self.session.authenticated())
        self.attempt(self.session.read_prescription, False)

    @rule(seconds=st.integers(1, 3_600))
    def wait(self, seconds: int) -> None:
        self.link.wait(seconds)

    @invariant()
    def state_is_declared(self) -> None:
        assert self.session.state in SESSION.states

    @invariant()
    def uncertainty_blocks_everything_but_the_status_read_and_the_retry(self) -> None:
        u = self.session.uncertain
        pending = self.session.pending
        if u is not None and pending is not None:
            assert isinstance(pending, StatusRequest | Hello) or pending == u.request
        if u is None:
            assert self.session.state != "uncertain"


SessionProperties.TestCase.settings = settings(
    max_examples=examples(150), stateful_step_count=30, deadline=None
)
TestSessionProperties = SessionProperties.TestCase


@pytest.mark.rule(
    "DOSE-001", "BOL-001", "TITR-001", "TITR-002", "PBOL-001", "PBOL-002", "STOP-002", "MRI-002"
)
@settings(max_examples=examples(150), deadline=None)
@given(
    rate=st.integers(400, 1_000),
    record=st.builds(patient, group=st.sampled_from(PatientGroup), origin=st.sampled_from(Origin)),
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
        st.builds(
            Suspend, duration_s=st.sampled_from([0, 600]), ack=st.sampled_from([NO_ACK, ack("STOP-002")])
        ),
        st.builds(MriBegin, emptied_ul=st.just(0), ack=st.sampled_from([NO_ACK, ack("MRI-002")])),
    ),
)
def test_programmer_and_pump_reach_the_same_verdict(
    rate: int, record: PatientRecord, events: list[tuple[int, str]], command: Message
) -> None:
    """With status, patient record, prescription and history read, the programmer's checks equal the
    pump's."""
    p = prescription(rate=rate, max_daily_dose_ng=900_000, max_bolus_ng=60_000)
    link = Link.new(programmed(p, record=record))
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
        link.pump.handle(request, txn, link.now, CLINICIAN)
    link.wait(3_600)  # let any bolus finish: the programmer sees a running bolus only conservatively
    session = link.ready()
    link.exchange(session.read_prescription())
    link.exchange(session.read_history())
    mirror = session.mirror()
    assert mirror is not None
    try:
        expected = evaluate(command, link.pump.therapy, POLICY).rule_ids
    except TherapyStateError:
        return
    assert evaluate(command, mirror, POLICY).rule_ids == expected


@settings(max_examples=examples(300), deadline=None)
@given(
    requests=st.lists(st.tuples(messages(), st.integers(0, 2**32 - 1)), max_size=8),
    role=st.sampled_from(Role),
    mtu=st.sampled_from([None, 23, 64, 517]),
)
def test_any_message_gets_a_reply_that_crosses_the_link_and_a_refusal_changes_nothing(
    requests: list[tuple[Message, int]], role: Role, mtu: int | None
) -> None:
    """Whatever arrives (any type, any values, any txn, any role), the pump answers with bytes that
    survive fragmentation and decoding on the other side, and a refusal changes no therapy."""
    firmware = Firmware(new_pump(programmed(prescription(max_daily_dose_ng=900_000, max_bolus_ng=100_000))))
    link = firmware.attach(Connection(Side.PUMP, mtu=mtu))
    hello = Hello(protocol_version=1, role=role, max_frame=1045, client="any")
    joins = Reassembler()
    for seq, (request, txn) in enumerate([(hello, 1), *requests]):
        before = firmware.pump.state.therapy
        wire = encode(request, txn=txn, seq=seq)
        chunks = [wire] if mtu is None else list(fragment(wire, mtu, seq % 256))
        out = [c for chunk in chunks for c in firmware.receive(link, chunk, T0).get(link, [])]
        frames = out if mtu is None else [f for c in out for f in joins.feed(c)]
        replies = [decode(f).message for f in frames if isinstance(f, bytes)]
        assert len(replies) == len(frames)
        answers = [r for r in replies if r.KIND is Kind.RESPONSE]
        assert len(answers) == 1, replies
        if isinstance(answers[0], Nack):
            assert firmware.pump.state.therapy == before
