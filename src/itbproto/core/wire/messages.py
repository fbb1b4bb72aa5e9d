"""The message catalog: every message of specs/protocol.md, defined once.

Units follow the field names: ``_ul`` µL, ``_ng`` ng, ``_ug_ml`` µg/mL,
``_ul_day`` µL/day, ``_s`` seconds, ``_at`` device time (s since the device
epoch). Wire ranges are physical and protocol bounds only; clinical limits are
the safety rules' job (specs/safety-rules.toml).
"""

from __future__ import annotations

from itbproto.core.wire.enums import (
    AlarmCode,
    BolusKind,
    ErrorCode,
    EventCode,
    MsgType,
    Origin,
    PatientGroup,
    Phase,
    PrescriptionMode,
    Procedure,
    PumpKind,
    Role,
    ScreeningResponse,
    Severity,
    TherapyMode,
    WithdrawalRisk,
)
from itbproto.core.wire.fields import (
    BOOL,
    I32,
    U8,
    U16,
    U32,
    U64,
    ArrayType,
    BlobType,
    EnumType,
    FlagSetType,
    RecordType,
    TextType,
    field,
)
from itbproto.core.wire.message import Effect, Kind, Message, Record, message, record

__all__ = [
    "MAX_ACKNOWLEDGED",
    "MAX_ALARMS",
    "MAX_CONCENTRATION_UG_ML",
    "MAX_DETAIL",
    "MAX_EVENTS_PER_PAGE",
    "MAX_EVENT_BYTES",
    "MAX_FLEX_STEPS",
    "MAX_HISTORY_BOLUSES",
    "MAX_HISTORY_DOSES",
    "MAX_HISTORY_FLOWS",
    "MAX_LOG_DETAIL",
    "MAX_PERIODIC_BOLUSES",
    "MAX_RATE_UL_DAY",
    "MAX_RULE_IDS",
    "MAX_VOLUME_UL",
    "MIN_MAX_FRAME",
    "NO_ACK",
    "PROTOCOL_VERSION",
    "Ack",
    "Acknowledgement",
    "AlarmAcknowledge",
    "AlarmList",
    "AlarmListRequest",
    "AlarmNotify",
    "AlarmRecord",
    "AlarmSilence",
    "AlarmThresholds",
    "BolusCancel",
    "BolusCancelled",
    "BolusEntry",
    "BolusStart",
    "BolusStarted",
    "CommitPrescription",
    "DeviceInfo",
    "DoseChange",
    "EventLogPage",
    "EventLogRead",
    "EventRecord",
    "FlexStep",
    "FlowRecord",
    "Hello",
    "MriBegin",
    "MriEnd",
    "Nack",
    "PairConfirm",
    "PairReply",
    "PairResult",
    "PairStart",
    "PathSegment",
    "PatientBolusPolicy",
    "PatientRecord",
    "PatientRecordReport",
    "PeriodicBolus",
    "Prescription",
    "PrescriptionReport",
    "PrescriptionStaged",
    "ReadHistory",
    "ReadPatientRecord",
    "ReadPrescription",
    "ReadThresholds",
    "RecordChange",
    "RecordProcedure",
    "RecordScreeningResponse",
    "RefillAbort",
    "RefillBegin",
    "RefillConfirm",
    "RefillResidual",
    "RefillSession",
    "RefillStageDrug",
    "RefillStaged",
    "ResidualRecorded",
    "Resume",
    "SessionEnd",
    "SetClock",
    "SetPatientRecord",
    "SetRate",
    "SetThresholds",
    "StagePrescription",
    "StatusReport",
    "StatusRequest",
    "Suspend",
    "TherapyHistory",
    "ThresholdsReport",
    "role_refusal",
]

PROTOCOL_VERSION = 1

