"""BLE transport for :class:`~itbproto.client.PumpClient` on a bumble central (specs/gatt.md).

:meth:`BleTransport.connect` scans for a pump advertising the ITB service (optionally by name), connects,
exchanges the ATT MTU (517 asked), finds the request and response characteristics and subscribes to the
responses. Each write is one fragment (the Connection fragments for ``mtu``); each notification is one
fragment back. The bumble Device comes from the caller: a software controller on a ``LocalLink`` (tests, the
emulator in the same process) or a bumble transport (another process, real hardware).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from bumble.core import UUID, AdvertisingData
from bumble.device import Device, Peer

from itbproto.errors import LinkClosedError

__all__ = ["REQUEST_UUID", "RESPONSE_UUID", "SERVICE_UUID", "BleTransport"]

SERVICE_UUID = "6B3F0001-1D0E-4C59-9F8E-5A1C2D7E4B90"
REQUEST_UUID = "6B3F0002-1D0E-4C59-9F8E-5A1C2D7E4B90"
RESPONSE_UUID = "6B3F0003-1D0E-4C59-9F8E-5A1C2D7E4B90"
ASKED_MTU = 517


class BleTransport:
    """One BLE connection to a pump."""

    stream: bool = False
    mtu: int | None

    def __init__(self, peer: Peer, request: Any, mtu: int) -> None:
        self._peer, self._request, self.mtu = peer, request, mtu
        self._hci: Any = None  # the bumble transport this connection opened, if any (closed with it)
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        peer.connection.on("disconnection", lambda reason: self._queue.put_nowait(None))

    @classmethod
    async def connect(cls, device: Device, name: str | None = None, timeout_s: float = 10.0) -> BleTransport:
        """Scan with ``device`` (powered on) for a pump with the ITB service (and
        ``name``), connect and get ready."""
        found: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def seen(advertisement: Any) -> None:
            data = advertisement.data
            uuids = data.get(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS) or []
            advertised = data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
            if UUID(SERVICE_UUID) in uuids and (name is None or advertised == name) and not found.done():
                found.set_result(advertisement.address)

        device.on("advertisement", seen)
        try:
            await device.start_scanning()
            address = await asyncio.wait_for(found, timeout_s)
            await device.stop_scanning()
            connection = await asyncio.wait_for(device.connect(address), timeout_s)
        except TimeoutError:
            raise LinkClosedError(f"no pump {name or ''} found over BLE within {timeout_s} s") from None
        finally:
            device.remove_listener("advertisement", seen)
        peer = Peer(connection)
        mtu = await peer.request_mtu(ASKED_MTU)
        await peer.discover_services()
        (service,) = peer.get_services_by_uuid(UUID(SERVICE_UUID))
        await service.discover_characteristics()
        (request,) = service.get_characteristics_by_uuid(UUID(REQUEST_UUID))
        (response,) = service.get_characteristics_by_uuid(UUID(RESPONSE_UUID))
        transport = cls(peer, request, mtu)
        await peer.subscribe(response, lambda value: transport._queue.put_nowait(bytes(value)))
        return transport

    @classmethod
    async def open(
        cls, hci: str, name: str | None = None, address: str = "F1:F2:F3:F4:F5:F6"
    ) -> BleTransport:
        """Connect through the HCI a bumble transport string names (``tcp-client:127.0.0.1:9100`` for
        ``itbemu serve --ble tcp-server:...``; ``usb:0`` for a real controller)."""
        from bumble.hci import Address
        from bumble.transport import open_transport

        hci_transport = await open_transport(hci)
        device = Device.with_hci("itbproto", Address(address), hci_transport.source, hci_transport.sink)
        await device.power_on()
        transport = await cls.connect(device, name)
        transport._hci = hci_transport
        return transport

    async def send(self, data: bytes) -> None:
        try:
            await self._peer.write_value(self._request, data, with_response=False)
        except Exception as exc:  # bumble raises its own errors for a link that is gone
            raise LinkClosedError(f"BLE write failed: {exc}") from None

    async def receive(self) -> bytes:
        data = await self._queue.get()
        if data is None:
            self._queue.put_nowait(None)
            raise LinkClosedError("the BLE connection is gone")
        return data

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            await self._peer.connection.disconnect()
        if self._hci is not None:
            await self._hci.close()
