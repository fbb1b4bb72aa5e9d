"""The frame envelope: header, payload, integrity trailer.

::

    offset  size  field
    0       1     version        PROTOCOL_VERSION
    1       1     flags          bit 0 SEALED (AEAD); bits 1-7 reserved, must be 0
    2       4     seq            sender's frame counter (the AEAD nonce counter)
    6       4     txn            transaction id; a response echoes its request's, 0 = none
    10      1     msg_type       MsgType
    11      2     length         payload bytes, <= MAX_PAYLOAD
    13      n     payload        the message, see specs/protocol.md
    13+n    2|8   trailer        plain: CRC-16/CCITT-FALSE over bytes 0..13+n, little-endian
                                 sealed: 8-byte AES-CCM tag (added by the security layer)

All integers are little-endian. :func:`encode` and :func:`decode` handle plain
frames; :func:`parse_envelope` checks the envelope of either kind and hands a
sealed frame's parts to the secure channel.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

from itbproto.errors import (
    BadCrcError,
    FieldRangeError,
    FrameLengthError,
    ReservedFlagsError,
    SealedFrameError,
    TruncatedFrameError,
    UnsupportedVersionError,
)
from itbproto.wire.fields import U8, U16, U32, RecordType, field
from itbproto.wire.message import Message, Record, message_class, record
from itbproto.wire.messages import PROTOCOL_VERSION

__all__ = [
    "CRC_SIZE",
    "FLAG_SEALED",
    "HEADER_SIZE",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "TAG_SIZE",
    "Envelope",
    "Frame",
    "FrameHeader",
    "crc16",
    "decode",
    "encode",
    "parse_envelope",
]

FLAG_SEALED = 0x01
RESERVED_FLAGS = 0xFE
MAX_PAYLOAD = 1024
CRC_SIZE = 2
TAG_SIZE = 8


@record
class FrameHeader(Record):
    """The 13-byte header in front of every payload."""

    version: int = field(U8, lo=1, doc="protocol version")
    flags: int = field(U8, doc="bit 0 SEALED; other bits reserved (0)")
    seq: int = field(U32, doc="sender's frame counter")
    txn: int = field(U32, doc="transaction id; responses echo it; 0 = none")
    msg_type: int = field(U8, doc="MsgType")
    length: int = field(U16, unit="B", hi=MAX_PAYLOAD, doc="payload length")


HEADER = RecordType(FrameHeader)
_HEADER = struct.Struct(HEADER.struct_format())
_CRC = struct.Struct("<H")
HEADER_SIZE = _HEADER.size
MAX_FRAME = HEADER_SIZE + MAX_PAYLOAD + TAG_SIZE


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    return binascii.crc_hqx(data, 0xFFFF)


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded plain frame: the message and the envelope fields that travel with it."""

    message: Message
    txn: int = 0
    seq: int = 0


@dataclass(frozen=True, slots=True)
class Envelope:
    """A frame whose envelope has been checked; its payload is not decoded yet."""

    header: FrameHeader
    payload: bytes
    trailer: bytes

    @property
    def sealed(self) -> bool:
        return bool(self.header.flags & FLAG_SEALED)

    @property
    def authenticated_data(self) -> bytes:
        """The header bytes: AEAD associated data and part of the CRC input."""
        h = self.header
        return _HEADER.pack(h.version, h.flags, h.seq, h.txn, h.msg_type, h.length)


def encode(message: Message, *, txn: int = 0, seq: int = 0) -> bytes:
    """A plain frame carrying ``message``; every field is range-checked first."""
    U32.check(txn, "txn")
    U32.check(seq, "seq")
    payload = message.CODEC.encode(message)
    if len(payload) > MAX_PAYLOAD:
        raise FieldRangeError("length", len(payload), f"0..{MAX_PAYLOAD}")
    head = _HEADER.pack(PROTOCOL_VERSION, 0, seq, txn, message.TYPE, len(payload)) + payload
    return head + _CRC.pack(crc16(head))


def _open(data: bytes) -> tuple[int, int, int, int, int]:
    """Check a frame's envelope; return (flags, seq, txn, msg_type, payload end)."""
    size = len(data)
    if size < HEADER_SIZE + CRC_SIZE:
        raise TruncatedFrameError(HEADER_SIZE + CRC_SIZE, size)
    version, flags, seq, txn, msg_type, length = _HEADER.unpack_from(data)
    if length > MAX_PAYLOAD:
        raise FrameLengthError(HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE, HEADER_SIZE + length + CRC_SIZE)
    end = HEADER_SIZE + length
    expected = end + (TAG_SIZE if flags & FLAG_SEALED else CRC_SIZE)
    if size < expected:
        raise TruncatedFrameError(expected, size)
    if size > expected:
        raise FrameLengthError(expected, size)
    if not flags & FLAG_SEALED:
        (carried,) = _CRC.unpack_from(data, end)
        computed = crc16(data[:end])
        if carried != computed:
            raise BadCrcError(computed, carried)
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(version, PROTOCOL_VERSION)
    if flags & RESERVED_FLAGS:
        raise ReservedFlagsError(flags, RESERVED_FLAGS)
    return flags, seq, txn, msg_type, end


def parse_envelope(data: bytes) -> Envelope:
    """Check the envelope of a plain or sealed frame; verify the CRC of a plain one."""
    flags, seq, txn, msg_type, end = _open(data)
    header = FrameHeader(
        version=PROTOCOL_VERSION, flags=flags, seq=seq, txn=txn, msg_type=msg_type, length=end - HEADER_SIZE
    )
    return Envelope(header, bytes(data[HEADER_SIZE:end]), bytes(data[end:]))


def decode(data: bytes) -> Frame:
    """Decode a plain frame; raise a :class:`~itbproto.errors.ProtocolError` subclass on any fault."""
    flags, seq, txn, msg_type, end = _open(data)
    if flags & FLAG_SEALED:
        raise SealedFrameError()
    msg = message_class(msg_type).CODEC.decode(data, HEADER_SIZE, end)
    return Frame(msg, txn=txn, seq=seq)