MAX_VOLUME_UL = 100_000  # 100 mL: above any implantable reservoir
MAX_CONCENTRATION_UG_ML = 100_000
MAX_RATE_UL_DAY = 100_000
MAX_DURATION_S = 7 * 86_400
DAY_END_S = 86_399
MAX_FLEX_STEPS = 10
MAX_PERIODIC_BOLUSES = 8
MAX_ALARMS = 16
MAX_EVENTS_PER_PAGE = 50  # as many as a page of short entries holds
MAX_EVENT_BYTES = 1_019  # a page's entries: its payload (1,024 B) less the total and the count
MAX_RULE_IDS = 8  # rule IDs a Nack carries
MAX_ACKNOWLEDGED = 8  # rule IDs one command acknowledges
MAX_LOG_DETAIL = 24
MAX_PATH_SEGMENTS = 8
MAX_CATHETER_UL = 10_000
MAX_DETAIL = 96  # characters of a Nack's reason
MAX_HISTORY_FLOWS = 28
MAX_HISTORY_DOSES = 8
MAX_HISTORY_BOLUSES = 16
#: the smallest ``max_frame`` a programmer may announce: every reply but the two paged ones
#: (EventLogPage, TherapyHistory, which the pump trims to fit) is at most this long, sealed
MIN_MAX_FRAME = 272

ID = U32
ANYONE = frozenset(Role)  # session, reads, alarms
STAFF = frozenset({Role.CLINICIAN, Role.SERVICE})  # device upkeep, no therapy changes


RULE_ID = TextType(16, 1)


@record
class Acknowledgement(Record):
    """Hazards the user accepted for this command, by rule ID, and who (for the log)."""

    rules: tuple[str, ...] = field(ArrayType(RULE_ID, MAX_ACKNOWLEDGED), doc="IDs of the rules acknowledged")
    by: str = field(TextType(16), doc="who acknowledged (a user id)")


#: a command that acknowledges nothing
NO_ACK = Acknowledgement(rules=(), by="")


def _ack() -> Acknowledgement:
    return field(RecordType(Acknowledgement), default=NO_ACK, doc="hazards acknowledged, and by whom")


# --- generic replies -----------------------------------------------------------------------------


@message(MsgType.ACK, Kind.RESPONSE)
class Ack(Message):
    """The request was applied (or had already been applied under this transaction id)."""

    request: MsgType = field(EnumType(MsgType), doc="type of the request acknowledged")
    applied_at: int = field(U32, unit="s", doc="device time")


@message(MsgType.NACK, Kind.RESPONSE)
class Nack(Message):
    """The request was refused; nothing changed."""

    request: int = field(U8, doc="type byte of the refused request (may be unknown)")
    code: ErrorCode = field(EnumType(ErrorCode, U16))
    rules: tuple[str, ...] = field(ArrayType(RULE_ID, MAX_RULE_IDS), doc="IDs of the safety rules")
    detail: str = field(TextType(MAX_DETAIL), doc="human-readable reason (ASCII: µg is written ug)")

    @classmethod
    def refusing(cls, request: int, code: ErrorCode, detail: str, rules: tuple[str, ...] = ()) -> Nack:
        """A Nack that always encodes: the reason in ASCII, cut to fit, at most 8 rule IDs."""
        text = detail.translate(_ASCII)
        text = "".join(c if c.isascii() and c.isprintable() else "?" for c in text)
        if len(text) > MAX_DETAIL:
            text = text[: MAX_DETAIL - 3] + "..."
        return cls(
            request=int(request), code=code, rules=tuple(dict.fromkeys(rules))[:MAX_RULE_IDS], detail=text
        )


_ASCII = str.maketrans({"µ": "u", "×": "x", "–": "-", "—": "-", "≤": "<=", "≥": ">=", "→": "->", "…": "..."})


# --- session -------------------------------------------------------------------------------------


@message(MsgType.DEVICE_INFO, Kind.RESPONSE)
class DeviceInfo(Message):
    """Who the device is and what it can do."""

    protocol_version: int = field(U8, lo=1)
    model: str = field(TextType(8, 1), doc="short name, also advertised over BLE")
    serial: str = field(TextType(16, 1))
    firmware: str = field(TextType(16, 1))
    profile: str = field(TextType(16, 1), doc="device profile id from specs/profiles/")
    reservoir_capacity_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    min_rate_ul_day: int = field(U32, unit="µL/day", hi=MAX_RATE_UL_DAY)
    max_rate_ul_day: int = field(U32, unit="µL/day", hi=MAX_RATE_UL_DAY)
    rate_step_ul_day: int = field(U32, unit="µL/day", lo=1, hi=MAX_RATE_UL_DAY)
    max_flex_steps: int = field(U8, lo=1, hi=MAX_FLEX_STEPS)
    device_time: int = field(U32, unit="s", doc="device time")
    paired: bool = field(
        BOOL,
        doc="1: the session runs under a key (keyed Hello); to a Hello without a key, the pump takes paired "
        "programmers only and opened no session (§6)",
    )
    pump_kind: PumpKind = field(EnumType(PumpKind), doc="what a strong magnetic field does to it")
    max_frame: int = field(U16, unit="B", lo=MIN_MAX_FRAME, doc="largest frame the pump accepts")
    nonce: bytes = field(
        BlobType(16, 16),
        default=bytes(16),
        doc="the pump's fresh session nonce (keyed Hello); zero bytes otherwise",
    )
    last_txn: int = field(ID, doc="last command transaction id answered; number the next one above it")


