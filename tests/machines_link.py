"""The shared in-memory link, set up with the test factories."""

from __future__ import annotations

from factories import POLICY, empty_pump
from itbproto.machines import ProgrammingSession, PumpMachine
from itbproto.qa.link import InMemoryLink
from itbproto.specfiles import load_drug, load_profile
from itbproto.therapy import TherapyState
from itbproto.wire import Hello, Role


def say_hello(pump: PumpMachine, role: Role = Role.CLINICIAN) -> PumpMachine:
    """Open a session on ``pump`` in ``role`` (as another programmer would)."""
    pump.handle(Hello(protocol_version=1, role=role, max_frame=1045, client="test"), 0, pump.therapy.now)
    return pump


def open_pump(therapy: TherapyState | None = None, role: Role = Role.CLINICIAN) -> PumpMachine:
    """A pump with a session opened by Hello in ``role``."""
    return say_hello(PumpMachine(therapy or empty_pump(), POLICY), role)


class Link(InMemoryLink):
    @classmethod
    def new(cls, therapy: TherapyState | None = None, role: Role = Role.CLINICIAN) -> Link:
        pump = PumpMachine(therapy or empty_pump(), POLICY)
        session = ProgrammingSession(
            role=role, profile=load_profile("itb-20"), drug=load_drug(), policy=POLICY
        )
        return cls(pump, session, now=pump.therapy.now)
