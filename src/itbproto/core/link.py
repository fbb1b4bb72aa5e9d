"""Two Connections joined in memory: a programmer's session and the pump's firmware.

The h11 ``ConnectionPair`` shape, and the default test shape: every message
crosses as bytes (encoded, fragmented for an ATT MTU if one is set, reassembled,
decoded) exactly as a transport would carry it. Hooks lose a reply, drop the
link, or watch every chunk. The demo, the tests and the QA suite use it; real
transports come with the transport layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Firmware, Output
from itbproto.core.machines.session import ProgrammingSession, SessionEvent

__all__ = ["InMemoryLink", "Tap"]

#: sees every chunk carried: (sender, chunk)
Tap = Callable[[str, bytes], None]


@dataclass
class InMemoryLink:
    """A programmer session and a pump, joined by one in-memory link (device time ``now``)."""

    firmware: Firmware
    session: ProgrammingSession
    now: int
    tap: Tap | None = None
    link: int = field(init=False)

    def __post_init__(self) -> None:
        self.link = self.firmware.attach(Connection(Side.PUMP, mtu=self.session.connection.mtu))

    def exchange(self, chunks: list[bytes], *, lose_reply: bool = False) -> list[SessionEvent]:
        """Carry a request to the pump and what it answers back (unless the reply is lost)."""
        out: Output = {}
        for chunk in chunks:
            self._tap("programmer", chunk)
            for link, more in self.firmware.receive(self.link, chunk, self.now).items():
                out.setdefault(link, []).extend(more)
        if lose_reply:
            out.pop(self.link, None)
        return self.deliver(out)

    def deliver(self, out: Output) -> list[SessionEvent]:
        """Carry what the pump wrote to this link to the session."""
        events: list[SessionEvent] = []
        for chunk in out.get(self.link, []):
            self._tap("pump", chunk)
            events += self.session.receive(chunk)
        return events

    def wait(self, seconds: int) -> list[SessionEvent]:
        """Let device time pass on the pump; deliver what it announces."""
        self.now += seconds
        return self.deliver(self.firmware.tick(self.now))

    def drop(self) -> None:
        """The link drops: both sides start a new one (the session's uncertainty survives)."""
        self.session.disconnected()
        self.firmware.detach(self.link)
        self.link = self.firmware.attach(Connection(Side.PUMP, mtu=self.session.connection.mtu))

    def ready(self, client: str = "itbproto") -> ProgrammingSession:
        """Open the session, read the status and the patient record: the session is ready (or uncertain,
        when a delivery change's fate must be resolved first)."""
        self.exchange(self.session.open(client))
        self.exchange(self.session.authenticated())
        if self.session.state == "ready":
            self.exchange(self.session.read_patient_record())
        return self.session

    def _tap(self, sender: str, chunk: bytes) -> None:
        if self.tap is not None:
            self.tap(sender, chunk)
