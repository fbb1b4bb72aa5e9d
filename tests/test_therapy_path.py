"""One patient's whole therapy path, end to end through the bytes: a programmer session and a pump.

Screening, implant, priming, the first dose, titration, refills with a concentration change (both ways), an
MRI and a long interruption. At each refusal both sides are asked: the programmer refuses to send the
command, and the pump, sent the same request directly, refuses it with the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from factories import POLICY, ack
from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Firmware
from itbproto.core.link import InMemoryLink
from itbproto.core.machines import ProgrammingSession, PumpMachine, Refused, SessionEvent
from itbproto.core.therapy import SCALE, TherapyState
from itbproto.core.wire import (
    NO_ACK,
    BolusKind,
    BolusStart,
    ErrorCode,
    FlexStep,
    Message,
    MriBegin,
    Origin,
    PatientGroup,
    Phase,
    Procedure,
    RefillConfirm,
    Resume,
    Role,
    ScreeningResponse,
    SetRate,
    TherapyMode,
    WithdrawalRisk,
)
from itbproto.errors import AcknowledgementRequired, SafetyViolation
from itbproto.io.specfiles import load_drug, load_profile
from itbproto.tools.samples import FIRST_PRESCRIPTION

HOUR, DAY = 3_600, SCALE
ADULT = (PatientGroup.ADULT, Origin.SPINAL)
RISKS = frozenset({WithdrawalRisk.HIGH_SPINAL_INJURY})


class Clinic:
    """A clinician's programmer and a pump on one link; the programmer re-reads what it must."""

    def __init__(self) -> None:
        profile, drug = load_profile("itb-20"), load_drug()
        therapy = TherapyState.new(
            now=200 * DAY, profile=profile, drug=drug, concentration_ug_ml=500, reservoir_ul=18_000
        )
        self.pump = PumpMachine.new(therapy, POLICY)
        self.session = ProgrammingSession(
            role=Role.CLINICIAN,
            profile=profile,
            drug=drug,
            policy=POLICY,
            connection=Connection(Side.PROGRAMMER),
        )
        self.link = InMemoryLink(Firmware(self.pump), self.session, now=therapy.now)
        self.link.ready("clinic")

    @property
    def therapy(self) -> TherapyState:
        return self.pump.therapy

    def read(self) -> None:
        """What the programmer's checks need, read again (between transactions)."""
        s = self.session
        if s.state != "ready":
            return
        self.link.exchange(s.read_status())
        self.link.exchange(s.read_patient_record())
        if s.pump.status is not None and s.pump.status.prescription_id:
            self.link.exchange(s.read_prescription())
        self.link.exchange(s.read_history())

    def do(self, make: Callable[[], list[bytes]]) -> list[SessionEvent]:
        """Send a step the programmer accepts; the pump must accept it too."""
        self.read()
        events = self.link.exchange(make())
        assert not [e for e in events if isinstance(e, Refused)], events
        return events

    def refused(self, make: Callable[[], list[bytes]], request: Message) -> tuple[str, ...]:
        """Both sides refuse: the programmer sends nothing, the pump sent ``request`` directly says why."""
        self.read()
        with pytest.raises(SafetyViolation) as info:
            make()
        acknowledge = isinstance(info.value, AcknowledgementRequired)
        # the same request on the same link, past the programmer's checks
        events = self.link.exchange(self.session.connection.send(request))
        (refusal,) = [e for e in events if isinstance(e, Refused)]
        reply = refusal.nack
        assert reply.code is (ErrorCode.NEEDS_ACKNOWLEDGEMENT if acknowledge else ErrorCode.SAFETY_RULE)
        assert reply.rules == info.value.rule_ids
        return reply.rules

    def wait(self, seconds: int) -> None:
        self.link.wait(seconds)


