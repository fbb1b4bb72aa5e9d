"""Pumps, sessions and links for the machine tests, built with the test factories."""

from __future__ import annotations

from factories import POLICY, empty_pump
from itbproto.connection import Connection, Side
from itbproto.firmware import Firmware
from itbproto.link import InMemoryLink
from itbproto.machines import PumpMachine, Session
from itbproto.machines.session import ProgrammingSession
from itbproto.specfiles import load_drug, load_profile
from itbproto.therapy import TherapyState
from itbproto.wire import Message, Role
from itbproto.wire.frame import MAX_FRAME

CLINICIAN = Session(role=Role.CLINICIAN, max_frame=MAX_FRAME, client="test")


def session_of(role: Role) -> Session:
    return Session(role=role, max_frame=MAX_FRAME, client="test")


def new_pump(therapy: TherapyState | None = None) -> PumpMachine:
    return PumpMachine.new(therapy or empty_pump(), POLICY)


def answer(
    pump: PumpMachine, request: Message, txn: int, now: int | None = None, role: Role = Role.CLINICIAN
) -> Message:
    """The pump's reply to one request in a session of ``role`` (time: the pump's own, by default)."""
    return pump.handle(request, txn, pump.therapy.now if now is None else now, session_of(role)).reply


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
