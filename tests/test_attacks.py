"""Attacks on a pump that requires pairing, over TCP and over BLE, through a tap on the programmer's link that
sees what the programmer sends and can send anything it likes to the pump on the same link.

Every attack must be refused or contained: nothing changes on the pump, and the genuine programmer goes on
being served. The tap wraps the programmer's transport: it keeps each whole frame the programmer sent (joining
BLE fragments) and injects frames as bytes on the link (fragmented for the link's MTU with a message counter
of its own, as a radio attacker would), so each attack runs unchanged on each transport."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from conftest import ble_hub
from factories import POLICY
from itbemu import Emulator, TcpServer, VirtualClock
from itbemu.device import START, new_therapy
from itbproto.core.security import PairedKey
from itbproto.core.wire import ErrorCode, EventCode, Role, SetRate, StatusRequest
from itbproto.core.wire.fragment import Reassembler, fragment
from itbproto.core.wire.frame import HEADER_SIZE
from itbproto.core.wire.stream import StreamSplitter
from itbproto.errors import (
    AuthenticationError,
    CommandRefusedError,
    LinkClosedError,
    PairingError,
    StaleFrameError,
)
from itbproto.io.ble import BleTransport
from itbproto.io.ble.bumble_backend import open_central
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_profile
from itbproto.io.transport import TcpTransport, Transport

PIN = "493817"
PROFILE, DRUG = load_profile("itb-20"), load_drug()
RAISED = replace(PROFILE.thresholds, low_reservoir_ul=2_500)  # a command the tap will capture
TRANSPORTS = ["tcp", "ble"]


@dataclass
class Tap:
    """A man in the middle on one link: ``sent`` holds the programmer's whole frames; ``inject`` sends a frame
    to the pump as if the programmer had."""

    link: Transport
    sent: list[bytes] = field(default_factory=list)
    splitter: StreamSplitter = field(default_factory=StreamSplitter)
    joiner: Reassembler = field(default_factory=Reassembler)
    counter: int = 128  # the tap's own message counters, far from the programmer's
    stream: bool = field(init=False)
    mtu: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.stream, self.mtu = self.link.stream, self.link.mtu

    async def send(self, data: bytes) -> None:
        parts = self.splitter.feed(data) if self.link.stream else self.joiner.feed(data)
        self.sent += [part for part in parts if isinstance(part, bytes)]
        await self.link.send(data)

    async def receive(self) -> bytes:
        return await self.link.receive()

    async def close(self) -> None:
        await self.link.close()

    async def inject(self, frame: bytes) -> None:
        if self.link.mtu is None:
            await self.link.send(frame)
            return
        self.counter = (self.counter + 1) % 256
        for chunk in fragment(frame, self.link.mtu, self.counter):
            await self.link.send(chunk)


@dataclass
class Target:
    """A pump that requires pairing, and how to open a link to it; ``tap`` is the last programmer's."""

    emulator: Emulator
    open: Callable[[], Awaitable[Transport]]
    tap: Tap | None = None

    async def pair(self, role: Role = Role.CLINICIAN) -> PairedKey:
        client = PumpClient(await self.open(), PROFILE, DRUG, POLICY, role=role)
        try:
            return await client.pair(PIN, "EMU-QA")
        finally:
            await client.close()

    async def programmer(self, key: PairedKey, role: Role = Role.CLINICIAN, **options: Any) -> PumpClient:
        """A paired programmer's client on a tapped link (``async with`` connects it, sealed)."""
        self.tap = Tap(await self.open())
        return PumpClient(self.tap, PROFILE, DRUG, POLICY, role=role, key=key, **options)


def new_pump() -> Emulator:
    therapy = new_therapy(PROFILE, DRUG, concentration_ug_ml=500, screening_dose_ng=300_000)
    emulator = Emulator.create(therapy, POLICY, serial="EMU-QA")
    emulator.firmware.pin, emulator.firmware.require_pairing = PIN, True
    return emulator


@asynccontextmanager
async def target(kind: str) -> AsyncIterator[Target]:
    emulator = new_pump()
    if kind == "tcp":
        server = TcpServer(emulator, VirtualClock(START))
        host, port = await server.start()
        try:
            yield Target(emulator, lambda: TcpTransport.connect(host, port))
        finally:
            server.close()
            await server.wait_closed()
        return
    async with ble_hub(emulator) as (_, hci):

        async def ble() -> Transport:  # each link from a central of its own, as from its own process
            return await BleTransport.connect("ITB20", central=await open_central(hci))

        yield Target(emulator, ble)


def attack(test: Callable[[Target], Coroutine[Any, Any, None]]) -> Callable[[str], None]:
    @pytest.mark.parametrize("transport", TRANSPORTS)
    def run(transport: str) -> None:
        async def body() -> None:
            async with target(transport) as t:
                await asyncio.wait_for(test(t), 60)

        asyncio.run(body())

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


def dropped(emulator: Emulator, kind: type[Exception]) -> int:
    return sum(n for error, n in emulator.firmware.dropped.items() if issubclass(error, kind))