@message(MsgType.HELLO, Kind.REQUEST, replies=(DeviceInfo,), effect=Effect.OPEN, roles=ANYONE)
class Hello(Message):
    """Opens a session: the programmer names the highest protocol version it speaks and its role."""

    protocol_version: int = field(U8, lo=1, doc="highest version the programmer speaks")
    role: Role = field(EnumType(Role))
    max_frame: int = field(U16, unit="B", lo=MIN_MAX_FRAME, doc="largest frame the programmer accepts")
    client: str = field(TextType(16), doc="programmer name, for the event log")
    key_id: int = field(U32, default=0, doc="the paired key this session runs under; 0: unpaired")
    nonce: bytes = field(
        BlobType(16, 16),
        default=bytes(16),
        doc="the programmer's fresh session nonce; key_id 0: 16 zero bytes, which a pump ignores",
    )


@message(MsgType.SESSION_END, Kind.REQUEST, replies=(Ack,), roles=ANYONE)
class SessionEnd(Message):
    """Closes the session; ending it while nothing is delivered needs the acknowledgement (STOP-001)."""

    ack: Acknowledgement = _ack()


# --- pairing (SPAKE2 placeholders; the security layer fills them) ---------------------------------


@message(MsgType.PAIR_REPLY, Kind.RESPONSE)
class PairReply(Message):
    """Device's SPAKE2 message."""

    spake2: bytes = field(BlobType(65, 1))
    salt: bytes = field(BlobType(16, 16))


@message(MsgType.PAIR_START, Kind.REQUEST, replies=(PairReply,), effect=Effect.OPEN, roles=ANYONE)
class PairStart(Message):
    """Programmer's SPAKE2 message for the requested role."""

    role: Role = field(EnumType(Role))
    spake2: bytes = field(BlobType(65, 1))


@message(MsgType.PAIR_RESULT, Kind.RESPONSE)
class PairResult(Message):
    """Device's key confirmation and the new key's id; nothing is sealed yet: a Hello with the key opens a
    sealed session."""

    confirm: bytes = field(BlobType(32, 32), doc="device key-confirmation MAC")
    key_id: int = field(ID)


@message(MsgType.PAIR_CONFIRM, Kind.REQUEST, replies=(PairResult,), effect=Effect.OPEN, roles=ANYONE)
class PairConfirm(Message):
    """Programmer's key confirmation."""

    confirm: bytes = field(BlobType(32, 32), doc="programmer key-confirmation MAC")


# --- status and clock ----------------------------------------------------------------------------


@message(MsgType.STATUS_REPORT, Kind.RESPONSE)
class StatusReport(Message):
    """The pump's state in one frame; the hot path of the protocol."""

    device_time: int = field(U32, unit="s", doc="device time")
    mode: TherapyMode = field(EnumType(TherapyMode), doc="what the pump is doing (HALTED: nothing flows)")
    phase: Phase = field(EnumType(Phase), doc="the patient record's phase")
    alarms: frozenset[AlarmCode] = field(FlagSetType(AlarmCode, U16), doc="active alarms")
    reservoir_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    concentration_ug_ml: int = field(U32, unit="µg/mL", hi=MAX_CONCENTRATION_UG_ML)
    rate_ul_day: int = field(U32, unit="µL/day", hi=MAX_RATE_UL_DAY, doc="basal rate flowing now, 0 if none")
    bolus_remaining_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    delivered_24h_ng: int = field(U32, unit="ng", doc="delivered in the last 24 h, rounded up")
    battery_days: int = field(U16, unit="day", doc="days of battery left at the programmed volume, 0 at EOS")
    prescription_id: int = field(ID, doc="0: none in force")
    last_txn: int = field(ID, doc="last command transaction id answered (uncertain-delivery resolution)")


