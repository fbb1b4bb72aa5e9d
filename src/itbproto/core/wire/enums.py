"""Enumerations carried on the wire. Values are part of the protocol: never renumber."""

from __future__ import annotations

import enum

__all__ = [
    "AlarmCode",
    "BolusKind",
    "ErrorCode",
    "EventCode",
    "MsgType",
    "Origin",
    "PatientGroup",
    "Phase",
    "PrescriptionMode",
    "Procedure",
    "PumpKind",
    "Role",
    "ScreeningResponse",
    "Severity",
    "TherapyMode",
    "WithdrawalRisk",
]


class MsgType(enum.IntEnum):
    """Message type, one byte in the frame header. Families share the high nibble."""

    HELLO = 0x01
    DEVICE_INFO = 0x02
    SESSION_END = 0x03

    PAIR_START = 0x10
    PAIR_REPLY = 0x11
    PAIR_CONFIRM = 0x12
    PAIR_RESULT = 0x13

    STATUS_REQUEST = 0x20
    STATUS_REPORT = 0x21
    SET_CLOCK = 0x22

    READ_PRESCRIPTION = 0x30
    PRESCRIPTION_REPORT = 0x31
    STAGE_PRESCRIPTION = 0x32
    PRESCRIPTION_STAGED = 0x33
    COMMIT_PRESCRIPTION = 0x34
    SET_RATE = 0x35

    BOLUS_START = 0x40
    BOLUS_STARTED = 0x41
    BOLUS_CANCEL = 0x42
    BOLUS_CANCELLED = 0x43
    SUSPEND = 0x48
    RESUME = 0x49

    REFILL_BEGIN = 0x50
    REFILL_SESSION = 0x51
    REFILL_RESIDUAL = 0x52
    RESIDUAL_RECORDED = 0x53
    REFILL_STAGE_DRUG = 0x54
    REFILL_STAGED = 0x55
    REFILL_CONFIRM = 0x56
    REFILL_ABORT = 0x57
    RECORD_PROCEDURE = 0x58
    READ_PATIENT_RECORD = 0x59
    PATIENT_RECORD_REPORT = 0x5A
    SET_PATIENT_RECORD = 0x5B
    RECORD_SCREENING_RESPONSE = 0x5C
    MRI_BEGIN = 0x5D
    MRI_END = 0x5E

    ALARM_NOTIFY = 0x60
    ALARM_LIST_REQUEST = 0x61
    ALARM_LIST = 0x62
    ALARM_ACKNOWLEDGE = 0x63
    ALARM_SILENCE = 0x64
    READ_THRESHOLDS = 0x65
    THRESHOLDS_REPORT = 0x66
    SET_THRESHOLDS = 0x67

    EVENT_LOG_READ = 0x70
    EVENT_LOG_PAGE = 0x71
    READ_HISTORY = 0x72
    THERAPY_HISTORY = 0x73

    ACK = 0x7E
    NACK = 0x7F


class Role(enum.IntEnum):
    """Who is programming: decides which commands a session may send."""

    CLINICIAN = 1
    PATIENT = 2
    SERVICE = 3


class TherapyMode(enum.IntEnum):
    """What the pump is doing."""

    STOPPED = 0  # no prescription in force, or never started
    INFUSING = 1
    BOLUS = 2  # a bolus on top of the basal flow
    SUSPENDED = 3
    REFILL = 4  # a refill is in progress; delivery continues from the residual
    HALTED = 5  # meant to deliver but nothing flows: empty reservoir or stalled motor (see alarms)
    END_OF_SERVICE = 6  # the battery is spent: the pump delivers nothing, for good
    MRI = 7  # prepared for an MRI scan: nothing flows until the scan is over and delivery resumes


class PrescriptionMode(enum.IntEnum):
    """Continuous: one rate all day. Flex: up to 10 daily steps."""

    CONTINUOUS = 1
    FLEX = 2


class Origin(enum.IntEnum):
    """Origin of the spasticity (the pump's patient record); it sets the titration step limit."""

    SPINAL = 1
    CEREBRAL = 2


class PatientGroup(enum.IntEnum):
    """Adult or child (the pump's patient record); children get the stricter limits."""

    ADULT = 1
    CHILD = 2


class WithdrawalRisk(enum.IntEnum):
    """What makes a withdrawal more likely or harder to notice (label boxed warning): bits of a flag set."""

    HIGH_SPINAL_INJURY = 0  # spinal cord injury at T6 or above
    COMMUNICATION = 1  # communication difficulties
    WITHDRAWAL_HISTORY = 2  # a withdrawal before


class Phase(enum.IntEnum):
    """Where the patient is on the therapy path."""

    SCREENING = 1  # test boluses: 50, 75, 100 µg, 24 h apart
    IMPLANTED = 2  # the pump is in; the catheter must be primed before therapy
    THERAPY = 3  # titration and maintenance


