"""An in-memory link between a ProgrammingSession and a PumpMachine, through the real codec.

The h11 ``ConnectionPair`` shape: what one side sends is encoded, decoded and
handed to the other, with hooks to lose a reply or drop the link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from factories import POLICY, T0, empty_pump
from itbproto.machines import Event, Outgoing, ProgrammingSession, PumpMachine
from itbproto.specfiles import load_drug, load_profile
from itbproto.therapy import TherapyState
from itbproto.wire import Frame, Message, Role, decode, encode


@dataclass
class Link:
    pump: PumpMachine
    session: ProgrammingSession
    now: int = T0
    seq: int = 0
    sent: list[Message] = field(default_factory=list)

    @classmethod
    def new(cls, therapy: TherapyState | None = None, role: Role = Role.CLINICIAN) -> Link:
        pump = PumpMachine(therapy or empty_pump(), POLICY)
        session = ProgrammingSession(
            role=role, profile=load_profile("itb-20"), drug=load_drug(), policy=POLICY
        )
        return cls(pump, session, now=pump.therapy.now)

    def _wire(self, message: Message, txn: int) -> Frame:
        self.seq += 1
        return decode(encode(message, txn=txn, seq=self.seq))

    def exchange(self, out: Outgoing, *, lose_reply: bool = False) -> list[Event]:
        """Carry a request to the pump and its reply back; optionally lose the reply."""
        request = self._wire(out.message, out.txn)
        self.sent.append(request.message)
        reply = self.pump.handle(request.message, request.txn, self.now)
        events = self.deliver_alarms()
        if lose_reply:
            return events
        return events + self.session.receive(self._wire(reply, request.txn))

    def deliver_alarms(self) -> list[Event]:
        events: list[Event] = []
        while self.pump.outbox:
            events += self.session.receive(self._wire(self.pump.outbox.pop(0), 0))
        return events

    def wait(self, seconds: int) -> list[Event]:
        self.now += seconds
        self.pump.tick(self.now)
        return self.deliver_alarms()

    def ready(self) -> ProgrammingSession:
        """Open, authenticate and read the status: the session is ready."""
        self.exchange(self.session.open())
        self.exchange(self.session.authenticated())
        assert self.session.state == "ready"
        return self.session
