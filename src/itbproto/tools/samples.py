"""A realistic programming exchange, and one sample of every message type.

Used by ``itbproto demo``, by the golden vectors in specs/vectors/ and by the
tests. The numbers follow the clinical notes (500 µg/mL baclofen, ~400 µg/day
maintenance, a 10 % titration step, a 20 mL reservoir); they are illustrative.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from itbproto.core.therapy.state import digest
from itbproto.core.wire import enums as e
from itbproto.core.wire import messages as m
from itbproto.core.wire.message import Message

__all__ = ["EXCHANGE", "FIRST_PRESCRIPTION", "IN_THERAPY", "PRESCRIPTION", "SAMPLES", "SCREENED", "Step"]

T0 = 40_000_000  # device time at the start of the session (about 463 days after the epoch)

#: a patient screened with an effective 50 µg dose (its effect lasted 6 h), implanted, in therapy
SCREENED = m.PatientRecord(
    group=e.PatientGroup.ADULT,
    origin=e.Origin.SPINAL,
    risks=frozenset(),
    phase=e.Phase.IMPLANTED,
    screening_dose_ng=50_000,
    screening_effect_s=6 * 3600,
)
IN_THERAPY = replace(SCREENED, phase=e.Phase.THERAPY)

PRESCRIPTION = m.Prescription(
    mode=e.PrescriptionMode.FLEX,
    concentration_ug_ml=500,
    steps=(
        m.FlexStep(start_s=0, rate_ul_day=720),  # 360 µg/day overnight
        m.FlexStep(start_s=7 * 3600, rate_ul_day=880),  # 440 µg/day while awake
        m.FlexStep(start_s=22 * 3600, rate_ul_day=720),
    ),
    boluses=(m.PeriodicBolus(start_s=8 * 3600, volume_ul=20, duration_s=900),),
    patient=m.PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3),
    max_daily_dose_ng=600_000,
    max_bolus_ng=50_000,
)

#: the first daily dose after an effective 50 µg screening dose: 100 µg/day (SCREEN-001 allows twice it)
FIRST_PRESCRIPTION = m.Prescription(
    mode=e.PrescriptionMode.CONTINUOUS,
    concentration_ug_ml=500,
    steps=(m.FlexStep(start_s=0, rate_ul_day=200),),
    boluses=(),
    patient=m.PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3),
    max_daily_dose_ng=150_000,
    max_bolus_ng=25_000,
)


@dataclass(frozen=True, slots=True)
class Step:
    """One frame of the exchange: who sent it, its transaction id and the message."""

    sender: Literal["programmer", "pump"]
    txn: int
    message: Message


def _pair(txn: int, request: Message, reply: Message) -> tuple[Step, Step]:
    return Step("programmer", txn, request), Step("pump", txn, reply)


def _ack(request: type[Message], at: int) -> m.Ack:
    return m.Ack(request=request.TYPE, applied_at=at)


EXCHANGE: tuple[Step, ...] = (
    *_pair(
        1,
        m.Hello(protocol_version=1, role=e.Role.CLINICIAN, max_frame=1045, client="clinic-tab-07"),
        m.DeviceInfo(
            protocol_version=1,
            model="ITB20",
            serial="ITB20-000417",
            firmware="1.4.2",
            profile="itb-20",
            reservoir_capacity_ul=20_000,
            min_rate_ul_day=48,
            max_rate_ul_day=24_000,
            rate_step_ul_day=1,
            max_flex_steps=10,
            device_time=T0,
            paired=True,
            pump_kind=e.PumpKind.MOTOR,
            max_frame=1045,
            last_txn=0,
        ),
    ),
    *_pair(
        2,
        m.PairStart(role=e.Role.CLINICIAN, spake2=bytes(range(0x41, 0x41 + 33))),
        m.PairReply(spake2=bytes(range(0x90, 0x90 + 33)), salt=bytes(range(16))),
    ),
    *_pair(
        3,
        m.PairConfirm(confirm=bytes(range(0xA0, 0xC0))),
        m.PairResult(confirm=bytes(range(0xC0, 0xE0)), key_id=0x1D2C3B4A),
    ),
    *_pair(
        4,
        m.StatusRequest(),
        m.StatusReport(
            device_time=T0 + 5,
            mode=e.TherapyMode.INFUSING,
            phase=e.Phase.THERAPY,
            alarms=frozenset({e.AlarmCode.LOW_RESERVOIR}),
            reservoir_ul=2_150,
            concentration_ug_ml=500,
            rate_ul_day=800,
            bolus_remaining_ul=0,
            delivered_24h_ng=400_000,
            battery_days=1_460,
            prescription_id=12,
            last_txn=0,
        ),
    ),
    *_pair(
        5,
        m.ReadPrescription(),
        m.PrescriptionReport(prescription_id=12, committed_at=T0 - 86_400 * 30, prescription=PRESCRIPTION),
    ),
    *_pair(
        6,
        STAGE := m.StagePrescription(
            prescription=m.Prescription(
                mode=e.PrescriptionMode.CONTINUOUS,
                concentration_ug_ml=500,
                steps=(m.FlexStep(start_s=0, rate_ul_day=880),),  # +10 %: 400 -> 440 µg/day
                boluses=(),
                patient=PRESCRIPTION.patient,
                max_daily_dose_ng=600_000,
                max_bolus_ng=50_000,
            )
        ),
        m.PrescriptionStaged(stage_id=7, digest=digest(STAGE), daily_dose_ng=440_000, acknowledge=()),
    ),
    *_pair(7, m.CommitPrescription(stage_id=7, digest=digest(STAGE)), _ack(m.CommitPrescription, T0 + 40)),
    *_pair(
        8,
        m.SetRate(rate_ul_day=1_400),
        m.Nack(
            request=e.MsgType.SET_RATE,
            code=e.ErrorCode.SAFETY_RULE,
            rules=("TITR-001",),
            detail="+59 % in 24 h; spinal origin allows at most +30 %",
        ),
    ),
    Step(
        "pump",
        0,
        m.AlarmNotify(
            alarm=m.AlarmRecord(
                alarm_id=31,
                code=e.AlarmCode.LOW_RESERVOIR,
                severity=e.Severity.NON_CRITICAL,
                raised_at=T0 + 60,
                silenced_until=0,
                acknowledged=False,
            )
        ),
    ),
    *_pair(9, m.AlarmAcknowledge(alarm_id=31), _ack(m.AlarmAcknowledge, T0 + 65)),
    *_pair(10, m.RefillBegin(), m.RefillSession(refill_id=4, expected_residual_ul=2_140, capacity_ul=20_000)),
    *_pair(
        11,
        m.RefillResidual(refill_id=4, measured_ul=2_000),
        m.ResidualRecorded(
            refill_id=4,
            expected_ul=2_140,
            measured_ul=2_000,
            discrepancy_ul=-140,
            needs_acknowledgement=False,
        ),
    ),
    *_pair(
        12,
        DRUG := m.RefillStageDrug(refill_id=4, volume_ul=20_000, concentration_ug_ml=500),
        m.RefillStaged(refill_id=4, volume_ul=20_000, concentration_ug_ml=500, digest=digest(DRUG)),
    ),
    *_pair(
        13,
        m.RefillConfirm(
            refill_id=4,
            volume_ul=20_000,
            concentration_ug_ml=500,
            digest=digest(DRUG),
            bridge=False,
        ),
        _ack(m.RefillConfirm, T0 + 600),
    ),
    *_pair(
        14,
        m.BolusStart(kind=e.BolusKind.CLINICIAN, volume_ul=100, duration_s=60),
        m.BolusStarted(bolus_id=88, dose_ng=50_000, ends_at=T0 + 720),
    ),
    *_pair(15, m.SessionEnd(), _ack(m.SessionEnd, T0 + 900)),
)

_EXTRA: tuple[Message, ...] = (
    m.SetClock(device_time=T0 + 3),
    m.BolusCancel(bolus_id=88),
    m.BolusCancelled(bolus_id=88, delivered_ul=40, not_delivered_ul=60),
    m.Suspend(duration_s=3_600, ack=m.Acknowledgement(rules=("STOP-002",), by="dr-lee")),
    m.Resume(),
    m.RefillAbort(refill_id=4),
    m.RecordProcedure(procedure=e.Procedure.CATHETER_REVISION, catheter_volume_ul=140),
    m.ReadPatientRecord(),
    m.PatientRecordReport(
        records=(
            m.RecordChange(since=T0 - 400 * 86_400, record=SCREENED),
            m.RecordChange(since=T0 - 380 * 86_400, record=replace(SCREENED, phase=e.Phase.THERAPY)),
        )
    ),
    m.SetPatientRecord(
        group=e.PatientGroup.ADULT,
        origin=e.Origin.SPINAL,
        risks=frozenset({e.WithdrawalRisk.HIGH_SPINAL_INJURY}),
        phase=e.Phase.THERAPY,
    ),
    m.RecordScreeningResponse(response=e.ScreeningResponse.EFFECTIVE, effect_s=6 * 3600),
    m.MriBegin(emptied_ul=0, ack=m.Acknowledgement(rules=("MRI-002",), by="dr-lee")),
    m.MriEnd(),
    m.AlarmListRequest(),
    m.AlarmList(
        alarms=(
            m.AlarmRecord(
                alarm_id=32,
                code=e.AlarmCode.BATTERY_ERI,
                severity=e.Severity.NON_CRITICAL,
                raised_at=T0 + 100,
                silenced_until=T0 + 3_700,
                acknowledged=True,
            ),
            m.AlarmRecord(
                alarm_id=33,
                code=e.AlarmCode.MOTOR_STALL,
                severity=e.Severity.CRITICAL,
                raised_at=T0 + 120,
                silenced_until=0,
                acknowledged=False,
            ),
        )
    ),
    m.AlarmSilence(alarm_id=33, duration_s=600),
    m.ReadThresholds(),
    m.ThresholdsReport(
        thresholds=m.AlarmThresholds(
            low_reservoir_ul=2_000, low_reservoir_days=7, eri_lead_days=90, reannunciate_s=600
        )
    ),
    m.SetThresholds(
        thresholds=m.AlarmThresholds(
            low_reservoir_ul=2_500, low_reservoir_days=10, eri_lead_days=90, reannunciate_s=300
        )
    ),
    m.ReadHistory(),
    m.TherapyHistory(
        complete=True,
        needs_priming=False,
        concentration_changed_at=0,
        bridge_given=False,
        last_delivery_at=T0,
        filled_at=T0 - 40 * 86_400,
        path=(m.PathSegment(volume_scaled=250 * 86_400, concentration_ug_ml=500),),
        flows=(
            m.FlowRecord(start=T0 - 86_400, end=T0 - 3_600, rate_ul_day=800, concentration_ug_ml=500),
            m.FlowRecord(start=T0 - 3_600, end=T0, rate_ul_day=880, concentration_ug_ml=500),
        ),
        doses=(
            m.DoseChange(since=T0 - 30 * 86_400, daily_dose_scaled=400_000 * 86_400, peak_ng_day=400_000),
            m.DoseChange(since=T0 - 3_600, daily_dose_scaled=440_000 * 86_400, peak_ng_day=440_000),
        ),
        boluses=(
            m.BolusEntry(
                start=T0 - 7_200,
                kind=e.BolusKind.PATIENT,
                volume_ul=10,
                dose_ng=5_000,
                screening=False,
                response=e.ScreeningResponse.PENDING,
            ),
        ),
    ),
    m.EventLogRead(first=120, count=2),
    m.EventLogPage(
        total=122,
        events=(
            m.EventRecord(
                index=120, at=T0 + 40, code=e.EventCode.PRESCRIPTION_COMMITTED, txn=7, value=0, detail=""
            ),
            m.EventRecord(
                index=121,
                at=T0 + 600,
                code=e.EventCode.ACKNOWLEDGED,
                txn=13,
                value=0,
                detail="REFILL-003 by dr-lee",
            ),
        ),
    ),
)

#: one sample of every message type, by type; the golden vectors are made from these
SAMPLES: dict[e.MsgType, Message] = {}
for _msg in (*(step.message for step in EXCHANGE), *_EXTRA):
    SAMPLES.setdefault(_msg.TYPE, _msg)
