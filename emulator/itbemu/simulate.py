"""Therapy on the virtual clock: years of delivery, refills, faults and alarms, in seconds of wall time.

A clinician's session programs an emulated pump (through the bytes, like any other), then the clock jumps
from event to event: the emulator integrates delivery exactly between them. Refills come every so many days
through the same session (two-step confirmation, the residual measured as the reservoir really holds).
The result is a summary and a day-by-day series for the plot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from itbemu.clock import VirtualClock
from itbemu.device import START, Emulator, new_therapy
from itbemu.faults import FaultPlan
from itbemu.inprocess import InProcessLink
from itbproto.core.connection import Connection, Side
from itbproto.core.machines import ProgrammingSession
from itbproto.core.safety import SafetyPolicy, evaluate
from itbproto.core.therapy import SCALE, TherapyState
from itbproto.core.therapy.battery import capacity_scaled
from itbproto.core.therapy.profile import DeviceProfile, Drug
from itbproto.core.therapy.schedule import daily_dose_scaled
from itbproto.core.therapy.state import Battery
from itbproto.core.wire import (
    Acknowledgement,
    AlarmCode,
    EventCode,
    Prescription,
    RefillConfirm,
    Role,
)
from itbproto.core.wire.message import Message

__all__ = ["Day", "Simulation", "simulate"]

DAY = SCALE


@dataclass(frozen=True, slots=True)
class Day:
    """The pump at the end of one day."""

    day: int
    reservoir_ul: int
    delivered_ng: int  # drug that reached the tip that day
    battery_pct: int
    alarms: tuple[AlarmCode, ...]


@dataclass
class Simulation:
    """What a run did: a day-by-day series, the refills, every alarm raised and when each was first."""

    days: list[Day] = field(default_factory=list)
    refills: list[int] = field(default_factory=list)  # the days a refill was done (confirmed by the pump)
    alarms: list[tuple[float, AlarmCode]] = field(default_factory=list)  # each raised: days from the start
    first_alarm: dict[AlarmCode, float] = field(default_factory=dict)  # days from the start
    emulator: Emulator | None = None

    def summary(self) -> dict[str, str | float | int | None]:
        """Days run, refills, the day each alarm was first raised (None: never), µg delivered."""
        return {
            "days": len(self.days),
            "refills": len(self.refills),
            **{f"{code.name.lower()}_day": self.first_alarm.get(code) for code in AlarmCode},
            "delivered_ug": sum(d.delivered_ng for d in self.days) // 1_000,
        }


def simulate(
    *,
    days: int,
    profile: DeviceProfile,
    drug: Drug,
    policy: SafetyPolicy,
    prescription: Prescription,
    refill_every: int | None = None,
    plan: FaultPlan | None = None,
    progress: Callable[[int], None] | None = None,
) -> Simulation:
    """Run ``days`` of therapy; ``progress(day)`` is called at the end of each day. A pump at end of
    service (battery EOS) delivers nothing and is not refilled."""
    clock = VirtualClock(START)
    therapy = new_therapy(
        profile,
        drug,
        concentration_ug_ml=prescription.concentration_ug_ml,
        screening_dose_ng=-(-daily_dose_scaled(prescription) // DAY),
        screening_effect_s=8 * 3_600,
    )
    emulator = Emulator.create(therapy, policy, serial="SIM-0001")
    session = ProgrammingSession(
        role=Role.CLINICIAN, profile=profile, drug=drug, policy=policy, connection=Connection(Side.PROGRAMMER)
    )
    link = InProcessLink(emulator, session, clock)
    link.ready("simulate")
    _program(link, prescription)
    emulator.schedule([(START + at, fault) for at, fault in (plan or FaultPlan()).faults])
    result = Simulation(emulator=emulator)
    seen_log = ledger_mark = 0
    for day in range(1, days + 1):
        end = START + day * DAY
        clock.advance_to(end)
        link.deliver(emulator.advance_to(end))
        in_service = emulator.therapy.battery is not Battery.EOS  # at end of service, no refill
        if (
            refill_every
            and day % refill_every == 0
            and in_service
            and _refill(link, profile.reservoir_capacity_ul)
        ):
            result.refills.append(day)
        for entry in emulator.pump.log.since(seen_log):
            if entry.code is EventCode.ALARM_RAISED:
                code, when = AlarmCode(entry.value), round((entry.at - START) / DAY, 3)
                result.alarms.append((when, code))
                result.first_alarm.setdefault(code, when)
        seen_log = emulator.pump.log.total
        t = emulator.therapy
        delivered = sum(f.dose_scaled for f in emulator.ledger[ledger_mark:])  # the day's (it ends at end)
        ledger_mark = len(emulator.ledger)
        result.days.append(
            Day(day, t.reservoir_ul, delivered // DAY, _battery_pct(t), tuple(a.code for a in t.alarms))
        )
        if progress is not None:
            progress(day)
    return result


def _battery_pct(t: TherapyState) -> int:
    return t.charge_scaled * 100 // capacity_scaled(t.profile)


def _acknowledging(link: InProcessLink, command: Message) -> Acknowledgement:
    """The hazards a command meets, acknowledged (a simulation's clinician accepts them)."""
    mirror = link.session.mirror()
    assert mirror is not None
    rules = evaluate(command, mirror, link.session.policy).to_acknowledge
    return Acknowledgement(rules=rules, by="simulate")


def _program(link: InProcessLink, prescription: Prescription) -> None:
    s = link.session
    s.draft(prescription)
    s.check()
    link.exchange(s.send_stage())
    assert s.summary is not None, "the pump refused the prescription"
    link.exchange(s.confirm_summary(s.summary.digest, Acknowledgement(rules=s.summary.acknowledge, by="sim")))
    link.exchange(s.verify())
    link.refresh()


def _refill(link: InProcessLink, volume_ul: int) -> bool:
    """Withdraw what is really left, fill with the same drug, confirm twice; False: the pump refused it."""
    s, emulator = link.session, link.emulator
    link.refresh()
    link.exchange(s.start_refill())
    refill = s.pump.refill
    if refill is None:
        return False
    actual = max(0, emulator.therapy.reservoir_ul + emulator.hardware.reservoir_offset_ul)
    link.exchange(s.record_residual(actual))
    conc = emulator.therapy.concentration_ug_ml
    link.exchange(s.stage_drug(volume_ul, conc))
    staged = s.pump.refill_stage
    if staged is None:
        link.exchange(s.abort_refill())
        return False
    probe = RefillConfirm(
        refill_id=staged.refill_id,
        volume_ul=volume_ul,
        concentration_ug_ml=conc,
        digest=staged.digest,
        bridge=False,
    )
    mark = emulator.pump.log.total
    link.exchange(s.confirm_refill_drug(volume_ul, conc, ack=_acknowledging(link, probe)))
    emulator.hardware = replace(emulator.hardware, reservoir_offset_ul=0)
    link.refresh()
    return any(e.code is EventCode.REFILL_CONFIRMED for e in emulator.pump.log.since(mark))
