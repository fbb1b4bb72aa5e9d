"""The emulator over TCP: real sockets, frames back to back; many programmers, one programming lock,
alarms to everyone, hostile and slow clients dropped without starving the rest; the CLI's server stops
cleanly on SIGTERM and keeps its pump in its store."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from factories import POLICY, programmed
from itbemu import DeviceFault, Emulator, RealClock, TcpServer
from itbemu.demo import run_demo
from itbemu.tcpsession import TcpSession
from itbproto.machines.session import AlarmAnnounced, Refused, Replied, SessionEvent
from itbproto.specfiles import load_drug, load_profile
from itbproto.wire import (
    MAX_EVENTS_PER_PAGE,
    AlarmCode,
    AlarmThresholds,
    ErrorCode,
    EventLogRead,
    Nack,
    StatusReport,
    encode,
)
from itbproto.wire.frame import MAX_FRAME

REPO = Path(__file__).resolve().parent.parent


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """An async test, run on its own event loop."""

    @functools.wraps(test)
    def sync() -> None:
        asyncio.run(test())

    return sync


async def connect(address: tuple[str, int] | socket.socket, name: str) -> TcpSession:
    return await TcpSession.connect(address, load_profile("itb-20"), load_drug(), POLICY, client=name)


@asynccontextmanager
async def serving(**options: object) -> AsyncIterator[TcpServer]:
    emulator = Emulator.create(programmed(), POLICY, serial="EMU-TCP")
    server = TcpServer(emulator, RealClock(start=emulator.now), **options)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()


def thresholds(low_ul: int) -> AlarmThresholds:
    return replace(load_profile("itb-20").thresholds, low_reservoir_ul=low_ul)


def refused(events: list[SessionEvent]) -> Nack | None:
    return next((e.nack for e in events if isinstance(e, Refused)), None)


@run
async def test_one_programs_the_others_read_and_wait_until_it_ends() -> None:
    async with serving() as server:
        a = await connect(("127.0.0.1", server.port), "a")
        b = await connect(("127.0.0.1", server.port), "b")
        for p in (a, b):
            await p.exchange(p.session.read_status())
        assert refused(await a.exchange(a.session.set_thresholds(thresholds(2_100)))) is None
        busy = refused(await b.exchange(b.session.set_thresholds(thresholds(2_200))))
        assert busy is not None
        assert busy.code is ErrorCode.BUSY
        status = [e for e in await b.exchange(b.session.read_status()) if isinstance(e, Replied)]
        assert isinstance(status[0].reply, StatusReport)  # reading is never locked
        await a.close()
        for _ in range(100):  # the lock goes with a's link
            if server.emulator.firmware.programming is None:
                break
            await asyncio.sleep(0.01)
        await b.exchange(b.session.read_status())
        assert refused(await b.exchange(b.session.set_thresholds(thresholds(2_200)))) is None
        assert server.emulator.therapy.thresholds.low_reservoir_ul == 2_200
        await b.close()


@run
async def test_a_fault_is_announced_to_every_programmer() -> None:
    async with serving() as server:
        a = await connect(("127.0.0.1", server.port), "a")
        b = await connect(("127.0.0.1", server.port), "b")
        await server.inject(DeviceFault("motor-stall"))
        for p in (a, b):
            (event,) = await p.unasked()
            assert isinstance(event, AlarmAnnounced)
            assert event.alarm.code is AlarmCode.MOTOR_STALL
        await a.close()
        await b.close()


@run
async def test_a_client_sending_garbage_is_closed_and_the_others_are_served() -> None:
    async with serving() as server:
        good = await connect(("127.0.0.1", server.port), "good")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(os.urandom(3 * MAX_FRAME))  # no frame in it: the stream cannot be resynchronised
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        events = await good.exchange(good.session.read_status())
        assert any(isinstance(e, Replied) for e in events)
        assert server.emulator.firmware.dropped  # what the garbage was is counted
        writer.close()
        await good.close()


@run
async def test_clients_beyond_the_limit_are_turned_away() -> None:
    async with serving(max_clients=1) as server:
        first = await connect(("127.0.0.1", server.port), "first")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await first.exchange(first.session.read_status())
        await first.close()


@run
async def test_a_client_that_does_not_read_is_dropped_and_the_others_are_served() -> None:
    async with serving(write_timeout_s=0.2, write_buffer=1024, send_buffer=4096) as server:
        good = await connect(("127.0.0.1", server.port), "good")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        slow = await connect(sock, "slow")
        for sent in range(1, 20_001):  # it never reads: the replies pile up, a page of the log each
            page = EventLogRead(first=0, count=MAX_EVENTS_PER_PAGE)
            slow.writer.write(encode(page, txn=sent, seq=100 + sent))
            if sent % 100 == 0:
                await asyncio.sleep(0)
        for _ in range(600):  # while the server works through them, the other programmer is served
            if server.clients == 1:
                break
            events = await good.exchange(good.session.read_status())
            assert any(isinstance(e, Replied) for e in events)
            await asyncio.sleep(0.05)
        assert server.clients == 1  # the slow one was dropped
        events = await good.exchange(good.session.read_status())
        assert any(isinstance(e, Replied) for e in events)
        await good.close()
        slow.writer.close()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_itbemu_serve_stops_cleanly_on_sigterm_and_keeps_its_pump(tmp_path: Path) -> None:
    store = tmp_path / "pump.db"

    def serve() -> tuple[subprocess.Popen[str], int]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "itbemu", "serve", "--tcp", "127.0.0.1:0", "--store", str(store)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "tcp://127.0.0.1:" in line, line
        return proc, int(line.rsplit(":", 1)[1])

    async def program(port: int, low_ul: int | None) -> int:
        p = await connect(("127.0.0.1", port), "cli")
        if low_ul is not None:
            assert refused(await p.exchange(p.session.set_thresholds(thresholds(low_ul)))) is None
        await p.exchange(p.session.read_thresholds())
        await p.close()
        assert p.session.pump.thresholds is not None
        return p.session.pump.thresholds.low_reservoir_ul

    proc, port = serve()
    assert asyncio.run(program(port, None)) == 2_000  # the profile's
    asyncio.run(program(port, 2_500))
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "stopped" in out
    proc, port = serve()
    assert asyncio.run(program(port, None)) == 2_500  # the change survived the restart
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_the_demo_runs_a_session_over_tcp_reads_the_log_and_plots(tmp_path: Path) -> None:
    lines: list[str] = []
    plot = run_demo(tmp_path, days=400, say=lines.append)
    text = "\n".join(lines)
    assert "read back and verified" in text
    assert "the programmer refuses (TITR-002)" in text
    assert "LOW_RESERVOIR (non_critical) raised on day 15.818" in text  # its own second, not the clock's jump
    assert "MOTOR_STALL (critical)" in text
    assert "REFILL_CONFIRMED" in text
    assert text.count("  acknowledged") == 2
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "pump.db").is_file()
