"""``itbproto demo``: a programmer session with a pump, frame by frame, in one process.

The programmer (:class:`~itbproto.core.machines.ProgrammingSession`) and the pump
(:class:`~itbproto.core.machines.PumpMachine` behind its
:class:`~itbproto.core.firmware.Firmware`) are the library's real machines, each
with its own :class:`~itbproto.core.connection.Connection`; every message between
them crosses as bytes, split into BLE fragments for the chosen ATT MTU. The demo
prints each frame: its direction, type, transaction id, size, its hex (paste it
into ``itbproto decode``) and its fields in display units.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import replace

from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Firmware
from itbproto.core.link import InMemoryLink
from itbproto.core.machines import (
    AlarmAnnounced,
    ProgrammingSession,
    PumpMachine,
    Refused,
    Replied,
    SessionEvent,
    Verified,
)
from itbproto.core.safety import SafetyPolicy
from itbproto.core.therapy import SCALE, TherapyState
from itbproto.core.wire import (
    Acknowledgement,
    BolusKind,
    FlexStep,
    Origin,
    PatientBolusPolicy,
    PatientGroup,
    Phase,
    Prescription,
    PrescriptionMode,
    Procedure,
    Reassembler,
    Role,
    ScreeningResponse,
    WithdrawalRisk,
    decode,
)
from itbproto.core.wire.messages import EventLogPage
from itbproto.errors import SafetyViolation, SessionError
from itbproto.io.specfiles import load_drug, load_profile, load_rules
from itbproto.tools.display import describe
from itbproto.units import Dose, Volume

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
        self.say(" " * 6 + wire.hex())  # one line, whatever its length: it pastes into `itbproto decode`
        fields = ", ".join(f"{k}={v}" for k, v in describe(frame.message))
        if fields:
            self.say(textwrap.fill(fields, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 8))


class _Demo:
    def __init__(self, link: InMemoryLink, say: Callable[[str], None]) -> None:
        self.link, self.session, self.say = link, link.session, say

    def send(self, chunks: list[bytes]) -> list[SessionEvent]:
        events = self.link.exchange(chunks)
        for event in events:
            if isinstance(event, Refused):
                nack = event.nack
                text = f"pump refused: {nack.code.name} {', '.join(nack.rules)}: {nack.detail}"
                self.say(textwrap.fill(text, WIDTH, initial_indent=" " * 6, subsequent_indent=" " * 8))
        return events

    def do(self, what: str, make: Callable[[], list[bytes]]) -> list[SessionEvent]:
        """Re-read what a change made out of date, then send (the programmer's checks may refuse)."""
        reads = {
            "status": self.session.read_status,
            "patient record": self.session.read_patient_record,
            "prescription": self.session.read_prescription,
            "history": self.session.read_history,
        }
        for name in self.session.pump.to_reread():
            self.send(reads[name]())
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

    def wait(self, seconds: int) -> None:
        """Let time pass on the pump; then read what the programmer's checks need afresh."""
        self.link.wait(seconds)
        self.send(self.session.read_status())
        self.send(self.session.read_patient_record())
        if self.session.pump.status is not None and self.session.pump.status.prescription_id:
            self.send(self.session.read_prescription())
        self.send(self.session.read_history())


def run(mtu: int | None = 23, say: Callable[[str], None] = print) -> int:
    """Run the demo: one patient's therapy path, screening to a scan; return the frames exchanged."""
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
    clinician = Acknowledgement(rules=(), by="dr-lee")

    def ack(*rules: str) -> Acknowledgement:
        return replace(clinician, rules=rules)

    link_kind = f"BLE fragments for ATT MTU {mtu}" if mtu else "whole frames"
    say(f"itbproto demo: one patient's therapy path, pump profile {profile.id}, {link_kind}.")
    say(
        "Each frame: direction, message, transaction id, size; its hex (try `itbproto decode`); its fields.\n"
    )
    say("1. Connect; record the patient: an adult, spinal origin, injury above T6 (a withdrawal risk)")
    demo.send(session.open("clinic-tab-07"))
    demo.send(session.authenticated())
    demo.send(session.read_history())  # (its boluses decide the screening and patient bolus rules)
    adult = (PatientGroup.ADULT, Origin.SPINAL)
    risks = frozenset({WithdrawalRisk.HIGH_SPINAL_INJURY})
    demo.do("SetPatientRecord", lambda: session.set_patient_record(*adult, Phase.SCREENING, risks))

    say("\n2. Screening: 50 µg, no response; a day later 75 µg, effective for 6 h; no 100 µg after that")
    demo.do("a screening dose", lambda: session.start_bolus(BolusKind.CLINICIAN, 100, 600))
    demo.wait(3600)
    demo.do("the response", lambda: session.record_screening_response(ScreeningResponse.NONE))
    demo.wait(SCALE)
    demo.do("a screening dose", lambda: session.start_bolus(BolusKind.CLINICIAN, 150, 600))
    demo.wait(8 * 3600)
    demo.do("the response", lambda: session.record_screening_response(ScreeningResponse.EFFECTIVE, 6 * 3600))
    demo.do("BolusStart 100 µg", lambda: session.start_bolus(BolusKind.CLINICIAN, 200, 1200))

    say("\n3. Implant: a catheter of 120 µL, then prime: push the saline out of the fluid path")
    demo.do("SetPatientRecord", lambda: session.set_patient_record(*adult, Phase.IMPLANTED, risks))
    demo.do("RecordProcedure", lambda: session.record_procedure(Procedure.PUMP_IMPLANT, 120))
    demo.wait(0)
    mirror = session.mirror()
    assert mirror is not None
    saline_ul = mirror.path.saline_scaled // SCALE
    say(f"      the fluid path holds {Volume(saline_ul)} of saline")
    demo.do("the priming bolus", lambda: session.start_bolus(BolusKind.PRIMING, saline_ul, 3600))
    demo.wait(3600)
    demo.do("SetPatientRecord", lambda: session.set_patient_record(*adult, Phase.THERAPY, risks))

    say("\n4. The first daily dose: 200 µg is more than twice the screening dose; 150 µg is sent")
    demo.do("a prescription of 200 µg/day", lambda: _program(session, 400))
    demo.do("a prescription of 150 µg/day", lambda: _program(session, 300))
    assert session.summary is not None
    digest = session.summary.digest
    say(f"      summary shown to the user: daily dose {Dose(session.summary.daily_dose_ng)}; confirmed")
    demo.do("CommitPrescription", lambda: session.confirm_summary(digest))
    if any(isinstance(e, Verified) for e in demo.send(session.verify())):
        say("      read-back matches what was confirmed")

    say("\n5. Titration: two days later +30 % (spinal origin), then another +10 % the same day")
    demo.wait(2 * SCALE)
    demo.do("SetRate 390", lambda: session.set_rate(390))
    demo.do("SetRate 430", lambda: session.set_rate(430))

    say("\n6. Refill at 2000 µg/mL (was 500): the path still holds the old drug")
    demo.wait(3 * SCALE)
    demo.send(session.start_refill())
    assert session.pump.refill is not None
    demo.send(session.record_residual(session.pump.refill.expected_residual_ul))
    demo.send(session.stage_drug(7_000, 2000))
    demo.do("the refill without a bridge", lambda: session.confirm_refill_drug(7_000, 2000))
    say("      with a bridge: the old drug in the path goes out at the prescribed dose first")
    demo.do("the refill", lambda: session.confirm_refill_drug(7_000, 2000, bridge=True))

    say("\n7. The motor stalls (an emulated fault): a critical alarm, acknowledged")
    for event in link.deliver(link.firmware.notify(pump.set_motor_stalled(True, link.now))):
        if isinstance(event, AlarmAnnounced):
            demo.send(session.acknowledge_alarm(event.alarm.alarm_id))
    link.deliver(link.firmware.notify(pump.set_motor_stalled(False, link.now)))

    say("\n8. An MRI: delivery stops until resumed; the stop is acknowledged")
    demo.wait(SCALE)
    demo.do("MriBegin", lambda: session.begin_mri(0))
    demo.do("MriBegin", lambda: session.begin_mri(0, ack("MRI-002")))
    demo.wait(2 * 3600)
    demo.do("MriEnd", session.end_mri)
    demo.do("SessionEnd", session.end)

    say("\n9. Resume after the scan; read the end of the pump's log (acknowledgements are logged); close")
    demo.do("Resume", session.resume)
    page = [e.reply for e in demo.send(session.read_events(0, 1)) if isinstance(e, Replied)]
    total = page[0].total if page and isinstance(page[0], EventLogPage) else 0
    demo.send(session.read_events(max(total - 8, 0), 8))
    demo.do("SessionEnd", session.end)
    say(
        f"\n{printer.frames} frames, {printer.octets} bytes, {printer.chunks} chunks on the link; "
        f"session {session.state}."
    )
    return printer.frames


def _program(session: ProgrammingSession, rate_ul_day: int) -> list[bytes]:
    """Draft, check and stage a continuous 500 µg/mL prescription."""
    session.draft(
        Prescription(
            mode=PrescriptionMode.CONTINUOUS,
            concentration_ug_ml=500,
            steps=(FlexStep(start_s=0, rate_ul_day=rate_ul_day),),
            boluses=(),
            patient=PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3),
            max_daily_dose_ng=300_000,
            max_bolus_ng=25_000,
        )
    )
    session.check()
    return session.send_stage()
