"""Who the TCP pump lets in, and for how long (specs/protocol.md §3): links without a session are few, must
open one in time and are evicted oldest first to admit a new one, so idle or slow strangers never lock a
programmer out; a frame begun must end in time (a slowloris is cut off); an idle session is closed and its
programming lock goes with it; a stop writes every link's totals to the store."""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from conftest import itbemu_serve, tcp_pump
from factories import POLICY
from itbemu import DeviceFault, TcpServer
from itbemu.server import STRANGER_READ_SIZE
from itbemu.store import Store
from itbproto.core.connection import Connection, Side
from itbproto.core.wire import (
    MAX_FRAME,
    PROTOCOL_VERSION,
    AlarmCode,
    EventCode,
    Hello,
    Message,
    Role,
    SessionEnd,
    StatusReport,
    StatusRequest,
)
from itbproto.core.wire.frame import CRC_SIZE
from itbproto.core.wire.stream import StreamSplitter
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_profile
from itbproto.io.transport import TcpTransport

PROFILE, DRUG = load_profile("itb-20"), load_drug()


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def sync() -> None:
        asyncio.run(asyncio.wait_for(test(), 60))

    return sync


async def programmer(server: TcpServer) -> PumpClient:
    client = PumpClient(await TcpTransport.connect("127.0.0.1", server.port), PROFILE, DRUG, POLICY)
    await client.connect()
    return client


def status_frame() -> bytes:
    """A whole request frame, as any programmer would send it."""
    return b"".join(Connection(Side.PROGRAMMER, stream=True).send(StatusRequest()))


def garbage() -> bytes:
    """A request frame whose CRC is wrong."""
    frame = bytearray(status_frame())
    frame[-CRC_SIZE] ^= 0xFF
    return bytes(frame)


