"""The packaged stateful safety suite: random programming of a pump through PumpClient, every step checked by
the independent oracle (:mod:`itbproto.qa.oracle`). Run it against any target::

    pytest --pyargs itbproto.qa --itb-target=tcp://127.0.0.1:7878

The client's own checks are off (``checks=False``): every command reaches the pump, which must refuse on its
own what breaks a rule. The suite's hands: prescriptions and rate changes, every bolus kind, suspend and
resume, refills (overfill, another concentration, with and without bridge), hazards sent first without and
then with their acknowledgement, device time moved (virtual-clock targets), replies lost (the client
retries the same transaction), the last exchange replayed as captured, and a patient's session sending
clinician commands.
A remote pump is assumed to be programmed by this suite alone while it runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from itbproto.core.machines.session import Summary
from itbproto.core.safety import SafetyPolicy
from itbproto.core.security import PairedKey
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, ErrorCode, PrescriptionMode, Role, Severity
from itbproto.errors import CommandRefusedError, NotAppliedError
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_rules
from itbproto.qa.oracle import DAY, REPLAY, ROLE, Oracle, Violation
from itbproto.qa.plugin import Report, ScopedDatabase
from itbproto.qa.targets import Tap, Target, pair

T = TypeVar("T")
#: quick: the same 1,500 steps every run (derandomized); a violation found is shrunk to the shortest steps
#: that show it (hypothesis bounds the shrinking) and printed as a script to replay;
#: thorough: hunts longer, with a new search each run
PROFILES = {
    "quick": settings(
        max_examples=60,
        stateful_step_count=25,
        deadline=None,
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        derandomize=True,
    ),
    "thorough": settings(max_examples=400, stateful_step_count=60, deadline=None),
}
RATES = st.one_of(st.integers(0, 4_000), st.sampled_from([8_000, 20_000, 100_000]))
CONCENTRATIONS = st.sampled_from([50, 500, 2_000])


def prescription(rate: int, concentration: int, daily_ng: int) -> m.Prescription:
    return m.Prescription(
        mode=PrescriptionMode.CONTINUOUS,
        concentration_ug_ml=concentration,
        steps=(m.FlexStep(start_s=0, rate_ul_day=rate),),
        boluses=(),
        patient=m.PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3),
        max_daily_dose_ng=daily_ng,
        max_bolus_ng=50_000,
    )


def confirmed(summary: Summary) -> m.Acknowledgement:
    """The user confirms a staged prescription, acknowledging the hazards its summary names."""
    return m.Acknowledgement(rules=summary.acknowledge, by="qa")


def declined(summary: Summary) -> None:
    """The user declines it."""
    return None


def _picked(ids: list[int], pick: int) -> int:
    """One of the ``ids`` (the newest first), or an id no pump gave (0) when there are none."""
    return ids[-1 - pick % len(ids)] if ids else 0


class PumpUnderTest(RuleBasedStateMachine):
    """One pump, programmed at random through the bytes; the oracle after every step."""

    target: Target
    report: Report

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner()
        self.runner.run(self._open())

    async def _open(self) -> None:
        await self.target.fresh()
        self.key = await self._key(Role.CLINICIAN)
        await self._connect()
        capacity = self.client.session.profile.reservoir_capacity_ul
        self.policy = SafetyPolicy(load_rules(), self.target.policy)
        self.oracle = Oracle(self.policy, capacity, next_event=await self.client.log_size())
        self.concentration = 500
        self.bolus_ids: list[int] = []
        self.alarm_ids: list[int] = []
        self.thresholds = await self.client.thresholds()  # the suite never changes them
        self.prescription: m.PrescriptionReport | None = None
        found = await self._observe()  # what the pump was left in by whatever came before
        assert not found, found

    async def _key(self, role: Role) -> PairedKey | None:
        """The key of ``role`` when the target pairs (paired once per pump), else None."""
        if self.target.pin is None:
            return None
        if role not in self.target.keys:
            key = await pair(self.target, role)
            assert key is not None, f"pairing a {role.name.lower()} with the PIN the pump shows failed"
            self.target.keys[role] = key
        return self.target.keys[role]

    async def _connect(self) -> None:
        """A new link and session; a reply counts as lost after 20 of its round trips (at least 20 ms
        in-process, 100 ms remote)."""
        self.tap = Tap(await self.target.transport())
        self.client = PumpClient.shipped(self.tap, name="qa", checks=False, timeout_s=1.0, key=self.key)
        self.tap.on_lost = self.client.expire  # a reply the tap lost is not waited for
        await self.client.connect(self.key)
        started = time.perf_counter()
        await self.client.status()
        self.round_trip = time.perf_counter() - started
        floor = 0.02 if self.target.virtual_clock else 0.1
        self.client.timeout_s = min(1.0, max(floor, 20 * self.round_trip))

    def teardown(self) -> None:
        self.runner.run(self.client.close())
        self.runner.close()

    # --- doing things ------------------------------------------------------------------------------------

    def _do(self, send: Callable[[m.Acknowledgement], Awaitable[T]], acknowledge: bool) -> T | None:
        """Send a command; a hazard refused for want of acknowledgement is sent again acknowledged, if
        ``acknowledge``. The transactions of what the pump accepted go to the oracle."""

        async def go() -> T | None:
            before = self.client.session.connection.last_txn
            ack = m.NO_ACK
            for _ in range(4):  # each refusal may name hazards the earlier ones did not
                try:
                    result = await send(ack)
                except CommandRefusedError as refused:
                    for rule_id in refused.nack.rules:
                        self.report.tally.refused[rule_id] += 1
                    if acknowledge and refused.nack.code is ErrorCode.NEEDS_ACKNOWLEDGEMENT:
                        rules = tuple(dict.fromkeys((*ack.rules, *refused.nack.rules)))[: m.MAX_ACKNOWLEDGED]
                        ack = m.Acknowledgement(rules=rules, by="qa")
                        continue
                    return None
                except NotAppliedError:
                    return None
                self.oracle.accepted.update(range(before + 1, self.client.session.connection.last_txn + 1))
                return result
            return None

        return self.runner.run(go())

    @initialize()
    def in_therapy(self) -> None:
        """Every run starts from a pump delivering a modest prescription (what a clinic leaves)."""
        self.program(rate=800, concentration=0, headroom=50, acknowledge=True)  # 400 µg/day

    @rule(
        rate=st.one_of(st.integers(-30, 30), RATES),
        concentration=st.one_of(st.just(0), CONCENTRATIONS),
        headroom=st.one_of(st.integers(-10, -1), st.integers(0, 200)),
        acknowledge=st.booleans(),
    )
    def program(self, rate: int, concentration: int, headroom: int, acknowledge: bool) -> None:
        """A continuous prescription: ``rate`` µL/day, or (-30..30) that many % off the rate now flowing,
        at ``concentration`` (0: the reservoir's); its maximum daily dose ``headroom`` % above it."""
        if rate <= 30:
            rate = max(0, (self.rate_ul_day or 800) * (100 + rate) // 100)
        concentration = concentration or self.concentration
        daily = max(1, min(rate * concentration * (100 + headroom) // 100, 2**32 - 1))
        plan = prescription(rate, concentration, daily)
        self._do(lambda ack: self.client.program(plan, confirmed if acknowledge else declined), False)

    @rule(rate=RATES, acknowledge=st.booleans())
    def set_rate(self, rate: int, acknowledge: bool) -> None:
        self._do(lambda ack: self.client.set_rate(rate, ack), acknowledge)

    # The ids the pump gave are kept here and picked by index, not drawn from bundles: what a pump answers
    # may differ from run to run (a remote pump's clock runs on), and hypothesis needs the same draws for the
    # same choices (a bundle empty in one run and not in the next is a FlakyStrategyDefinition).

    @rule(
        kind=st.sampled_from([BolusKind.CLINICIAN, BolusKind.BRIDGE, BolusKind.PRIMING]),
        share=st.sampled_from([25, 50, 100, 0]),
        slower=st.sampled_from([0, 1, 600]),
        acknowledge=st.booleans(),
    )
    def bolus(self, kind: BolusKind, share: int, slower: int, acknowledge: bool) -> None:
        """A clinician's bolus of ``share`` % of the largest the prescription allows (0: a µL more), as fast
        as the motor may plus ``slower`` s; a bridge or priming bolus of as much (often refused)."""
        most = self.prescription.prescription.max_bolus_ng if self.prescription else 0
        largest = most // max(self.concentration, 1)
        volume = max(1, largest * share // 100 if share else largest + 1)
        duration = -(-volume * DAY // self.client.session.profile.max_bolus_rate_ul_day) + slower
        started = self._do(lambda ack: self.client.bolus(kind, volume, duration, ack), acknowledge)
        if started is not None:
            self.bolus_ids.append(started.bolus_id)

    @precondition(lambda self: self.target.parallel_links)
    @rule(larger=st.sampled_from([0, 0, 0, 1]))
    def patient_bolus(self, larger: int) -> None:
        """The patient presses for the prescribed bolus on the hand-held (``larger``: a µL more), once the
        clinician's session has ended (one programs at a time)."""
        policy = self.prescription.prescription.patient if self.prescription else None
        volume, duration = (policy.volume_ul, policy.duration_s) if policy and policy.volume_ul else (10, 600)

        async def press() -> None:
            everything = m.Acknowledgement(rules=("STOP-001", "FLOW-001"), by="qa")
            await self.client.end(everything)
            await self.client.close()
            key = await self._key(Role.PATIENT)
            link = await self.target.transport()
            patient = PumpClient.shipped(link, role=Role.PATIENT, checks=False, name="qa patient", key=key)
            async with patient:
                before = patient.session.connection.last_txn
                try:
                    await patient.bolus(BolusKind.PATIENT, volume + larger, duration)
                except CommandRefusedError as refused:
                    for rule_id in refused.nack.rules:
                        self.report.tally.refused[rule_id] += 1
                else:
                    self.oracle.accepted.update(range(before + 1, patient.session.connection.last_txn + 1))
            await self._connect()

        self.runner.run(press())

    @rule(pick=st.integers(0, 7))
    def cancel_bolus(self, pick: int) -> None:
        """A bolus the pump started, cancelled (perhaps long over, or none: then refused)."""
        bolus_id = _picked(self.bolus_ids, pick)
        self._do(lambda ack: self.client.cancel_bolus(bolus_id), False)

    @rule()
    def read_alarms(self) -> None:
        """The alarms the pump lists, each with the severity the spec gives its code."""
        alarms = self.runner.run(self.client.alarm_list())
        self.alarm_ids += [a.alarm_id for a in alarms]
        found = self.oracle.severities(alarms)
        self._protocol("ALARM-001", not found, "; ".join(v.what for v in found))

    @rule(pick=st.integers(0, 7))
    def acknowledge_alarm(self, pick: int) -> None:
        """An alarm acknowledged: quiet until its condition ends, a critical one only for the period."""
        alarm_id = _picked(self.alarm_ids, pick)
        if self._do(lambda ack: self.client.acknowledge_alarm(alarm_id), False) is None:
            return
        now = self.runner.run(self.client.status()).device_time
        listed = [a for a in self.runner.run(self.client.alarm_list()) if a.alarm_id == alarm_id]
        period = min(self.thresholds.reannunciate_s, self.policy("ALARM-001", "max_reannunciate_s"))
        for alarm in listed:
            until = now + period if alarm.severity is Severity.CRITICAL else 0
            held = alarm.acknowledged and alarm.silenced_until == until
            self._protocol("ALARM-001", held, f"alarm {alarm_id} acknowledged at {now}, listed as {alarm}")

    @precondition(lambda self: "faults" in self.target.can)
    @rule(kind=st.sampled_from(["motor-stall", "motor-recover", "battery-drop"]), percent=st.integers(0, 40))
    def hardware(self, kind: str, percent: int) -> None:
        """A hardware event: the motor stalls or runs again, the battery loses charge (in-process)."""
        self.runner.run(self.target.fault(kind, percent))

    @rule(rate=st.integers(0, 2_000))
    def link_lost_mid_command(self, rate: int) -> None:
        """A rate change sent, and the link gone before the answer: a new link, a new session; the pump
        applied it at most once."""

        async def go() -> None:
            self.oracle.accepted.add(self.client.session.connection.last_txn + 1)  # it may have been taken
            for chunk in self.client.session.set_rate(rate):
                await self.tap.inner.send(chunk)
            await self.client.close()
            await self._connect()

        self.runner.run(go())

    @rule(hours=st.integers(0, 48), acknowledge=st.booleans())
    def suspend(self, hours: int, acknowledge: bool) -> None:
        self._do(lambda ack: self.client.suspend(hours * 3600, ack), acknowledge)

    @rule(acknowledge=st.booleans())
    def resume(self, acknowledge: bool) -> None:
        self._do(lambda ack: self.client.resume(ack), acknowledge)

    @rule(
        withdrawn_pct=st.sampled_from([100, 100, 95, 0]),
        volume=st.sampled_from([1_000, 10_000, 20_000]),
        concentration=st.one_of(st.just(0), CONCENTRATIONS),
        bridge=st.booleans(),
        acknowledge=st.booleans(),
    )
    def refill(
        self, withdrawn_pct: int, volume: int, concentration: int, bridge: bool, acknowledge: bool
    ) -> None:
        """Withdraw ``withdrawn_pct`` % of what the pump says it holds, put ``volume`` in (``concentration``
        0: the same drug again)."""
        withdrawn = self.reservoir_ul * withdrawn_pct // 100
        concentration = concentration or self.concentration
        self._do(
            lambda ack: self.client.refill(withdrawn, volume, concentration, bridge=bridge, ack=ack),
            acknowledge,
        )

    @rule(short_pct=st.integers(1, 10))
    def program_over_its_own_maximum(self, short_pct: int) -> None:
        """The rate flowing now, under a maximum daily dose ``short_pct`` % below it (DOSE-002)."""
        rate = self.rate_ul_day or 800
        daily = rate * self.concentration * (100 - short_pct) // 100
        plan = prescription(rate, self.concentration, max(1, daily))
        self._do(lambda ack: self.client.program(plan, confirmed), False)

    @rule()
    def nearly_empty(self) -> None:
        """A refill of 1 mL of the same drug: the low-reservoir alarm is due at once (RES-001)."""
        withdrawn = self.reservoir_ul
        self._do(lambda ack: self.client.refill(withdrawn, 1_000, self.concentration, ack=ack), True)

    @rule(excess=st.sampled_from([1, 500, 5_000]))
    def overfill(self, excess: int) -> None:
        """The same drug, ``excess`` µL more than the reservoir holds, every hazard acknowledged."""
        withdrawn, volume = self.reservoir_ul, self.client.session.profile.reservoir_capacity_ul + excess
        self._do(lambda ack: self.client.refill(withdrawn, volume, self.concentration, ack=ack), True)

    @rule(concentration=CONCENTRATIONS, bridge=st.booleans(), acknowledge=st.booleans())
    def change_concentration(self, concentration: int, bridge: bool, acknowledge: bool) -> None:
        """A full refill with another concentration: the path's old drug must reach the tip first."""
        if concentration == self.concentration:
            concentration = 2_000 if concentration != 2_000 else 500
        withdrawn = self.reservoir_ul
        self._do(
            lambda ack: self.client.refill(withdrawn, 20_000, concentration, bridge=bridge, ack=ack),
            acknowledge,
        )
        if self.target.virtual_clock:  # an hour on: the path's old drug meets the tip
            self.runner.run(self.target.advance(3_600))

    @precondition(lambda self: self.target.virtual_clock)
    @rule(seconds=st.sampled_from([60, 3_600, 6 * 3_600, 25 * 3_600]))
    def time_passes(self, seconds: int) -> None:
        self.runner.run(self.target.advance(seconds))

    @rule(rate=st.integers(0, 2_000))
    def reply_lost(self, rate: int) -> None:
        """The reply to a rate change is lost: the client resolves it by its transaction (never twice)."""
        self.tap.lose = 1
        self._do(lambda ack: self.client.set_rate(rate, ack), True)
        self.tap.lose = 0

    @rule()
    def replay(self) -> None:
        """The frames of the last exchange, sent again as captured: the pump must drop them unanswered."""

        async def again() -> int:
            heard = self.tap.received
            for chunk in self.tap.sent[-4:]:
                await self.tap.inner.send(chunk)
            await asyncio.sleep(10 * self.round_trip)
            return self.tap.received - heard

        answered = self.runner.run(again())
        self._protocol(REPLAY, not answered, f"the pump answered {answered} replayed frame(s)")

    @precondition(lambda self: self.target.parallel_links)
    @rule(rate=st.integers(0, 2_000), kind=st.sampled_from(["rate", "bolus", "suspend"]))
    def patient_sends_a_clinician_command(self, rate: int, kind: str) -> None:
        """A patient's session sends what only a clinician may, while the clinician's holds the programming
        lock: the role is checked first (protocol.md §5 step 4): ROLE_FORBIDDEN, and nothing applied."""

        async def attempt() -> m.Nack | None:
            key = await self._key(Role.PATIENT)
            link = await self.target.transport()
            patient = PumpClient.shipped(link, role=Role.PATIENT, checks=False, name="qa patient", key=key)
            async with patient:
                sends: dict[str, Callable[[], Awaitable[object]]] = {
                    "rate": lambda: patient.set_rate(rate),
                    "bolus": lambda: patient.bolus(BolusKind.CLINICIAN, 1, 600),
                    "suspend": lambda: patient.suspend(
                        3_600, m.Acknowledgement(rules=("STOP-002",), by="qa")
                    ),
                }
                send = sends[kind]
                before = patient.session.connection.last_txn
                try:
                    await send()
                except CommandRefusedError as refused:
                    nack: m.Nack = refused.nack
                    return nack
                self.oracle.accepted.update(range(before + 1, patient.session.connection.last_txn + 1))
                return None

        nack = self.runner.run(attempt())
        code = nack.code.name if nack is not None else "accepted"
        held = nack is not None and nack.code is ErrorCode.ROLE_FORBIDDEN
        self._protocol(ROLE, held, f"a patient's {kind} answered {code}, not ROLE_FORBIDDEN")

    def _protocol(self, check: str, held: bool, what: str) -> None:
        self.report.step({check}, [] if held else [Violation(check, what)])
        assert held, f"{check}: {what}"

    # --- the oracle --------------------------------------------------------------------------------------

    async def _observe(self) -> list[str]:
        status = await self.client.status()
        self.concentration = status.concentration_ug_ml or 500
        self.reservoir_ul, self.rate_ul_day = status.reservoir_ul, status.rate_ul_day
        history = await self.client.history()
        events = await self.client.events(first=self.oracle.next_event)
        if status.prescription_id != (self.prescription.prescription_id if self.prescription else 0):
            self.prescription = await self.client.prescription_report() if status.prescription_id else None
        records = (await self.client.patient_record()).records
        self.oracle.exercised = set()
        found = self.oracle.check(status, history, self.thresholds, events, self.prescription, records)
        self.report.step(self.oracle.exercised, found)
        return [f"{v.rule_id}: {v.what}" for v in found]

    @invariant()
    def the_pump_kept_every_rule(self) -> None:
        found = self.runner.run(self._observe())
        assert not found, found


@pytest.mark.rule("DOSE-001", "DOSE-002", "BOL-001", "REFILL-001", "RES-001", "RES-002")
def test_pump_safety(
    itb_target: Target,
    itb_report: Report,
    itb_settings: settings,
    itb_shard: int,
    request: pytest.FixtureRequest,
) -> None:
    """Random programming through the bytes never breaks a dose limit, a reservoir limit or a transaction.
    (Shards of a derandomized profile differ by their seed.) What it saw goes to the session's report."""
    seen = Report(itb_report.rule_ids)
    machine = type("PumpUnderTest", (PumpUnderTest,), {"target": itb_target, "report": seen})
    chosen = settings(itb_settings, suppress_health_check=list(HealthCheck))
    if chosen.database is not None:  # examples of this kind of target only
        chosen = settings(chosen, database=ScopedDatabase.of(chosen.database, itb_target))
    if "fresh" not in itb_target.can:  # a pump that goes on cannot replay an example: no shrinking
        chosen = settings(chosen, phases=[p for p in chosen.phases if p is not Phase.shrink])
    if itb_shard:  # another shard: another search
        machine._hypothesis_internal_use_seed = itb_shard  # type: ignore[attr-defined]
        chosen = settings(chosen, derandomize=False)
    started = time.perf_counter()
    try:
        run_state_machine_as_test(machine, settings=chosen)
    finally:
        seen.seconds = time.perf_counter() - started
        request.node.user_properties.append(("itbproto", seen.counts()))
