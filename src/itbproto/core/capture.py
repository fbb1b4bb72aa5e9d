"""BLE captures: a btsnoop file (bumble's snooper, Android's HCI log, Wireshark) as the ITB frames each side
sent, decoded. Sans-IO: bytes in, records out.

The layers, peeled in order: btsnoop records (RFC 1761 framing, H4 packets) → ACL data per connection handle
and direction, joined into L2CAP frames → ATT on CID 4 → the writes to the request characteristic
(programmer → pump) and the notifications on the response characteristic (pump → programmer), found by the
UUIDs in the capture's own GATT discovery (specs/gatt.md; a capture begun after discovery: every write command
and notification) → ITB fragments joined into frames (specs/protocol.md §3) → frames decoded. A session
opened with a paired key is sealed from the frame after DeviceInfo on: given the pump's key (looked up by
the serial DeviceInfo names), its frames are opened with the session keys the capture's nonces give.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from itbproto.core.security.keys import session_keys
from itbproto.core.security.pairing import PairedKey
from itbproto.core.wire import messages as m
from itbproto.core.wire.fragment import Reassembler
from itbproto.core.wire.frame import PLAIN, Channel, Frame, decode
from itbproto.core.wire.gatt import REQUEST_UUID, RESPONSE_UUID, uuid_text
from itbproto.errors import CaptureError, ProtocolError

__all__ = ["CapturedFrame", "CapturedValue", "att_values", "frames"]

_FILE_HEADER = struct.Struct(">8sLL")
_RECORD = struct.Struct(">IIIIQ")
_H4_ACL, _ATT_CID = 0x02, 0x0004
_WRITE_REQUEST, _WRITE_COMMAND, _NOTIFICATION, _READ_BY_TYPE_RESPONSE = 0x12, 0x52, 0x1B, 0x09
_PB_CONTINUING = 0b01
_DISCONNECTION_COMPLETE = bytes((0x04, 0x05))  # H4 event, HCI Disconnection Complete


@dataclass(frozen=True, slots=True)
class CapturedValue:
    """One ATT value of the ITB service: a fragment written to the pump, or notified by it."""

    at_us: int  # btsnoop timestamp (µs since 0 AD)
    connection: int  # the connection's number in the capture, from 1
    to_pump: bool
    data: bytes


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One ITB frame of a capture: decoded, or why it could not be."""

    at_us: int
    connection: int
    to_pump: bool
    data: bytes
    frame: Frame | None = None
    error: ProtocolError | None = None


def _records(capture: bytes) -> Iterator[tuple[int, bool, bytes]]:
    """(timestamp, received, H4 packet) for each record."""
    if len(capture) < _FILE_HEADER.size:
        raise CaptureError("shorter than a btsnoop header")
    magic, version, datalink = _FILE_HEADER.unpack_from(capture)
    if magic != b"btsnoop\0" or version != 1 or datalink != 1002:
        raise CaptureError(
            f"not a btsnoop v1 H4 capture (magic {magic!r}, version {version}, link {datalink})"
        )
    pos = _FILE_HEADER.size
    while pos < len(capture):
        if pos + _RECORD.size > len(capture):
            raise CaptureError(f"a record header cut short at byte {pos}")
        _, included, flags, _, timestamp = _RECORD.unpack_from(capture, pos)
        pos += _RECORD.size
        if pos + included > len(capture):
            raise CaptureError(f"a record of {included} bytes cut short at byte {pos}")
        yield timestamp, bool(flags & 1), capture[pos : pos + included]
        pos += included


