"""A programmer's session over TCP, for the demo, the tests and scripts poking ``itbemu serve``.

It carries a :class:`~itbproto.machines.ProgrammingSession` (on a stream
:class:`~itbproto.connection.Connection`) over an asyncio connection: ``exchange`` sends a request's chunks
and returns what came back until its answer, alarms included.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from itbemu.inprocess import reads
from itbproto.connection import Connection, Side
from itbproto.errors import LinkClosedError
from itbproto.machines import Mismatch, ProgrammingSession, Refused, Replied, Resolved, SessionEvent, Verified
from itbproto.safety import SafetyPolicy
from itbproto.therapy import DeviceProfile, Drug
from itbproto.wire import Role

__all__ = ["TcpSession"]

#: seconds to wait for the pump's answer
TIMEOUT_S = 10.0
#: the events that end a request: the pump answered it
ANSWERS = (Replied, Refused, Verified, Mismatch, Resolved)


@dataclass
class TcpSession:
    session: ProgrammingSession
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def connect(
        cls,
        address: tuple[str, int] | socket.socket,
        profile: DeviceProfile,
        drug: Drug,
        policy: SafetyPolicy,
        *,
        client: str = "itbemu",
        role: Role = Role.CLINICIAN,
    ) -> TcpSession:
        """Connect (to ``(host, port)`` or on a connected socket) and open a session in ``role``."""
        if isinstance(address, socket.socket):
            reader, writer = await asyncio.open_connection(sock=address)
        else:
            reader, writer = await asyncio.open_connection(*address)
        connection = Connection(Side.PROGRAMMER, stream=True)
        session = ProgrammingSession(
            role=role, profile=profile, drug=drug, policy=policy, connection=connection
        )
        link = cls(session, reader, writer)
        await link.exchange(session.open(client))
        await link.exchange(session.authenticated())
        return link

    async def exchange(self, chunks: list[bytes]) -> list[SessionEvent]:
        """Send a request; what came back until its answer (alarms included)."""
        for chunk in chunks:
            self.writer.write(chunk)
        await self.writer.drain()
        events: list[SessionEvent] = []
        while not any(isinstance(e, ANSWERS) for e in events):
            events += await self._receive()
        return events

    async def unasked(self) -> list[SessionEvent]:
        """What the pump sends next on its own (an alarm)."""
        events: list[SessionEvent] = []
        while not events:
            events += await self._receive()
        return events

    async def refresh(self) -> None:
        """Read what the programmer's checks need."""
        for read in reads(self.session):
            await self.exchange(read())

    async def _receive(self) -> list[SessionEvent]:
        try:
            data = await asyncio.wait_for(self.reader.read(4096), TIMEOUT_S)
        except (TimeoutError, ConnectionError) as exc:
            raise LinkClosedError(f"no answer from the pump: {exc!r}") from None
        if not data:
            raise LinkClosedError("the pump closed the connection")
        return self.session.receive(data)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()
