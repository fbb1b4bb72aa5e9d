"""The wire protocol, sans-IO: message catalog, frame envelope, BLE fragmentation.

``encode(message, txn=..., seq=...) -> bytes`` and ``decode(bytes) -> Frame``
are the whole API most callers need; see specs/protocol.md for the layout.
"""

from itbproto.wire.enums import (
    AlarmCode,
    BolusKind,
    ErrorCode,
    EventCode,
    MsgType,
    Origin,
    PatientGroup,
    PrescriptionMode,
    Procedure,
    Role,
    Severity,
    TherapyMode,
)
from itbproto.wire.fragment import Reassembler, fragment
from itbproto.wire.frame import (
    CRC_SIZE,
    FLAG_SEALED,
    HEADER_SIZE,
    MAX_FRAME,
    MAX_PAYLOAD,
    PLAIN,
    TAG_SIZE,
    Channel,
    Frame,
    FrameHeader,
    PlainChannel,
    check_header,
    crc16,
    decode,
    encode,
    open_frame,
)
from itbproto.wire.message import CATALOG, Effect, Kind, Message, Record, message_class
from itbproto.wire.messages import *  # noqa: F403  (the catalog is the public API)
from itbproto.wire.messages import __all__ as _messages_all

__all__ = [
    "CATALOG",
    "CRC_SIZE",
    "FLAG_SEALED",
    "HEADER_SIZE",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "PLAIN",
    "TAG_SIZE",
    "AlarmCode",
    "BolusKind",
    "Channel",
    "Effect",
    "ErrorCode",
    "EventCode",
    "Frame",
    "FrameHeader",
    "Kind",
    "Message",
    "MsgType",
    "Origin",
    "PatientGroup",
    "PlainChannel",
    "PrescriptionMode",
    "Procedure",
    "Reassembler",
    "Record",
    "Role",
    "Severity",
    "TherapyMode",
    "check_header",
    "crc16",
    "decode",
    "encode",
    "fragment",
    "message_class",
    "open_frame",
    *_messages_all,
]
