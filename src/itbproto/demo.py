"""``itbproto demo``: a programmer session with a pump, frame by frame, in one process.

The programmer (:class:`~itbproto.machines.ProgrammingSession`) and the pump
(:class:`~itbproto.machines.PumpMachine`) are the library's real state machines;
every message between them is encoded, split into BLE fragments for the chosen
ATT MTU, reassembled and decoded, and printed.
"""

from __future__ import annotations

from collections.abc import Callable

from itbproto.display import describe
from itbproto.errors import SafetyViolation, SessionError
from itbproto.machines import (
    AlarmAnnounced,
    Event,
    Outgoing,
    ProgrammingSession,
    PumpMachine,
    Refused,
    Verified,
)
from itbproto.qa.link import InMemoryLink
from itbproto.safety import SafetyPolicy
from itbproto.specfiles import load_drug, load_profile, load_rules
from itbproto.therapy import SCALE, TherapyState
from itbproto.units import Dose
from itbproto.wire import BolusKind, Frame, Role
from itbproto.wire.enums import Origin, PatientGroup, PrescriptionMode
from itbproto.wire.messages import FlexStep, PatientBolusPolicy, Prescription

__all__ = ["run"]

START = 400 * SCALE  # device time: day 400, midnight


class _Demo:
    """The shared in-memory link, printing every frame and every refusal."""

    def __init__(
        self, pump: PumpMachine, session: ProgrammingSession, mtu: int, say: Callable[[str], None]
    ) -> None:
        self.say = say
        self.frames = self.octets = self.chunks = 0
        self.link = InMemoryLink(pump, session, now=pump.therapy.now, mtu=mtu, tap=self.show)

    def show(self, sender: str, frame: Frame, wire: bytes, parts: int) -> None:
        self.frames, self.octets, self.chunks = self.frames + 1, self.octets + len(wire), self.chunks + parts
        arrow = "->" if sender == "programmer" else "<-"
        fields = ", ".join(f"{k}={v}" for k, v in describe(frame.message))
        name = type(frame.message).__name__
        self.say(f"   {arrow} {name:<19} txn {frame.txn:<3} {len(wire):>4} B/{parts}  {fields}"[:140])

    def send(self, out: Outgoing) -> list[Event]:
        events = self.link.exchange(out)
        for event in events:
            if isinstance(event, Refused):
                nack = event.nack
                self.say(f"      pump refused: {nack.code.name} {', '.join(nack.rules)}: {nack.detail}")
        return events

    def attempt(self, what: str, make: Callable[[], Outgoing]) -> list[Event]:
        try:
            return self.send(make())
        except (SafetyViolation, SessionError) as exc:
            self.say(f"      programmer refused to send {what}: {exc}")
            return []


def refresh(link: _Demo, session: ProgrammingSession) -> None:
    """Re-read what the programmer's checks need: status, prescription, history."""
    link.send(session.read_status())
    link.send(session.read_prescription())
    link.send(session.read_history())


def run(mtu: int = 23, say: Callable[[str], None] = print) -> int:
    """Run the demo session; return the number of frames exchanged."""
    profile, drug, policy = load_profile("itb-20"), load_drug(), SafetyPolicy(load_rules())
    therapy = TherapyState(
        now=START, profile=profile, drug=drug, concentration_ug_ml=500, reservoir_scaled=18_000 * SCALE
    )
    pump = PumpMachine(therapy, policy, serial="ITB20-000417")
    session = ProgrammingSession(role=Role.CLINICIAN, profile=profile, drug=drug, policy=policy)
    link = _Demo(pump, session, mtu, say)
    start = Prescription(
        mode=PrescriptionMode.CONTINUOUS,
        origin=Origin.SPINAL,
        group=PatientGroup.ADULT,
        concentration_ug_ml=500,
        steps=(FlexStep(start_s=0, rate_ul_day=800),),
        boluses=(),
        patient=PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3),
        max_daily_dose_ng=600_000,
        max_bolus_ng=50_000,
    )

    say(f"itbproto demo: a clinician programs an ITB pump (profile {profile.id}), ATT MTU {mtu}.")
    say("Each line is one frame: direction, message, transaction id, bytes/BLE fragments, fields.\n")
    say("1. Connect, read the pump")
    link.send(session.open("clinic-tab-07"))
    link.send(session.authenticated())

    say("\n2. Program 400 µg/day: draft, check, stage, confirm the summary, read back")
    session.draft(start)
    session.check()
    link.send(session.send_stage())
    assert session.summary is not None
    say(f"      summary shown to the user: new daily dose {Dose(session.summary.daily_dose_ng)}; confirmed")
    link.send(session.confirm_summary(session.summary.digest))
    if any(isinstance(e, Verified) for e in link.send(session.verify())):
        say("      read-back matches what was confirmed")

    say("\n3. Two days later: titrate +10 %, then try +20 % more the same day")
    link.link.wait(2 * SCALE)
    link.send(session.read_status())
    link.send(session.read_prescription())
    link.send(session.read_history())
    link.attempt("SetRate 880", lambda: session.set_rate(880))
    refresh(link, session)
    link.attempt("SetRate 1060", lambda: session.set_rate(1060))

    say("\n4. A clinician bolus of 25 µg over an hour, then one of 100 µg")
    link.attempt("BolusStart 25 µg", lambda: session.start_bolus(BolusKind.CLINICIAN, 50, 3600))
    refresh(link, session)
    link.attempt("BolusStart 100 µg", lambda: session.start_bolus(BolusKind.CLINICIAN, 200, 3600))

    say("\n5. The motor stalls (an emulated fault): a critical alarm, acknowledged")
    pump.set_motor_stalled(True, link.link.now)
    for event in link.link.deliver_alarms():
        if isinstance(event, AlarmAnnounced):
            link.send(session.acknowledge_alarm(event.alarm.alarm_id))
    pump.set_motor_stalled(False, link.link.now)
    link.link.deliver_alarms()

    say("\n6. Refill: residual, drug, confirm volume and concentration again")
    link.link.wait(3600)
    link.send(session.start_refill())
    assert session.refill is not None
    link.send(session.record_residual(session.refill.expected_residual_ul - 40))
    link.send(session.stage_drug(20_000, 500))
    link.send(session.confirm_refill_drug(20_000, 500))

    say("\n7. Stop the pump, try to leave without acknowledging the withdrawal risk, resume, close")
    link.send(session.suspend(0))
    link.send(session.read_status())
    try:
        session.end()
    except SessionError as exc:
        say(f"      programmer refused to close: {exc}")
    link.send(session.resume())
    link.send(session.read_status())
    link.send(session.end())
    say(f"\n{link.frames} frames, {link.octets} bytes, {link.chunks} BLE fragments; session {session.state}.")
    return link.frames
