"""A programmer's session joined to an emulator in the same process: every chunk crosses as bytes.

The in-process counterpart of :mod:`itbemu.server`: the session's chunks go to the emulator at the
clock's time, and what the emulator writes back to this link comes back to the session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from itbemu.clock import Clock
from itbemu.device import Emulator
from itbproto.connection import Connection, Side
from itbproto.firmware import Output
from itbproto.machines import ProgrammingSession, SessionEvent

__all__ = ["InProcessLink", "reads"]


def reads(s: ProgrammingSession) -> Iterator[Callable[[], list[bytes]]]:
    """What a programmer reads before it checks anything (each exchanged before the next is asked for):
    status, patient record, the prescription if one is in force, the therapy history."""
    yield s.read_status
    yield s.read_patient_record
    if s.pump.status is not None and s.pump.status.prescription_id:
        yield s.read_prescription
    yield s.read_history


@dataclass
class InProcessLink:
    """A session and an emulator on one link; ``exchange`` carries a request and what comes back."""

    emulator: Emulator
    session: ProgrammingSession
    clock: Clock
    link: int = field(init=False)

    def __post_init__(self) -> None:
        self.link = self.emulator.attach(Connection(Side.PUMP, mtu=self.session.connection.mtu))

    def exchange(self, chunks: list[bytes]) -> list[SessionEvent]:
        events: list[SessionEvent] = []
        for chunk in chunks:
            events += self.deliver(self.emulator.receive(self.link, chunk, self.clock.now()))
        return events

    def deliver(self, out: Output) -> list[SessionEvent]:
        """What the emulator wrote to this link, to the session."""
        return [event for chunk in out.get(self.link, []) for event in self.session.receive(chunk)]

    def ready(self, client: str = "itbemu") -> ProgrammingSession:
        """Open the session and read what its checks need (status, patient record, prescription, history)."""
        s = self.session
        self.exchange(s.open(client))
        self.exchange(s.authenticated())
        self.refresh()
        return s

    def refresh(self) -> None:
        """Read again what the programmer's checks need."""
        for read in reads(self.session):
            self.exchange(read())

    def close(self) -> None:
        self.emulator.detach(self.link)
