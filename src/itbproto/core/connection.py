"""One side of a link, sans-IO, in h11's shape: bytes in -> events out; message in -> bytes out.

::

    conn = Connection(Side.PROGRAMMER, mtu=23)     # mtu=None: whole frames, one per chunk;
                                                   # stream=True: frames back to back (TCP)
    for chunk in conn.send(StatusRequest()):       # the transport writes each chunk as it is
        transport.write(chunk)
    for event in conn.receive(transport.read()):   # Reply, Notification or Dropped
        ...

A connection owns everything between a message and the bytes of one link:

- frames, encoded and decoded through its **channel** (:data:`~itbproto.core.wire.frame.PLAIN`
  until the security layer installs its sealed channel in the same slot);
- **sequence numbers**, per direction from 0: a frame not newer than the last one received
  is a duplicate or a replay, and is dropped;
- **BLE fragmentation** for an ATT MTU, and reassembly; or, on a byte stream, cutting it into
  frames by their lengths (a stream whose lengths cannot be trusted is :attr:`Connection.broken`:
  close it);
- each side's **transaction** bookkeeping. A programmer numbers its requests (above the
  pump's ``last_txn`` once it has read it), has one outstanding at a time and takes as its
  answer only a reply of a type that request allows. A pump answers each request it was
  given once, with one of the replies the request allows or a Nack, and says nothing on its
  own but notifications.

The peer's faults never raise: a frame that is not intact, not newer, malformed, or breaks
these rules becomes a :class:`Dropped` event and changes nothing; a pump is also told what
to answer a request it cannot take (:class:`BadRequest`, carrying the Nack the spec
prescribes). This side's own faults raise :class:`~itbproto.errors.LocalProtocolError` (or
a codec error for a value out of range) before anything is sent. No I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from itbproto.core.wire.enums import ErrorCode
from itbproto.core.wire.fields import U32
from itbproto.core.wire.fragment import MAX_ATT_MTU, MIN_ATT_MTU, Reassembler, fragment
from itbproto.core.wire.frame import MAX_FRAME, PLAIN, Channel, check_header, encode, open_frame
from itbproto.core.wire.message import Kind, Message, message_class
from itbproto.core.wire.messages import DeviceInfo, Nack, StatusReport
from itbproto.core.wire.stream import StreamSplitter
from itbproto.errors import (
    FieldRangeError,
    LocalProtocolError,
    MalformedPayloadError,
    MessageTooLongError,
    ProtocolError,
    RemoteProtocolError,
    ReservedFlagsError,
    StaleFrameError,
    UnknownMessageError,
    UnsupportedVersionError,
)

__all__ = [
    "BadRequest",
    "Connection",
    "Dropped",
    "Event",
    "Notification",
    "Outstanding",
    "Reply",
    "Request",
    "Side",
    "error_code",
]

MAX_TXN = U32.hi


class Side(enum.Enum):
    """Which end of the link a connection is."""

    PROGRAMMER = "programmer"
    PUMP = "pump"


class Event:
    """Base of what :meth:`Connection.receive` returns."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Request(Event):
    """Pump side: a request to answer (with :meth:`Connection.send` and the same ``txn``)."""

    message: Message
    txn: int


@dataclass(frozen=True, slots=True)
class BadRequest(Event):
    """Pump side: a frame that is intact but cannot be taken as a request; send ``reply``."""

    error: ProtocolError
    txn: int
    reply: Nack


@dataclass(frozen=True, slots=True)
class Reply(Event):
    """Programmer side: the answer to the outstanding ``request``."""

    message: Message
    txn: int
    request: Message


@dataclass(frozen=True, slots=True)
class Notification(Event):
    """Programmer side: something the pump said on its own (an alarm)."""

    message: Message


@dataclass(frozen=True, slots=True)
class Dropped(Event):
    """Input that was refused and changed nothing; ``error`` says why."""

    error: ProtocolError


@dataclass(frozen=True, slots=True)
class Outstanding:
    """The programmer's request that awaits its reply."""

    request: Message
    txn: int