def _l2cap(capture: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(timestamp, connection, ATT PDU) for each whole L2CAP frame on the ATT channel; connections are
    numbered from 1 in the order they appear (a handle used again after a disconnection is a new one)."""
    partial: dict[tuple[int, bool], bytearray] = {}
    numbers: dict[int, int] = {}  # handle -> the connection it carries now
    count = 0
    for timestamp, received, packet in _records(capture):
        if len(packet) >= 6 and packet[:2] == _DISCONNECTION_COMPLETE:
            handle = int.from_bytes(packet[4:6], "little")
            numbers.pop(handle, None)
            partial.pop((handle, True), None)
            partial.pop((handle, False), None)
            continue
        if len(packet) < 5 or packet[0] != _H4_ACL:
            continue
        (handle_flags, length) = struct.unpack_from("<HH", packet, 1)
        handle, data = handle_flags & 0x0FFF, packet[5 : 5 + length]
        if handle not in numbers:
            count += 1
            numbers[handle] = count
        key = (handle, received)
        if (handle_flags >> 12) & 0b11 == _PB_CONTINUING:
            if key not in partial:
                continue  # the capture began mid-frame
            partial[key] += data
        else:
            partial[key] = bytearray(data)
        joined = partial[key]
        if len(joined) >= 4:
            size, cid = struct.unpack_from("<HH", joined)
            if len(joined) >= 4 + size:
                del partial[key]
                if cid == _ATT_CID:
                    yield timestamp, numbers[handle], bytes(joined[4 : 4 + size])


def att_values(capture: bytes) -> Iterator[CapturedValue]:
    """The ITB service's writes and notifications in a btsnoop capture, in order."""
    handles: dict[int, dict[str, int]] = {}  # connection -> {uuid: value handle}, from discovery
    for timestamp, connection, pdu in _l2cap(capture):
        if not pdu:
            continue
        opcode, known = pdu[0], handles.get(connection, {})
        if opcode == _READ_BY_TYPE_RESPONSE and len(pdu) >= 2 and pdu[1] == 21:  # declarations, 128-bit
            for at in range(2, len(pdu) - 20, 21):
                value_handle = int.from_bytes(pdu[at + 3 : at + 5], "little")
                handles.setdefault(connection, {})[uuid_text(pdu[at + 5 : at + 21])] = value_handle
            continue
        if opcode not in (_WRITE_COMMAND, _WRITE_REQUEST, _NOTIFICATION) or len(pdu) < 3:
            continue
        to_pump = opcode != _NOTIFICATION
        handle = int.from_bytes(pdu[1:3], "little")
        if known:  # the handles discovery found
            ours = handle == known.get(REQUEST_UUID if to_pump else RESPONSE_UUID)
        else:  # no discovery in the capture: fragments go as write commands (specs/gatt.md)
            ours = opcode != _WRITE_REQUEST
        if ours:
            yield CapturedValue(timestamp, connection, to_pump, pdu[3:])


@dataclass
class _Session:
    """What decoding one connection needs: a reassembler per direction, the channels, the handshake."""

    reassemblers: dict[bool, Reassembler] = field(
        default_factory=lambda: {True: Reassembler(), False: Reassembler()}
    )
    channels: dict[bool, Channel] = field(default_factory=lambda: {True: PLAIN, False: PLAIN})
    hello: m.Hello | None = None


def frames(
    capture: bytes, key_for: Callable[[str], PairedKey | None] = lambda serial: None
) -> Iterator[CapturedFrame]:
    """The ITB frames in a btsnoop capture, decoded; sealed ones opened when ``key_for(serial)`` gives the
    pump's paired key."""
    sessions: dict[int, _Session] = {}
    for value in att_values(capture):
        session = sessions.setdefault(value.connection, _Session())
        for out in session.reassemblers[value.to_pump].feed(value.data):
            where = (value.at_us, value.connection, value.to_pump)
            if isinstance(out, ProtocolError):
                yield CapturedFrame(*where, b"", error=out)
                continue
            try:
                frame = decode(out, session.channels[value.to_pump])
            except ProtocolError as error:
                yield CapturedFrame(*where, out, error=error)
                continue
            yield CapturedFrame(*where, out, frame)
            match frame.message:
                case m.Hello() as hello:
                    session.hello = hello
                case m.DeviceInfo(serial=serial, nonce=nonce) if session.hello and session.hello.key_id:
                    key = key_for(serial)
                    if key is not None and key.key_id == session.hello.key_id:
                        keys = session_keys(key.long_term, session.hello.nonce, nonce)
                        session.channels = {True: keys.pump(), False: keys.programmer()}
