"""The shared in-memory link, set up with the test factories."""

from __future__ import annotations

from factories import POLICY, empty_pump
from itbproto.machines import ProgrammingSession, PumpMachine
from itbproto.qa.link import InMemoryLink
from itbproto.specfiles import load_drug, load_profile
from itbproto.therapy import TherapyState
from itbproto.wire import Role


class Link(InMemoryLink):
    @classmethod
    def new(cls, therapy: TherapyState | None = None, role: Role = Role.CLINICIAN) -> Link:
        pump = PumpMachine(therapy or empty_pump(), POLICY)
        session = ProgrammingSession(
            role=role, profile=load_profile("itb-20"), drug=load_drug(), policy=POLICY
        )
        return cls(pump, session, now=pump.therapy.now)