def error_code(error: ProtocolError) -> ErrorCode:
    """The Nack code specs/protocol.md gives for a request refused before the pump saw it."""
    match error:
        case UnsupportedVersionError():
            return ErrorCode.UNSUPPORTED_VERSION
        case UnknownMessageError():
            return ErrorCode.UNKNOWN_MESSAGE
        case FieldRangeError():
            return ErrorCode.FIELD_RANGE
        case MalformedPayloadError() | ReservedFlagsError():
            return ErrorCode.MALFORMED
        case _:
            return ErrorCode.UNKNOWN_MESSAGE


class Connection:
    """One side of one link. See the module docstring."""

    def __init__(
        self, side: Side, *, mtu: int | None = None, stream: bool = False, channel: Channel = PLAIN
    ) -> None:
        if stream and mtu is not None:
            raise LocalProtocolError("a byte stream carries whole frames: no ATT MTU")
        self.side = side
        self.stream = stream
        self.channel = channel
        #: the largest frame the peer accepts (a pump learns it from Hello)
        self.peer_max_frame = MAX_FRAME
        #: programmer: the request awaiting its reply
        self.outstanding: Outstanding | None = None
        #: programmer: the highest transaction id used or reported by the pump
        self.last_txn = 0
        #: frames taken from the peer so far, whole or not (each event :meth:`receive` returned)
        self.received = 0
        #: of those, dropped unanswered (not intact, not sealed as they must be, stale)
        self.dropped = 0
        self._mtu: int | None = None
        self.mtu = mtu
        self._unanswered: dict[int, tuple[type[Message], ...]] = {}  # pump: txn -> allowed replies
        self._send_seq = 0
        self._recv_seq: int | None = None
        self._counter = 0
        self._reassembler = Reassembler()
        self._splitter = StreamSplitter()

    @property
    def broken(self) -> bool:
        """True once a byte stream lost its frame boundaries: nothing more is read; close the link."""
        return self._splitter.broken

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole frame (or message) yet."""
        return self._splitter.pending if self.stream else self._reassembler.pending

    @property
    def mtu(self) -> int | None:
        """The ATT MTU to fragment for; None: every chunk is one whole frame."""
        return self._mtu

    @mtu.setter
    def mtu(self, mtu: int | None) -> None:
        if mtu is not None and not MIN_ATT_MTU <= mtu <= MAX_ATT_MTU:
            raise LocalProtocolError(f"ATT MTU must be {MIN_ATT_MTU}..{MAX_ATT_MTU}, got {mtu}")
        self._mtu = mtu

    # --- sending --------------------------------------------------------------------------------------

    def send(self, message: Message, txn: int | None = None) -> list[bytes]:
        """The chunks that carry ``message``; each is one write (or one notification).

        A programmer's request gets the next transaction id unless ``txn`` names one (a
        retry of the identical request). A pump's reply needs the ``txn`` of the request
        it answers; a notification has none.
        """
        txn = self._check_send(message, txn)
        frame = encode(message, txn=txn, seq=self._send_seq, channel=self.channel)
        if len(frame) > self.peer_max_frame:
            raise LocalProtocolError(
                f"{type(message).__name__} is {len(frame)} bytes; the peer accepts {self.peer_max_frame}"
            )
        chunks = [frame] if self.mtu is None else list(fragment(frame, self.mtu, self._counter))
        self._send_seq += 1
        self._counter = (self._counter + 1) % 256
        if self.side is Side.PROGRAMMER:
            self.outstanding = Outstanding(message, txn)
            self.last_txn = max(self.last_txn, txn)
        elif message.KIND is Kind.RESPONSE:
            del self._unanswered[txn]
        return chunks

    def _check_send(self, message: Message, txn: int | None) -> int:
        name = type(message).__name__
        if self.side is Side.PROGRAMMER:
            if message.KIND is not Kind.REQUEST:
                raise LocalProtocolError(f"a programmer sends requests, not {name}")
            if self.outstanding is not None:
                raise LocalProtocolError(
                    f"{type(self.outstanding.request).__name__} (transaction {self.outstanding.txn}) "
                    "still awaits its reply: one request at a time"
                )
            txn = self.last_txn + 1 if txn is None else txn
            if not 1 <= txn <= MAX_TXN:
                raise LocalProtocolError(f"transaction id {txn} is outside 1..{MAX_TXN}")
            return txn
        if message.KIND is Kind.REQUEST:
            raise LocalProtocolError(f"a pump does not send requests ({name})")
        if message.KIND is Kind.NOTIFICATION:
            if txn:
                raise LocalProtocolError(f"a notification carries no transaction id, not {txn}")
            return 0
        if txn is None or txn not in self._unanswered:
            raise LocalProtocolError(f"{name} answers no request awaiting a reply (transaction {txn})")
        if not isinstance(message, self._unanswered[txn]):
            allowed = ", ".join(cls.__name__ for cls in self._unanswered[txn])
            raise LocalProtocolError(f"{name} does not answer transaction {txn} (allowed: {allowed})")
        return txn

    def forget(self) -> Outstanding | None:
        """Programmer: stop waiting for the outstanding reply (a time-out); return what was forgotten."""
        forgotten, self.outstanding = self.outstanding, None
        return forgotten

    def reset(self) -> Outstanding | None:
        """A new link (a reconnect): sequence numbers, fragments and pending answers start over.

        Returns the programmer's outstanding request, whose reply can no longer come.
        """
        self._send_seq, self._recv_seq, self._counter = 0, None, 0
        self._reassembler.reset()
        self._splitter = StreamSplitter()
        self._unanswered.clear()
        self.peer_max_frame = MAX_FRAME
        return self.forget()

    # --- receiving ------------------------------------------------------------------------------------

    def receive(self, data: bytes) -> list[Event]:
        """Take one chunk from the transport; return what it means, in order."""
        if self.mtu is None and not self.stream:
            events = self._frame(bytes(data))
        else:
            parts = self._splitter.feed(bytes(data)) if self.stream else self._reassembler.feed(bytes(data))
            events = []
            for out in parts:
                events += [Dropped(out)] if isinstance(out, ProtocolError) else self._frame(out)
        self.received += len(events)
        self.dropped += sum(isinstance(event, Dropped) for event in events)
        return events

    def _frame(self, data: bytes) -> list[Event]:
        if len(data) > MAX_FRAME:
            return [Dropped(MessageTooLongError(len(data), MAX_FRAME))]
        try:
            header, payload = open_frame(data, self.channel)
        except ProtocolError as error:  # nothing in the header can be trusted
            return [Dropped(error)]
        if self._recv_seq is not None and header.seq <= self._recv_seq:
            return [Dropped(StaleFrameError(header.seq, self._recv_seq))]
        self._recv_seq = header.seq
        try:
            check_header(header)
            message = message_class(header.msg_type).CODEC.decode(payload)
        except ProtocolError as error:
            return [self._refuse(error, header.txn, header.msg_type)]
        if self.side is Side.PUMP:
            return [self._request(message, header.txn)]
        return [self._answer(message, header.txn)]

    def _refuse(self, error: ProtocolError, txn: int, msg_type: int) -> Event:
        if self.side is Side.PROGRAMMER:
            return Dropped(error)
        self._unanswered[txn] = (Nack,)
        return BadRequest(error, txn, Nack.refusing(msg_type, error_code(error), str(error)))

    def _request(self, message: Message, txn: int) -> Event:
        if message.KIND is not Kind.REQUEST:
            error = RemoteProtocolError(f"{type(message).__name__} is not a request")
            return self._refuse(error, txn, message.TYPE)
        self._unanswered[txn] = (*message.REPLIES, Nack)
        return Request(message, txn)

    def _answer(self, message: Message, txn: int) -> Event:
        name = type(message).__name__
        if message.KIND is Kind.REQUEST:
            return Dropped(RemoteProtocolError(f"the pump sent a request ({name})"))
        if message.KIND is Kind.NOTIFICATION:
            if txn:
                return Dropped(RemoteProtocolError(f"{name} carries transaction {txn}; notifications have 0"))
            return Notification(message)
        out = self.outstanding
        if out is None or txn != out.txn:
            return Dropped(RemoteProtocolError(f"{name} answers transaction {txn}, which is not outstanding"))
        if not isinstance(message, (*out.request.REPLIES, Nack)):
            request = type(out.request).__name__
            return Dropped(RemoteProtocolError(f"{name} does not answer {request}"))
        self.outstanding = None
        if isinstance(message, DeviceInfo | StatusReport):
            self.last_txn = max(self.last_txn, message.last_txn)
        return Reply(message, txn, out.request)
