"""The pump under hostile load (issue 24): `itbemu serve --tcp --pin --require-pairing --store` in its own
process, a paired programmer measured against its own quiet baseline in the same run, and three attacks:

1. **idle**: 1,000 connections from another host (127.0.0.2) that never send a byte, each re-opened a second
   after the pump closes it (as a client that reconnects does), plus a slowloris (127.0.0.3: a frame a byte
   a second): a paired programmer (127.0.0.1) connects, opens its sealed session and reads the status; the
   time it takes, against the same with no attacker (goal: at most 2x);
2. **garbage**: 50 connections from 50 addresses flood well-formed frames with bad CRCs (re-connecting as they
   are evicted) until the pump has dropped 10^6 of them: the programmer's status round trip (median) against
   its quiet median (goal: at most 3x), and the pump's RSS after against before (goal: within 20 MB);
3. **refusals**: 10^5 requests from links without a session, each refused: then `itbproto log` (the CLI, over
   the sealed session) still shows every PAIRED and PRESCRIPTION_COMMITTED entry.

The attackers run in a process of their own (the programmer's latency is the pump's, not the attackers'
event loop's). The last line printed is one JSON object. ``--quick`` scales every attack down (for tests).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from itbemu.store import Store
from itbproto.core.connection import Connection, Side
from itbproto.core.safety import SafetyPolicy
from itbproto.core.security import PairedKey
from itbproto.core.wire import Acknowledgement, EventCode, StatusRequest
from itbproto.core.wire.frame import CRC_SIZE
from itbproto.core.wire.stream import StreamSplitter
from itbproto.io.client import PumpClient
from itbproto.io.keystore import save_key
from itbproto.io.specfiles import load_drug, load_prescription, load_profile, load_rules
from itbproto.io.transport import TcpTransport

ROOT = Path(__file__).resolve().parent.parent
PIN, SERIAL = "493817", "EMU-HOSTILE"
PRESCRIPTION = ROOT / "examples" / "prescriptions" / "continuous-400ug.toml"
GOALS = {"idle_ratio": 2.0, "garbage_ratio": 3.0, "rss_growth_mb": 20.0}


def serve(store: Path | None) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "itbemu", "serve", "--tcp", "127.0.0.1:0", "--pin", PIN, "--require-pairing"]
        + ["--serial", SERIAL]
        + ([] if store is None else ["--store", str(store)]),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # itbemu: pump ... on tcp://HOST:PORT
    return proc, int(line.rsplit(":", 1)[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def client(port: int, key: PairedKey | None = None) -> Callable[[], Awaitable[PumpClient]]:
    async def make() -> PumpClient:
        transport = await TcpTransport.connect("127.0.0.1", port)
        return PumpClient(
            transport, load_profile("itb-20"), load_drug(), SafetyPolicy(load_rules()), key=key, timeout_s=30
        )

    return make


async def connect_and_read(port: int, key: PairedKey) -> float:
    """Seconds from nothing to a status read in a new sealed session."""
    started = time.perf_counter()
    pump = await client(port, key)()
    await pump.connect(key)
    await pump.status()
    took = time.perf_counter() - started
    await pump.close()
    return took


async def round_trips(pump: PumpClient, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        await pump.status()
        times.append(time.perf_counter() - started)
    return times


def request_frame() -> bytes:
    return b"".join(Connection(Side.PROGRAMMER, stream=True).send(StatusRequest()))


def garbage_frame() -> bytes:
    frame = bytearray(request_frame())
    frame[-CRC_SIZE] ^= 0xFF
    return bytes(frame)


async def idle_connections(port: int, count: int, stop: asyncio.Event) -> int:
    """Keep ``count`` connections open that send nothing, each re-opened a second after the pump closes it;
    how many were opened."""
    opened = 0

    async def one() -> None:
        nonlocal opened
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.2", 0))
            except OSError:  # the backlog is full for a moment
                await asyncio.sleep(0.05)
                continue
            opened += 1
            waiting = asyncio.ensure_future(reader.read())
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            waiting.cancel()
            stopping.cancel()
            writer.close()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await waiting
            with contextlib.suppress(TimeoutError):  # reconnect after a second, or stop
                await asyncio.wait_for(stop.wait(), 1.0)

    await asyncio.gather(*(one() for _ in range(count)))
    return opened


async def slowloris(port: int, stop: asyncio.Event) -> int:
    """A frame a byte a second, again on each new connection; how many connections the pump cut off."""
    cut = 0
    frame = request_frame()
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0))
        for byte in frame:
            if stop.is_set() or reader.at_eof() or writer.is_closing():
                break
            writer.write(bytes([byte]))
            try:
                await asyncio.wait_for(reader.read(1), 1.0)  # b"" (or a reset): the pump closed it
            except TimeoutError:
                continue
            except ConnectionError:
                pass
            cut += 1
            break
        writer.close()
    return cut


async def flood(port: int, address: str, stop: asyncio.Event, counts: Any) -> None:
    """Bad-CRC frames as fast as the pump takes them, from ``address`` without a session, reconnecting when
    cut off (or refused); ``counts[0]``: frames written."""
    chunk = garbage_frame() * 64
    while not stop.is_set():
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
        except OSError:
            await asyncio.sleep(0.01)
            continue
        try:
            while not stop.is_set() and not writer.is_closing():
                writer.write(chunk)
                await writer.drain()
                counts[0] += 64
                await asyncio.sleep(0)  # drain() need not yield
        except (ConnectionError, OSError):
            pass
        writer.close()


async def flood_in_session(port: int, key: PairedKey, stop: asyncio.Event, counts: Any) -> None:
    """Bad-CRC frames inside a paired programmer's session (a MITM's or a broken programmer's): the pump must
    read every one (a session is never closed for them); ``counts[0]``: frames the pump took."""
    pump = await client(port, key)()
    await pump.connect(key)
    chunk = garbage_frame() * 256
    while not stop.is_set():
        await pump.transport.send(chunk)
        counts[0] += 256
        await asyncio.sleep(0)
    await pump.status()  # everything before it was read
    await pump.close()


def attacker(kind: str, port: int, size: int, key: PairedKey, stop: Any, counts: Any) -> None:
    """The attack ``kind`` in a process of its own until ``stop`` is set; what it did goes in ``counts``."""

    async def attack() -> None:
        done = asyncio.Event()

        async def watch() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.05)
            done.set()

        watching = asyncio.ensure_future(watch())
        if kind == "idle":
            counts[0], counts[1] = await asyncio.gather(
                idle_connections(port, size, done), slowloris(port, done)
            )
        elif kind == "strangers":
            await asyncio.gather(*(flood(port, f"127.0.0.{10 + i}", done, counts) for i in range(size)))
        else:
            await asyncio.gather(*(flood_in_session(port, key, done, counts) for _ in range(size)))
        await watching

    asyncio.run(attack())


class Attack:
    """``with Attack(kind, port, size) as counts:`` the attack runs in its own process for the block."""

    def __init__(self, kind: str, port: int, size: int, key: PairedKey) -> None:
        self.stop, self.counts = multiprocessing.Event(), multiprocessing.Array("q", 2)
        args = (kind, port, size, key, self.stop, self.counts)
        self.process = multiprocessing.Process(target=attacker, args=args)

    def __enter__(self) -> Any:
        self.process.start()
        return self.counts

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.process.join(60)


def dropped_by_pump(store: Path, first: int, end: int) -> int:
    """Frames the pump dropped, by the totals in its log entries ``first`` to ``end`` (in its store)."""
    with Store(store) as saved:
        return sum(
            e.value
            for e in saved.log()
            if first <= e.index < end
            and e.code is EventCode.FRAME_DROPPED
            and e.detail == "in all, on a link"
        )


async def refusals(port: int, count: int, per_link: int = 16, concurrent: int = 8) -> int:
    """``count`` requests refused to links without a session, ``per_link`` on each link, each link from an
    address of its own (an address is refused for a while once its link is closed for sending too many); how
    many Nacks came back."""
    frame = request_frame()
    answered, addresses = (
        0,
        (f"127.{1 + i // 62_500 % 200}.{i // 250 % 250}.{1 + i % 250}" for i in itertools.count()),
    )

    async def one(address: str) -> int:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(address, 0))
        except OSError:
            return 0
        writer.write(frame * per_link)
        got, splitter = 0, StreamSplitter()
        with contextlib.suppress(TimeoutError, ConnectionError):
            while got < per_link and (data := await asyncio.wait_for(reader.read(65536), 10)):
                got += sum(isinstance(reply, bytes) for reply in splitter.feed(data))  # each a Nack
        writer.close()
        return got

    while answered < count:
        answered += sum(await asyncio.gather(*(one(next(addresses)) for _ in range(concurrent))))
    return answered


def itbproto_log(port: int, keystore: Path) -> list[dict[str, object]]:
    out = subprocess.run(
        [
            *(sys.executable, "-m", "itbproto.cli", "log", "--target", f"tcp://127.0.0.1:{port}", "--json"),
            *("--keystore", str(keystore), "--serial", SERIAL),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


async def run(quick: bool, workdir: Path) -> dict[str, object]:
    proc, port = serve(workdir / "pump.db")
    try:
        pairer = await client(port)()
        key = await pairer.pair(PIN, SERIAL)
        await pairer.close()
        keystore = workdir / "keys.json"
        save_key(keystore, SERIAL, key)
        pump = await client(port, key)()
        await pump.connect(key)
        ack = lambda s: Acknowledgement(rules=s.acknowledge, by="bench")  # noqa: E731
        await pump.program(load_prescription(PRESCRIPTION), ack)

        # the quiet baselines, same run
        quiet_connects = [await connect_and_read(port, key) for _ in range(5 if quick else 20)]
        quiet_rtts = await round_trips(pump, 50 if quick else 300)

        # 1. idle connections and a slowloris
        with Attack("idle", port, 100 if quick else 1_000, key) as counts:
            await asyncio.sleep(2 if quick else 5)
            loaded_connects = [await connect_and_read(port, key) for _ in range(5 if quick else 20)]
            await asyncio.sleep(0 if quick else 8)  # long enough for the pump to cut a slowloris off
        opened, cut = counts[0], counts[1]
        idle_ratio = statistics.median(loaded_connects) / statistics.median(quiet_connects)

        # 2. a garbage flood: from 50 addresses without a session, then inside sessions until the pump
        #    has read 10^6 bad frames
        marks = [await pump.log_size()]
        rss_before = rss_mb(proc.pid)
        loaded_rtts: list[float] = []
        with Attack("strangers", port, 50, key) as counts:
            started = time.perf_counter()
            while time.perf_counter() - started < (3 if quick else 15):
                loaded_rtts += await round_trips(pump, 20)
        stranger_frames = counts[0]
        await asyncio.sleep(1.5)  # the strangers' totals are logged and saved
        marks.append(await pump.log_size())
        session_rtts: list[float] = []
        target = 50_000 if quick else 1_000_000
        with Attack("session", port, 2, key) as counts:
            while counts[0] < target:
                session_rtts += await round_trips(pump, 20)
        await asyncio.sleep(1)
        marks.append(await pump.log_size())
        rss_after = rss_mb(proc.pid)
        garbage_ratio = statistics.median(loaded_rtts) / statistics.median(quiet_rtts)
        session_ratio = statistics.median(session_rtts) / statistics.median(quiet_rtts)

        # 3. refused requests from links without a session
        refused = await refusals(port, 2_000 if quick else 100_000)
        await pump.close()
        log = await asyncio.to_thread(itbproto_log, port, keystore)
        codes = [entry["code"] for entry in log]
        kept = {code: codes.count(code) for code in ("PAIRED", "PRESCRIPTION_COMMITTED")}
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    taken_from_strangers = dropped_by_pump(workdir / "pump.db", marks[0], marks[1])
    taken_in_sessions = dropped_by_pump(workdir / "pump.db", marks[1], marks[2])
    return {
        "idle": {
            "connections_opened": opened,
            "slowloris_connections_closed_by_pump": cut,
            "quiet_connect_status_ms": round(statistics.median(quiet_connects) * 1e3, 2),
            "loaded_connect_status_ms": round(statistics.median(loaded_connects) * 1e3, 2),
            "ratio": round(idle_ratio, 2),
            "goal": GOALS["idle_ratio"],
        },
        "garbage": {
            "quiet_status_ms": round(statistics.median(quiet_rtts) * 1e3, 3),
            "strangers_frames_written": stranger_frames,
            "strangers_frames_taken_by_pump": taken_from_strangers,
            "strangers_status_ms": round(statistics.median(loaded_rtts) * 1e3, 3),
            "strangers_worst_ms": round(max(loaded_rtts) * 1e3, 1),
            "ratio": round(garbage_ratio, 2),
            "goal": GOALS["garbage_ratio"],
            "session_frames_taken_by_pump": taken_in_sessions,
            "session_status_ms": round(statistics.median(session_rtts) * 1e3, 3),
            "session_ratio": round(session_ratio, 2),
            "rss_before_mb": round(rss_before, 1),
            "rss_after_mb": round(rss_after, 1),
            "rss_growth_mb": round(rss_after - rss_before, 1),
            "rss_goal_mb": GOALS["rss_growth_mb"],
        },
        "refusals": {
            "refused": refused,
            "log_entries_read": len(log),
            "kept": kept,
            "all_kept": all(kept.values()),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="every attack scaled down (for tests)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(run(args.quick, Path(tmp)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
