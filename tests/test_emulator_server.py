"""The emulator over TCP: real sockets, frames back to back; many programmers, one programming lock,
alarms to everyone, hostile and slow clients dropped without starving the rest; the CLI's server stops
cleanly on SIGTERM and keeps its pump in its store."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from conftest import free_port, itbemu_serve, tcp_pump
from factories import POLICY
from itbemu import DeviceFault, TcpServer
from itbemu.demo import run_demo
from itbproto.cli import main as itbproto_main
from itbproto.core.wire import (
    MAX_EVENTS_PER_PAGE,
    AlarmCode,
    AlarmThresholds,
    ErrorCode,
    EventCode,
    EventLogRead,
    Hello,
    Role,
    StatusReport,
    encode,
)
from itbproto.core.wire.frame import MAX_FRAME
from itbproto.errors import CommandRefusedError
from itbproto.io.ble import BleTransport
from itbproto.io.ble.bumble_backend import open_central
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_profile
from itbproto.io.transport import TcpTransport

REPO = Path(__file__).resolve().parent.parent


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    """An async test, run on its own event loop."""

    @functools.wraps(test)
    def sync() -> None:
        asyncio.run(test())

    return sync


async def connect(server: TcpServer | int, name: str, sock: socket.socket | None = None) -> PumpClient:
    if sock is not None:
        reader, writer = await asyncio.open_connection(sock=sock)
        transport = TcpTransport(reader, writer)
    else:
        port = server if isinstance(server, int) else server.port
        transport = await TcpTransport.connect("127.0.0.1", port)
    client = PumpClient(transport, load_profile("itb-20"), load_drug(), POLICY, name=name)
    await client.connect()
    return client


def thresholds(low_ul: int) -> AlarmThresholds:
    return replace(load_profile("itb-20").thresholds, low_reservoir_ul=low_ul)


@run
async def test_one_programs_the_others_read_and_wait_until_it_ends() -> None:
    async with tcp_pump() as server:
        a, b = await connect(server, "a"), await connect(server, "b")
        await a.set_thresholds(thresholds(2_100))
        with pytest.raises(CommandRefusedError) as busy:
            await b.set_thresholds(thresholds(2_200))
        assert busy.value.code is ErrorCode.BUSY
        assert isinstance(await b.status(), StatusReport)  # reading is never locked
        await a.close()
        for _ in range(100):  # the lock goes with a's link
            if server.emulator.firmware.programming is None:
                break
            await asyncio.sleep(0.01)
        await b.set_thresholds(thresholds(2_200))
        assert server.emulator.therapy.thresholds.low_reservoir_ul == 2_200
        await b.close()


@run
async def test_a_fault_is_announced_to_every_programmer() -> None:
    async with tcp_pump() as server:
        a, b = await connect(server, "a"), await connect(server, "b")
        await server.inject(DeviceFault("motor-stall"))
        for p in (a, b):
            alarm = await anext(aiter(p.alarms()))
            assert alarm.code is AlarmCode.MOTOR_STALL
        await a.close()
        await b.close()


@run
async def test_a_client_sending_garbage_is_closed_and_the_others_are_served() -> None:
    async with tcp_pump() as server:
        good = await connect(server, "good")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(os.urandom(3 * MAX_FRAME))  # no frame in it: the stream cannot be resynchronised
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
        assert isinstance(await good.status(), StatusReport)
        assert server.emulator.firmware.dropped  # what the garbage was is counted
        log = server.emulator.pump.log.since(0)
        assert (
            1 <= sum(e.code is EventCode.FRAME_DROPPED for e in log) <= 2
        )  # logged, and a flood cannot fill it
        writer.close()
        await good.close()


@run
async def test_clients_beyond_the_limit_are_turned_away() -> None:
    async with tcp_pump(max_links=1) as server:
        first = await connect(server, "first")
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert isinstance(await first.status(), StatusReport)
        await first.close()


@run
async def test_a_client_that_does_not_read_is_dropped_and_the_others_are_served() -> None:
    async with tcp_pump(write_timeout_s=0.2, write_buffer=1024, send_buffer=4096) as server:
        good = await connect(server, "good")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        _, slow = await asyncio.open_connection(sock=sock)
        slow.write(
            encode(Hello(protocol_version=1, role=Role.CLINICIAN, max_frame=1045, client="slow"), txn=1)
        )
        for sent in range(1, 20_001):  # it never reads: the replies pile up, a page of the log each
            page = EventLogRead(first=0, count=MAX_EVENTS_PER_PAGE)
            slow.write(encode(page, txn=sent, seq=sent))
            if sent % 100 == 0:
                await asyncio.sleep(0)
        for _ in range(600):  # while the server works through them, the other programmer is served
            if server.clients == 1:
                break
            assert isinstance(await good.status(), StatusReport)
            await asyncio.sleep(0.05)
        assert server.clients == 1  # the slow one was dropped
        assert isinstance(await good.status(), StatusReport)
        await good.close()
        slow.close()


def serve(store: Path, *options: str) -> tuple[subprocess.Popen[str], int]:
    """``itbemu serve`` in its own process, on a free port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "itbemu", "serve", "--tcp", "127.0.0.1:0", "--store", str(store), *options],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "tcp://127.0.0.1:" in line, line
    return proc, int(line.rsplit(":", 1)[1])


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_itbemu_serve_stops_cleanly_on_sigterm_and_keeps_its_pump(tmp_path: Path) -> None:
    store = tmp_path / "pump.db"

    async def program(port: int, low_ul: int | None) -> int:
        async with PumpClient(
            await TcpTransport.connect("127.0.0.1", port), load_profile("itb-20"), load_drug(), POLICY
        ) as p:
            if low_ul is not None:
                await p.set_thresholds(thresholds(low_ul))
            return (await p.thresholds()).low_reservoir_ul

    proc, port = serve(store)
    assert asyncio.run(program(port, None)) == 2_000  # the profile's
    asyncio.run(program(port, 2_500))
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert "stopped" in out
    proc, port = serve(store)
    assert asyncio.run(program(port, None)) == 2_500  # the change survived the restart
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_itbproto_programs_a_pump_served_in_another_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc, port = serve(tmp_path / "pump.db")
    try:
        target = ["--target", f"tcp://127.0.0.1:{port}", "--json"]
        assert itbproto_main(["status", *target]) == 0
        assert json.loads(capsys.readouterr().out)["mode"] == "STOPPED"
        plan = REPO / "examples" / "prescriptions" / "continuous-400ug.toml"
        assert itbproto_main(["program", *target, "--prescription", str(plan), "--yes", "--by", "dr"]) == 0
        status = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert (status["mode"], status["rate_ul_day"]) == ("INFUSING", 800)
        assert itbproto_main(["log", *target]) == 0
        codes = [json.loads(line)["code"] for line in capsys.readouterr().out.splitlines()]
        assert "PRESCRIPTION_COMMITTED" in codes
        assert itbproto_main(["alarms", *target]) == 0
        assert json.loads(capsys.readouterr().out) == []  # none active
        bolus = ["bolus", *target, "--volume-ul", "20", "--duration-s", "3600"]
        assert itbproto_main(bolus) == 0
        assert json.loads(capsys.readouterr().out)["dose_ng"] == 10_000  # 20 µL of 500 µg/mL
        refill = ["refill", *target, "--volume-ul", "20000", "--concentration", "500"]
        assert itbproto_main([*refill, "--withdrawn-ul", "19990"]) == 2  # a bolus runs: the pump says no
        assert "refused" in capsys.readouterr().err
        assert itbproto_main(["status", "--target", "tcp://127.0.0.1:1"]) == 2  # nothing there: one line
        assert "cannot reach" in capsys.readouterr().err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def test_itbproto_pairs_and_then_works_sealed_with_a_pump_that_requires_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    options = ("--pin", "493817", "--require-pairing", "--serial", "EMU-PAIR")
    proc, port = serve(tmp_path / "pump.db", *options)
    keystore = tmp_path / "keys.json"
    target = ["--target", f"tcp://127.0.0.1:{port}"]
    try:
        assert itbproto_main(["status", *target]) == 2
        assert "pair first" in capsys.readouterr().err
        assert (
            itbproto_main(
                ["pair", *target, "--pin", "000000", "--keystore", str(keystore), "--serial", "EMU-PAIR"]
            )
            == 2
        )
        assert "wrong PIN" in capsys.readouterr().err
        # no --serial: over TCP the pump says it to a Hello without a key (specs/protocol.md §6)
        assert itbproto_main(["pair", *target, "--pin", "493817", "--keystore", str(keystore)]) == 0
        assert "paired with EMU-PAIR as clinician (key 1)" in capsys.readouterr().out
        sealed = [*target, "--keystore", str(keystore), "--serial", "EMU-PAIR", "--json"]
        assert itbproto_main(["status", *sealed]) == 0
        assert json.loads(capsys.readouterr().out)["mode"] == "STOPPED"
        assert (
            itbproto_main(["status", *target, "--keystore", str(keystore), "--json"]) == 0
        )  # found by serial
        assert json.loads(capsys.readouterr().out)["mode"] == "STOPPED"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


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
    assert plot is not None
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "pump.db").is_file()


def test_itbemu_serves_over_ble_to_a_programmer_in_another_process(tmp_path: Path) -> None:
    """`itbemu serve --ble tcp-server:...` in its own process; a programmer on the matching bumble client
    transport finds it by name over the virtual radio and reads its status."""
    port = free_port()
    with itbemu_serve("--ble", f"tcp-server:127.0.0.1:{port}") as served:
        assert "on ble tcp-server" in served.first_line

        async def status() -> StatusReport:
            central = await open_central(f"tcp-client:127.0.0.1:{port}")
            transport = await BleTransport.connect("ITB20", central=central)
            async with PumpClient(transport, load_profile("itb-20"), load_drug(), POLICY) as pump:
                return await pump.status()

        assert asyncio.run(status()).reservoir_ul == 20_000
    assert served.returncode == 0
    assert "stopped" in served.rest
