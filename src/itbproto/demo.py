"""``itbproto demo``: a programmer session with a pump, frame by frame, in one process.

The programmer (:class:`~itbproto.machines.ProgrammingSession`) and the pump
(:class:`~itbproto.machines.PumpMachine` behind its
:class:`~itbproto.firmware.Firmware`) are the library's real machines, each
with its own :class:`~itbproto.connection.Connection`; every message between
them crosses as bytes, split into BLE fragments for the chosen ATT MTU. The demo
prints each frame: its direction, type, transaction id, size, its hex (paste it
into ``itbproto decode``) and its fields in display units.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable

from itbproto.connection import Connection, Side
from itbproto.display import describe
from itbproto.errors import SafetyViolation, SessionError
from itbproto.firmware import Firmware
from itbproto.link import InMemoryLink
from itbproto.machines import AlarmAnnounced, ProgrammingSession, PumpMachine, Refused, SessionEvent, Verified
from itbproto.safety import SafetyPolicy
from itbproto.specfiles import load_drug, load_profile, load_rules
from itbproto.therapy import SCALE, TherapyState
from itbproto.units import Dose
from itbproto.wire import BolusKind, Reassembler, Role, decode
from itbproto.wire.enums import Origin, PatientGroup, PrescriptionMode
from itbproto.wire.messages import FlexStep, PatientBolusPolicy, Prescription

__all__ = ["run"]

START = 400 * SCALE  # device time: day 400, midnight
WIDTH = 100


class _Printer:
    """Watches every chunk on the link, joins fragments back into frames, prints each frame."""

    def __init__(self, mtu: int | None, say: Callable[[str], None]) -> None:
        self.say = say
        self.frames = self.octets = self.chunks = 0
        self.mtu = mtu
        self._joins = {"programmer": Reassembler(), "pump": Reassembler()}
        self._parts = {"programmer": 0, "pump": 0}

    def __call__(self, sender: str, chunk: bytes) -> None:
        self.chunks += 1
        self._parts[sender] += 1
        frames = [chunk] if self.mtu is None else self._joins[sender].feed(chunk)
        for frame in frames:
            assert isinstance(frame, bytes), frame  # the demo's link loses nothing
            self._show(sender, frame, self._parts[sender])
            self._parts[sender] = 0

    def _show(self, sender: str, wire: bytes, parts: int) -> None:
        self.frames, self.octets = self.frames + 1, self.octets + len(wire)
        frame = decode(wire)
        arrow = "->" if sender == "programmer" else "<-"
        name = type(frame.message).__name__
        fragments = f" in {parts} fragments" if parts > 1 else ""
        self.say(f"   {arrow} {name} (txn {frame.txn}, {len(wire)} B{fragments})")
        self.say(textwrap.fill(wire.hex(), WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 6))
        fields = ", ".join(f"{k}={v}" for k, v in describe(frame.message))
        if fields:
            self.say(textwrap.fill(fields, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 8))


class _Demo:
    def __init__(self, link: InMemoryLink, say: Callable[[str], None]) -> None:
        self.link, self.say = link, say

    def send(self, chunks: list[bytes]) -> list[SessionEvent]:
        events = self.link.exchange(chunks)
        for event in events:
            if isinstance(event, Refused):
                nack = event.nack
                text = f"pump refused: {nack.code.name} {', '.join(nack.rules)}: {nack.detail}"
                self.say(textwrap.fill(text, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 8))
        return events

    def attempt(self, what: str, make: Callable[[], list[bytes]]) -> list[SessionEvent]:
        try:
            return self.send(make())
        except (SafetyViolation, SessionError) as exc:
            self.say(
                textwrap.fill(
                    f"programmer refused to send {what}: {exc}",
                    WIDTH,
                    initial_indent=" " * 6,
                    subsequent_indent=" " * 8,
                )
            )
            return []

    def refresh(self, session: ProgrammingSession) -> None:
        """Re-read what the programmer's checks need: status, prescription, history."""
        self.send(session.read_status())
        self.send(session.read_prescription())
        self.send(session.read_history())


