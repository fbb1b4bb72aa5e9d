"""BLE transport for :class:`~itbproto.io.client.PumpClient`, on bleak (specs/gatt.md).

:meth:`BleTransport.connect` scans for a pump advertising the ITB service (optionally by name or address),
connects, finds the request and response characteristics and subscribes to the responses. Each write is one
fragment (the Connection fragments for ``mtu``); each notification is one fragment back.

bleak picks its backend: the platform's (a real adapter), or our bumble backend when ``ITBPROTO_BLE_HCI``
names a bumble transport, or when ``central=`` hands it a bumble Device (tests: a software controller).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakError

from itbproto.core.wire.gatt import REQUEST_UUID, RESPONSE_UUID, SERVICE_UUID
from itbproto.errors import LinkClosedError
from itbproto.io.ble import HCI_ENV
from itbproto.io.transport import why

__all__ = ["BleTransport", "find_pump"]


def _backends(central: Any) -> tuple[Any, Any]:
    """bleak's scanner and client backends: the bumble ones on ``central``, or (None) bleak's choice."""
    if central is None:
        return None, None
    from itbproto.io.ble.bumble_backend import bound_to

    return bound_to(central)


def no_radio(exc: BaseException) -> str:
    """Why no BLE radio could be opened, and what to do: the hub ``ITBPROTO_BLE_HCI`` names, or bleak's."""
    hci = os.environ.get(HCI_ENV)
    if hci:
        return f"cannot open the BLE radio {HCI_ENV}={hci} ({why(exc)}); is `itbemu serve --ble` serving it?"
    return (
        f"no Bluetooth adapter reachable through bleak ({why(exc)}); for the emulator's virtual radio set "
        f"{HCI_ENV}=tcp-client:HOST:PORT (what `itbemu serve --ble tcp-server:HOST:PORT` serves)"
    )


async def find_pump(
    name: str | None = None, *, address: str | None = None, timeout_s: float = 10.0, central: Any = None
) -> BLEDevice:
    """The first pump advertising the ITB service (with ``name`` / at ``address`` when given)."""

    def wanted(device: BLEDevice, adv: AdvertisementData) -> bool:
        return (name is None or adv.local_name == name) and (address is None or device.address == address)

    scanner = BleakScanner(service_uuids=[SERVICE_UUID], backend=_backends(central)[0])
    try:
        await scanner.start()
    except (OSError, BleakError, ValueError) as exc:  # (bumble: ValueError for a transport it cannot parse)
        raise LinkClosedError(no_radio(exc)) from None
    try:
        async with asyncio.timeout(timeout_s):
            async for device, adv in scanner.advertisement_data():
                if wanted(device, adv):
                    return device
    except TimeoutError:
        pass
    finally:
        await scanner.stop()
    raise LinkClosedError(f"no pump {name or address or ''} found over BLE within {timeout_s} s")


class BleTransport:
    """One BLE connection to a pump, through a :class:`bleak.BleakClient`."""

    stream: bool = False
    mtu: int | None = None

    def __init__(self, device: BLEDevice, timeout_s: float = 10.0, central: Any = None) -> None:
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._request: BleakGATTCharacteristic | str = REQUEST_UUID  # its characteristic, once connected
        self.client = BleakClient(
            device,
            lambda _: self._queue.put_nowait(None),
            timeout=timeout_s,
            backend=_backends(central)[1],
        )

    @classmethod
    async def connect(
        cls,
        name: str | None = None,
        *,
        address: str | None = None,
        timeout_s: float = 10.0,
        central: Any = None,
    ) -> BleTransport:
        """Find the pump (:func:`find_pump`), connect, subscribe to its responses. ``central``: a bumble
        Device to use as the radio (the bumble backend) instead of bleak's default."""
        device = await find_pump(name, address=address, timeout_s=timeout_s, central=central)
        transport = cls(device, timeout_s, central)
        client = transport.client
        try:
            await client.connect()
            request = client.services.get_characteristic(REQUEST_UUID)
            response = client.services.get_characteristic(RESPONSE_UUID)
            if request is None or response is None:
                raise BleakError(f"{device.name or device.address} lacks the ITB characteristics")
            await client.start_notify(response, lambda _, data: transport._queue.put_nowait(bytes(data)))
        except (BleakError, TimeoutError) as exc:
            await client.disconnect()
            raise LinkClosedError(f"could not connect to the pump over BLE: {exc}") from None
        transport.mtu, transport._request = client.mtu_size, request
        return transport

    async def send(self, data: bytes) -> None:
        try:
            await self.client.write_gatt_char(self._request, data, response=False)
        except Exception as exc:  # a link that is gone: each backend raises its own
            raise LinkClosedError(f"BLE write failed: {exc}") from None

    async def receive(self) -> bytes:
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)
            raise LinkClosedError("the BLE connection is gone")
        return data

    async def close(self) -> None:
        await self.client.disconnect()
