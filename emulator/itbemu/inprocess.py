"""A programmer's session joined to an emulator in the same process: every chunk crosses as bytes.

The in-process counterpart of :mod:`itbemu.server`: the session's chunks go to the emulator at the
clock's time, and what the emulator writes back to this link comes back to the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from itbemu.clock import Clock
from itbemu.device import Emulator
from itbemu.faults import DeviceFault, LinkFaults
from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Output
from itbproto.core.machines import ProgrammingSession, SessionEvent
from itbproto.errors import LinkClosedError

__all__ = ["InProcessHub", "InProcessLink", "InProcessTransport", "reads"]


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


@dataclass
class InProcessHub:
    """The emulator as async transports in the same event loop: :meth:`connect` gives each programmer its
    own link (an :class:`itbproto.io.transport.Transport`); :meth:`advance` lets device time pass and delivers
    what it raised. ``faults.lose_next`` loses the next so many chunks to programmers (a fault for tests)."""

    emulator: Emulator
    clock: Clock
    faults: LinkFaults = field(default_factory=LinkFaults)
    _queues: dict[int, asyncio.Queue[bytes | None]] = field(default_factory=dict)

    def connect(self, mtu: int | None = None) -> InProcessTransport:
        link = self.emulator.attach(Connection(Side.PUMP, mtu=mtu))
        self._queues[link] = asyncio.Queue()
        return InProcessTransport(self, link, mtu)

    def route(self, out: Output) -> None:
        for link, chunks in out.items():
            queue = self._queues.get(link)
            if queue is None:
                continue
            for chunk in self.faults.kept(chunks):
                queue.put_nowait(chunk)

    def advance(self, now: int) -> None:
        """Device time to ``now`` (the clock must be there already); alarms go to every programmer."""
        self.route(self.emulator.advance_to(now))

    def inject(self, fault: DeviceFault) -> None:
        self.route(self.emulator.inject(fault, self.clock.now()))

    def disconnect(self, link: int) -> None:
        self.emulator.detach(link)
        queue = self._queues.pop(link, None)
        if queue is not None:
            queue.put_nowait(None)


@dataclass
class InProcessTransport:
    """One programmer's link to an :class:`InProcessHub` (whole frames, or fragments for ``mtu``)."""

    hub: InProcessHub
    link: int
    mtu: int | None = None
    stream: bool = False

    async def send(self, data: bytes) -> None:
        if self.link not in self.hub._queues:
            raise LinkClosedError("the link is closed")
        self.hub.route(self.hub.emulator.receive(self.link, data, self.hub.clock.now()))

    async def receive(self) -> bytes:
        queue = self.hub._queues.get(self.link)
        data = await queue.get() if queue is not None else None
        if data is None:
            raise LinkClosedError("the link is closed")
        return data

    async def close(self) -> None:
        self.hub.disconnect(self.link)
