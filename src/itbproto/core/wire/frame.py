"""The frame envelope: header, payload, and what protects them (the channel's trailer).

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
                                 sealed: 8-byte AES-CCM tag (the security layer's channel)

All integers are little-endian. What protects a frame is a :class:`Channel`:
:data:`PLAIN` adds and checks the CRC; the security layer's sealed channel
encrypts the payload and adds the tag, with the header as associated data. The
:class:`~itbproto.core.connection.Connection` holds one channel per link and swaps it
when a session key exists. :func:`encode` and :func:`decode` work on plain frames
(or any channel given); :func:`open_frame` and :func:`check_header` are the
receiver's steps one by one, in the order specs/protocol.md gives them.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from typing import Protocol

from itbproto.core.wire.fields import U8, U16, U32, RecordType, field
from itbproto.core.wire.message import Message, Record, message_class, record
from itbproto.core.wire.messages import PROTOCOL_VERSION
from itbproto.errors import (
    BadCrcError,
    FieldRangeError,
    FrameLengthError,
    ReservedFlagsError,
    SealedFrameError,
    TruncatedFrameError,
    UnsupportedVersionError,
)

__all__ = [
    "CRC_SIZE",
    "FLAG_SEALED",
    "HEADER_SIZE",
    "MAX_FRAME",
    "MAX_PAYLOAD",
    "PLAIN",
    "RESERVED_FLAGS",
    "TAG_SIZE",
    "Channel",
    "Frame",
    "FrameHeader",
    "PlainChannel",
    "check_header",
    "crc16",
    "decode",
    "encode",
    "open_frame",
    "peek_header",
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


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR)."""
    return binascii.crc_hqx(data, crc)


class Channel(Protocol):
    """What protects the frames of one link in one direction pair: a CRC, or an AEAD seal."""

    #: the header flag bits every frame of this channel carries
    flags: int

    def seal(self, header: bytes, payload: bytes) -> bytes:
        """The bytes that follow ``header``: the payload as sent and the trailer."""
        ...

    def open(self, header: FrameHeader, header_bytes: bytes, body: bytes) -> bytes:
        """The payload of a frame whose envelope is sound; raise a FrameError if it is not intact."""
        ...


class PlainChannel:
    """Plain frames: the payload in clear and a CRC-16/CCITT-FALSE over header and payload."""

    flags = 0

    def seal(self, header: bytes, payload: bytes) -> bytes:
        return payload + _CRC.pack(crc16(payload, crc16(header)))

    def open(self, header: FrameHeader, header_bytes: bytes, body: bytes) -> bytes:
        if header.flags & FLAG_SEALED:
            raise SealedFrameError()
        payload, (carried,) = body[:-CRC_SIZE], _CRC.unpack(body[-CRC_SIZE:])
        computed = crc16(payload, crc16(header_bytes))
        if carried != computed:
            raise BadCrcError(computed, carried)
        return payload


PLAIN = PlainChannel()


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: the message and the envelope fields that travel with it."""

    message: Message
    txn: int = 0
    seq: int = 0


def encode(message: Message, *, txn: int = 0, seq: int = 0, channel: Channel = PLAIN) -> bytes:
    """A frame carrying ``message``; every field is range-checked first."""
    U32.check(txn, "txn")
    U32.check(seq, "seq")
    payload = message.CODEC.encode(message)
    if len(payload) > MAX_PAYLOAD:
        raise FieldRangeError("length", len(payload), f"0..{MAX_PAYLOAD}")
    head = _HEADER.pack(PROTOCOL_VERSION, channel.flags, seq, txn, message.TYPE, len(payload))
    return head + channel.seal(head, payload)


def payload_too_long(length: int, given: int) -> FrameLengthError:
    """A header declaring a ``length``-byte payload, more than any frame may carry (``given``: bytes seen)."""
    most = HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE
    reason = f"its header declares a {length}-byte payload; at most {MAX_PAYLOAD} ({given} bytes given)"
    return FrameLengthError(most, HEADER_SIZE + length + CRC_SIZE, reason)


def peek_header(data: bytes) -> FrameHeader | None:
    """The header's fields as they stand, unchecked (None: too short to hold one). Nothing in it can be
    trusted before :func:`open_frame`; for a tool that watches frames go by."""
    if len(data) < HEADER_SIZE:
        return None
    version, flags, seq, txn, msg_type, length = _HEADER.unpack_from(data)
    return FrameHeader(version=version, flags=flags, seq=seq, txn=txn, msg_type=msg_type, length=length)


def open_frame(data: bytes, channel: Channel = PLAIN) -> tuple[FrameHeader, bytes]:
    """Check a frame's size and integrity; return its header and payload.

    Until this succeeds nothing in the header can be trusted. The version, the
    flags, the type and the payload are not looked at yet (:func:`check_header`).
    """
    size = len(data)
    if size < HEADER_SIZE + CRC_SIZE:
        raise TruncatedFrameError(HEADER_SIZE + CRC_SIZE, size, "a frame has at least")
    version, flags, seq, txn, msg_type, length = _HEADER.unpack_from(data)
    if length > MAX_PAYLOAD:
        raise payload_too_long(length, size)
    expected = HEADER_SIZE + length + (TAG_SIZE if flags & FLAG_SEALED else CRC_SIZE)
    if size < expected:
        raise TruncatedFrameError(expected, size)
    if size > expected:
        raise FrameLengthError(expected, size)
    header = FrameHeader(version=version, flags=flags, seq=seq, txn=txn, msg_type=msg_type, length=length)
    payload = channel.open(header, bytes(data[:HEADER_SIZE]), bytes(data[HEADER_SIZE:]))
    return header, payload


def check_header(header: FrameHeader) -> None:
    """Refuse a version this library does not speak, and reserved flag bits."""
    if header.version != PROTOCOL_VERSION:
        raise UnsupportedVersionError(header.version, PROTOCOL_VERSION)
    if header.flags & RESERVED_FLAGS:
        raise ReservedFlagsError(header.flags, RESERVED_FLAGS)


def decode(data: bytes, channel: Channel = PLAIN) -> Frame:
    """Decode a frame; raise a :class:`~itbproto.errors.ProtocolError` subclass on any fault."""
    if channel is PLAIN:  # the hot path, inline: one header unpack, one CRC
        size = len(data)
        if size >= HEADER_SIZE + CRC_SIZE:
            version, flags, seq, txn, msg_type, length = _HEADER.unpack_from(data)
            end = HEADER_SIZE + length
            if (
                size == end + CRC_SIZE
                and flags == 0
                and version == PROTOCOL_VERSION
                and length <= MAX_PAYLOAD
            ):
                (carried,) = _CRC.unpack_from(data, end)
                if carried == crc16(data[:end]):
                    return Frame(message_class(msg_type).CODEC.decode(data, HEADER_SIZE, end), txn, seq)
    header, payload = open_frame(data, channel)
    check_header(header)
    return Frame(message_class(header.msg_type).CODEC.decode(payload), header.txn, header.seq)
