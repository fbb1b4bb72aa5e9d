"""The pump's firmware loop, sans-IO: bytes from each link in, bytes to each link out.

::

    firmware = Firmware(pump)
    link = firmware.attach(Connection(Side.PUMP, mtu=185))   # one per programmer's connection
    for link_id, chunks in firmware.receive(link, chunk, now).items():
        ...                                                   # write each chunk to that link
    firmware.tick(now)                                        # time passes: alarms for every session

It joins the pump-side :class:`~itbproto.connection.Connection` of each link
to the one :class:`~itbproto.machines.pump.PumpMachine`: requests go to the
pump with the link's session; the reply goes back on that link; alarms go to
every link with a session open. One link at a time programs: the first to send a
command holds the **programming lock** until its session ends or its link goes;
meanwhile other links may read and handle alarms, and their other commands get
``BUSY`` (their transaction id unused). A frame the pump cannot take as a request is
answered with the Nack the spec prescribes and logged; a frame that is not
intact is dropped and counted. Transports and the emulator only move bytes
through it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from itbproto.connection import BadRequest, Connection, Dropped, Request
from itbproto.errors import ProtocolError
from itbproto.machines.pump import CLOSED, PumpMachine, Session
from itbproto.wire import messages as m
from itbproto.wire.enums import ErrorCode, EventCode
from itbproto.wire.message import Effect, Message
from itbproto.wire.messages import AlarmNotify

__all__ = ["Firmware", "Output"]

#: commands any link may send while another programs: quieting alarms and leaving
_NEVER_LOCKED = (m.AlarmAcknowledge, m.AlarmSilence, m.SessionEnd)

#: chunks to write, by link
Output = dict[int, list[bytes]]


@dataclass
class _Link:
    connection: Connection
    session: Session = CLOSED


@dataclass
class Firmware:
    """The pump behind every link; see the module docstring."""

    pump: PumpMachine
    #: what each link dropped without an answer (not intact, not newer, ...), newest last
    dropped: list[tuple[int, ProtocolError]] = field(default_factory=list)
    #: the link holding the programming lock, if any
    programming: int | None = None
    _links: dict[int, _Link] = field(default_factory=dict)
    _next: int = 0

    def attach(self, connection: Connection) -> int:
        """A new link; returns its id."""
        self._next += 1
        self._links[self._next] = _Link(connection)
        return self._next

    def detach(self, link: int) -> None:
        """The link is gone; its session ends with it (and its programming lock)."""
        self._links.pop(link, None)
        if self.programming == link:
            self.programming = None

    def session(self, link: int) -> Session:
        return self._links[link].session

    def receive(self, link: int, data: bytes, now: int) -> Output:
        """One chunk from ``link`` at device time ``now``; what to write to every link."""
        out: Output = {}
        state = self._links[link]
        for event in state.connection.receive(data):
            match event:
                case Request(message=request, txn=txn) if self._busy(link, request):
                    busy = m.Nack.refusing(request.TYPE, ErrorCode.BUSY, "another programmer is programming")
                    self._refuse(out, link, busy, txn)
                case Request(message=request, txn=txn):
                    answer = self.pump.handle(request, txn, now, state.session)
                    self._broadcast(out, answer.notifications)
                    state.session = answer.session
                    self._lock(link, request, state.session)
                    out.setdefault(link, []).extend(state.connection.send(answer.reply, txn))
                    state.connection.peer_max_frame = state.session.max_frame
                case BadRequest(reply=nack, txn=txn):
                    self._refuse(out, link, nack, txn)
                case Dropped(error=error):
                    self.dropped.append((link, error))
        return out

    def _refuse(self, out: Output, link: int, nack: m.Nack, txn: int) -> None:
        """A request the pump never sees: logged, and its Nack sent back."""
        self.pump.log.append(self.pump.therapy.now, EventCode.COMMAND_REFUSED, txn, int(nack.code))
        out.setdefault(link, []).extend(self._links[link].connection.send(nack, txn))

    def _busy(self, link: int, request: Message) -> bool:
        """Another link holds the programming lock and this is a command it keeps (not alarm handling)."""
        return (
            self.programming not in (None, link)
            and request.EFFECT is Effect.COMMAND
            and not isinstance(request, _NEVER_LOCKED)
        )

    def _lock(self, link: int, request: Message, session: Session) -> None:
        if session.role is None:  # the session ended (or never began): the lock goes with it
            if self.programming == link:
                self.programming = None
        elif request.EFFECT is Effect.COMMAND and not isinstance(request, _NEVER_LOCKED):
            self.programming = link

    def tick(self, now: int) -> Output:
        """Time passes: what every link with a session must be told."""
        out: Output = {}
        self._broadcast(out, self.pump.tick(now))
        return out

    def notify(self, notifications: tuple[AlarmNotify, ...]) -> Output:
        """Alarms raised outside a request (a fault): tell every link with a session."""
        out: Output = {}
        self._broadcast(out, notifications)
        return out

    def _broadcast(self, out: Output, notifications: tuple[AlarmNotify, ...]) -> None:
        for link, state in self._links.items():
            if state.session.role is not None:
                for note in notifications:
                    out.setdefault(link, []).extend(state.connection.send(note))
