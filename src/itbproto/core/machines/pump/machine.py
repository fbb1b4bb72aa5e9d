"""PumpMachine: the device's behaviour, sans-IO. A request in, one answer out; time is a parameter.

Every request goes through the steps of specs/protocol.md §5, in their order (the
first that refuses it decides the Nack; a refusal changes nothing):

1-2. it must be a request (``UNKNOWN_MESSAGE``), with a transaction id (``BAD_TXN``);
3-4. a session must be open, except for Hello (``NOT_AUTHENTICATED``), and its role
     must allow the request (``ROLE_FORBIDDEN``);
5-7. a command's transaction id: the id of a remembered command with the identical
     request gets that command's stored reply again; with a different request,
     ``TXN_REUSED``; an id not newer than ``last_txn``, ``REPLAY``; one too far ahead,
     ``BAD_TXN``. From here on the command has used its id: its answer, whatever it
     is, is remembered for a retry;
8.   a pump at end of service takes no command but ending the session and quieting
     alarms (``HARDWARE_FAULT``);
9-10. its handler (:mod:`~itbproto.core.machines.pump.handlers`): the therapy model and the
     safety engine (``WRONG_STATE``, ``UNKNOWN_ID``, ``STALE_STAGE``, ``SAFETY_RULE``),
     the move in the mode table (``WRONG_STATE`` if it has none), the reply, the event.

The whole mutable state is one value, :attr:`PumpMachine.state`; the event log
is kept beside it. The emulator wraps this class with hardware, faults,
persistence and servers.
"""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.machines.pump import alarms, reports
from itbproto.core.machines.pump.facts import event_facts
from itbproto.core.machines.pump.handlers import EOS_ALLOWED, HANDLERS, Handler, Refusal, Step, event_value
from itbproto.core.machines.pump.log import EVENT_LOG_LIMIT, EventLog
from itbproto.core.machines.pump.state import (
    MAX_TXN_STEP,
    TXN_MEMORY,
    Answer,
    DeviceState,
    Outcome,
    Session,
    StoredKey,
)
from itbproto.core.machines.pump.table import PUMP, TIME_TRIGGERS, mode_of
from itbproto.core.safety import SafetyPolicy, Verdict, evaluate, within_policy
from itbproto.core.security.pairing import PairedKey, PinGuard
from itbproto.core.therapy.battery import capacity_scaled
from itbproto.core.therapy.commands import apply
from itbproto.core.therapy.flows import SCALE, Flow, bolus_flows
from itbproto.core.therapy.state import REFILL_TIMEOUT_S, ActiveBolus, Battery, TherapyState, advance
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, ErrorCode, EventCode
from itbproto.core.wire.fields import Json
from itbproto.core.wire.message import Effect, Kind, Message
from itbproto.errors import StaleStageError, TherapyStateError, UnknownIdError

__all__ = ["REFILL_TIMEOUT_S", "PumpMachine"]

_TIME_EVENTS = {
    "bolus_done": EventCode.BOLUS_COMPLETED,
    "auto_resume": EventCode.RESUMED,
    "refill_timeout": EventCode.REFILL_ABORTED,
    "end_of_service": EventCode.FAULT,
    "discharge": EventCode.BOLUS_STARTED,
}


