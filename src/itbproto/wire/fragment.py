"""BLE fragmentation: frames larger than one ATT write are split and reassembled.

One ATT write or notification carries at most ``MTU - 3`` bytes. Each fragment
starts with a small header::

    byte 0      message counter (per direction, wraps at 256)
    byte 1      fragment index, 0 for the first
    bytes 2-3   total message length, little-endian; first fragment only

A message of up to ``MTU - 7`` bytes therefore still travels in one fragment.
The reassembler accepts fragments strictly in order. A fragment with a new
counter and index 0 starts a new message; anything else out of place (a gap, a
repeat, more bytes than announced, an announced length over the limit) raises a
:class:`~itbproto.errors.FragmentError` and drops the partial message, so the
next first fragment starts clean. Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from itbproto.errors import DuplicateFragmentError, FragmentError, FragmentGapError, MessageTooLongError
from itbproto.wire.frame import MAX_FRAME

__all__ = [
    "ATT_OVERHEAD",
    "FIRST_HEADER",
    "MAX_ATT_MTU",
    "MIN_ATT_MTU",
    "NEXT_HEADER",
    "Reassembler",
    "fragment",
]

MIN_ATT_MTU = 23
MAX_ATT_MTU = 517
ATT_OVERHEAD = 3
FIRST_HEADER = 4
NEXT_HEADER = 2
_FIRST = struct.Struct("<BBH")


def _check_mtu(mtu: int) -> None:
    if not MIN_ATT_MTU <= mtu <= MAX_ATT_MTU:
        raise ValueError(f"ATT MTU must be {MIN_ATT_MTU}..{MAX_ATT_MTU}, got {mtu}")


def fragment(message: bytes, mtu: int, counter: int) -> Iterator[bytes]:
    """Split ``message`` into ATT-sized fragments tagged with ``counter`` (0..255)."""
    _check_mtu(mtu)
    if not 0 <= counter <= 255:
        raise ValueError(f"counter must be 0..255, got {counter}")
    if len(message) > MAX_FRAME:
        raise MessageTooLongError(len(message), MAX_FRAME)
    room = mtu - ATT_OVERHEAD
    first = room - FIRST_HEADER
    yield _FIRST.pack(counter, 0, len(message)) + message[:first]
    pos, index = first, 1
    while pos < len(message):
        yield bytes((counter, index)) + message[pos : pos + room - NEXT_HEADER]
        pos += room - NEXT_HEADER
        index += 1


class Reassembler:
    """Joins fragments back into messages, in order, one message at a time."""

    def __init__(self, max_length: int = MAX_FRAME) -> None:
        self.max_length = max_length
        self._parts: list[bytes] = []
        self._counter: int | None = None
        self._last_counter: int | None = None
        self._next_index = 0
        self._remaining = 0

    @property
    def idle(self) -> bool:
        """True when no message is partly received."""
        return self._counter is None

    def reset(self) -> None:
        """Drop a partial message (for example after a disconnect)."""
        self._parts.clear()
        self._counter = None
        self._next_index = 0
        self._remaining = 0

    def feed(self, chunk: bytes) -> bytes | None:
        """Take one fragment; return the whole message when this fragment completes it."""
        if len(chunk) < NEXT_HEADER:
            self.reset()
            raise FragmentError(f"fragment of {len(chunk)} bytes is shorter than its header")
        counter, index = chunk[0], chunk[1]
        if index == 0:
            return self._start(counter, chunk)
        if self._counter is None or counter != self._counter:
            expected = self._next_index if self._counter is not None else 0
            self.reset()
            if counter == self._last_counter:
                raise DuplicateFragmentError(counter, index)
            raise FragmentGapError(expected, index)
        if index != self._next_index:
            expected = self._next_index
            self.reset()
            if index < expected:
                raise DuplicateFragmentError(counter, index)
            raise FragmentGapError(expected, index)
        return self._add(chunk[NEXT_HEADER:])

    def _start(self, counter: int, chunk: bytes) -> bytes | None:
        if self._counter is not None:
            expected, same = self._next_index, counter == self._counter
            self.reset()
            if same:
                raise DuplicateFragmentError(counter, 0)
            raise FragmentGapError(expected, 0)
        if counter == self._last_counter:
            raise DuplicateFragmentError(counter, 0)
        if len(chunk) < FIRST_HEADER:
            raise FragmentError(f"first fragment of {len(chunk)} bytes is shorter than its header")
        (total,) = struct.unpack_from("<H", chunk, 2)
        if total > self.max_length:
            raise MessageTooLongError(total, self.max_length)
        self._counter = counter
        self._next_index = 0
        self._remaining = total
        return self._add(chunk[FIRST_HEADER:])

    def _add(self, data: bytes) -> bytes | None:
        if len(data) > self._remaining:
            received = sum(map(len, self._parts))
            self.reset()
            raise MessageTooLongError(received + len(data), received + self._remaining)
        self._parts.append(data)
        self._remaining -= len(data)
        self._next_index += 1
        if self._remaining:
            return None
        message = b"".join(self._parts)
        self._last_counter = self._counter
        self.reset()
        return message
