"""Command round trips through PumpClient, against a raw echo on the same kind of link, in the same run.

Per transport (in-process; TCP; TCP with every frame sealed after pairing): the mean time of a status read
through the client and the emulated pump (encode, frame, seal, the pump's firmware and machine, the reply
decoded, the session's bookkeeping), and of the same bytes echoed back by a trivial peer on the same link.
The ratio is what the protocol stack costs over moving the bytes (goal of issue 15: at most 2x). The last
line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from itbemu import Emulator, TcpServer, VirtualClock
from itbemu.device import START, new_therapy
from itbemu.inprocess import InProcessHub
from itbproto.core.safety import SafetyPolicy
from itbproto.core.security import PairedKey
from itbproto.core.therapy import DeviceProfile, Drug
from itbproto.core.wire import StatusRequest, encode
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_profile, load_rules
from itbproto.io.transport import TcpTransport, Transport

GOAL_RATIO = 2.0


def emulator() -> Emulator:
    therapy = new_therapy(
        load_profile("itb-20"), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
    )
    return Emulator.create(therapy, SafetyPolicy(load_rules()), serial="BENCH")


def _setup() -> tuple[DeviceProfile, Drug, SafetyPolicy]:
    return load_profile("itb-20"), load_drug(), SafetyPolicy(load_rules())


async def client_round_trip(transport: Transport, n: int, key: PairedKey | None = None) -> float:
    async with PumpClient(transport, *_setup(), key=key) as pump:
        await pump.status()
        started = time.perf_counter()
        for _ in range(n):
            await pump.status()
        return (time.perf_counter() - started) / n


async def echo_round_trip(send: asyncio.StreamWriter, receive: asyncio.StreamReader, n: int) -> float:
    frame = encode(StatusRequest(), txn=1, seq=1)
    started = time.perf_counter()
    for _ in range(n):
        send.write(frame)
        await send.drain()
        await receive.readexactly(len(frame))
    return (time.perf_counter() - started) / n


async def tcp(n: int, sealed: bool = False) -> tuple[float, float]:
    pump = emulator()
    pump.firmware.pin = "493817"
    server = TcpServer(pump, VirtualClock(START))
    host, port = await server.start()
    key = None
    if sealed:
        pairing = PumpClient(await TcpTransport.connect(host, port), *_setup())
        key = await pairing.pair("493817", "BENCH")
        await pairing.close()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    echo_server = await asyncio.start_server(echo, "127.0.0.1", 0)
    echo_port = echo_server.sockets[0].getsockname()[1]
    try:
        stack = await client_round_trip(await TcpTransport.connect(host, port), n, key)
        reader, writer = await asyncio.open_connection("127.0.0.1", echo_port)
        raw = await echo_round_trip(writer, reader, n)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
        echo_server.close()
    return stack, raw


async def inprocess(n: int) -> tuple[float, float]:
    hub = InProcessHub(emulator(), VirtualClock(START))
    stack = await client_round_trip(hub.connect(), n)
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    frame = encode(StatusRequest(), txn=1, seq=1)
    started = time.perf_counter()
    for _ in range(n):  # the same hand-off through an asyncio queue, nothing done with the bytes
        queue.put_nowait(frame)
        await queue.get()
    return stack, (time.perf_counter() - started) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2_000)
    args = parser.parse_args(argv)
    result: dict[str, dict[str, float]] = {}
    runs: dict[str, Callable[[int], Coroutine[Any, Any, tuple[float, float]]]] = {
        "inprocess": inprocess,
        "tcp": tcp,
        "tcp_sealed": lambda n: tcp(n, sealed=True),
    }
    for name, run in runs.items():
        stack, raw = asyncio.run(run(args.n))
        result[name] = {
            "client_us": round(stack * 1e6, 1),
            "echo_us": round(raw * 1e6, 1),
            "ratio": round(stack / raw, 1),
        }
        print(f"{name:>10}: client {stack * 1e6:8.1f} µs, echo {raw * 1e6:8.1f} µs, ratio {stack / raw:6.1f}")
    print(json.dumps({"round_trip": result, "goal_ratio": GOAL_RATIO}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
