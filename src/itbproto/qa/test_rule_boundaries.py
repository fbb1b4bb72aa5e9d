"""The boundary probes (:mod:`itbproto.qa.probes`), one test each: the pump brought to each rule's boundary
and stepped just inside and just outside it, every number derived from the catalog, the drug table, the device
profile and the pump's own records. A probe its target cannot run (no new pump, no clock, no faults) is
skipped, and the report names what it would have reached and why not.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from itbproto.core.safety import SafetyPolicy
from itbproto.core.security import PairedKey
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import EventCode, PumpKind, Role
from itbproto.core.wire.message import Effect, Message
from itbproto.io.specfiles import load_profile, load_rules
from itbproto.io.transport import Transport
from itbproto.qa.bench import Bench, Finding, Tally, refused
from itbproto.qa.oracle import Oracle
from itbproto.qa.plugin import Report
from itbproto.qa.probes import NEEDS, PROBES, ProbeSpec
from itbproto.qa.targets import Target, pair, pair_with
from itbproto.qa.wire import Probe


class TargetHands:
    """What a probe's target gives it: links in any role (paired when the target pairs), faults, pairing."""

    def __init__(self, target: Target, bench: Bench | None = None) -> None:
        self.target, self.bench = target, bench
        self.pin, self.requires_pairing = target.pin, target.requires_pairing
        self.opened: list[Probe] = []

    async def transport(self) -> Transport:
        return await self.target.transport()

    async def key(self, role: Role) -> None:
        if self.target.pin is None:
            return None
        if role not in self.target.keys:
            key = await pair(self.target, role)
            if key is None:
                raise Finding("PAIR", f"pairing a {role.name.lower()} with the PIN the pump shows failed")
            self.target.keys[role] = key

    async def key_of(self, role: Role) -> PairedKey | None:
        await self.key(role)
        return self.target.keys.get(role)

    async def link(self, role: Role) -> Probe:
        await self.key(role)
        probe = Probe(await self.target.transport(), role=role, key=self.target.keys.get(role))
        self.opened.append(probe)
        answer = await probe.hello()
        if not isinstance(answer, m.DeviceInfo):
            raise Finding("PAIR", f"a {role.name.lower()}'s Hello answered {answer}")
        return probe

    async def fault(self, kind: str, value: int = 0) -> None:
        await self.target.fault(kind, value)

    async def pair(self, pin: str, role: Role) -> bool:
        if self.target.serial is None:
            await pair(self.target, role)
        return await pair_with(self.target, pin, role) is not None

    async def hand_over(self) -> None:
        assert self.bench is not None
        status = await self.bench.status()
        ack = m.Acknowledgement(rules=("STOP-001", "FLOW-001"), by="qa")
        ended = await self.bench.ask(m.SessionEnd(ack=ack))
        if refused(ended):
            raise Finding("LOCK", f"the session could not end ({ended}; mode {status.mode.name})")
        await self.bench.link.hello()

    async def restart(self) -> None:
        """The pump switched off and on: every link is gone; the clinician's opens again."""
        assert self.bench is not None
        await self.target.fault("restart")
        self.bench.link = await self.link(Role.CLINICIAN)

    async def close(self) -> None:
        for probe in self.opened:
            await probe.close()


async def run_probe(
    spec: ProbeSpec, target: Target, profile: str, policy: dict[str, int], tally: Tally
) -> None:
    """One probe on a pump the target makes (or the one it has), then the oracle over what it left."""
    target.policy = policy
    if spec.valve and "fresh" in target.can:
        profile = VALVE_PROFILE
    await target.fresh(screening="screening" in spec.needs, profile=profile, stored="restart" in spec.needs)
    hands = TargetHands(target)
    clinician = await hands.link(Role.CLINICIAN)
    bench = Bench(
        SafetyPolicy(load_rules(), policy),
        load_profile(profile),
        clinician,
        tally,
        advance_by=target.advance if target.virtual_clock else None,
    )
    hands.bench = bench
    try:
        await spec.run(bench, hands)
        await oracle_after(bench, hands.opened)
    finally:
        await hands.close()


#: the refill's steps before its confirmation change nothing, and are not logged (specs/protocol.md §5)
UNLOGGED = (m.RefillResidual, m.RefillStageDrug)


