"""Attacks on a pump that requires pairing, over TCP, through a tap that sees and forges the bytes.

The tap sits between a paired programmer and ``TcpServer``: it splits the stream into frames, keeps what the
programmer sent, and can send anything it likes to the pump on the same connection. Every attack must be
refused or contained: nothing changes on the pump, and the genuine programmer goes on being served."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from factories import POLICY
from itbemu import Emulator, TcpServer, VirtualClock
from itbemu.device import START, new_therapy
from itbproto.client import PumpClient
from itbproto.errors import AuthenticationError, CommandRefusedError, LinkClosedError, StaleFrameError
from itbproto.security import PairedKey
from itbproto.specfiles import load_drug, load_profile
from itbproto.transport import TcpTransport
from itbproto.wire import ErrorCode, EventCode, Role, SetRate
from itbproto.wire.frame import HEADER_SIZE
from itbproto.wire.stream import StreamSplitter

PIN = "493817"
PROFILE, DRUG = load_profile("itb-20"), load_drug()
RAISED = replace(PROFILE.thresholds, low_reservoir_ul=2_500)  # a command the tap will capture


@dataclass
class Tap:
    """A man in the middle on one TCP connection: ``sent`` holds the programmer's frames, ``inject`` writes
    bytes to the pump as if the programmer had."""

    upstream: asyncio.StreamWriter | None = None
    sent: list[bytes] = field(default_factory=list)
    splitter: StreamSplitter = field(default_factory=StreamSplitter)

    def inject(self, frame: bytes) -> None:
        assert self.upstream is not None
        self.upstream.write(frame)


@asynccontextmanager
async def tapped_pump() -> AsyncIterator[tuple[Emulator, TcpServer, int, Tap]]:
    therapy = new_therapy(PROFILE, DRUG, concentration_ug_ml=500, screening_dose_ng=300_000)
    emulator = Emulator.create(therapy, POLICY, serial="EMU-QA")
    emulator.firmware.pin, emulator.firmware.require_pairing = PIN, True
    server = TcpServer(emulator, VirtualClock(START))
    host, port = await server.start()
    tap = Tap()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, port)
        tap.upstream = up_writer

        async def to_pump() -> None:
            while data := await reader.read(4096):
                tap.sent += [f for f in tap.splitter.feed(data) if isinstance(f, bytes)]
                up_writer.write(data)
            up_writer.close()

        async def to_programmer() -> None:
            while data := await up_reader.read(4096):
                writer.write(data)
            writer.close()

        await asyncio.gather(to_pump(), to_programmer(), return_exceptions=True)

    proxy = await asyncio.start_server(relay, "127.0.0.1", 0)
    try:
        yield emulator, server, proxy.sockets[0].getsockname()[1], tap
    finally:
        proxy.close()
        server.close()
        await server.wait_closed()


async def programmer(port: int, key: PairedKey, role: Role = Role.CLINICIAN, **options: Any) -> PumpClient:
    """A paired programmer's client (``async with`` connects it, sealed)."""
    transport = await TcpTransport.connect("127.0.0.1", port)
    return PumpClient(transport, PROFILE, DRUG, POLICY, role=role, key=key, **options)


async def pair(port: int, role: Role = Role.CLINICIAN) -> PairedKey:
    client = PumpClient(await TcpTransport.connect("127.0.0.1", port), PROFILE, DRUG, POLICY, role=role)
    try:
        return await client.pair(PIN, "EMU-QA")
    finally:
        await client.close()


