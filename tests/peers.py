"""A programmer's byte stream on one link to an emulated pump, written by hand (no session, no checks)."""

from __future__ import annotations

from itbemu import Emulator
from itbproto.core.connection import Connection, Side
from itbproto.core.wire import Message


class Peer:
    """A programmer's byte stream on one link, written by hand."""

    def __init__(self, pump: Emulator) -> None:
        self.pump = pump
        self.connection = Connection(Side.PROGRAMMER, stream=True)
        self.link = pump.attach(Connection(Side.PUMP, stream=True))

    def send(self, frame: bytes) -> list[Message]:
        """One frame to the pump; the messages it answers on this link."""
        out = self.pump.receive(self.link, frame, self.pump.now)
        events = self.connection.receive(b"".join(out.get(self.link, [])))
        self.connection.forget()
        return [e.message for e in events if hasattr(e, "message")]

    def request(self, message: Message, txn: int | None = None) -> list[Message]:
        return self.send(b"".join(self.connection.send(message, txn)))