@message(MsgType.STATUS_REQUEST, Kind.REQUEST, replies=(StatusReport,), effect=Effect.READ, roles=ANYONE)
class StatusRequest(Message):
    """Asks for a StatusReport."""


@message(MsgType.SET_CLOCK, Kind.REQUEST, replies=(Ack,), roles=STAFF)
class SetClock(Message):
    """Sets the device clock (device epoch seconds)."""

    device_time: int = field(U32, unit="s", doc="device time")


# --- prescription --------------------------------------------------------------------------------


@record
class FlexStep(Record):
    """From ``start_s`` after midnight until the next step, deliver ``rate_ul_day``."""

    start_s: int = field(U32, unit="s", hi=DAY_END_S, doc="offset from midnight")
    rate_ul_day: int = field(U32, unit="µL/day", hi=MAX_RATE_UL_DAY)


@record
class PeriodicBolus(Record):
    """A bolus given every day at ``start_s`` after midnight."""

    start_s: int = field(U32, unit="s", hi=DAY_END_S, doc="offset from midnight")
    volume_ul: int = field(U32, unit="µL", lo=1, hi=MAX_VOLUME_UL)
    duration_s: int = field(U32, unit="s", lo=1, hi=86_400)


@record
class PatientBolusPolicy(Record):
    """What the patient may self-administer; ``max_per_day`` 0 disables it."""

    volume_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    duration_s: int = field(U32, unit="s", hi=86_400)
    lockout_s: int = field(U32, unit="s", hi=86_400, doc="minimum time between activations")
    max_per_day: int = field(U8, hi=24)


@record
class Prescription(Record):
    """A complete daily therapy program with its limits."""

    mode: PrescriptionMode = field(EnumType(PrescriptionMode))
    concentration_ug_ml: int = field(U32, unit="µg/mL", lo=1, hi=MAX_CONCENTRATION_UG_ML)
    steps: tuple[FlexStep, ...] = field(ArrayType(RecordType(FlexStep), MAX_FLEX_STEPS, 1))
    boluses: tuple[PeriodicBolus, ...] = field(ArrayType(RecordType(PeriodicBolus), MAX_PERIODIC_BOLUSES))
    patient: PatientBolusPolicy = field(RecordType(PatientBolusPolicy))
    max_daily_dose_ng: int = field(U32, unit="ng", doc="limit over any rolling 24 h")
    max_bolus_ng: int = field(U32, unit="ng", doc="limit for one bolus")


@message(MsgType.PRESCRIPTION_REPORT, Kind.RESPONSE)
class PrescriptionReport(Message):
    """The prescription in force."""

    prescription_id: int = field(ID)
    committed_at: int = field(U32, unit="s", doc="device time")
    prescription: Prescription = field(RecordType(Prescription))


@message(
    MsgType.READ_PRESCRIPTION, Kind.REQUEST, replies=(PrescriptionReport,), effect=Effect.READ, roles=ANYONE
)
class ReadPrescription(Message):
    """Asks for the prescription in force (read-back after programming); with none, Nack WRONG_STATE."""


@message(MsgType.PRESCRIPTION_STAGED, Kind.RESPONSE)
class PrescriptionStaged(Message):
    """The device checked and holds a staged prescription; nothing delivered yet."""

    stage_id: int = field(ID)
    digest: int = field(U32, doc="CRC-32 (zlib) of the StagePrescription payload")
    daily_dose_ng: int = field(U32, unit="ng", doc="basal + periodic boluses per day, device-computed")
    acknowledge: tuple[str, ...] = field(
        ArrayType(RULE_ID, MAX_ACKNOWLEDGED), doc="rules whose hazards the commit must acknowledge"
    )


@message(MsgType.STAGE_PRESCRIPTION, Kind.REQUEST, replies=(PrescriptionStaged,))
class StagePrescription(Message):
    """Step 1 of 2: the device validates and stages a prescription."""

    prescription: Prescription = field(RecordType(Prescription))


@message(MsgType.COMMIT_PRESCRIPTION, Kind.REQUEST, replies=(Ack,), changes_delivery=True)
class CommitPrescription(Message):
    """Step 2 of 2: the user confirmed the summary; apply exactly what was staged."""

    stage_id: int = field(ID)
    digest: int = field(U32, doc="must equal the staged digest")
    ack: Acknowledgement = _ack()


