"""The bleak backend on bumble on its own, against a plain bumble GATT peripheral (no itbproto behind it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import bleak
import pytest
from bench.bench_ble import ECHO_IN, ECHO_OUT, echo_device
from bench.bench_ble import ECHO_SERVICE as SERVICE
from bench.bench_ble import central as new_central
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakGATTProtocolError, BleakGATTProtocolErrorCode
from bumble.att import ATT_Error, ErrorCode
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue
from bumble.link import LocalLink

from itbproto.io.ble.bumble_backend import HCI_ENV, BumbleClient, BumbleScanner, bound_to, install

LABEL = "12345678-0000-4000-8000-0000000000e3"


@asynccontextmanager
async def radio() -> AsyncIterator[tuple[Device, Device]]:
    """An echo peripheral (bench_ble's, with a readable characteristic that refuses writes) and a central,
    on one LocalLink."""
    link = LocalLink()  # type: ignore[no-untyped-call]

    def refuse(connection: Connection, value: bytes) -> None:
        raise ATT_Error(ErrorCode.WRITE_NOT_PERMITTED)

    label: Characteristic[bytes] = Characteristic(
        LABEL,
        Characteristic.Properties.READ | Characteristic.Properties.WRITE,
        Characteristic.READABLE | Characteristic.WRITEABLE,
        CharacteristicValue[bytes](read=lambda connection: b"hello", write=refuse),
    )
    peripheral = await echo_device(link, "F0:00:00:00:00:AA", [label])
    yield peripheral, await new_central(link, 0xBB)


def run(test: Callable[[Device, Device], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    def body() -> None:
        async def go() -> None:
            async with radio() as (peripheral, central):
                await asyncio.wait_for(test(peripheral, central), 30)

        asyncio.run(go())

    body.__name__, body.__doc__ = test.__name__, test.__doc__
    return body


async def find(central: Device) -> BLEDevice:
    found = await BleakScanner.find_device_by_name("Echo", timeout=5, backend=bound_to(central)[0])
    assert found is not None
    return found


def connected(
    device: BLEDevice, central: Device, gone: Callable[[BleakClient], None] | None = None
) -> BleakClient:
    return BleakClient(device, gone, backend=bound_to(central)[1])


@run
async def test_discover_reports_name_service_once_and_rssi(peripheral: Device, central: Device) -> None:
    found = await BleakScanner.discover(
        0.3, return_adv=True, service_uuids=[SERVICE], backend=bound_to(central)[0]
    )
    ((device, adv),) = found.values()
    assert (device.address, device.name) == ("F0:00:00:00:00:AA", "Echo")
    assert adv.local_name == "Echo"
    assert adv.service_uuids == [SERVICE]  # the software controller repeats it in the scan response
    assert -127 <= adv.rssi <= 20


@run
async def test_a_service_filter_hides_other_devices(peripheral: Device, central: Device) -> None:
    other = "12345678-0000-4000-8000-00000000ffff"
    assert await BleakScanner.discover(0.3, service_uuids=[other], backend=bound_to(central)[0]) == []


@run
async def test_connect_fills_services_and_negotiates_the_mtu(peripheral: Device, central: Device) -> None:
    async with connected(await find(central), central) as client:
        assert client.is_connected
        assert client.mtu_size == 517
        service = client.services.get_service(SERVICE)
        assert service is not None
        chars = {c.uuid: c for c in service.characteristics}
        assert sorted(chars[ECHO_IN].properties) == ["write", "write-without-response"]
        assert chars[ECHO_OUT].properties == ["notify"]
        assert [d.uuid for d in chars[ECHO_OUT].descriptors] == ["00002902-0000-1000-8000-00805f9b34fb"]
        assert chars[ECHO_IN].max_write_without_response_size == 514
        assert client.name == "Echo"
    assert not client.is_connected


@run
async def test_write_with_and_without_response_and_notify(peripheral: Device, central: Device) -> None:
    got: asyncio.Queue[bytes] = asyncio.Queue()
    async with connected(await find(central), central) as client:
        await client.start_notify(ECHO_OUT, lambda _, data: got.put_nowait(bytes(data)))
        await client.write_gatt_char(ECHO_IN, b"with", response=True)
        await client.write_gatt_char(ECHO_IN, bytes(range(256)) * 2, response=False)
        assert await got.get() == b"with"
        assert await got.get() == bytes(range(256)) * 2
        await client.stop_notify(ECHO_OUT)
        await client.write_gatt_char(ECHO_IN, b"unheard", response=True)
        await asyncio.sleep(0.05)
        assert got.empty()


@run
async def test_reads_and_att_errors(peripheral: Device, central: Device) -> None:
    async with connected(await find(central), central) as client:
        assert await client.read_gatt_char(LABEL) == bytearray(b"hello")
        cccd = client.services.get_characteristic(ECHO_OUT).descriptors[0]  # type: ignore[union-attr]
        assert await client.read_gatt_descriptor(cccd.handle) == bytearray(b"\x00\x00")
        with pytest.raises(BleakGATTProtocolError) as refused:
            await client.write_gatt_char(LABEL, b"no", response=True)
        assert refused.value.code == BleakGATTProtocolErrorCode.WRITE_NOT_PERMITTED


@run
async def test_the_disconnect_callback_fires_only_when_the_peer_goes(
    peripheral: Device, central: Device
) -> None:
    gone: list[BleakClient] = []
    client = connected(await find(central), central, gone.append)
    await client.connect()
    await client.disconnect()
    assert gone == []  # we hung up: no callback
    await client.connect()
    for connection in list(peripheral.connections.values()):
        await connection.disconnect()
    await asyncio.sleep(0.05)
    assert gone == [client]
    assert not client.is_connected


def test_install_makes_bumble_the_default_only_while_the_variable_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install()
    install()  # idempotent
    monkeypatch.setenv(HCI_ENV, "tcp-client:127.0.0.1:1")
    assert bleak.get_platform_scanner_backend_type()[0] is BumbleScanner  # type: ignore[attr-defined]
    assert bleak.get_platform_client_backend_type()[0] is BumbleClient  # type: ignore[attr-defined]
    assert BleakScanner().backend_id == "bumble"
    monkeypatch.delenv(HCI_ENV)
    assert BleakScanner().backend_id != "bumble"