class ScreeningResponse(enum.IntEnum):
    """What the clinician observed after a screening dose."""

    PENDING = 0  # not recorded yet
    NONE = 1  # no response: the next dose may follow after 24 h
    EFFECTIVE = 2  # a response: screening is over; this is the effective screening dose


class PumpKind(enum.IntEnum):
    """How the pump meters the drug; it decides what an MRI does to it."""

    MOTOR = 1  # a peristaltic motor: a strong magnetic field can stall it
    VALVE = 2  # a gas-driven reservoir behind valves: a strong field can open them and discharge it


class BolusKind(enum.IntEnum):
    """Why a bolus is given; each kind has its own rules."""

    CLINICIAN = 1  # includes the screening doses
    BRIDGE = 2  # after a concentration change, until the new drug reaches the catheter tip
    PRIMING = 3  # after catheter or pump work, fills the catheter
    PATIENT = 4  # patient-activated, within lockout and daily count


class Procedure(enum.IntEnum):
    """Surgical or access work that leaves the catheter to be primed."""

    PUMP_IMPLANT = 1
    CATHETER_REVISION = 2
    PUMP_REPLACEMENT = 3


class AlarmCode(enum.IntEnum):
    """Conditions the pump annunciates."""

    LOW_RESERVOIR = 1
    EMPTY_RESERVOIR = 2
    BATTERY_ERI = 3
    BATTERY_EOS = 4
    MOTOR_STALL = 5
    DELIVERY_STOPPED = 6
    DRUG_EXPIRED = 7  # the drug in the reservoir is past its stability date


class Severity(enum.IntEnum):
    """Non-critical: 1 s single tone. Critical: 3 s two-tone, re-annunciated until its condition clears."""

    NON_CRITICAL = 1
    CRITICAL = 2


class ErrorCode(enum.IntEnum):
    """Why a request was refused (carried in Nack); specs/protocol.md says when each applies."""

    MALFORMED = 1  # the payload does not parse, or a reserved header flag is set
    UNKNOWN_MESSAGE = 2  # the type is not in the catalog, or is not a request
    UNSUPPORTED_VERSION = 3  # frame or Hello version the pump does not speak
    FIELD_RANGE = 4  # a field outside its declared range
    WRONG_STATE = 5  # the command cannot apply in the pump's current state
    NOT_AUTHENTICATED = 6  # no session: Hello first (or after SessionEnd)
    ROLE_FORBIDDEN = 7  # the session's role may not send this request
    SAFETY_RULE = 8  # safety rules refused it; Nack.rules names them
    REPLAY = 9  # a transaction id not newer than the last one answered, and not the stored one
    STALE_STAGE = 10  # stage id or digest differs from what was staged
    UNKNOWN_ID = 11  # no such bolus, refill or alarm
    HARDWARE_FAULT = 12  # end of service: the pump accepts no command
    BUSY = 13  # another programmer holds the programming session
    INTERNAL = 14  # the pump failed; nothing was applied
    BAD_TXN = 15  # transaction id 0, or a jump too far ahead of the last one
    TXN_REUSED = 16  # the stored transaction id with a different request
    NEEDS_ACKNOWLEDGEMENT = 17  # a hazard the user must acknowledge; Nack.rules names the rules


class EventCode(enum.IntEnum):
    """Entries of the device's event log."""

    BOOT = 1
    SESSION_STARTED = 2
    SESSION_ENDED = 3
    SESSION_ENDED_STOPPED = 4
    PRESCRIPTION_COMMITTED = 5
    RATE_CHANGED = 6
    BOLUS_STARTED = 7
    BOLUS_COMPLETED = 8
    BOLUS_CANCELLED = 9
    SUSPENDED = 10
    RESUMED = 11
    REFILL_CONFIRMED = 12
    REFILL_ABORTED = 13
    ALARM_RAISED = 14
    ALARM_ACKNOWLEDGED = 15
    ALARM_SILENCED = 16
    THRESHOLDS_CHANGED = 17
    CLOCK_SET = 18
    COMMAND_REFUSED = 19
    PROCEDURE_RECORDED = 20
    REFILL_BEGUN = 21
    PRESCRIPTION_STAGED = 22
    ALARM_CLEARED = 23
    FAULT = 24
    PATIENT_RECORD_SET = 25
    SCREENING_RESPONSE = 26
    MRI_BEGUN = 27
    MRI_ENDED = 28
    ACKNOWLEDGED = 29  # a hazard acknowledged with a command: detail names the rule and who
    PAIRED = 30  # a programmer paired: value the key id, detail its role
    PAIRING_FAILED = 31  # a wrong PIN (or an altered exchange): value the failures in a row
    FRAME_DROPPED = (
        32  # frames dropped unanswered on a link (forged, stale, broken): the first, then the total
    )
    REFUSALS_COUNTED = 33  # requests refused on a link without a session: value their total on the link
    ANSWER_REPEATED = 34  # a command answered again from transaction memory: the first, then the total
