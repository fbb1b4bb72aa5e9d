"""BLE captures: a sealed session recorded as btsnoop on the pump's side of the virtual radio, decoded back
into the frames both sides sent (opened with the pump's key), and replayed against the same pump restored
from before the session: every replayed command is refused."""

from __future__ import annotations

import asyncio
import functools
import io
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from bleak import BleakClient
from bumble.device import Device
from bumble.link import LocalLink
from bumble.snoop import BtSnooper

from factories import POLICY
from itbemu import Emulator, VirtualClock
from itbemu.ble import BlePeripheral, local_device, pump_device
from itbemu.device import START, new_therapy
from itbproto.cli import main as itbproto_main
from itbproto.core.capture import CapturedFrame, att_values, frames
from itbproto.core.machines.pump import PumpMachine
from itbproto.core.machines.pump.log import EventLog
from itbproto.core.security import PairedKey
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import EventCode
from itbproto.core.wire.fragment import Reassembler
from itbproto.core.wire.frame import decode
from itbproto.core.wire.message import Message
from itbproto.errors import AuthenticationError, CaptureError, ProtocolError, SealedFrameError
from itbproto.io.ble import REQUEST_UUID, RESPONSE_UUID, BleTransport, find_pump
from itbproto.io.ble.bumble_backend import bound_to
from itbproto.io.client import PumpClient
from itbproto.io.keystore import save_key
from itbproto.io.specfiles import load_drug, load_profile

PIN, SERIAL = "493817", "EMU-CAP"
PROFILE = load_profile("itb-20")
RAISED = replace(PROFILE.thresholds, low_reservoir_ul=2_500)


def new_pump() -> Emulator:
    therapy = new_therapy(PROFILE, load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000)
    emulator = Emulator.create(therapy, POLICY, serial=SERIAL)
    emulator.firmware.pin, emulator.firmware.require_pairing = PIN, True
    return emulator


def restored(pump: PumpMachine, log: tuple[m.EventRecord, ...]) -> Emulator:
    """The pump as its store would bring it back: the same state value and log."""
    emulator = Emulator(PumpMachine(pump.state, POLICY, log=EventLog(log)))
    emulator.firmware.pin, emulator.firmware.require_pairing = PIN, True
    return emulator


@dataclass
class Radio:
    """An emulator on its own virtual radio, with a recorder on the pump's HCI."""

    emulator: Emulator
    link: LocalLink
    capture: io.BytesIO
    centrals: int = 1

    @classmethod
    async def up(cls, emulator: Emulator) -> Radio:
        link = LocalLink()  # type: ignore[no-untyped-call]
        peripheral = BlePeripheral(emulator, VirtualClock(START), pump_device(link, emulator))
        capture = io.BytesIO()
        peripheral.device.host.snooper = BtSnooper(capture)
        await peripheral.start()
        return cls(emulator, link, capture)

    async def central(self) -> Device:
        self.centrals += 1
        device = local_device(self.link, "programmer", f"F0:00:00:00:00:{self.centrals:02X}")
        await device.power_on()
        return device

    async def client(self, key: PairedKey | None = None) -> PumpClient:
        transport = await BleTransport.connect("ITB20", central=await self.central())
        return PumpClient.shipped(transport, key=key)


async def recorded_session() -> tuple[bytes, PairedKey, Emulator]:
    """Pair, then a sealed session that reads the status and raises the low-reservoir threshold. Returns
    the capture, the key, and the pump as it was before the sealed session."""
    radio = await Radio.up(new_pump())
    pairing = await radio.client()
    try:
        key = await pairing.pair(PIN, SERIAL)
    finally:
        await pairing.close()
    before = restored(radio.emulator.pump, tuple(radio.emulator.pump.log.since(0)))
    async with await radio.client(key) as pump:
        await pump.status()
        await pump.set_thresholds(RAISED)
    assert radio.emulator.therapy.thresholds.low_reservoir_ul == 2_500
    return radio.capture.getvalue(), key, before


def notified(queue: asyncio.Queue[bytes], _: object, data: bytearray) -> None:
    queue.put_nowait(bytes(data))


def decoded(captured: list[CapturedFrame]) -> list[tuple[bool, str]]:
    return [(c.to_pump, type(c.frame.message).__name__) for c in captured if c.frame is not None]


def test_a_sealed_session_decodes_with_the_pumps_key() -> None:
    capture, key, _ = asyncio.run(recorded_session())
    found = list(frames(capture, {SERIAL: key}.get))
    assert all(c.error is None for c in found)
    seen = decoded(found)
    assert seen[:4] == [
        (True, "PairStart"),
        (False, "PairReply"),
        (True, "PairConfirm"),
        (False, "PairResult"),
    ]
    session = seen[4:]
    assert session[:2] == [(True, "Hello"), (False, "DeviceInfo")]
    assert (True, "StatusRequest") in session
    assert (False, "StatusReport") in session
    assert (True, "SetThresholds") in session
    sealed = [c for c in found if c.data and c.data[1] & 1]  # the SEALED flag of the header
    assert len(sealed) == len(session) - 2  # every frame after DeviceInfo


