"""Frames on a byte stream (TCP): back to back, each delimited by the length in its own header.

A stream has no message boundaries, and a frame's header says how long it is: its 13
bytes, the payload of ``length`` bytes, then the CRC (2 bytes) or, for a sealed frame,
the tag (8 bytes). :class:`StreamSplitter` cuts the stream at those lengths; it never
holds more than one partial frame (at most 1,045 bytes). A length over the maximum
means the stream can no longer be trusted to say where a frame ends: the splitter
reports it once, takes nothing more, and the link must be closed (specs/protocol.md §3).
"""

from __future__ import annotations

import struct

from itbproto.core.wire.frame import (
    CRC_SIZE,
    FLAG_SEALED,
    HEADER_SIZE,
    MAX_PAYLOAD,
    TAG_SIZE,
    payload_too_long,
)
from itbproto.errors import FrameError

__all__ = ["StreamSplitter"]

_LENGTH = struct.Struct("<H")
_FLAGS_AT, _LENGTH_AT = 1, HEADER_SIZE - 2


class StreamSplitter:
    """Cuts a byte stream into frames; never raises."""

    def __init__(self) -> None:
        #: set once the stream lost its frame boundaries; nothing more is taken
        self.broken = False
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Take bytes from the stream; return the whole frames they complete, in order."""
        if self.broken:
            return []
        self._buffer += data
        out: list[bytes | FrameError] = []
        while len(self._buffer) >= HEADER_SIZE:
            (length,) = _LENGTH.unpack_from(self._buffer, _LENGTH_AT)
            trailer = TAG_SIZE if self._buffer[_FLAGS_AT] & FLAG_SEALED else CRC_SIZE
            if length > MAX_PAYLOAD:
                self._break()
                out.append(payload_too_long(length, len(self._buffer)))
                break
            size = HEADER_SIZE + length + trailer
            if len(self._buffer) < size:
                break
            out.append(bytes(self._buffer[:size]))
            del self._buffer[:size]
        return out

    def _break(self) -> None:
        self.broken = True
        self._buffer.clear()