async def stranger(
    server: TcpServer, address: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that never opens a session (from ``address``: any of 127/8 is this host)."""
    return await asyncio.open_connection("127.0.0.1", server.port, local_addr=(address, 0))


async def closed_by_pump(reader: asyncio.StreamReader) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), 20) == b""
    except ConnectionError:
        return True


@run
async def test_idle_strangers_never_lock_a_programmer_out() -> None:
    """More idle connections than the pump takes links: each new one evicts the oldest, and a programmer
    still connects, reads, and keeps its session."""
    async with tcp_pump() as server:
        idle = [await stranger(server) for _ in range(server.max_links + 8)]
        pump = await programmer(server)
        assert isinstance(await pump.status(), StatusReport)
        more = [await stranger(server) for _ in range(server.max_links)]
        assert isinstance(await pump.status(), StatusReport)  # a session is never evicted for a stranger
        assert server.strangers <= server.max_strangers
        await pump.close()
        for _, writer in idle + more:
            writer.close()


@run
async def test_a_stranger_must_open_a_session_in_time() -> None:
    async with tcp_pump(handshake_timeout_s=0.3) as server:
        reader, writer = await stranger(server)
        assert await closed_by_pump(reader)
        writer.close()


@run
async def test_a_slowloris_is_cut_off() -> None:
    """A frame sent a byte at a time, slower than the frame time-out: the link is closed (long before its
    handshake deadline), and the others are served."""
    async with tcp_pump(frame_timeout_s=0.3, handshake_timeout_s=60) as server:
        pump = await programmer(server)
        reader, writer = await stranger(server)
        frame = status_frame()
        for byte in frame:
            if writer.is_closing() or reader.at_eof():
                break
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)
        assert await closed_by_pump(reader)
        assert isinstance(await pump.status(), StatusReport)
        writer.close()
        await pump.close()


@run
async def test_an_idle_session_is_closed_and_its_lock_goes() -> None:
    async with tcp_pump(idle_timeout_s=0.3) as server:
        pump = await programmer(server)
        await pump.set_thresholds(PROFILE.thresholds)
        assert server.emulator.firmware.programming is not None
        for _ in range(100):
            if server.clients == 0:
                break
            await asyncio.sleep(0.05)
        assert server.clients == 0
        assert server.emulator.firmware.programming is None
        await pump.close()


@run
async def test_strangers_from_one_peer_evict_only_each_other() -> None:
    async with tcp_pump(max_strangers=4, max_strangers_per_peer=2) as server:
        first, second = await stranger(server), await stranger(server)
        third = await stranger(server)  # a third from the same address: the first goes
        assert await closed_by_pump(first[0])
        assert server.strangers == 2
        for _, writer in (first, second, third):
            writer.close()


@run
async def test_when_every_link_has_a_session_a_new_one_is_turned_away() -> None:
    async with tcp_pump(max_links=1) as server:
        first = await programmer(server)
        reader, writer = await stranger(server)
        assert await closed_by_pump(reader)
        writer.close()
        assert isinstance(await first.status(), StatusReport)
        await first.close()


@run
async def test_a_stop_writes_every_link_total_to_the_store() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pump.db"
        with Store(path) as store:
            async with tcp_pump(store) as server:
                pump = await programmer(server)
                _, writer = await stranger(server)
                writer.write(garbage())
                await writer.drain()
                for _ in range(100):
                    if server.emulator.firmware.dropped:
                        break
                    await asyncio.sleep(0.02)
            writer.close()  # after the stop: the pump closed the links itself
            await pump.close()
        with Store(path) as store:
            totals = [e.value for e in store.log() if e.code is EventCode.FRAME_DROPPED]
        assert totals == [1, 1]


@run
async def test_a_programmer_waiting_for_alarms_keeps_its_session() -> None:
    """The client reads the status while it only waits for alarms, so the idle time-out never closes it."""
    async with tcp_pump(idle_timeout_s=0.5) as server:
        pump = await programmer(server)
        alarms = aiter(pump.alarms(keepalive_s=0.1))
        waiting = asyncio.ensure_future(anext(alarms))
        await asyncio.sleep(1.5)  # three idle time-outs
        assert server.clients == 1
        await server.inject(DeviceFault("motor-stall"))
        assert (await asyncio.wait_for(waiting, 10)).code is AlarmCode.MOTOR_STALL
        await pump.close()


@run
async def test_a_stranger_that_only_sends_is_closed_after_a_few_frames() -> None:
    """Requests without a session, one after another: a few are refused, then the link is closed, and its
    address is refused for a while; a programmer from another address is served."""
    async with tcp_pump() as server:
        reader, writer = await stranger(server, "127.0.0.2")
        writer.write(status_frame() * 200)
        await writer.drain()
        answers, splitter = 0, StreamSplitter()
        while data := await asyncio.wait_for(reader.read(4096), 20):
            answers += sum(isinstance(frame, bytes) for frame in splitter.feed(data))
        assert 1 <= answers <= server.max_stranger_frames + STRANGER_READ_SIZE // len(status_frame())
        writer.close()
        again, closing = await stranger(server, "127.0.0.2")
        assert await closed_by_pump(again)  # penalised
        closing.close()
        pump = await programmer(server)
        assert isinstance(await pump.status(), StatusReport)
        await pump.close()


@run
async def test_a_stranger_sending_garbage_is_closed_and_its_address_refused_for_a_while() -> None:
    async with tcp_pump(penalty_s=0.3) as server:
        reader, writer = await stranger(server, "127.0.0.3")
        writer.write(garbage())
        assert await closed_by_pump(reader)  # at its first dropped frame
        writer.close()
        refused, closing = await stranger(server, "127.0.0.3")
        closing.write(status_frame())  # held unread (a tarpit) until the penalty ends, then closed
        assert await closed_by_pump(refused)  # with no answer
        closing.close()
        await asyncio.sleep(0.4)  # the penalty is over: a programmer from there is served
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=("127.0.0.3", 0))
        pump = PumpClient(TcpTransport(reader, writer), PROFILE, DRUG, POLICY)
        await pump.connect()
        assert isinstance(await pump.status(), StatusReport)
        await pump.close()


@run
async def test_what_strangers_caused_is_saved_within_a_second_not_only_at_the_stop() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pump.db"
        with Store(path) as store:
            async with tcp_pump(store) as server:
                reader, writer = await stranger(server, "127.0.0.4")
                writer.write(garbage())
                assert await closed_by_pump(reader)
                writer.close()
                saved: list[int] = []
                for _ in range(100):  # polled; the server saves it within SAVE_WITHIN_S
                    with Store(path) as reading:
                        saved = [e.value for e in reading.log() if e.code is EventCode.FRAME_DROPPED]
                    if saved:
                        break
                    await asyncio.sleep(0.05)
                assert saved == [1, 1]


def test_itbemu_serve_takes_its_admission_options() -> None:
    """`itbemu serve --handshake-timeout` reaches the server: an idle connection is closed in time."""
    with itbemu_serve("--tcp", "127.0.0.1:0", "--handshake-timeout", "0.3") as served:
        port = int(served.first_line.rsplit(":", 1)[1])

        async def idle() -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            closed = await closed_by_pump(reader)
            writer.close()
            return closed

        assert asyncio.run(idle())
    assert served.returncode == 0


@run
async def test_a_link_whose_session_ended_gets_a_new_handshake_and_frame_budget() -> None:
    """A programmer that ends its session after many frames and opens another on the same link is served
    (the budget of a stranger counts from when the link became one)."""
    async with tcp_pump(handshake_timeout_s=0.5) as server:
        connection = Connection(Side.PROGRAMMER, stream=True)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        splitter = StreamSplitter()

        async def ask(message: Message) -> None:
            writer.write(b"".join(connection.send(message)))
            while True:
                data = await asyncio.wait_for(reader.read(4096), 10)
                assert data, "the pump closed the link"
                if splitter.feed(data):
                    break
            connection.forget()

        hello = Hello(protocol_version=PROTOCOL_VERSION, role=Role.CLINICIAN, max_frame=MAX_FRAME, client="a")
        await ask(hello)
        for _ in range(server.max_stranger_frames + 4):
            await ask(StatusRequest())
        await asyncio.sleep(0.7)  # longer than the handshake time-out, in a session
        await ask(SessionEnd())
        await ask(hello)
        await ask(StatusRequest())
        assert server.clients == 1
        writer.close()
