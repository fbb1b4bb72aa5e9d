"""The sealed channel: every frame of a paired session encrypted and authenticated with AES-CCM.

It fills the :class:`~itbproto.core.connection.Connection`'s channel slot in place of the plain CRC channel.
Each direction has its own 128-bit key (:func:`~itbproto.core.security.keys.session_keys`); the 13-byte nonce
is the direction byte, eight zero bytes and the frame's sequence number (u32, little-endian), so a nonce is
never used twice under a key (the Connection never sends a sequence number twice, and refuses to go past
2^32 - 1); the 13-byte header is the associated data (nothing in it can be changed), and the 8-byte tag
replaces the CRC. A frame that does not verify (altered, forged, sealed with another key or for the other
direction) raises :class:`~itbproto.errors.AuthenticationError`; a plain frame on a sealed link raises
:class:`~itbproto.errors.UnsealedFrameError`. Replays and old frames are refused by the Connection's sequence
check, which is a replay window of one on the ordered links the protocol runs on.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from itbproto.core.wire.frame import FLAG_SEALED, TAG_SIZE, FrameHeader
from itbproto.errors import AuthenticationError, UnsealedFrameError

__all__ = ["KEY_SIZE", "TO_PROGRAMMER", "TO_PUMP", "SealedChannel", "nonce"]

KEY_SIZE = 16
TO_PUMP = 0x01  # the direction byte of frames the programmer sends
TO_PROGRAMMER = 0x02  # and of those the pump sends
_SEQ = struct.Struct("<I")  # little-endian, as on the wire
_SEQ_AT = 2  # the header's sequence number: after version and flags


def nonce(direction: int, seq: int) -> bytes:
    """The 13-byte CCM nonce of frame ``seq`` in ``direction``."""
    return bytes([direction]) + bytes(8) + _SEQ.pack(seq)


@dataclass
class SealedChannel:
    """One side's half of a sealed link: it seals with ``send_key`` for ``send_direction`` and opens with
    ``recv_key`` what the other side sealed."""

    send_key: bytes
    recv_key: bytes
    send_direction: int
    flags: int = FLAG_SEALED
    _send: AESCCM = field(init=False, repr=False)
    _recv: AESCCM = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.send_key) != KEY_SIZE or len(self.recv_key) != KEY_SIZE:
            raise ValueError(f"AES-128-CCM keys are {KEY_SIZE} bytes")
        if self.send_direction not in (TO_PUMP, TO_PROGRAMMER):
            raise ValueError(f"a direction is {TO_PUMP} or {TO_PROGRAMMER}")
        self._send = AESCCM(self.send_key, tag_length=TAG_SIZE)
        self._recv = AESCCM(self.recv_key, tag_length=TAG_SIZE)

    @property
    def recv_direction(self) -> int:
        return TO_PROGRAMMER if self.send_direction == TO_PUMP else TO_PUMP

    def seal(self, header: bytes, payload: bytes) -> bytes:
        (seq,) = _SEQ.unpack_from(header, _SEQ_AT)
        return self._send.encrypt(nonce(self.send_direction, seq), payload, header)

    def open(self, header: FrameHeader, header_bytes: bytes, body: bytes) -> bytes:
        if not header.flags & FLAG_SEALED:
            raise UnsealedFrameError()
        try:
            return self._recv.decrypt(nonce(self.recv_direction, header.seq), body, header_bytes)
        except InvalidTag:
            raise AuthenticationError(header.seq) from None