def run(mtu: int | None = 23, say: Callable[[str], None] = print) -> int:
    """Run the demo session; return the number of frames exchanged."""
    profile, drug, policy = load_profile("itb-20"), load_drug(), SafetyPolicy(load_rules())
    therapy = TherapyState.new(
        now=START, profile=profile, drug=drug, concentration_ug_ml=500, reservoir_ul=18_000
    )
    pump = PumpMachine.new(therapy, policy, serial="ITB20-000417")
    session = ProgrammingSession(
        role=Role.CLINICIAN,
        profile=profile,
        drug=drug,
        policy=policy,
        connection=Connection(Side.PROGRAMMER, mtu=mtu),
    )
    printer = _Printer(mtu, say)
    link = InMemoryLink(Firmware(pump), session, now=START, tap=printer)
    demo = _Demo(link, say)
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

    link_kind = f"BLE fragments for ATT MTU {mtu}" if mtu else "whole frames"
    say(f"itbproto demo: a clinician programs an ITB pump (profile {profile.id}) over {link_kind}.")
    say(
        "Each frame: direction, message, transaction id, size; its hex (try `itbproto decode`); its fields.\n"
    )
    say("1. Connect, read the pump")
    demo.send(session.open("clinic-tab-07"))
    demo.send(session.authenticated())

    say("\n2. Program 400 µg/day: draft, check, stage, confirm the summary, read back")
    session.draft(start)
    session.check()
    demo.send(session.send_stage())
    assert session.summary is not None
    say(f"      summary shown to the user: new daily dose {Dose(session.summary.daily_dose_ng)}; confirmed")
    demo.send(session.confirm_summary(session.summary.digest))
    if any(isinstance(e, Verified) for e in demo.send(session.verify())):
        say("      read-back matches what was confirmed")

    say("\n3. Two days later: titrate +10 %, then try +20 % more the same day")
    link.wait(2 * SCALE)
    demo.refresh(session)
    demo.attempt("SetRate 880", lambda: session.set_rate(880))
    demo.refresh(session)
    demo.attempt("SetRate 1060", lambda: session.set_rate(1060))

    say("\n4. A clinician bolus of 25 µg over an hour, then one of 100 µg")
    demo.attempt("BolusStart 25 µg", lambda: session.start_bolus(BolusKind.CLINICIAN, 50, 3600))
    demo.refresh(session)
    demo.attempt("BolusStart 100 µg", lambda: session.start_bolus(BolusKind.CLINICIAN, 200, 3600))

    say("\n5. The motor stalls (an emulated fault): a critical alarm, acknowledged")
    for event in link.deliver(link.firmware.notify(pump.set_motor_stalled(True, link.now))):
        if isinstance(event, AlarmAnnounced):
            demo.send(session.acknowledge_alarm(event.alarm.alarm_id))
    link.deliver(link.firmware.notify(pump.set_motor_stalled(False, link.now)))

    say("\n6. Refill: residual, drug, confirm volume and concentration again")
    link.wait(3600)
    demo.send(session.start_refill())
    assert session.pump.refill is not None
    demo.send(session.record_residual(session.pump.refill.expected_residual_ul - 40))
    demo.send(session.stage_drug(20_000, 500))
    demo.send(session.confirm_refill_drug(20_000, 500))

    say("\n7. Stop the pump, try to leave without acknowledging the withdrawal risk, resume, close")
    demo.send(session.suspend(0))
    demo.send(session.read_status())
    demo.attempt("SessionEnd", session.end)
    demo.send(session.resume())
    demo.send(session.read_status())
    demo.send(session.end())
    say(
        f"\n{printer.frames} frames, {printer.octets} bytes, {printer.chunks} chunks on the link; "
        f"session {session.state}."
    )
    return printer.frames