#: the fields an applied command's log entry keeps as its value, the first it has (specs/protocol.md §8)
LOGGED_FIELDS = (
    "rate_ul_day",
    "volume_ul",
    "duration_s",
    "alarm_id",
    "device_time",
    "procedure",
    "role",
    "phase",
    "response",
    "emptied_ul",
)


def logged_value(request: Message) -> int:
    return next((int(v) for f in LOGGED_FIELDS if isinstance(v := getattr(request, f, None), int)), 0)


def logged(links: list[Probe], events: list[m.EventRecord]) -> list[str]:
    """Every command applied is in the log with its transaction, every refusal as COMMAND_REFUSED with its
    transaction and code (specs/protocol.md §5, §8)."""
    refused = {(e.txn, e.value) for e in events if e.code is EventCode.COMMAND_REFUSED}
    quiet = (EventCode.COMMAND_REFUSED, EventCode.ACKNOWLEDGED)
    applied = {(e.txn, e.value) for e in events if e.code not in quiet}
    missing = []
    for link in links:
        for txn, request, reply in link.answered:
            name = type(request).__name__
            if isinstance(reply, m.Nack):
                if (txn, int(reply.code)) not in refused:
                    missing.append(f"{name} (transaction {txn}) refused {reply.code.name}, not logged")
            elif request.EFFECT is Effect.COMMAND and not isinstance(request, UNLOGGED):
                value = logged_value(request)
                if (txn, value) not in applied:
                    missing.append(f"{name} (transaction {txn}) applied, not logged with {value}")
    return missing


async def oracle_after(b: Bench, links: list[Probe]) -> None:
    """The independent oracle over the pump's records as the probe left them (every 24 h window, the
    reservoir, the log's transactions, every command in the log)."""
    oracle = Oracle(b.policy, b.profile.reservoir_capacity_ul)
    oracle.accepted = set(range(1, b.link.connection.last_txn + 1))  # every command was the suite's
    status, history = await b.status(), await b.history()
    thresholds = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    p = await b.ask(m.ReadPrescription())
    alarms = (await b.read(m.AlarmListRequest(), m.AlarmList)).alarms
    events = await b.events_from(0)  # last: every request before it is in it
    found = oracle.check(
        status, history, thresholds, events, p if isinstance(p, m.PrescriptionReport) else None
    )
    found += oracle.severities(alarms)
    for rule_id in oracle.exercised:
        b.tally.checked[rule_id] += 1
    for violation in found:
        if not (b.discharged and violation.rule_id == "DOSE-001"):
            b.fail(violation.rule_id, violation.what)
    missing = logged(links, events)
    b.expect("TXN", not missing, "; ".join(missing[:3]))


#: the shipped device profile of a valve-gated pump (what in-process targets build for valve probes)
VALVE_PROFILE = "itbv-20"


def _marked() -> list[object]:
    """Each probe, marked with the catalog's rules it reaches (the traceability matrix lists it)."""
    known = set(load_rules().ids)
    return [
        pytest.param(
            spec,
            id=spec.name,
            marks=[pytest.mark.rule(*r)] if (r := [x for x in spec.rules if x in known]) else [],
        )
        for spec in PROBES
    ]


@pytest.mark.parametrize("spec", _marked())
def test_rule_boundary(
    spec: ProbeSpec,
    itb_target: Target,
    itb_profile_name: str,
    itb_policy: dict[str, int],
    request: pytest.FixtureRequest,
) -> None:
    """Each rule's boundary: just inside accepted, just outside refused with the rule named, the
    consequences on the pump's records as the rule says."""
    seen = Report(())
    can = itb_target.can | (
        {"valve"} if load_profile(itb_profile_name).pump_kind is PumpKind.VALVE else set()
    )
    if "fresh" in itb_target.can:
        can |= {"valve"}
    missing = sorted(spec.needs - can)
    if missing:
        why = "; ".join(NEEDS[n] for n in missing)
        for rule_id in spec.rules:
            seen.tally.unreachable[rule_id] = f"{spec.name} needs {why}"
        request.node.user_properties.append(("itbproto", seen.counts()))
        pytest.skip(f"{itb_target.name} cannot give {why}")
    started = time.perf_counter()
    try:
        asyncio.run(run_probe(spec, itb_target, itb_profile_name, itb_policy, seen.tally))
    finally:
        seen.probes, seen.seconds = 1, time.perf_counter() - started
        request.node.user_properties.append(("itbproto", seen.counts()))
