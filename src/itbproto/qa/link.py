"""An in-memory link between a ProgrammingSession and a PumpMachine, through the real codec.

The h11 ``ConnectionPair`` shape: what one side sends is encoded (and, with an
ATT MTU, split into BLE fragments and joined again), decoded and handed to the
other side. Hooks lose a reply or watch every frame. The demo, the tests and the
QA suite share it; real transports come with the transport layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from itbproto.machines import Event, Outgoing, ProgrammingSession, PumpMachine
from itbproto.wire import Frame, Message, Reassembler, decode, encode, fragment

__all__ = ["InMemoryLink", "Tap"]

#: called for every frame carried: (sender, decoded frame, its bytes, number of BLE fragments)
Tap = Callable[[str, Frame, bytes, int], None]


@dataclass
class InMemoryLink:
    pump: PumpMachine
    session: ProgrammingSession
    now: int
    mtu: int | None = None
    tap: Tap | None = None
    sent: list[Message] = field(default_factory=list)
    seq: dict[str, int] = field(default_factory=lambda: {"programmer": 0, "pump": 0})
    inbox: dict[str, Reassembler] = field(
        default_factory=lambda: {"programmer": Reassembler(), "pump": Reassembler()}
    )

    def carry(self, sender: str, message: Message, txn: int) -> Frame:
        """Encode, optionally fragment and reassemble, and decode one message."""
        wire = encode(message, txn=txn, seq=self.seq[sender])
        parts = [wire]
        if self.mtu is not None:
            receiver = "pump" if sender == "programmer" else "programmer"
            parts = list(fragment(wire, self.mtu, self.seq[sender] % 256))
            joined = [out for part in parts if (out := self.inbox[receiver].feed(part)) is not None]
            assert joined == [wire], "reassembly must give back the frame"
        self.seq[sender] += 1
        frame = decode(wire)
        if self.tap is not None:
            self.tap(sender, frame, wire, len(parts))
        return frame

    def exchange(self, out: Outgoing, *, lose_reply: bool = False) -> list[Event]:
        """Carry a request to the pump and its reply back; optionally lose the reply."""
        request = self.carry("programmer", out.message, out.txn)
        self.sent.append(request.message)
        reply = self.pump.handle(request.message, request.txn, self.now)
        events = self.deliver_alarms()
        if lose_reply:
            return events
        return events + self.session.receive(self.carry("pump", reply, request.txn))

    def deliver_alarms(self) -> list[Event]:
        """Carry the pump's unsolicited notifications to the session."""
        events: list[Event] = []
        while self.pump.outbox:
            events += self.session.receive(self.carry("pump", self.pump.outbox.pop(0), 0))
        return events

    def wait(self, seconds: int) -> list[Event]:
        """Let device time pass on the pump; deliver what it announces."""
        self.now += seconds
        self.pump.tick(self.now)
        return self.deliver_alarms()

    def ready(self) -> ProgrammingSession:
        """Open, authenticate and read the status: the session is ready."""
        self.exchange(self.session.open())
        self.exchange(self.session.authenticated())
        return self.session
