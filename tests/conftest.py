"""Shared test configuration: hypothesis profiles, the repository root, `itbemu serve` in its own process, an
emulator over TCP, and on a virtual radio whose hub serves programmers' hosts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings

from itbemu import Emulator, RealClock, TcpServer, VirtualClock
from itbemu.ble import BlePeripheral, Hub, open_hub, pump_device
from itbemu.defects import ALLOW
from itbemu.device import START
from itbemu.store import Store

ROOT = Path(__file__).resolve().parent.parent

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=2_000)
# `make mutation`: every mutant meets the same few examples (derandomized), so a verdict is repeatable
settings.register_profile(
    "mutation", parent=settings.get_profile("default"), max_examples=20, derandomize=True, database=None
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """A property's example count: ``n``, more under the thorough profile, a few under mutation testing."""
    most = settings().max_examples
    return min(n, most) if PROFILE == "mutation" else max(n, most)


def run_qa_suite(where: Path, report: Path, *options: str) -> tuple[int, dict[str, Any]]:
    """`pytest --pyargs itbproto.qa OPTIONS` from the directory ``where`` (made here), seeded defects allowed:
    its exit status and the JSON report it wrote to ``report``."""
    where.mkdir(parents=True)
    suite = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--pyargs", "itbproto.qa"]
    done = subprocess.run(
        [*suite, *options, f"--itb-report={report}"],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, ALLOW: "1"},
    )
    return done.returncode, json.loads(report.read_text())


def free_port() -> int:
    """A local TCP port nothing listens on (for a server that cannot say which one it took)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    """An `itbemu serve` process: the line it printed first; once stopped, the rest and its exit status."""

    first_line: str
    rest: str = ""
    returncode: int | None = None


@contextmanager
def itbemu_serve(*options: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """`itbemu serve OPTIONS` in its own process until the block ends (then SIGTERM, as an operator would)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "itbemu", "serve", *options],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=None if env is None else {**os.environ, **env},
    )
    assert proc.stdout is not None
    served = Served(proc.stdout.readline())
    try:
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        served.rest, _ = proc.communicate(timeout=30)
        served.returncode = proc.returncode


@asynccontextmanager
async def ble_hub(emulator: Emulator) -> AsyncIterator[tuple[Hub, str]]:
    """``emulator`` as a BLE peripheral on a virtual radio whose hub serves programmers' hosts on a local TCP
    port, as `itbemu serve --ble tcp-server:...` does; yields the hub and the HCI a central opens."""
    from bumble.link import LocalLink

    radio = LocalLink()  # type: ignore[no-untyped-call]
    port = free_port()
    hub = await open_hub(radio, f"tcp-server:127.0.0.1:{port}")
    await BlePeripheral(emulator, VirtualClock(START), pump_device(radio, emulator)).start()
    try:
        yield hub, f"tcp-client:127.0.0.1:{port}"
    finally:
        await hub.close()


@asynccontextmanager
async def tcp_pump(store: Store | None = None, **options: Any) -> AsyncIterator[TcpServer]:
    """A programmed pump (factories.programmed) served over TCP on a real clock, ``options`` for TcpServer."""
    from factories import POLICY, programmed

    emulator = Emulator.create(programmed(), POLICY, serial="EMU-TCP", store=store)
    server = TcpServer(emulator, RealClock(start=emulator.now), **options)
    await server.start()
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
