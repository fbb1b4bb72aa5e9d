"""The emulator's BLE hub as programmer processes use it (specs/gatt.md): each host gets a controller of its
own, so several centrals use the pump at once and none can reset another's link; a central whose link ends
is told at once (bleak's disconnect callback fires, the next write fails with LinkClosedError); a central
that goes leaves the pump's link too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from conftest import ble_hub
from factories import POLICY
from itbemu import Emulator
from itbemu.ble import Hub
from itbemu.device import new_therapy
from itbproto.core.wire import StatusReport
from itbproto.errors import LinkClosedError
from itbproto.io.ble import BleTransport
from itbproto.io.ble.bumble_backend import open_central
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_profile

PROFILE, DRUG = load_profile("itb-20"), load_drug()


@asynccontextmanager
async def served() -> AsyncIterator[tuple[Emulator, Hub, str]]:
    therapy = new_therapy(PROFILE, DRUG, concentration_ug_ml=500, screening_dose_ng=300_000)
    emulator = Emulator.create(therapy, POLICY, serial="EMU-BLE")
    async with ble_hub(emulator) as (hub, hci):
        yield emulator, hub, hci


async def programmer(hci: str) -> PumpClient:
    """A programmer process's central: its own HCI connection to the hub."""
    transport = await BleTransport.connect("ITB20", central=await open_central(hci))
    client = PumpClient(transport, PROFILE, DRUG, POLICY, timeout_s=20)
    await client.connect()
    return client


def test_two_centrals_use_the_pump_at_once_and_neither_resets_the_other() -> None:
    async def body() -> None:
        async with served() as (_, _, hci):
            first = await programmer(hci)
            second = await programmer(hci)  # its host powers on (HCI Reset) while the first is connected
            assert isinstance(await second.status(), StatusReport)
            assert isinstance(await first.status(), StatusReport)
            await second.close()
            assert isinstance(await first.status(), StatusReport)
            await first.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def test_a_central_whose_link_ends_is_told_at_once() -> None:
    async def body() -> None:
        async with served() as (_, hub, hci):
            pump = await programmer(hci)
            transport = pump.transport
            assert isinstance(transport, BleTransport)
            for host in hub.hosts:
                host.end_links(0x13)  # the pump's side ends every link (remote user terminated)
            with pytest.raises(LinkClosedError):
                await asyncio.wait_for(pump.status(), 10)
            assert not transport.client.is_connected  # the disconnect callback came
            with pytest.raises(LinkClosedError):
                await asyncio.wait_for(transport.send(b"\x00"), 10)
            await pump.close()

    asyncio.run(asyncio.wait_for(body(), 60))


def test_a_central_that_goes_leaves_the_pump() -> None:
    async def body() -> None:
        async with served() as (emulator, hub, hci):
            pump = await programmer(hci)
            assert emulator.firmware.links == 1
            hub.hosts[0].close()  # its process ended: the hub sees its HCI connection go
            for _ in range(200):
                if emulator.firmware.links == 0:
                    break
                await asyncio.sleep(0.02)
            assert emulator.firmware.links == 0
            await pump.close()

    asyncio.run(asyncio.wait_for(body(), 60))