@message(MsgType.SET_RATE, Kind.REQUEST, replies=(Ack,), changes_delivery=True)
class SetRate(Message):
    """Changes the rate of a continuous prescription (titration)."""

    rate_ul_day: int = field(U32, unit="µL/day", hi=MAX_RATE_UL_DAY)
    ack: Acknowledgement = _ack()


# --- boluses, suspend, resume --------------------------------------------------------------------


@message(MsgType.BOLUS_STARTED, Kind.RESPONSE)
class BolusStarted(Message):
    """A bolus is being delivered."""

    bolus_id: int = field(ID)
    dose_ng: int = field(
        U32, unit="ng", doc="volume × the reservoir's concentration (BOL-001 counts the tip, the path first)"
    )
    ends_at: int = field(U32, unit="s", doc="device time")


@message(
    MsgType.BOLUS_START,
    Kind.REQUEST,
    replies=(BolusStarted,),
    changes_delivery=True,
    roles=frozenset({Role.CLINICIAN, Role.PATIENT}),
)
class BolusStart(Message):
    """Starts a bolus of ``volume_ul`` over ``duration_s`` on top of the basal rate (a bridge replaces it)."""

    kind: BolusKind = field(EnumType(BolusKind))
    volume_ul: int = field(U32, unit="µL", lo=1, hi=MAX_VOLUME_UL)
    duration_s: int = field(U32, unit="s", lo=1, hi=MAX_DURATION_S, doc="a bridge at a low dose takes days")
    ack: Acknowledgement = _ack()


@message(MsgType.BOLUS_CANCELLED, Kind.RESPONSE)
class BolusCancelled(Message):
    """How much of the cancelled bolus was given."""

    bolus_id: int = field(ID)
    delivered_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    not_delivered_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)


@message(MsgType.BOLUS_CANCEL, Kind.REQUEST, replies=(BolusCancelled,), changes_delivery=True)
class BolusCancel(Message):
    """Stops a running bolus; the basal rate continues."""

    bolus_id: int = field(ID)


@message(MsgType.SUSPEND, Kind.REQUEST, replies=(Ack,), changes_delivery=True)
class Suspend(Message):
    """Stops delivery for ``duration_s`` (0: until Resume). A withdrawal hazard (STOP-002)."""

    duration_s: int = field(U32, unit="s", hi=MAX_DURATION_S)
    ack: Acknowledgement = _ack()


@message(MsgType.RESUME, Kind.REQUEST, replies=(Ack,), changes_delivery=True)
class Resume(Message):
    """Resumes the prescription in force."""

    ack: Acknowledgement = _ack()


# --- refill ----------------------------------------------------------------------------------------


@message(MsgType.REFILL_SESSION, Kind.RESPONSE)
class RefillSession(Message):
    """A refill has begun; delivery continues from the residual until confirm or abort."""

    refill_id: int = field(ID)
    expected_residual_ul: int = field(
        U32, unit="µL", hi=MAX_VOLUME_UL, doc="what the device believes is left"
    )
    capacity_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)


@message(MsgType.REFILL_BEGIN, Kind.REQUEST, replies=(RefillSession,))
class RefillBegin(Message):
    """Starts the refill procedure."""


@message(MsgType.RESIDUAL_RECORDED, Kind.RESPONSE)
class ResidualRecorded(Message):
    """Expected and measured residual; a large discrepancy needs acknowledging at confirm."""

    refill_id: int = field(ID)
    expected_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    measured_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    discrepancy_ul: int = field(I32, unit="µL", doc="measured - expected")
    needs_acknowledgement: bool = field(BOOL)


@message(MsgType.REFILL_RESIDUAL, Kind.REQUEST, replies=(ResidualRecorded,))
class RefillResidual(Message):
    """Phase 1: the volume withdrawn from the reservoir before refilling."""

    refill_id: int = field(ID)
    measured_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)


@message(MsgType.REFILL_STAGED, Kind.RESPONSE)
class RefillStaged(Message):
    """The device's view of the reservoir after the refill, awaiting confirmation."""

    refill_id: int = field(ID)
    volume_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    concentration_ug_ml: int = field(U32, unit="µg/mL", lo=1, hi=MAX_CONCENTRATION_UG_ML)
    digest: int = field(U32, doc="CRC-32 (zlib) of the RefillStageDrug payload")