async def forge(t: Target, pump: PumpClient, frames: list[bytes], kind: type[Exception]) -> None:
    """Send ``frames`` to the pump as the programmer: each dropped as ``kind``, nothing changed, and the
    genuine programmer served after them."""
    emulator, tap = t.emulator, t.tap
    assert tap is not None
    before = emulator.pump.state
    for frame in frames:
        await tap.inject(frame)
    for _ in range(200):  # let the pump read them
        if dropped(emulator, kind) >= len(frames):
            break
        await asyncio.sleep(0.01)
    assert dropped(emulator, kind) == len(frames)
    assert emulator.pump.state == before  # nothing applied (twice)
    await pump.status()


@attack
async def test_a_replayed_sealed_frame_is_dropped(t: Target) -> None:
    key = await t.pair()
    async with await t.programmer(key) as pump:
        await pump.set_thresholds(RAISED)
        assert t.tap is not None
        await forge(t, pump, [t.tap.sent[-1]], StaleFrameError)
        logged = [e.detail for e in t.emulator.pump.log.since(0) if e.code is EventCode.FRAME_DROPPED]
        assert logged == ["StaleFrameError"]  # the device logs it


@attack
async def test_a_captured_frame_with_its_txn_bumped_or_its_bytes_changed_is_dropped(t: Target) -> None:
    key = await t.pair()
    async with await t.programmer(key) as pump:
        await pump.set_thresholds(RAISED)
        assert t.tap is not None
        frame = bytearray(t.tap.sent[-1])
        frame[2:6] = (int.from_bytes(frame[2:6], "little") + 100).to_bytes(4, "little")  # a newer seq
        bumped = bytearray(frame)
        bumped[6:10] = (int.from_bytes(bumped[6:10], "little") + 1).to_bytes(4, "little")  # the next txn
        altered = bytearray(frame)
        altered[HEADER_SIZE] ^= 0x01  # a bit of the ciphertext
        await forge(t, pump, [bytes(bumped), bytes(altered)], AuthenticationError)


@attack
async def test_a_frame_from_another_session_is_dropped(t: Target) -> None:
    key = await t.pair()
    async with await t.programmer(key) as first:
        await first.set_thresholds(RAISED)
        assert t.tap is not None
        old = t.tap.sent[-1]
    async with await t.programmer(key) as second:
        frame = bytearray(old)
        frame[2:6] = (10_000).to_bytes(4, "little")  # newer than anything this session has seen
        await forge(t, second, [bytes(frame)], AuthenticationError)  # another session's keys


@attack
async def test_a_wrong_key_gets_nothing_done(t: Target) -> None:
    emulator = t.emulator
    key = await t.pair()
    wrong = PairedKey(key.key_id, key.role, bytes(32))
    client = PumpClient(await t.open(), PROFILE, DRUG, POLICY, key=wrong, timeout_s=0.3, retries=1)
    before = emulator.pump.log.total
    with pytest.raises(LinkClosedError):  # DeviceInfo is plain; the pump opens nothing sealed with this key
        async with client:
            pass
    assert dropped(emulator, AuthenticationError) >= 1
    assert all(e.code.name != "THRESHOLDS_CHANGED" for e in emulator.pump.log.since(before))


@attack
async def test_a_patient_key_cannot_send_clinician_commands(t: Target) -> None:
    emulator = t.emulator
    key = await t.pair(Role.PATIENT)
    async with await t.programmer(key, Role.PATIENT) as pump:
        before = emulator.pump.state.therapy
        # the programmer would refuse it; send it past the session, straight on the sealed connection
        with pytest.raises(CommandRefusedError) as refused:
            await pump._request(pump.session.connection.send(SetRate(rate_ul_day=900)))
        assert refused.value.code is ErrorCode.ROLE_FORBIDDEN
        assert emulator.pump.state.therapy == before


@attack
async def test_pin_guesses_are_refused_logged_and_slowed(t: Target) -> None:
    """Wrong PINs never pair; each is logged; after the free guesses pairing is locked (even for the right
    PIN) and the programmers already paired are still served."""
    key = await t.pair()
    for guess in range(5):
        client = PumpClient(await t.open(), PROFILE, DRUG, POLICY)
        with pytest.raises((PairingError, CommandRefusedError)):
            await client.pair(f"{guess:06d}", "EMU-QA")
        await client.close()
    failures = [e for e in t.emulator.pump.log.since(0) if e.code is EventCode.PAIRING_FAILED]
    assert len(failures) >= 3
    with pytest.raises((PairingError, CommandRefusedError)):
        await t.pair()  # locked for now
    assert [k.key_id for k in t.emulator.pump.state.keys] == [key.key_id]
    async with await t.programmer(key) as pump:
        await pump.status()


@attack
async def test_unpaired_requests_are_refused_and_change_nothing(t: Target) -> None:
    """Without a key nothing opens: the plain Hello and every request after it are refused (the first logged,
    the rest counted) and nothing changes."""
    before = t.emulator.pump.state
    client = PumpClient(await t.open(), PROFILE, DRUG, POLICY, timeout_s=5)
    with pytest.raises(CommandRefusedError) as refused:
        await client.connect()
    assert refused.value.code is ErrorCode.NOT_AUTHENTICATED
    for request in (SetRate(rate_ul_day=900), StatusRequest()):
        with pytest.raises(CommandRefusedError) as again:
            await client._request(client.session.connection.send(request))
        assert again.value.code is ErrorCode.NOT_AUTHENTICATED
    await client.close()
    assert t.emulator.pump.state == before