def test_one_patients_therapy_path() -> None:
    c = Clinic()
    s = c.session
    c.do(lambda: s.set_patient_record(*ADULT, Phase.SCREENING, RISKS))

    # screening: 50 µg, no response; a day later 75 µg, effective for 6 h; nothing after that
    c.do(lambda: s.start_bolus(BolusKind.CLINICIAN, 100, 600))
    c.wait(8 * HOUR)
    early = BolusStart(kind=BolusKind.CLINICIAN, volume_ul=150, duration_s=600)
    assert c.refused(lambda: s.start_bolus(BolusKind.CLINICIAN, 150, 600), early) == ("BOL-002",)
    c.do(lambda: s.record_screening_response(ScreeningResponse.NONE))
    c.wait(DAY)
    c.do(lambda: s.start_bolus(BolusKind.CLINICIAN, 150, 600))
    c.wait(8 * HOUR)
    c.do(lambda: s.record_screening_response(ScreeningResponse.EFFECTIVE, 6 * HOUR))
    assert c.therapy.record.screening_dose_ng == 75_000

    # implant and priming: the path holds saline until pushed out; therapy only then
    c.do(lambda: s.set_patient_record(*ADULT, Phase.IMPLANTED, RISKS))
    c.do(lambda: s.record_procedure(Procedure.PUMP_IMPLANT, 120))
    assert c.therapy.path.saline_scaled == 250 * SCALE
    c.do(lambda: s.start_bolus(BolusKind.PRIMING, 250, HOUR))
    c.wait(HOUR)
    c.do(lambda: s.set_patient_record(*ADULT, Phase.THERAPY, RISKS))
    assert c.therapy.path.saline_scaled == 0

    # the first daily dose, the next day: at most twice the effective screening dose
    c.wait(DAY)
    c.read()
    steps = (FlexStep(start_s=0, rate_ul_day=301),)
    s.draft(replace(FIRST_PRESCRIPTION, steps=steps, max_daily_dose_ng=400_000))
    with pytest.raises(SafetyViolation) as info:
        s.check()
    assert info.value.rule_ids == ("SCREEN-001",)
    s.cancel_draft()
    s.draft(FIRST_PRESCRIPTION)  # 100 µg/day
    s.check()
    c.link.exchange(s.send_stage())
    assert s.summary is not None
    c.link.exchange(s.confirm_summary(s.summary.digest))
    c.link.exchange(s.verify())
    assert c.pump.mode == "infusing"

    # titration: +30 % after two days (spinal origin), not twice in a day
    c.wait(2 * DAY)
    c.do(lambda: s.set_rate(260))
    again = ("TITR-001", "TITR-002", "FLEX-003")  # +35 % over the lowest dose of the day, twice in it
    assert c.refused(lambda: s.set_rate(270), SetRate(rate_ul_day=270)) == again

    # a refill at 2000 µg/mL: without a bridge a quarter dose at the tip for days; with one, none
    c.wait(20 * DAY)
    c.do(s.start_refill)
    assert s.pump.refill is not None
    c.link.exchange(s.record_residual(s.pump.refill.expected_residual_ul))
    c.link.exchange(s.stage_drug(5_000, 2000))
    staged = s.pump.refill_stage
    assert staged is not None
    plain = RefillConfirm(
        refill_id=staged.refill_id,
        volume_ul=5_000,
        concentration_ug_ml=2000,
        digest=staged.digest,
        bridge=False,
    )
    assert c.refused(lambda: s.confirm_refill_drug(5_000, 2000), plain) == ("FLOW-001",)
    c.link.exchange(s.confirm_refill_drug(5_000, 2000, bridge=True))
    assert c.pump.mode == "bolus"
    assert c.therapy.bolus is not None
    assert c.therapy.bolus.kind is BolusKind.BRIDGE

    # an MRI: stopped for the scan, acknowledged; three days later the full dose needs acknowledging
    c.wait(DAY)
    assert c.refused(lambda: s.begin_mri(0), MriBegin(emptied_ul=0)) == ("MRI-002",)
    c.do(lambda: s.begin_mri(0, ack("MRI-002")))
    assert c.therapy.mode is TherapyMode.MRI
    c.wait(3 * DAY)
    c.do(s.end_mri)
    assert c.refused(s.resume, Resume()) == ("RESTART-001",)
    c.do(lambda: s.resume(ack("RESTART-001")))
    assert c.therapy.delivering
    events = [e for e in c.pump.log.page(0, 1_000) if e.detail]
    assert [e.detail for e in events][-2:] == ["MRI-002 by test", "RESTART-001 by test"]

    # leaving: the session ends with drug flowing, nothing to acknowledge
    c.do(lambda: s.end(NO_ACK))
    assert s.state == "closed"
