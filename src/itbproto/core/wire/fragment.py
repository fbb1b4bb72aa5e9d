"""BLE fragmentation: frames larger than one ATT write are split and reassembled.

One ATT write or notification carries at most ``MTU - 3`` bytes. Each fragment
starts with a small header::

    byte 0      message counter (per direction: 0 for the first message of a link, +1 per
                message, 255 wraps to 0)
    byte 1      fragment index, 0 for the first
    bytes 2-3   total message length, little-endian; first fragment only

A message of up to ``MTU - 7`` bytes therefore still travels in one fragment.
The reassembler takes fragments in order. A first fragment (index 0) with a new
counter starts a new message; if the previous one was not whole, it is dropped
and reported (its sender moved on: a lost tail, then a retry). A continuation
that does not fit (a gap, a wrong counter, more bytes than announced) drops the
partial message; a fragment that repeats one already taken is refused and
changes nothing. Sans-IO: bytes in, bytes out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from itbproto.core.wire.frame import MAX_FRAME
from itbproto.errors import (
    DuplicateFragmentError,
    FragmentError,
    FragmentGapError,
    IncompleteMessageError,
    MessageTooLongError,
)

__all__ = [
    "ATT_OVERHEAD",
    "FIRST_HEADER",
    "MAX_ATT_MTU",
    "MIN_ATT_MTU",
    "NEXT_HEADER",
    "Reassembler",
    "first_part",
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


def first_part(chunk: bytes) -> bytes | None:
    """The start of the message a first fragment carries, unchecked (None: not a first fragment); for a tool
    that watches fragments go by."""
    return chunk[FIRST_HEADER:] if len(chunk) >= FIRST_HEADER and chunk[1] == 0 else None


class Reassembler:
    """Joins fragments back into messages, in order, one message at a time."""

    def __init__(self, max_length: int = MAX_FRAME) -> None:
        self.max_length = max_length
        self._parts: list[bytes] = []
        self._counter: int | None = None  # the message being joined
        self._last_counter: int | None = None  # the last message completed on this link
        self._next_index = 0
        self._total = 0
        self._remaining = 0

    @property
    def idle(self) -> bool:
        """True when no message is partly received."""
        return self._counter is None

    @property
    def pending(self) -> int:
        """Bytes of the message being joined received so far (0: none under way)."""
        return sum(map(len, self._parts))

    def reset(self) -> None:
        """A new link: forget the partial message and the counters of the old one."""
        self._drop()
        self._last_counter = None

    def feed(self, chunk: bytes) -> list[bytes | FragmentError]:
        """Take one fragment; return what came out of it, in order.

        That is the whole message if this fragment completes one, and a
        :class:`~itbproto.errors.FragmentError` for whatever was refused or
        dropped. Nothing is ever raised.
        """
        if len(chunk) < NEXT_HEADER:
            return [FragmentError(f"fragment of {len(chunk)} bytes is shorter than its header")]
        counter, index = chunk[0], chunk[1]
        if index == 0:
            return self._start(counter, chunk)
        if counter != self._counter:
            if counter == self._last_counter:
                return [DuplicateFragmentError(counter, index)]
            expected = self._next_index if self._counter is not None else 0
            self._drop()  # its sender has moved on: the partial message will never be whole
            return [FragmentGapError(expected, index)]
        if index < self._next_index:
            return [DuplicateFragmentError(counter, index)]
        if index > self._next_index:
            expected = self._next_index
            self._drop()
            return [FragmentGapError(expected, index)]
        return self._add(chunk[NEXT_HEADER:])

    def _start(self, counter: int, chunk: bytes) -> list[bytes | FragmentError]:
        if counter in (self._counter, self._last_counter):
            return [DuplicateFragmentError(counter, 0)]
        out = self._abandon(counter)
        if len(chunk) < FIRST_HEADER:
            return [*out, FragmentError(f"first fragment of {len(chunk)} bytes is shorter than its header")]
        (total,) = struct.unpack_from("<H", chunk, 2)
        if total > self.max_length:
            return [*out, MessageTooLongError(total, self.max_length)]
        self._counter, self._next_index, self._total, self._remaining = counter, 0, total, total
        return [*out, *self._add(chunk[FIRST_HEADER:])]

    def _abandon(self, new_counter: int) -> list[bytes | FragmentError]:
        """Drop the partial message, if any, and report it: message ``new_counter`` takes its place."""
        if self._counter is None:
            return []
        report = IncompleteMessageError(
            self._counter, self._total - self._remaining, self._total, new_counter
        )
        self._drop()
        return [report]

    def _add(self, data: bytes) -> list[bytes | FragmentError]:
        if len(data) > self._remaining:
            received = self._total - self._remaining
            self._drop()
            return [MessageTooLongError(received + len(data), received + self._remaining)]
        self._parts.append(data)
        self._remaining -= len(data)
        self._next_index += 1
        if self._remaining:
            return []
        message = b"".join(self._parts)
        self._last_counter = self._counter
        self._drop()
        return [message]

    def _drop(self) -> None:
        self._parts.clear()
        self._counter = None
        self._next_index = self._total = self._remaining = 0
