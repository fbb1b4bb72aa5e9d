"""The pump's firmware loop, sans-IO: bytes from each link in, bytes to each link out.

::

    firmware = Firmware(pump)
    link = firmware.attach(Connection(Side.PUMP, mtu=185))   # one per programmer's connection
    for link_id, chunks in firmware.receive(link, chunk, now).items():
        ...                                                   # write each chunk to that link
    firmware.tick(now)                                        # time passes: alarms for every session

It joins the pump-side :class:`~itbproto.core.connection.Connection` of each link
to the one :class:`~itbproto.core.machines.pump.PumpMachine`: requests go to the
pump with the link's session; the reply goes back on that link; alarms go to
every link with a session open. One link at a time programs: the first clinician
link whose command the pump accepts holds the **programming lock** until its
session ends or its link goes (refused commands and other roles never take it);
meanwhile other links may read and handle alarms, and their other commands get
``BUSY`` (their transaction id unused). A frame the pump cannot take as a request is
answered with the Nack the spec prescribes and logged; a frame that is not
intact is dropped and counted. Transports and the emulator only move bytes
through it.

What a peer can repeat without limit is summarised per link, so that it costs
counting, never memory or the log (specs/protocol.md §8): dropped frames,
requests refused to a link without a session (a stranger's, kept in the log's
own ring for strangers) and answers sent again from transaction memory are
logged the first time on a link, then counted; each total is logged when the
link goes, or when the pump stops (:meth:`Firmware.close`).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from itbproto.core.connection import BadRequest, Connection, Dropped, Request
from itbproto.core.machines.pump import CLOSED, PumpMachine, Session, reports
from itbproto.core.security.keys import session_keys
from itbproto.core.security.pairing import PumpPairing
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import ErrorCode, EventCode, Role
from itbproto.core.wire.message import Effect, Message
from itbproto.core.wire.messages import AlarmNotify
from itbproto.errors import PairingError, ProtocolError

__all__ = ["Firmware", "Output"]

#: commands any link may send while another programs: quieting alarms and leaving
_NEVER_LOCKED = (m.AlarmAcknowledge, m.AlarmSilence, m.SessionEnd)

#: chunks to write, by link
Output = dict[int, list[bytes]]


@dataclass
class _Link:
    connection: Connection
    session: Session = CLOSED
    pairing: PumpPairing | None = None  # an exchange under way on this link
    #: what is summarised on this link, by the code its total is logged under
    counted: Counter[EventCode] = field(default_factory=Counter)
    #: a session was open on it at some time (else its totals are a stranger's)
    known: bool = False


@dataclass
class Firmware:
    """The pump behind every link; see the module docstring."""

    pump: PumpMachine
    #: frames dropped without an answer (not intact, not newer, ...), by what was wrong with them
    dropped: Counter[type[ProtocolError]] = field(default_factory=Counter)
    #: the link holding the programming lock, if any
    programming: int | None = None
    #: the PIN the pump shows while it accepts pairing (None: it does not)
    pin: str | None = None
    #: only paired programmers may open a session (a Hello without a known key is refused)
    require_pairing: bool = False
    #: where the pump's random bytes come from (nonces, SPAKE2, salts); a parameter, so runs can repeat
    entropy: Callable[[int], bytes] = os.urandom
    _links: dict[int, _Link] = field(default_factory=dict)
    _next: int = 0

    def attach(self, connection: Connection) -> int:
        """A new link; returns its id."""
        self._next += 1
        self._links[self._next] = _Link(connection)
        return self._next

    def detach(self, link: int) -> None:
        """The link is gone; its session ends with it (and its programming lock), logged as
        ``SESSION_ENDED`` (txn 0, the role as value, detail ``link closed``); then its totals are logged."""
        state = self._links.pop(link, None)
        if state is not None:
            if state.session.role is not None:
                role = int(state.session.role)
                self._log(state, EventCode.SESSION_ENDED, 0, role, "link closed", stranger=False)
            for code, count in state.counted.items():
                self._log(state, code, 0, count, "in all, on a link", stranger=not state.known)
        if self.programming == link:
            self.programming = None

    def close(self) -> None:
        """The pump stops: every link goes, each with its totals logged."""
        for link in list(self._links):
            self.detach(link)

    @property
    def links(self) -> int:
        """Links attached now."""
        return len(self._links)

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
                case Request(message=m.PairStart() | m.PairConfirm() as request, txn=txn):
                    self._pair(out, link, request, txn, now)
                case Request(message=m.Hello(key_id=0), txn=txn) if self.require_pairing:
                    self._identify(out, link, txn, now)
                case Request(message=m.Hello() as hello, txn=txn) if refusal := self._unkeyed(hello):
                    self._refuse(out, link, m.Nack.refusing(hello.TYPE, *refusal), txn)
                case Request(message=request, txn=txn):
                    stranger = state.session.role is None
                    quiet = stranger and EventCode.REFUSALS_COUNTED in state.counted
                    answer = self.pump.handle(request, txn, now, state.session, quiet=quiet)
                    self._broadcast(out, answer.notifications)
                    reply = answer.reply
                    if stranger and isinstance(reply, m.Nack):
                        state.counted[EventCode.REFUSALS_COUNTED] += 1
                    if answer.repeated and self._first(state, EventCode.ANSWER_REPEATED):
                        self._log(state, EventCode.ANSWER_REPEATED, txn, 1, "answered from memory")
                    state.session = answer.session
                    state.known |= state.session.role is not None
                    self._lock(link, request, state.session, accepted=not isinstance(reply, m.Nack))
                    if isinstance(request, m.Hello) and request.key_id and isinstance(reply, m.DeviceInfo):
                        reply = replace(reply, nonce=self.entropy(16), paired=True)
                        out.setdefault(link, []).extend(state.connection.send(reply, txn))
                        self._seal(state, request, reply)  # from the next frame on, both ways sealed
                    else:
                        out.setdefault(link, []).extend(state.connection.send(reply, txn))
                    state.connection.peer_max_frame = state.session.max_frame
                case BadRequest(reply=nack, txn=txn):
                    self._refuse(out, link, nack, txn)
                case Dropped(error=error):
                    self._drop(link, error)
        return out

    def _drop(self, link: int, error: ProtocolError) -> None:
        """A frame dropped unanswered: counted; the first on a link is logged with what it was."""
        self.dropped[type(error)] += 1
        state = self._links[link]
        if self._first(state, EventCode.FRAME_DROPPED):
            self._log(state, EventCode.FRAME_DROPPED, 0, 1, type(error).__name__[:24])

    @staticmethod
    def _first(state: _Link, code: EventCode) -> bool:
        """Count one more of what ``code`` totals on the link; True if it is the first (it is logged)."""
        state.counted[code] += 1
        return state.counted[code] == 1

    def _log(
        self,
        state: _Link,
        code: EventCode,
        txn: int,
        value: int,
        detail: str = "",
        *,
        stranger: bool | None = None,
    ) -> None:
        """A log entry about a link: a stranger's if the link has no session (unless ``stranger`` says)."""
        stranger = state.session.role is None if stranger is None else stranger
        self.pump.log.append(self.pump.therapy.now, code, txn, value, detail, stranger=stranger)

    def _identify(self, out: Output, link: int, txn: int, now: int) -> None:
        """A Hello without a key to a pump that requires pairing: who the pump is (its DeviceInfo, ``paired``
        set), so that a programmer can pair with its serial (over TCP there is no Device Information), and no
        session: the link's stays as it was (specs/protocol.md §6)."""
        self._broadcast(out, self.pump.tick(now))
        info = replace(reports.device_info(self.pump.state), paired=True)
        state = self._links[link]
        out.setdefault(link, []).extend(state.connection.send(info, txn))

    def _unkeyed(self, hello: m.Hello) -> tuple[ErrorCode, str] | None:
        """Why a keyed Hello may not open a session: an unknown key or a role its key does not carry; None
        when it may (a Hello without a key opens one unless pairing is required: :meth:`_identify`)."""
        if hello.key_id == 0:
            return None
        key = self.pump.state.key(hello.key_id)
        if key is None:
            return ErrorCode.NOT_AUTHENTICATED, f"no key {hello.key_id}: pair again"
        if key.role is not hello.role:
            return ErrorCode.ROLE_FORBIDDEN, f"key {hello.key_id} carries the {key.role.name.lower()} role"
        return None

    def _seal(self, state: _Link, hello: m.Hello, info: m.DeviceInfo) -> None:
        key = self.pump.state.key(hello.key_id)
        assert key is not None  # _unkeyed let it through
        state.connection.channel = session_keys(key.long_term, hello.nonce, info.nonce).pump()

    def _pair(self, out: Output, link: int, request: m.PairStart | m.PairConfirm, txn: int, now: int) -> None:
        """The pump's side of pairing (:mod:`itbproto.core.security.pairing`), with the PIN it shows."""
        state = self._links[link]
        if self.pin is None:
            refusal = (ErrorCode.WRONG_STATE, "pairing is closed: open it on the pump (it shows a PIN)")
        elif not self.pump.pairing_allowed(now):
            refusal = (ErrorCode.NOT_AUTHENTICATED, "too many wrong PINs: pairing is locked for now")
        elif isinstance(request, m.PairStart):
            state.pairing = PumpPairing(self.pin, self.pump.state.serial, entropy=self.entropy)
            try:
                reply = state.pairing.reply(request)
            except PairingError as exc:
                state.pairing = None
                refusal = (ErrorCode.MALFORMED, str(exc))
            else:
                out.setdefault(link, []).extend(state.connection.send(reply, txn))
                return
        elif state.pairing is None:
            refusal = (ErrorCode.WRONG_STATE, "send PairStart first")
        else:
            pairing, state.pairing = state.pairing, None
            try:
                result, key = pairing.result(request, self.pump.state.next_key_id)
            except PairingError:
                self.pump.pin_failed(now)
                refusal = (ErrorCode.NOT_AUTHENTICATED, "wrong PIN")
            else:
                self.pump.add_key(key, now)
                out.setdefault(link, []).extend(state.connection.send(result, txn))
                return
        self._refuse(out, link, m.Nack.refusing(request.TYPE, *refusal), txn)

    def _refuse(self, out: Output, link: int, nack: m.Nack, txn: int) -> None:
        """A request the pump never sees: logged (a stranger's only the first time on its link), and its
        Nack sent back."""
        state = self._links[link]
        if state.session.role is not None or self._first(state, EventCode.REFUSALS_COUNTED):
            self._log(state, EventCode.COMMAND_REFUSED, txn, int(nack.code))
        out.setdefault(link, []).extend(state.connection.send(nack, txn))

    def _busy(self, link: int, request: Message) -> bool:
        """Another link holds the programming lock and this is a command it keeps (not alarm handling) that
        this link's session may send: a session that may not send it at all is refused for its role first
        (specs/protocol.md §5, steps 3-4 before 4a)."""
        role = self._links[link].session.role
        return (
            self.programming not in (None, link)
            and request.EFFECT is Effect.COMMAND
            and not isinstance(request, _NEVER_LOCKED)
            and role is not None
            and m.role_refusal(role, request) is None
        )

    def _lock(self, link: int, request: Message, session: Session, *, accepted: bool) -> None:
        """The lock goes to a clinician's link with its first command the pump accepts; a refused command
        and the other roles' commands (a patient's bolus, service) never take it; it goes when the session
        ends."""
        if session.role is None:  # the session ended (or never began): the lock goes with it
            if self.programming == link:
                self.programming = None
        elif (
            accepted
            and session.role is Role.CLINICIAN
            and request.EFFECT is Effect.COMMAND
            and not isinstance(request, _NEVER_LOCKED)
        ):
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
