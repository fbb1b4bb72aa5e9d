"""The emulator served over TCP (asyncio): frames back to back on each connection (specs/protocol.md §3).

Many programmers at once, each connection its own link; one of them programs at a time (the firmware's
programming lock), the others read and handle alarms. Time comes from a clock; between requests a ticker
sleeps until the next event and tells every link its alarms. Each client is read 4 KiB at a time and
answered before more is read, and a client that does not take what it is sent within the write time-out is
dropped: one slow or hostile client cannot starve the others. A stream that loses its frame boundaries is
closed.

Admission and time-outs (specs/protocol.md §3): a link without a session (a *stranger*) must open one within
the handshake time-out, may send only a few frames before it has (``max_stranger_frames``) and none that
is not intact (a programmer's frames are: TCP checks them); strangers are
few (``max_strangers``, ``max_strangers_per_peer`` from one address),
and a new connection evicts the idlest stranger of the address holding the most rather than wait, so idle
or slow strangers never lock a programmer out; links with a session may fill all of ``max_links``. A frame
begun must end within the frame time-out (a slowloris is cut off), and a session that sends nothing for the
idle time-out is closed (its programming lock goes with it). An address whose stranger was closed for what it
sent or for its time-out is refused for a while (a second, doubling while it goes on, at most a minute): its
connections are held unread until then (a tarpit, bounded), so a flood costs the pump neither parsing nor a
stream of accepts. SIGINT and SIGTERM stop the server cleanly:
every link's totals are logged and saved (the store is consistent after every change anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections import Counter
from dataclasses import dataclass, field

from itbemu.clock import Clock
from itbemu.device import Emulator
from itbemu.faults import DeviceFault, LinkFaults
from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Output

__all__ = ["READ_SIZE", "TcpServer"]

READ_SIZE = 4096
#: a link without a session is read this much at a time (a few frames: it may send only a few)
STRANGER_READ_SIZE = 64
#: addresses remembered as penalised at most (a bound on memory whatever peers do)
MAX_PENALISED = 4096
#: connections from penalised addresses held unread at once (beyond, closed at once)
MAX_TARPIT = 256
#: what only strangers caused is saved within this many seconds (the emulator's other changes at once)
SAVE_WITHIN_S = 1.0


@dataclass
class _Peer:
    """One connection: its writer, its address, and when (loop time) it came (or last lost its session),
    last sent, began a frame; the frames it had sent (and had dropped) by then."""

    writer: asyncio.StreamWriter
    address: str
    since: float
    active: float
    frame_began: float | None = None
    stranger: bool = True
    received_then: int = 0
    dropped_then: int = 0

    def misbehaves(self, connection: Connection, most: int) -> bool:
        """As a stranger: a frame dropped, or more than ``most`` frames, since it became one."""
        sent = connection.received - self.received_then
        return connection.dropped > self.dropped_then or sent > most


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
    #: links at once; links with a session may take every one
    max_links: int = 64
    #: links without a session at once (a new connection evicts the idlest)
    max_strangers: int = 16
    #: links without a session at once from one address
    max_strangers_per_peer: int = 8
    #: frames a link may send before it has a session (pairing and Hello take three); then it is closed
    max_stranger_frames: int = 16
    #: seconds a new link has to open a session
    handshake_timeout_s: float = 10.0
    #: seconds a frame may take to arrive once its first byte has
    frame_timeout_s: float = 5.0
    #: seconds a session may send nothing before its link is closed (0: never)
    idle_timeout_s: float = 900.0
    #: seconds an address is refused after one of its strangers was closed for what it sent or for its
    #: time-out (doubling with each offence in a row, to at most a minute)
    penalty_s: float = 1.0
    _server: asyncio.Server | None = field(default=None, init=False)
    _peers: dict[int, _Peer] = field(default_factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _saving: asyncio.TimerHandle | None = field(default=None, init=False)
    #: address -> (refused until, the last penalty), loop time
    _penalties: dict[str, tuple[float, float]] = field(default_factory=dict, init=False)
    _tarpitted: int = field(default=0, init=False)
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
        return len(self._peers)

    @property
    def strangers(self) -> int:
        """Links without a session now."""
        return sum(self._stranger(link) for link in self._peers)

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
        for peer in list(self._peers.values()):
            peer.writer.close()
        self._closed.set()
        self._wake.set()  # the ticker sees it is closed and ends

    async def wait_closed(self) -> None:
        """Until the server is closed and every link has gone, with its totals logged and saved."""
        await self._closed.wait()
        if self._server is not None:
            await self._server.wait_closed()
        if self._ticker is not None:
            await self._ticker
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._saving is not None:
            self._saving.cancel()
        self.emulator.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        address = str((writer.get_extra_info("peername") or ("?",))[0])
        if (wait := self._penalty_left(address)) > 0:
            await self._tarpit(writer, wait)
            return
        if self._closed.is_set() or not self._admit(address):
            writer.close()
            return
        writer.transport.set_write_buffer_limits(high=self.write_buffer)
        sock = writer.get_extra_info("socket")
        if self.send_buffer is not None and sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        connection = Connection(Side.PUMP, stream=True)
        link = self.emulator.attach(connection)
        now = asyncio.get_running_loop().time()
        peer = self._peers[link] = _Peer(writer, address, now, now)
        try:
            while not connection.broken and not writer.is_closing():
                try:
                    async with asyncio.timeout_at(self._deadline(link, peer)):
                        data = await reader.read(STRANGER_READ_SIZE if self._stranger(link) else READ_SIZE)
                except TimeoutError:
                    if self._stranger(link):
                        self._penalise(address)
                    raise
                if not data:
                    break
                for part in self._arrive(data):
                    if part is None:
                        return
                    await self._write(self.emulator.receive(link, part, self.clock.now()))
                self._heard(link, peer, connection, len(data))
                if peer.stranger and peer.misbehaves(connection, self.max_stranger_frames):
                    self._penalise(address)
                    return  # garbage, or requests without opening a session: not a programmer
                if not peer.stranger:  # a command may have changed what happens next
                    self._wake.set()
                self._save_soon()
                await asyncio.sleep(0)  # the others' turn: a client that floods cannot starve them
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._peers.pop(link, None)
            writer.close()
            self.emulator.detach(link)
            self._save_soon()

    def _save_soon(self) -> None:
        """What strangers caused is saved within :data:`SAVE_WITHIN_S` (not a disk write per frame)."""
        if self.emulator.unsaved and self._saving is None and not self._closed.is_set():
            self._saving = asyncio.get_running_loop().call_later(SAVE_WITHIN_S, self._save_waiting)

    def _save_waiting(self) -> None:
        self._saving = None
        self.emulator.save()

    # --- admission and time-outs ----------------------------------------------------------------------

    def _stranger(self, link: int) -> bool:
        return self.emulator.firmware.session(link).role is None

    def _admit(self, address: str) -> bool:
        """Room for a new link from ``address``, a stranger evicted if need be; False when every link has a
        session."""
        strangers = [link for link in self._peers if self._stranger(link)]
        mine = [link for link in strangers if self._peers[link].address == address]
        if len(mine) >= self.max_strangers_per_peer:
            self._evict(mine)
        elif len(strangers) >= self.max_strangers or len(self._peers) >= self.max_links:
            if not strangers:
                return False
            most = Counter(self._peers[link].address for link in strangers).most_common(1)[0][0]
            self._evict([link for link in strangers if self._peers[link].address == most])
        return True

    def _penalty_left(self, address: str) -> float:
        until, _ = self._penalties.get(address, (0.0, 0.0))
        return until - asyncio.get_running_loop().time()

    async def _tarpit(self, writer: asyncio.StreamWriter, wait: float) -> None:
        """A penalised address's connection is held unread until its penalty ends (as many as
        :data:`MAX_TARPIT`; beyond, closed at once): a flooder that reconnects at once waits instead of
        making the pump accept and close connections as fast as it can."""
        if self._tarpitted < MAX_TARPIT and not self._closed.is_set():
            self._tarpitted += 1
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), wait)
            finally:
                self._tarpitted -= 1
        writer.close()

    def _penalise(self, address: str) -> None:
        """Refuse ``address`` for a while: the penalty doubles while offences follow each other."""
        now = asyncio.get_running_loop().time()
        until, last = self._penalties.get(address, (0.0, 0.0))
        penalty = min(60.0, last * 2) if now < until + last else self.penalty_s
        if len(self._penalties) >= MAX_PENALISED:  # bounded: forget the expired ones first
            self._penalties = {a: p for a, p in self._penalties.items() if now < p[0] + p[1]}
        if len(self._penalties) < MAX_PENALISED:
            self._penalties[address] = (now + penalty, penalty)

    def _evict(self, links: list[int]) -> None:
        """The idlest of ``links`` goes: it no longer counts; its reader sees the close and detaches it."""
        idlest = min(links, key=lambda link: self._peers[link].active)
        self._peers.pop(idlest).writer.close()

    def _deadline(self, link: int, peer: _Peer) -> float | None:
        """When the wait for this link's next bytes ends (loop time): the handshake's, the frame's begun or
        the idle time-out, whichever comes first; None: never."""
        deadlines = []
        if self._stranger(link):
            deadlines.append(peer.since + self.handshake_timeout_s)
        elif self.idle_timeout_s:
            deadlines.append(peer.active + self.idle_timeout_s)
        if peer.frame_began is not None:
            deadlines.append(peer.frame_began + self.frame_timeout_s)
        return min(deadlines, default=None)

    def _heard(self, link: int, peer: _Peer, connection: Connection, size: int) -> None:
        """``size`` bytes came: the link is active, a frame may have begun or ended, and a session may have
        ended (the link is a stranger again, with a handshake time-out and frames from now)."""
        peer.active = asyncio.get_running_loop().time()
        stranger = self._stranger(link)
        if stranger and not peer.stranger:
            peer.since, peer.received_then, peer.dropped_then = (
                peer.active,
                connection.received,
                connection.dropped,
            )
        peer.stranger = stranger
        pending = connection.pending
        if not pending:
            peer.frame_began = None
        elif peer.frame_began is None or pending < size:  # the frame under way began in these bytes
            peer.frame_began = peer.active

    # --- bytes ----------------------------------------------------------------------------------------

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
            peer = self._peers.get(link)
            if peer is None:
                continue
            writer = peer.writer
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
                await self.catch_up()  # saves what waits too

    def _seconds_until(self, t: int) -> float:
        until = getattr(self.clock, "seconds_until", None)
        return float(until(t)) if until is not None else 1.0