@message(MsgType.REFILL_STAGE_DRUG, Kind.REQUEST, replies=(RefillStaged,))
class RefillStageDrug(Message):
    """Phase 2: the drug put in (volume and concentration)."""

    refill_id: int = field(ID)
    volume_ul: int = field(U32, unit="µL", lo=1, hi=MAX_VOLUME_UL)
    concentration_ug_ml: int = field(U32, unit="µg/mL", lo=1, hi=MAX_CONCENTRATION_UG_ML)


@message(MsgType.REFILL_CONFIRM, Kind.REQUEST, replies=(Ack,), changes_delivery=True)
class RefillConfirm(Message):
    """Confirms volume and concentration again (two-step confirmation)."""

    refill_id: int = field(ID)
    volume_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    concentration_ug_ml: int = field(U32, unit="µg/mL", lo=1, hi=MAX_CONCENTRATION_UG_ML)
    digest: int = field(U32)
    bridge: bool = field(
        BOOL, doc="on a concentration change: deliver the path's old drug at its old rate first"
    )
    ack: Acknowledgement = _ack()


@message(MsgType.REFILL_ABORT, Kind.REQUEST, replies=(Ack,))
class RefillAbort(Message):
    """Abandons the refill; the reservoir keeps its old contents."""

    refill_id: int = field(ID)


@message(MsgType.RECORD_PROCEDURE, Kind.REQUEST, replies=(Ack,), roles=STAFF)
class RecordProcedure(Message):
    """Records implant or catheter work: the new parts hold saline and must be primed before therapy."""

    procedure: Procedure = field(EnumType(Procedure))
    catheter_volume_ul: int = field(
        U32, unit="µL", hi=MAX_CATHETER_UL, doc="the catheter's volume (implant, revision); else ignored"
    )


# --- the patient: record, screening, MRI ------------------------------------------------------------


@record
class PatientRecord(Record):
    """Who the pump treats: the category the rules read, the withdrawal risks, the phase, the screening."""

    group: PatientGroup = field(EnumType(PatientGroup))
    origin: Origin = field(EnumType(Origin))
    risks: frozenset[WithdrawalRisk] = field(FlagSetType(WithdrawalRisk, U8), doc="withdrawal-risk flags")
    phase: Phase = field(EnumType(Phase))
    screening_dose_ng: int = field(U32, unit="ng", doc="the effective screening dose, 0 if none yet")
    screening_effect_s: int = field(U32, unit="s", doc="how long its effect lasted")


@record
class RecordChange(Record):
    """From ``since``, this patient record was in force."""

    since: int = field(U32, unit="s", doc="device time")
    record: PatientRecord = field(RecordType(PatientRecord))


@message(MsgType.PATIENT_RECORD_REPORT, Kind.RESPONSE)
class PatientRecordReport(Message):
    """Patient records in force lately, oldest first (the last in force now); limits take the strictest."""

    records: tuple[RecordChange, ...] = field(ArrayType(RecordType(RecordChange), MAX_HISTORY_DOSES, 1))


@message(
    MsgType.READ_PATIENT_RECORD,
    Kind.REQUEST,
    replies=(PatientRecordReport,),
    effect=Effect.READ,
    roles=ANYONE,
)
class ReadPatientRecord(Message):
    """Asks for the patient record."""


@message(MsgType.SET_PATIENT_RECORD, Kind.REQUEST, replies=(Ack,))
class SetPatientRecord(Message):
    """Sets the patient record (the screening result is kept; the phase moves forward only, PHASE-001)."""

    group: PatientGroup = field(EnumType(PatientGroup))
    origin: Origin = field(EnumType(Origin))
    risks: frozenset[WithdrawalRisk] = field(FlagSetType(WithdrawalRisk, U8))
    phase: Phase = field(EnumType(Phase))


@message(MsgType.RECORD_SCREENING_RESPONSE, Kind.REQUEST, replies=(Ack,))
class RecordScreeningResponse(Message):
    """What the clinician observed after the last screening dose (and, if it worked, for how long)."""

    response: ScreeningResponse = field(EnumType(ScreeningResponse), doc="NONE or EFFECTIVE")
    effect_s: int = field(U32, unit="s", hi=7 * 86_400, doc="how long the effect lasted (EFFECTIVE)")


