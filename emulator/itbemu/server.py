"""The emulator served over TCP (asyncio): frames back to back on each connection (specs/protocol.md §3).

Many programmers at once, each connection its own link; one of them programs at a time (the firmware's
programming lock), the others read and handle alarms. Time comes from a clock; between requests a ticker
sleeps until the next event and tells every link its alarms. Each client is read 4 KiB at a time and
answered before more is read, and a client that does not take what it is sent within the write time-out is
dropped: one slow or hostile client cannot starve the others. A stream that loses its frame boundaries is
closed. SIGINT and SIGTERM stop the server cleanly (the store is consistent after every change anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from dataclasses import dataclass, field

from itbemu.clock import Clock
from itbemu.device import Emulator
from itbemu.faults import DeviceFault, LinkFaults
from itbproto.connection import Connection, Side
from itbproto.firmware import Output

__all__ = ["READ_SIZE", "TcpServer"]

READ_SIZE = 4096


@dataclass
class TcpServer:
    """``await server.start()``, then ``await server.wait_closed()`` (or ``close()``)."""

    emulator: Emulator
    clock: Clock
    host: str = "127.0.0.1"
    port: int = 0
    faults: LinkFaults = field(default_factory=LinkFaults)
    write_timeout_s: float = 5.0
    #: bytes a client may leave unread before writing to it waits (and, after the time-out, drops it)
    write_buffer: int = 256 * 1024
    #: the kernel's send buffer for each client (SO_SNDBUF; None: the system's)
    send_buffer: int | None = None
    max_clients: int = 32
    _server: asyncio.Server | None = field(default=None, init=False)
    _writers: dict[int, asyncio.StreamWriter] = field(default_factory=dict, init=False)
    _ticker: asyncio.Task[None] | None = field(default=None, init=False)
    _wake: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _closed: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def start(self) -> tuple[str, int]:
        """Listen; returns the address (a port of 0 picks a free one)."""
        self._server = await asyncio.start_server(self._client, self.host, self.port, limit=READ_SIZE * 4)
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        self._ticker = asyncio.create_task(self._tick())
        return self.host, self.port

    def install_signal_handlers(self) -> None:
        """Close cleanly on SIGINT and SIGTERM."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.close)

    @property
    def clients(self) -> int:
        """Programmers connected now."""
        return len(self._writers)

    async def catch_up(self) -> None:
        """Let device time reach the clock's now (a virtual clock moves only when told); tell every link."""
        await self._write(self.emulator.advance_to(self.clock.now()))

    async def inject(self, fault: DeviceFault) -> None:
        """A device fault now; every link is told what it raised."""
        await self._write(self.emulator.inject(fault, self.clock.now()))
        self._wake.set()

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers.values()):
            writer.close()
        self._closed.set()
        self._wake.set()  # the ticker sees it is closed and ends

    async def wait_closed(self) -> None:
        await self._closed.wait()
        if self._server is not None:
            await self._server.wait_closed()
        if self._ticker is not None:
            await self._ticker

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= self.max_clients:
            writer.close()
            return
        writer.transport.set_write_buffer_limits(high=self.write_buffer)
        sock = writer.get_extra_info("socket")
        if self.send_buffer is not None and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        connection = Connection(Side.PUMP, stream=True)
        link = self.emulator.attach(connection)
        self._writers[link] = writer
        try:
            while not connection.broken and not writer.is_closing():
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                for part in self._arrive(data):
                    if part is None:
                        return
                    await self._write(self.emulator.receive(link, part, self.clock.now()))
                self._wake.set()
                await asyncio.sleep(0)  # the others' turn: a client that floods cannot starve them
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self.emulator.detach(link)
            self._writers.pop(link, None)
            writer.close()

    def _arrive(self, data: bytes) -> list[bytes | None]:
        """What the link delivers of ``data`` (None: it went down)."""
        if not self.faults.active:
            return [data]
        out: list[bytes | None] = []
        chunks, down = self.faults.carry(data)
        out += chunks
        if down:
            out.append(None)
        return out

    async def _write(self, out: Output) -> None:
        for link, chunks in out.items():
            writer = self._writers.get(link)
            if writer is None:
                continue
            for chunk in self.faults.kept(chunks):
                parts, down = self.faults.carry(chunk) if self.faults.active else ([chunk], False)
                if self.faults.delay_ms:
                    await asyncio.sleep(self.faults.delay())
                for part in parts:
                    writer.write(part)
                if down:
                    writer.close()
                    break
            try:
                await asyncio.wait_for(writer.drain(), self.write_timeout_s)
            except (TimeoutError, ConnectionError):
                writer.close()  # a client that does not read is dropped

    async def _tick(self) -> None:
        """Sleep until the next event (or a request changed the plan); tell every link what time did. It ends
        when the server closes (no cancellation: ``wait_for`` may swallow one on Python 3.11)."""
        while not self._closed.is_set():
            when = self.emulator.next_event_at()
            wait = 60.0 if when is None else min(60.0, self._seconds_until(when))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            if not self._closed.is_set():
                await self.catch_up()

    def _seconds_until(self, t: int) -> float:
        until = getattr(self.clock, "seconds_until", None)
        return float(until(t)) if until is not None else 1.0