def test_without_the_key_the_sealed_frames_stay_closed() -> None:
    capture, key, _ = asyncio.run(recorded_session())
    wrong = PairedKey(key.key_id, key.role, bytes(len(key.long_term)))
    for key_for in (lambda serial: None, {SERIAL: wrong}.get):
        found = list(frames(capture, key_for))
        closed = [c for c in found if c.frame is None]
        assert closed
        assert all(isinstance(c.error, SealedFrameError | AuthenticationError) for c in closed)
        assert "SetThresholds" not in str(decoded(found))


def test_replaying_the_capture_against_the_pump_restored_from_before_changes_nothing() -> None:
    """The replayed Hello only gets a DeviceInfo with a fresh nonce (so new session keys); every sealed
    command after it fails authentication, is dropped and logged, and the pump's state is as it was."""
    capture, _, before = asyncio.run(recorded_session())
    connections: dict[int, list[bytes]] = {}  # what the programmer wrote, per connection
    for value in att_values(capture):
        if value.to_pump:
            connections.setdefault(value.connection, []).append(value.data)
    assert len(connections) == 2  # pairing, then the sealed session
    pairing = sum(
        1 for c in frames(capture) if c.frame and isinstance(c.frame.message, m.PairStart | m.PairConfirm)
    )
    captured_nonces = [
        c.frame.message.nonce
        for c in frames(capture)
        if c.frame and isinstance(c.frame.message, m.DeviceInfo)
    ]
    state = before.pump.state

    async def replay() -> list[Message | ProtocolError]:
        """Each captured connection's writes again, on a new connection of their own."""
        radio = await Radio.up(before)
        heard_back: list[Message | ProtocolError] = []
        for writes in connections.values():
            central = await radio.central()
            device = await find_pump("ITB20", central=central)
            heard: asyncio.Queue[bytes] = asyncio.Queue()
            async with BleakClient(device, backend=bound_to(central)[1]) as client:
                await client.start_notify(RESPONSE_UUID, functools.partial(notified, heard))
                for value in writes:
                    await client.write_gatt_char(REQUEST_UUID, value, response=False)
                await asyncio.sleep(0.2)
            joined = Reassembler()
            while not heard.empty():
                for frame in joined.feed(heard.get_nowait()):
                    heard_back.append(frame if isinstance(frame, ProtocolError) else decode(frame).message)
        return heard_back

    replies = asyncio.run(replay())
    infos = [r for r in replies if isinstance(r, m.DeviceInfo)]
    assert infos
    assert all(i.nonce not in captured_nonces for i in infos)
    assert not [r for r in replies if isinstance(r, m.Ack)]  # nothing was done
    assert before.pump.state.keys == state.keys
    assert before.therapy == state.therapy  # the thresholds too
    sealed_sent = len([c for c in frames(capture) if c.data and c.data[1] & 1 and c.to_pump])
    forged = sum(n for e, n in before.firmware.dropped.items() if issubclass(e, AuthenticationError))
    assert sealed_sent == forged
    assert any(e.code is EventCode.FRAME_DROPPED for e in before.pump.log.since(0))  # logged
    assert pairing == 2  # the replayed pairing failed too (the pump's SPAKE2 share is fresh)
    assert any(e.code is EventCode.PAIRING_FAILED for e in before.pump.log.since(0))


def test_the_cli_prints_a_capture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture, key, _ = asyncio.run(recorded_session())
    (tmp_path / "session.btsnoop").write_bytes(capture)
    keystore = tmp_path / "keys.json"
    save_key(keystore, SERIAL, key)
    assert (
        itbproto_main(["decode", "--btsnoop", str(tmp_path / "session.btsnoop"), "--keystore", str(keystore)])
        == 0
    )
    out = capsys.readouterr().out
    assert "programmer -> pump  SetThresholds" in out
    assert "pump -> programmer  StatusReport" in out
    assert itbproto_main(["decode", "--btsnoop", str(tmp_path / "session.btsnoop")]) == 1
    assert "not decoded: SealedFrameError" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"", "shorter than a btsnoop header"),
        (b"notsnoop" + bytes(8), "not a btsnoop v1 H4 capture"),
        (b"btsnoop\0" + struct.pack(">LL", 1, 1002) + bytes(10), "record header cut short"),
        (
            b"btsnoop\0" + struct.pack(">LL", 1, 1002) + struct.pack(">IIIIQ", 9, 9, 0, 0, 0) + b"\x02",
            "cut short",
        ),
    ],
)
def test_a_file_that_is_not_a_whole_btsnoop_capture_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(CaptureError, match=why):
        list(frames(data))