@message(MsgType.MRI_BEGIN, Kind.REQUEST, replies=(Ack,), changes_delivery=True)
class MriBegin(Message):
    """Before a scan: delivery stops (a valve-gated pump must have been emptied first). MRI-001."""

    emptied_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL, doc="what was withdrawn from the reservoir")
    ack: Acknowledgement = _ack()


@message(MsgType.MRI_END, Kind.REQUEST, replies=(Ack,))
class MriEnd(Message):
    """After the scan, the pump checked: it leaves MRI mode stopped; Resume restarts delivery."""


# --- alarms ------------------------------------------------------------------------------------------


@record
class AlarmRecord(Record):
    """One active alarm."""

    alarm_id: int = field(ID)
    code: AlarmCode = field(EnumType(AlarmCode))
    severity: Severity = field(EnumType(Severity))
    raised_at: int = field(U32, unit="s", doc="device time")
    silenced_until: int = field(U32, unit="s", doc="device time; 0 when sounding")
    acknowledged: bool = field(BOOL)


@record
class AlarmThresholds(Record):
    """When alarms trigger and how often critical ones repeat."""

    low_reservoir_ul: int = field(U32, unit="µL", hi=MAX_VOLUME_UL)
    low_reservoir_days: int = field(U16, unit="day", doc="alarm when the reservoir empties within this")
    eri_lead_days: int = field(U16, unit="day", doc="ERI warning before end of service")
    reannunciate_s: int = field(U32, unit="s", lo=60, hi=86_400, doc="critical alarm repeat period")


@message(MsgType.ALARM_NOTIFY, Kind.NOTIFICATION)
class AlarmNotify(Message):
    """Unsolicited: an alarm was raised or re-annunciated (transaction id 0)."""

    alarm: AlarmRecord = field(RecordType(AlarmRecord))


@message(MsgType.ALARM_LIST, Kind.RESPONSE)
class AlarmList(Message):
    """Active alarms."""

    alarms: tuple[AlarmRecord, ...] = field(ArrayType(RecordType(AlarmRecord), MAX_ALARMS))


@message(MsgType.ALARM_LIST_REQUEST, Kind.REQUEST, replies=(AlarmList,), effect=Effect.READ, roles=ANYONE)
class AlarmListRequest(Message):
    """Asks for the active alarms."""


@message(MsgType.ALARM_ACKNOWLEDGE, Kind.REQUEST, replies=(Ack,), roles=ANYONE)
class AlarmAcknowledge(Message):
    """The user has seen the alarm; a non-critical alarm stops sounding."""

    alarm_id: int = field(ID)


@message(MsgType.ALARM_SILENCE, Kind.REQUEST, replies=(Ack,), roles=ANYONE)
class AlarmSilence(Message):
    """Silences an alarm for a while; critical alarms come back after it."""

    alarm_id: int = field(ID)
    duration_s: int = field(U32, unit="s", lo=1, hi=MAX_DURATION_S)


@message(MsgType.THRESHOLDS_REPORT, Kind.RESPONSE)
class ThresholdsReport(Message):
    """Alarm thresholds in force."""

    thresholds: AlarmThresholds = field(RecordType(AlarmThresholds))


@message(MsgType.READ_THRESHOLDS, Kind.REQUEST, replies=(ThresholdsReport,), effect=Effect.READ, roles=ANYONE)
class ReadThresholds(Message):
    """Asks for the alarm thresholds."""


@message(MsgType.SET_THRESHOLDS, Kind.REQUEST, replies=(Ack,))
class SetThresholds(Message):
    """Changes the alarm thresholds."""

    thresholds: AlarmThresholds = field(RecordType(AlarmThresholds))


# --- event log ---------------------------------------------------------------------------------------


@record
class EventRecord(Record):
    """One entry of the device's append-only event log."""

    index: int = field(U32)
    at: int = field(U32, unit="s", doc="device time")
    code: EventCode = field(EnumType(EventCode, U16))
    txn: int = field(ID, doc="transaction that caused it, 0 if none")
    value: int = field(I32, doc="event-specific: µL, ng or an id")
    detail: str = field(TextType(MAX_LOG_DETAIL), doc="event-specific: who acknowledged which rule")


@message(MsgType.EVENT_LOG_PAGE, Kind.RESPONSE)
class EventLogPage(Message):
    """A page of the event log."""

    total: int = field(U32, doc="entries in the log")
    events: tuple[EventRecord, ...] = field(
        ArrayType(RecordType(EventRecord), MAX_EVENTS_PER_PAGE, max_bytes=MAX_EVENT_BYTES),
        doc="as many entries as fit: most have little or no detail",
    )


