"""What a boundary probe works with: a pump reached through :class:`~itbproto.qa.wire.Probe` links, the
catalog's numbers, and a tally of what each rule saw.

:meth:`Bench.step` is the one judgement: a step *inside* a rule's boundary must be accepted (a pump that
refuses what is safe fails its clinician); a step *outside* must be refused with the rule named in the Nack,
as a hard limit (``SAFETY_RULE``, and still refused when it carries the rule as "acknowledged") or as a hazard
(``NEEDS_ACKNOWLEDGEMENT``, then accepted with the acknowledgement, which the pump logs). Anything else is a
finding, written once, with the steps that led to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from itbproto.core.safety import RuleCatalog, SafetyPolicy
from itbproto.core.therapy import DeviceProfile
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import AlarmCode, ErrorCode, EventCode, PrescriptionMode
from itbproto.core.wire.message import Message
from itbproto.qa.wire import Probe

__all__ = ["Bench", "Finding", "Tally", "continuous", "refused", "tightened"]

DAY = 86_400
Op = Callable[[m.Acknowledgement], Awaitable[Message]]


class Finding(AssertionError):  # noqa: N818  (a finding, raised to end a probe)
    """The pump broke a rule: which, and what was seen."""

    def __init__(self, rule_id: str, what: str) -> None:
        super().__init__(f"{rule_id}: {what}")
        self.rule_id, self.what = rule_id, what


@dataclass
class Tally:
    """Per rule: steps that reached it and were allowed, steps it refused, oracle checks run; findings."""

    allowed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    findings: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    #: rules a target cannot reach, and why
    unreachable: dict[str, str] = field(default_factory=dict)

    def find(self, rule_id: str, what: str) -> None:
        if what not in self.findings[rule_id]:
            self.findings[rule_id].append(what)

    def merge(self, other: dict[str, Any]) -> None:
        for name in ("allowed", "refused", "checked"):
            for rule_id, n in other.get(name, {}).items():
                getattr(self, name)[rule_id] += n
        for rule_id, found in other.get("findings", {}).items():
            for what in found:
                self.find(rule_id, what)
        self.unreachable.update(other.get("unreachable", {}))

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": dict(self.allowed),
            "refused": dict(self.refused),
            "checked": dict(self.checked),
            "findings": {k: list(v) for k, v in self.findings.items() if v},
            "unreachable": dict(self.unreachable),
        }


def tightened(catalog: RuleCatalog) -> dict[str, int]:
    """A policy with every parameter a notch stricter than the catalog's (a tenth, at least 1, within what
    the pump can enforce): a pump must follow the policy it was built with, not the catalog's numbers."""
    values: dict[str, int] = {}
    for rule in catalog:
        for p in rule.params:
            step = max(1, p.default // 10)
            value = p.default - step if p.tighten == "lower" else p.default + step
            values[f"{rule.id}.{p.name}"] = value if p.within_limit(value) else p.default
    return values


def refused(reply: Message, *codes: ErrorCode) -> bool:
    """``reply`` is a Nack (with one of ``codes``, if given)."""
    return isinstance(reply, m.Nack) and (not codes or reply.code in codes)


def _said(reply: Message) -> str:
    if isinstance(reply, m.Nack):
        rules = f" {list(reply.rules)}" if reply.rules else ""
        return f"Nack {reply.code.name}{rules} ({reply.detail})"
    return f"{type(reply).__name__} (accepted)"


def continuous(
    rate: int,
    concentration: int,
    max_daily_ng: int,
    *,
    patient: m.PatientBolusPolicy | None = None,
    max_bolus_ng: int = 0,
    steps: tuple[m.FlexStep, ...] = (),
    boluses: tuple[m.PeriodicBolus, ...] = (),
) -> m.Prescription:
    """A prescription: one step at ``rate`` (or the flex ``steps``)."""
    return m.Prescription(
        mode=PrescriptionMode.FLEX if steps else PrescriptionMode.CONTINUOUS,
        concentration_ug_ml=concentration,
        steps=steps or (m.FlexStep(start_s=0, rate_ul_day=rate),),
        boluses=boluses,
        patient=patient or m.PatientBolusPolicy(volume_ul=0, duration_s=0, lockout_s=0, max_per_day=0),
        max_daily_dose_ng=max_daily_ng,
        max_bolus_ng=max_bolus_ng,
    )


@dataclass
class Bench:
    """One pump under probing. ``ask`` sends a request on the clinician's link and returns the answer;
    ``advance`` moves device time (None: the target's clock cannot be moved)."""

    policy: SafetyPolicy
    profile: DeviceProfile
    link: Probe
    tally: Tally
    advance_by: Callable[[int], Awaitable[None]] | None = None
    #: what was done so far, for the finding's script
    script: list[str] = field(default_factory=list)
    #: a hardware fault delivered drug no command asked for (a valve discharge): the dose windows after it
    #: are physics, not the pump's choice
    discharged: bool = False

    @property
    def info(self) -> m.DeviceInfo:
        assert self.link.info is not None, "the link's session is open"
        return self.link.info

    def on(self, link: Probe) -> Bench:
        """The same bench, on another link (another role)."""
        return replace(self, link=link)

    async def ask(self, request: Message, txn: int | None = None) -> Message:
        return await self.link.ask(request, txn)

    @property
    def catalog(self) -> RuleCatalog:
        return self.policy.catalog

    def param(self, rule_id: str, name: str) -> int:
        """The pump's policy's value (the catalog's default unless the pump was built tighter)."""
        return self.policy(rule_id, name)

    async def advance(self, seconds: int) -> None:
        assert self.advance_by is not None, "this probe needs the target's clock"
        self.script.append(f"time passes: {seconds} s")
        await self.advance_by(seconds)

    async def start_dose(self) -> int:
        """The first daily dose a probe sets up: what SCREEN-001 allows the pump's record, in whole rate
        steps of the reservoir's drug."""
        from itbproto.qa.probes.common import first_dose_limit

        conc, step = (await self.status()).concentration_ug_ml, self.info.rate_step_ul_day
        return first_dose_limit(self, await self.record()) // conc // step * step * conc

    async def settle(self) -> None:
        """Let the last change age past every look-back of the titration rules (a day, or the policy's
        longer interval), and a minute."""
        await self.advance(max(DAY, self.param("TITR-002", "interval_s")) + 60)

    def fail(self, rule_id: str, what: str) -> None:
        """A finding: counted once, raised to end the probe."""
        what = f"{what}; after: " + " -> ".join(self.script[-8:])
        self.tally.find(rule_id, what)
        raise Finding(rule_id, what)

    # --- reads ------------------------------------------------------------------------------------------

    async def read(self, request: Message, kind: type[Any]) -> Any:
        reply = await self.ask(request)
        if not isinstance(reply, kind):
            self.fail("REPLY", f"{type(request).__name__} answered {_said(reply)}")
        self.tally.checked["REPLY"] += 1
        return reply

    async def status(self) -> m.StatusReport:
        status: m.StatusReport = await self.read(m.StatusRequest(), m.StatusReport)
        return status

    async def record(self) -> m.PatientRecord:
        report: m.PatientRecordReport = await self.read(m.ReadPatientRecord(), m.PatientRecordReport)
        return report.records[-1].record

    async def history(self) -> m.TherapyHistory:
        history: m.TherapyHistory = await self.read(m.ReadHistory(), m.TherapyHistory)
        return history

    async def events_from(self, first: int) -> list[m.EventRecord]:
        found: list[m.EventRecord] = []
        while True:
            page = await self.read(m.EventLogRead(first=first, count=m.MAX_EVENTS_PER_PAGE), m.EventLogPage)
            found += page.events
            if not page.events or page.events[-1].index + 1 >= page.total:
                return found
            first = page.events[-1].index + 1

    async def alarms(self, code: AlarmCode) -> list[m.AlarmRecord]:
        """The pump's active alarms of ``code``."""
        listed: m.AlarmList = await self.read(m.AlarmListRequest(), m.AlarmList)
        return [a for a in listed.alarms if a.code is code]

    async def flows_after(self, before: m.TherapyHistory) -> list[m.FlowRecord]:
        """The flows of drug or saline the pump reports since the ``before`` history's last one."""
        last = max((f.end for f in before.flows), default=0)
        return [f for f in (await self.history()).flows if f.rate_ul_day and f.end > last]

    async def log_size(self) -> int:
        page = await self.read(m.EventLogRead(first=2**32 - 1, count=1), m.EventLogPage)
        total: int = page.total
        return total

    # --- commands, as the suite writes them ----------------------------------------------------------------

    async def stage(self, p: m.Prescription) -> Message:
        return await self.ask(m.StagePrescription(prescription=p))

    def program(self, p: m.Prescription) -> Op:
        """Stage ``p`` and commit it with what the pump staged (its first refusal, or the commit's Ack)."""

        async def op(ack: m.Acknowledgement) -> Message:
            staged = await self.stage(p)
            if not isinstance(staged, m.PrescriptionStaged):
                return staged
            return await self.ask(
                m.CommitPrescription(stage_id=staged.stage_id, digest=staged.digest, ack=ack)
            )

        return op

    def refill(
        self,
        withdrawn_ul: int | None,
        volume_ul: int,
        concentration: int,
        bridge: bool = False,
        taking_s: int = 0,
    ) -> Op:
        """Begin, record ``withdrawn_ul`` (None: what the pump expects), stage, confirm what was staged
        (``taking_s`` after it began); a step refused aborts the refill (the first refusal is the answer)."""

        async def op(ack: m.Acknowledgement) -> Message:
            begun = await self.ask(m.RefillBegin())
            if not isinstance(begun, m.RefillSession):
                return begun
            if taking_s:
                await self.advance(taking_s)
            refill_id = begun.refill_id
            measured = begun.expected_residual_ul if withdrawn_ul is None else withdrawn_ul
            steps: list[Message] = [
                m.RefillResidual(refill_id=refill_id, measured_ul=measured),
                m.RefillStageDrug(
                    refill_id=refill_id, volume_ul=volume_ul, concentration_ug_ml=concentration
                ),
            ]
            reply: Message = begun
            for request in steps:
                reply = await self.ask(request)
                if refused(reply):
                    await self.ask(m.RefillAbort(refill_id=refill_id))
                    return reply
            assert isinstance(reply, m.RefillStaged)
            confirm = m.RefillConfirm(
                refill_id=refill_id,
                volume_ul=volume_ul,
                concentration_ug_ml=concentration,
                digest=reply.digest,
                bridge=bridge,
                ack=ack,
            )
            reply = await self.ask(confirm)
            if refused(reply):
                await self.ask(m.RefillAbort(refill_id=refill_id))
            return reply

        return op

    def command(self, request: Message) -> Op:
        """One command; ``ack`` goes in its ``ack`` field, if it has one."""

        async def op(ack: m.Acknowledgement) -> Message:
            reply = await self.ask(replace(request, ack=ack) if hasattr(request, "ack") else request)  # type: ignore[type-var]
            if isinstance(request, m.SessionEnd) and not refused(reply):
                await self.link.hello()  # a new session on the same link (it holds no lock until it commands)
            return reply

        return op

    # --- the judgement -------------------------------------------------------------------------------------

    async def ok(self, rule_id: str, op: Op, what: str, ack: tuple[str, ...] = ()) -> Message:
        """A step that breaks no rule (inside ``rule_id``'s boundary; ``ack``: hazards it is known to meet,
        acknowledged): it must be accepted."""
        self.script.append(what)
        reply = await op(m.Acknowledgement(rules=ack, by="qa") if ack else m.NO_ACK)
        if refused(reply):
            self.fail(rule_id, f"refused a step inside the limit ({what}): {_said(reply)}")
        self.tally.allowed[rule_id] += 1
        return reply

    async def over(self, rule_id: str, op: Op, what: str, ack: tuple[str, ...] = ()) -> Message:
        """A step just outside ``rule_id``: a hard limit refuses it (also when it claims to acknowledge the
        rule); a hazard asks for acknowledgement and takes it, logged. Returns the final answer."""
        self.script.append(what)
        hazard = self.catalog[rule_id].acknowledgeable
        first = await op(m.Acknowledgement(rules=ack, by="qa") if ack else m.NO_ACK)
        code = ErrorCode.NEEDS_ACKNOWLEDGEMENT if hazard else ErrorCode.SAFETY_RULE
        if not (refused(first, code) and isinstance(first, m.Nack) and rule_id in first.rules):
            kind = "a hazard to acknowledge" if hazard else "a hard limit"
            self.fail(rule_id, f"{what}, {kind}, answered {_said(first)}")
        self.tally.refused[rule_id] += 1
        acknowledged = m.Acknowledgement(rules=(*ack, rule_id), by="qa")
        if not hazard:
            again = await op(acknowledged)
            if not refused(again, ErrorCode.SAFETY_RULE):
                self.fail(rule_id, f"{what}, acknowledged: a hard limit waived ({_said(again)})")
            return again
        logged = await self.log_size()
        again = await op(acknowledged)
        if refused(again):
            self.fail(rule_id, f"{what}, acknowledged, still refused: {_said(again)}")
        txn = self.link.last_command
        acks = [
            e
            for e in await self.events_from(logged)
            if e.code is EventCode.ACKNOWLEDGED and e.detail.startswith(rule_id)
        ]
        if not any(e.txn == txn for e in acks):
            self.fail(rule_id, f"{what}: accepted acknowledged, but no ACKNOWLEDGED {rule_id} logged for it")
        return again

    async def refuses(self, check: str, op: Op, what: str, *codes: ErrorCode) -> m.Nack:
        """A step the protocol refuses with one of ``codes``, changing nothing."""
        self.script.append(what)
        before = await self.status()
        reply = await op(m.NO_ACK)
        if not refused(reply, *codes):
            wanted = " or ".join(c.name for c in codes)
            self.fail(check, f"{what}: answered {_said(reply)}, not {wanted}")
        assert isinstance(reply, m.Nack)
        after = await self.status()
        changed = [
            name
            for name in (
                "mode",
                "concentration_ug_ml",
                "rate_ul_day",
                "prescription_id",
                "bolus_remaining_ul",
            )
            if getattr(before, name) != getattr(after, name)
        ]
        if changed:
            self.fail(check, f"{what}: refused, but it changed {', '.join(changed)}")
        self.tally.refused[check] += 1
        return reply

    def expect(self, rule_id: str, held: bool, what: str) -> None:
        """An oracle check of a consequence on the pump's records."""
        self.tally.checked[rule_id] += 1
        if not held:
            self.fail(rule_id, what)
