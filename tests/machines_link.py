"""Pumps, sessions and links for the machine tests, built with the test factories."""

from __future__ import annotations

from dataclasses import dataclass, field
from weakref import WeakKeyDictionary

from factories import POLICY, empty_pump
from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Firmware
from itbproto.core.link import InMemoryLink
from itbproto.core.machines import PumpMachine, Session
from itbproto.core.machines.session import ProgrammingSession
from itbproto.core.therapy import TherapyState
from itbproto.core.wire import Hello, Kind, Message, Role, decode, encode
from itbproto.core.wire.frame import MAX_FRAME
from itbproto.io.specfiles import load_drug, load_profile

CLINICIAN = Session(role=Role.CLINICIAN, max_frame=MAX_FRAME, client="test")


def session_of(role: Role) -> Session:
    return Session(role=role, max_frame=MAX_FRAME, client="test")


def new_pump(therapy: TherapyState | None = None) -> PumpMachine:
    return PumpMachine.new(therapy or empty_pump(), POLICY)


@dataclass
class _Links:
    firmware: Firmware
    by_role: dict[Role, list[int]] = field(default_factory=dict)  # role -> [link, next seq]


_FIRMWARE: WeakKeyDictionary[PumpMachine, _Links] = WeakKeyDictionary()


def answer(
    pump: PumpMachine, request: Message, txn: int, now: int | None = None, role: Role = Role.CLINICIAN
) -> Message:
    """The pump's reply to one request, through the bytes: encoded, received by the pump's firmware on a
    link whose session is in ``role`` (opened with Hello), the reply decoded. Time: the pump's, by default."""
    links = _FIRMWARE.setdefault(pump, _Links(Firmware(pump)))
    now = pump.therapy.now if now is None else now
    if role not in links.by_role:
        link = links.firmware.attach(Connection(Side.PUMP))
        links.by_role[role] = [link, 0]
        _carry(links, role, Hello(protocol_version=1, role=role, max_frame=MAX_FRAME, client="test"), 1, now)
    return _carry(links, role, request, txn, now)


def _carry(links: _Links, role: Role, request: Message, txn: int, now: int) -> Message:
    link, seq = links.by_role[role]
    links.by_role[role][1] += 1
    out = links.firmware.receive(link, encode(request, txn=txn, seq=seq), now).get(link, [])
    (reply,) = [m for m in (decode(chunk).message for chunk in out) if m.KIND is Kind.RESPONSE]
    return reply


def new_session(role: Role = Role.CLINICIAN, mtu: int | None = None) -> ProgrammingSession:
    return ProgrammingSession(
        role=role,
        profile=load_profile("itb-20"),
        drug=load_drug(),
        policy=POLICY,
        connection=Connection(Side.PROGRAMMER, mtu=mtu),
    )


class Link(InMemoryLink):
    """A session and a new pump joined in memory."""

    @classmethod
    def new(
        cls, therapy: TherapyState | None = None, role: Role = Role.CLINICIAN, mtu: int | None = None
    ) -> Link:
        pump = new_pump(therapy)
        return cls(Firmware(pump), new_session(role, mtu), now=pump.therapy.now)

    @property
    def pump(self) -> PumpMachine:
        return self.firmware.pump
