"""The QA suite's own hands on the wire: requests as the suite writes them, transaction ids as it chooses.

A :class:`Probe` link speaks the protocol without a programming session in the way (no checks, no retry, no
draft or summary): the suite can send a commit whose digest differs from the staged one, a refill confirmed
with another volume, a transaction id used again with another body. What the pump answers comes back as it
was sent: the reply, or the :class:`~itbproto.core.wire.messages.Nack`. A paired key seals the link as the
programmer's own session would (specs/protocol.md §6).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from itbproto.core.connection import Connection, Notification, Reply, Side
from itbproto.core.security import PairedKey
from itbproto.core.security.keys import session_keys
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import ErrorCode, Role
from itbproto.core.wire.message import Effect, Message
from itbproto.errors import ItbError
from itbproto.io.transport import Transport

__all__ = ["Probe"]


@dataclass
class Probe:
    """One link to the pump, in one role, with every request written by the suite."""

    transport: Transport
    role: Role = Role.CLINICIAN
    key: PairedKey | None = None
    timeout_s: float = 1.0
    #: the largest frame this programmer accepts (Hello.max_frame; 272 is the least a pump must serve)
    max_frame: int = 1_045
    info: m.DeviceInfo | None = None
    notifications: list[Message] = field(default_factory=list)
    #: the transaction of the last command sent, and its chunks as written (to replay them)
    last_command: int = 0
    last_chunks: list[bytes] = field(default_factory=list)
    #: the largest frame received whole (links that carry whole frames: in-process; else 0)
    largest: int = 0
    #: every request answered on this link: (transaction, request, answer)
    answered: list[tuple[int, Message, Message]] = field(default_factory=list)
    connection: Connection = field(init=False)

    def __post_init__(self) -> None:
        self.connection = Connection(Side.PROGRAMMER, mtu=self.transport.mtu, stream=self.transport.stream)

    async def hello(self, nonce: bytes = bytes(16)) -> Message:
        """Open the session (sealed with the key, if any); the pump's DeviceInfo or Nack."""
        key_id = self.key.key_id if self.key is not None else 0
        if self.key is not None and nonce == bytes(16):
            nonce = bytes(range(1, 17))
        hello = m.Hello(
            protocol_version=m.PROTOCOL_VERSION,
            role=self.role,
            max_frame=self.max_frame,
            client="qa probe",
            key_id=key_id,
            nonce=nonce,
        )
        reply = await self.ask(hello)
        if isinstance(reply, m.DeviceInfo):
            self.info = reply
            self.connection.last_txn = max(self.connection.last_txn, reply.last_txn)
            if self.key is not None:
                self.connection.channel = session_keys(self.key.long_term, nonce, reply.nonce).programmer()
        return reply

    async def ask(self, request: Message, txn: int | None = None) -> Message:
        """Send ``request`` (with the next transaction id, or ``txn``); the answer. A read of the status
        keeps the link's id in step with the pump's; a command refused as REPLAY or TXN_REUSED because
        another link moved the pump's ids on is sent again, numbered from the pump's (protocol.md §5)."""
        reply = await self._ask(request, txn)
        if (
            txn is None
            and isinstance(reply, m.Nack)
            and reply.code in (ErrorCode.REPLAY, ErrorCode.TXN_REUSED)
        ):
            status = await self._ask(m.StatusRequest(), None)
            if isinstance(status, m.StatusReport) and status.last_txn >= self.last_command:
                reply = await self._ask(request, None)
        return reply

    async def _ask(self, request: Message, txn: int | None) -> Message:
        chunks = self.connection.send(request, txn)
        used = self.connection.last_txn if txn is None else txn
        if request.EFFECT is Effect.COMMAND:
            self.last_command, self.last_chunks = used, chunks
        for chunk in chunks:
            await self.transport.send(chunk)
        reply = await self._answer()
        if reply is None:
            self.connection.forget()
            raise ItbError(f"no answer to {type(request).__name__} in {self.timeout_s} s")
        self.answered.append((used, request, reply))
        if isinstance(reply, m.StatusReport):
            self.connection.last_txn = max(self.connection.last_txn, reply.last_txn)
        return reply

    async def silent(self, chunks: list[bytes], wait_s: float) -> int:
        """Write ``chunks`` as they are (captured ones, replayed); how many replies came in ``wait_s``."""
        for chunk in chunks:
            await self.transport.send(chunk)
        answered = 0
        try:
            async with asyncio.timeout(wait_s):
                while True:
                    data = await self.transport.receive()
                    answered += sum(isinstance(e, Reply) for e in self.connection.receive(data))
        except TimeoutError:
            return answered

    async def _answer(self) -> Message | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                while True:
                    data = await self.transport.receive()
                    if not self.transport.stream and self.transport.mtu is None:
                        self.largest = max(self.largest, len(data))
                    for event in self.connection.receive(data):
                        if isinstance(event, Reply):
                            return event.message
                        if isinstance(event, Notification):
                            self.notifications.append(event.message)
        except TimeoutError:
            return None

    async def close(self) -> None:
        await self.transport.close()