class PumpMachine:
    """The pump: :meth:`handle` answers one request, :meth:`tick` lets time pass. No I/O, no clock."""

    def __init__(self, state: DeviceState, policy: SafetyPolicy, *, log: EventLog | None = None) -> None:
        self._state = state
        self.policy = policy
        self.log = log if log is not None else EventLog()
        self._delivered: list[Flow] = []
        #: the facts of the entries logged since :meth:`take_facts` (see ``pump/facts.py``)
        self._facts: dict[int, dict[str, Json]] = {}
        self._settled: TherapyState | None = None

    @classmethod
    def new(cls, therapy: TherapyState, policy: SafetyPolicy, *, serial: str = "ITB-000001") -> PumpMachine:
        """A pump switched on for the first time (its log starts with BOOT), its alarm thresholds within
        its policy."""
        therapy = replace(therapy, thresholds=within_policy(therapy.thresholds, policy))
        pump = cls(DeviceState(serial=serial, therapy=therapy), policy)
        pump.log.append(therapy.now, EventCode.BOOT)
        return pump

    @property
    def state(self) -> DeviceState:
        """Everything the pump keeps, as one immutable value."""
        return self._state

    @property
    def therapy(self) -> TherapyState:
        return self._state.therapy

    @property
    def mode(self) -> str:
        """The pump's state in the mode table (derived from the therapy, never stored)."""
        return mode_of(self._state.therapy)

    # --- the request path ------------------------------------------------------------------------------

    def handle(
        self, request: Message, txn: int, now: int, session: Session, *, quiet: bool = False
    ) -> Answer:
        """The answer to ``request`` (transaction ``txn``) at device time ``now``, in ``session``. A
        refusal is logged (a stranger's when there is no session), unless ``quiet``: the firmware counts
        it instead."""
        notifications = self.tick(now)
        try:
            remembered = self._admit(request, txn, session)
        except Refusal as refusal:  # steps 1-7: the id is not used
            return Answer(self._refused(request, txn, refusal, session, quiet), session, notifications)
        if remembered is not None:
            return Answer(remembered, session, notifications, repeated=True)
        try:
            reply, session = self._apply(request, txn, session)
        except Refusal as refusal:  # steps 8-10: a command's id is used by its refusal
            reply = self._refused(request, txn, refusal, session, quiet)
            if request.EFFECT is Effect.COMMAND:
                self._state = self._remember(self._state, txn, request, reply)
            return Answer(reply, session, notifications)
        # what was applied may raise or clear an alarm at once (new thresholds, a refill, a commit)
        return Answer(reply, session, notifications + self._alarms(self._state.therapy))

    def _refused(self, request: Message, txn: int, refusal: Refusal, session: Session, quiet: bool) -> m.Nack:
        if not quiet:
            code, stranger = int(refusal.code), session.role is None
            self.log.append(self.therapy.now, EventCode.COMMAND_REFUSED, txn, code, stranger=stranger)
        return m.Nack.refusing(request.TYPE, refusal.code, refusal.detail, refusal.rules)

    def _admit(self, request: Message, txn: int, session: Session) -> Message | None:
        """Steps 1-7; returns a remembered reply to send again, or None to go on."""
        if request.KIND is not Kind.REQUEST:
            raise Refusal(ErrorCode.UNKNOWN_MESSAGE, f"{type(request).__name__} is not a request")
        if txn == 0:
            raise Refusal(ErrorCode.BAD_TXN, "a request needs a transaction id (not 0)")
        if request.EFFECT is not Effect.OPEN:
            if session.role is None:
                raise Refusal(ErrorCode.NOT_AUTHENTICATED, "no session: send Hello first")
            why = m.role_refusal(session.role, request)
            if why is not None:
                raise Refusal(ErrorCode.ROLE_FORBIDDEN, why)
        if request.EFFECT is not Effect.COMMAND:
            return None
        state = self._state
        stored = state.outcome(txn)
        if stored is not None:
            if stored.request != request:
                raise Refusal(ErrorCode.TXN_REUSED, f"transaction {txn} was used by another request")
            return stored.reply
        if txn <= state.last_txn:
            raise Refusal(ErrorCode.REPLAY, f"transaction {txn} is not newer than {state.last_txn}")
        if txn > state.last_txn + MAX_TXN_STEP:
            raise Refusal(
                ErrorCode.BAD_TXN, f"transaction {txn} jumps more than {MAX_TXN_STEP} past {state.last_txn}"
            )
        return None

    def _apply(self, request: Message, txn: int, session: Session) -> tuple[Message, Session]:
        """Steps 8-10. Everything is computed first; the new state is kept only at the end."""
        if (
            self.mode == "end_of_service"
            and request.EFFECT is Effect.COMMAND
            and not isinstance(request, EOS_ALLOWED)
        ):
            raise Refusal(ErrorCode.HARDWARE_FAULT, "end of service: the pump takes no commands")
        handler = HANDLERS[type(request)]
        before = self._state
        verdict = self._engine(request, before.therapy) if handler.engine else None
        therapy = before.therapy if verdict is None or verdict.after is None else verdict.after
        self._check_mode(handler, before.therapy, therapy)
        step = Step(request, txn, session, before, replace(before, therapy=therapy), self.policy, self.log)
        if handler.check is not None:
            handler.check(step)
        reply = handler.reply(step)
        after = step.after
        if request.EFFECT is Effect.COMMAND:
            after = self._remember(after, txn, request, reply)
        self._state = after
        if handler.event is not None:
            code = handler.event if isinstance(handler.event, EventCode) else handler.event(step)
            record = self.log.append(before.therapy.now, code, txn, event_value(request))
            self._note(record.index, event_facts(before.therapy, after.therapy))
        if verdict is not None:
            self._log_acknowledgements(verdict, txn, before.therapy.now)
        now, held = before.therapy.now, after.therapy.held_until
        if held > now and held != before.therapy.held_until:  # the pump's own interruption (txn 0): logged
            self.log.append(now, EventCode.SUSPENDED, 0, held - now, "DOSE-001: pump hold")
        return reply, session if handler.session is None else handler.session(session, request)

    def _log_acknowledgements(self, verdict: Verdict, txn: int, at: int) -> None:
        """Each hazard the applied command acknowledged, and who did: one log entry each."""
        ack = getattr(verdict.command, "ack", m.NO_ACK)
        for rule_id in verdict.to_acknowledge:
            self.log.append(at, EventCode.ACKNOWLEDGED, txn, 0, f"{rule_id} by {ack.by or '?'}")

    def _engine(self, request: Message, therapy: TherapyState) -> Verdict:
        """The safety engine's verdict on a command it accepts (with the therapy it produces); or refused."""
        try:
            verdict = evaluate(request, therapy, self.policy)
        except UnknownIdError as exc:
            raise Refusal(ErrorCode.UNKNOWN_ID, str(exc)) from None
        except StaleStageError as exc:
            raise Refusal(ErrorCode.STALE_STAGE, str(exc)) from None
        except TherapyStateError as exc:
            raise Refusal(ErrorCode.WRONG_STATE, str(exc)) from None
        if verdict.violations:
            raise Refusal(ErrorCode.SAFETY_RULE, verdict.violations[0].reason, verdict.rule_ids)
        if verdict.unacknowledged:
            first = verdict.unacknowledged[0]
            raise Refusal(ErrorCode.NEEDS_ACKNOWLEDGEMENT, f"acknowledge: {first.reason}", verdict.rule_ids)
        assert verdict.after is not None  # an accepted verdict carries the state it produces
        return verdict

    @staticmethod
    def _check_mode(handler: Handler, before: TherapyState, after: TherapyState) -> None:
        """A command moves the mode only along its transition in the table."""
        src, dst = mode_of(before), mode_of(after)
        if handler.trigger is None:
            if src != dst:
                raise Refusal(
                    ErrorCode.INTERNAL, f"the mode would move from {src} to {dst} without a transition"
                )
        elif not PUMP.allows(handler.trigger, src, dst):
            raise Refusal(ErrorCode.WRONG_STATE, f"cannot {handler.trigger.replace('_', ' ')} when {src}")

    @staticmethod
    def _remember(state: DeviceState, txn: int, request: Message, reply: Message) -> DeviceState:
        outcomes = (*state.outcomes, Outcome(txn, request, reply))[-TXN_MEMORY:]
        return replace(state, last_txn=max(state.last_txn, txn), outcomes=outcomes)

    # --- time and hardware -------------------------------------------------------------------------------

    def tick(self, now: int) -> tuple[m.AlarmNotify, ...]:
        """Let delivery run until ``now``; move the mode as time does; raise, sound and clear alarms.

        Returns the notifications to send on every link. A ``now`` in the past changes nothing.
        """
        therapy = self._state.therapy
        if now > therapy.now:
            therapy = self._elapse(therapy, now)
        return self._alarms(therapy)

    def _elapse(self, therapy: TherapyState, now: int) -> TherapyState:
        refill = therapy.refill
        if refill is not None and now >= refill.started_at + REFILL_TIMEOUT_S:
            timeout = refill.started_at + REFILL_TIMEOUT_S
            if timeout > therapy.now:
                therapy = self._move(therapy, self._advance(therapy, timeout))
            therapy = self._move(therapy, apply(therapy, m.RefillAbort(refill_id=refill.refill_id)))
        return self._move(therapy, self._advance(therapy, now))

    def _advance(self, therapy: TherapyState, now: int) -> TherapyState:
        after, tip = advance(therapy, now)
        self._delivered.extend(tip)
        return after

    def take_delivered(self) -> tuple[Flow, ...]:
        """What left the catheter tip since the last call (saline too), in order: the delivery ledger's
        new entries."""
        delivered, self._delivered = tuple(self._delivered), []
        return delivered

    def _note(self, index: int, facts: dict[str, Json]) -> None:
        if facts:
            self._facts[index] = facts
            if len(self._facts) > EVENT_LOG_LIMIT:  # nobody takes them: keep as many as the log does
                del self._facts[min(self._facts)]

    def take_facts(self) -> dict[int, dict[str, Json]]:
        """The facts of the entries logged since the last call, by entry index (what an auditor needs
        beyond the wire record: :func:`~itbproto.core.machines.pump.facts.event_facts`)."""
        facts, self._facts = self._facts, {}
        return facts

    def _move(self, before: TherapyState, after: TherapyState) -> TherapyState:
        """A change time made: it must follow a time-driven transition of the table; it is logged."""
        src, dst = mode_of(before), mode_of(after)
        if src != dst:
            trigger = next((t for t in TIME_TRIGGERS if PUMP.allows(t, src, dst)), None)
            if trigger is None:
                raise AssertionError(f"time moved the pump from {src} to {dst}: not in the mode table")
            record = self.log.append(after.now, _TIME_EVENTS[trigger])
            self._note(record.index, event_facts(before, after, command=False))
        self._state = replace(self._state, therapy=after)
        return after

    def _alarms(self, therapy: TherapyState) -> tuple[m.AlarmNotify, ...]:
        if therapy is self._settled:  # the alarms were brought up to date on this very state
            return ()
        therapy, announce, cleared = alarms.update(therapy)
        self._settled = therapy  # (a pure function of the state: the result is up to date too)
        for record in announce:
            self.log.append(therapy.now, EventCode.ALARM_RAISED, 0, int(record.code))
        for record in cleared:
            self.log.append(therapy.now, EventCode.ALARM_CLEARED, 0, int(record.code))
        self._state = replace(self._state, therapy=therapy)
        return tuple(m.AlarmNotify(alarm=record) for record in announce)

    def drain_battery(self, percent: int, now: int) -> tuple[m.AlarmNotify, ...]:
        """A hardware event: the battery loses ``percent`` of a new one's charge at once (a cell
        fault); the indicators follow from what is left."""
        if not 0 <= percent <= 100:
            raise ValueError(f"a percentage of the charge, not {percent}")
        notes = self.tick(now)
        therapy = self._state.therapy
        lost = capacity_scaled(therapy.profile) * percent // 100
        drained = replace(therapy, charge_scaled=max(therapy.charge_scaled - lost, 0))
        return notes + self._fault(therapy, self._advance(drained, therapy.now), f"battery lost {percent} %")

    def discharge(self, now: int) -> tuple[m.AlarmNotify, ...]:
        """A hardware event: the valves of a valve-gated pump open in a strong magnetic field, and the
        reservoir empties into the patient as fast as the path lets it (an uncommanded bolus, id 0)."""
        notes = self.tick(now)
        therapy = self._state.therapy
        volume = therapy.reservoir_ul
        if volume == 0 or therapy.battery is Battery.EOS:
            return notes
        duration = -(-volume * SCALE // therapy.profile.max_bolus_rate_ul_day)
        flows = bolus_flows(volume, duration, therapy.now, therapy.concentration_ug_ml)
        bolus = ActiveBolus(0, BolusKind.CLINICIAN, therapy.now, volume, flows)
        return notes + self._fault(therapy, replace(therapy, bolus=bolus), f"valves open: {volume} uL")

    def set_motor_stalled(self, stalled: bool, now: int) -> tuple[m.AlarmNotify, ...]:
        """A hardware event: the motor stalled (nothing flows) or runs again."""
        notes = self.tick(now)
        therapy = self._state.therapy
        what = "motor stalled" if stalled else "motor runs"
        return notes + self._fault(therapy, replace(therapy, motor_stalled=stalled), what)

    def _fault(self, before: TherapyState, after: TherapyState, what: str) -> tuple[m.AlarmNotify, ...]:
        if after != before:
            self.log.append(before.now, EventCode.FAULT, detail=what)
            self._move(before, after)
        return self._alarms(self._state.therapy)

    # --- pairing -------------------------------------------------------------------------------------------

    def _pin_guard(self) -> PinGuard:
        return PinGuard(failures=self._state.pin_failures, locked_until=self._state.pin_locked_until)

    def pairing_allowed(self, now: int) -> bool:
        """False while wrong PINs have locked pairing (:class:`~itbproto.core.security.PinGuard`)."""
        return self._pin_guard().allowed(now)

    def pin_failed(self, now: int) -> None:
        """A wrong PIN: counted, logged, and past the free ones pairing locks for longer each time."""
        guard = self._pin_guard()
        guard.failed(now)
        self._state = replace(self._state, pin_failures=guard.failures, pin_locked_until=guard.locked_until)
        self.log.append(now, EventCode.PAIRING_FAILED, 0, guard.failures)

    def add_key(self, key: PairedKey, now: int) -> None:
        """A programmer paired: keep its key (id :attr:`DeviceState.next_key_id`) with its role; logged."""
        keys = (*self._state.keys, StoredKey(key.key_id, key.role, key.long_term))
        self._state = replace(self._state, keys=keys, pin_failures=0, pin_locked_until=0)
        self.log.append(now, EventCode.PAIRED, 0, key.key_id, key.role.name.lower())

    # --- reports -------------------------------------------------------------------------------------------

    def status(self) -> m.StatusReport:
        return reports.status(self._state)