@message(MsgType.EVENT_LOG_READ, Kind.REQUEST, replies=(EventLogPage,), effect=Effect.READ, roles=ANYONE)
class EventLogRead(Message):
    """Reads up to ``count`` entries starting at ``first``."""

    first: int = field(U32)
    count: int = field(U8, lo=1, hi=MAX_EVENTS_PER_PAGE)


# --- therapy history: what a programmer needs to run the same rules as the pump ----------------------


@record
class FlowRecord(Record):
    """Drug delivered at a constant rate between two device times."""

    start: int = field(U32, unit="s", doc="device time")
    end: int = field(U32, unit="s", doc="device time")
    rate_ul_day: int = field(U32, unit="µL/day")
    concentration_ug_ml: int = field(U32, unit="µg/mL")


@record
class DoseChange(Record):
    """From ``since``, the programmed daily dose was ``daily_dose_scaled`` (ng × 86 400, exact)."""

    since: int = field(U32, unit="s", doc="device time")
    daily_dose_scaled: int = field(U64, unit="ng×86400")
    peak_ng_day: int = field(U64, unit="ng/day", doc="its highest basal dose rate")


@record
class BolusEntry(Record):
    """A bolus started (patient boluses count for lockouts; screening doses for their steps)."""

    start: int = field(U32, unit="s", doc="device time")
    kind: BolusKind = field(EnumType(BolusKind))
    volume_ul: int = field(U32, unit="µL")
    dose_ng: int = field(
        U32, unit="ng", doc="volume × the reservoir's concentration (BOL-001 counts the tip, the path first)"
    )
    screening: bool = field(BOOL)
    response: ScreeningResponse = field(
        EnumType(ScreeningResponse), doc="a screening dose's recorded response"
    )


@record
class PathSegment(Record):
    """Part of the fluid path (tip first): its volume and the concentration of what it holds."""

    volume_scaled: int = field(U64, unit="µL×86400")
    concentration_ug_ml: int = field(U32, unit="µg/mL", doc="0: saline, not primed")


@message(MsgType.THERAPY_HISTORY, Kind.RESPONSE)
class TherapyHistory(Message):
    """The last 24 h as the rules see it; ``complete`` false when older flows did not fit."""

    complete: bool = field(BOOL)
    needs_priming: bool = field(BOOL, doc="implant or catheter work recorded, catheter not yet primed")
    concentration_changed_at: int = field(U32, unit="s", doc="device time of the last change, 0 if none")
    bridge_given: bool = field(BOOL)
    last_delivery_at: int = field(U32, unit="s", doc="when drug last left the catheter tip")
    filled_at: int = field(U32, unit="s", doc="when the drug now in the reservoir was filled")
    path: tuple[PathSegment, ...] = field(
        ArrayType(RecordType(PathSegment), MAX_PATH_SEGMENTS), doc="the fluid path, tip first"
    )
    flows: tuple[FlowRecord, ...] = field(ArrayType(RecordType(FlowRecord), MAX_HISTORY_FLOWS))
    doses: tuple[DoseChange, ...] = field(ArrayType(RecordType(DoseChange), MAX_HISTORY_DOSES))
    boluses: tuple[BolusEntry, ...] = field(ArrayType(RecordType(BolusEntry), MAX_HISTORY_BOLUSES))


@message(MsgType.READ_HISTORY, Kind.REQUEST, replies=(TherapyHistory,), effect=Effect.READ, roles=ANYONE)
class ReadHistory(Message):
    """Asks for the therapy history the safety rules look at."""


# --- roles: the one table both sides enforce -------------------------------------------------------


def role_refusal(role: Role, request: Message) -> str | None:
    """Why a session in ``role`` may not send ``request``; None when it may.

    The ``roles`` of each request's declaration, plus one rule: a patient starts only the
    prescribed patient bolus. The programmer checks before sending, the pump before applying.
    """
    name = type(request).__name__
    if role not in request.ROLES:
        return f"a {role.name.lower()} may not send {name}"
    if isinstance(request, BolusStart) and role is Role.PATIENT and request.kind is not BolusKind.PATIENT:
        return "a patient may start only the patient bolus"
    return None