def attack(test: Callable[[Emulator, TcpServer, int, Tap], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    def run() -> None:
        async def body() -> None:
            async with tapped_pump() as (emulator, server, port, tap):
                await asyncio.wait_for(test(emulator, server, port, tap), 60)

        asyncio.run(body())

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


def dropped(emulator: Emulator, kind: type[Exception]) -> int:
    return sum(n for error, n in emulator.firmware.dropped.items() if issubclass(error, kind))


async def forge(
    emulator: Emulator, tap: Tap, pump: PumpClient, frames: list[bytes], kind: type[Exception]
) -> None:
    """Send ``frames`` to the pump as the programmer: each dropped as ``kind``, nothing changed, and the
    genuine programmer served after them."""
    before = emulator.pump.state
    for frame in frames:
        tap.inject(frame)
    for _ in range(50):  # let the pump read them
        await asyncio.sleep(0.01)
    assert dropped(emulator, kind) == len(frames)
    assert emulator.pump.state == before  # nothing applied (twice)
    await pump.status()


@attack
async def test_a_replayed_sealed_frame_is_dropped(
    emulator: Emulator, server: TcpServer, port: int, tap: Tap
) -> None:
    key = await pair(port)
    async with await programmer(port, key) as pump:
        await pump.set_thresholds(RAISED)
        await forge(emulator, tap, pump, [tap.sent[-1]], StaleFrameError)
        logged = [e.detail for e in emulator.pump.log.since(0) if e.code is EventCode.FRAME_DROPPED]
        assert logged == ["StaleFrameError"]  # the device logs it


@attack
async def test_a_captured_frame_with_its_txn_bumped_or_its_bytes_changed_is_dropped(
    emulator: Emulator, server: TcpServer, port: int, tap: Tap
) -> None:
    key = await pair(port)
    async with await programmer(port, key) as pump:
        await pump.set_thresholds(RAISED)
        frame = bytearray(tap.sent[-1])
        frame[2:6] = (int.from_bytes(frame[2:6], "little") + 100).to_bytes(4, "little")  # a newer seq
        bumped = bytearray(frame)
        bumped[6:10] = (int.from_bytes(bumped[6:10], "little") + 1).to_bytes(4, "little")  # the next txn
        altered = bytearray(frame)
        altered[HEADER_SIZE] ^= 0x01  # a bit of the ciphertext
        await forge(emulator, tap, pump, [bytes(bumped), bytes(altered)], AuthenticationError)


@attack
async def test_a_frame_from_another_session_is_dropped(
    emulator: Emulator, server: TcpServer, port: int, tap: Tap
) -> None:
    key = await pair(port)
    async with await programmer(port, key) as first:
        await first.set_thresholds(RAISED)
        old = tap.sent[-1]
    async with await programmer(port, key) as second:
        frame = bytearray(old)
        frame[2:6] = (10_000).to_bytes(4, "little")  # newer than anything this session has seen
        await forge(emulator, tap, second, [bytes(frame)], AuthenticationError)  # another session's keys


@attack
async def test_a_wrong_key_gets_nothing_done(
    emulator: Emulator, server: TcpServer, port: int, tap: Tap
) -> None:
    key = await pair(port)
    wrong = PairedKey(key.key_id, key.role, bytes(32))
    client = PumpClient(
        await TcpTransport.connect("127.0.0.1", port),
        PROFILE,
        DRUG,
        POLICY,
        key=wrong,
        timeout_s=0.3,
        retries=1,
    )
    before = emulator.pump.log.total
    with pytest.raises(LinkClosedError):  # DeviceInfo is plain; the pump opens nothing sealed with this key
        async with client:
            pass
    assert dropped(emulator, AuthenticationError) >= 1
    assert all(e.code.name != "THRESHOLDS_CHANGED" for e in emulator.pump.log.since(before))


@attack
async def test_a_patient_key_cannot_send_clinician_commands(
    emulator: Emulator, server: TcpServer, port: int, tap: Tap
) -> None:
    key = await pair(port, Role.PATIENT)
    async with await programmer(port, key, Role.PATIENT) as pump:
        before = emulator.pump.state.therapy
        # the programmer would refuse it; send it past the session, straight on the sealed connection
        with pytest.raises(CommandRefusedError) as refused:
            await pump._request(pump.session.connection.send(SetRate(rate_ul_day=900)))
        assert refused.value.code is ErrorCode.ROLE_FORBIDDEN
        assert emulator.pump.state.therapy == before
