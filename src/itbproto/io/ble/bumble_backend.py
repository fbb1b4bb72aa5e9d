"""A bleak backend on bumble: unmodified bleak code on a software radio (no Bluetooth hardware, no kernel).

:class:`BumbleScanner` and :class:`BumbleClient` implement bleak's backend interfaces on a bumble
:class:`~bumble.device.Device` acting as the central. Which Device:

- the one the classes from :func:`bound_to` carry, passed as ``backend=`` (tests: a software controller
  on a ``LocalLink`` in the same process);
- otherwise the event loop's Devices on the bumble transport named by ``ITBPROTO_BLE_HCI``, e.g.
  ``tcp-client:127.0.0.1:9100`` for ``itbemu serve --ble tcp-server:127.0.0.1:9100`` (or ``usb:0`` for a
  real controller): the first scans and connects, and another opens for each further link to a peer that
  all have one. They are closed when the loop's tasks are cancelled (the end of ``asyncio.run``).

With ``ITBPROTO_BLE_HCI`` set, :func:`install` makes these bleak's default backends, so scripts that only
say ``BleakScanner.discover()`` and ``BleakClient(device)`` use them; the package installs a ``.pth`` hook
that calls it at interpreter start when the variable is set (as coverage does). Without it bleak is untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import gatt_char_props_to_strs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble.att import ATT_Error
from bumble.core import UUID, AdvertisingData
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.hci import Address

from itbproto.core.wire.gatt import ASKED_MTU, uuid_text
from itbproto.io.ble import HCI_ENV

__all__ = [
    "HCI_ENV",
    "BumbleClient",
    "BumbleScanner",
    "bound_to",
    "install",
    "open_central",
    "static_random",
    "static_random_address",
]


@dataclass
class _Centrals:
    """A loop's centrals on ``ITBPROTO_BLE_HCI``: the first scans; a client takes the first with no link to
    its peer, and a new one opens when all have one (a central holds one link to a peer: two bleak clients of
    one pump are two phones)."""

    opening: list[asyncio.Task[Device]] = field(default_factory=list)
    #: (central, peer address) of each link a client holds or is making
    claimed: set[tuple[Device, str]] = field(default_factory=set)
    #: one link made at a time to a peer: bumble's software controller drops a connection request that comes
    #: while the peer is not advertising yet again, and the central then waits on a link that never was
    connecting: dict[str, asyncio.Lock] = field(default_factory=dict)


_centrals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Centrals] = weakref.WeakKeyDictionary()
_background: set[asyncio.Future[None]] = set()  # the tasks that own the centrals' transports
_UUID_LISTS = (
    AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
    AdvertisingData.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
)


def bleak_uuid(uuid: UUID) -> str:
    """bumble's UUID as bleak spells it: lowercase, 128 bits."""
    return uuid_text(uuid.to_bytes(force_128=True))


def static_random(raw: bytes) -> bool:
    """Whether the 6 bytes ``raw`` (most significant first, as written) are a static random address: the two
    top bits set, the other 46 neither all 0 nor all 1 (Core Specification, Vol 6, Part B, 1.3.2.1)."""
    return len(raw) == 6 and raw[0] >= 0xC0 and raw not in (bytes([0xC0, 0, 0, 0, 0, 0]), bytes([0xFF] * 6))


def static_random_address(entropy: Callable[[], bytes] = lambda: os.urandom(6)) -> str:
    """A static random device address from ``entropy`` (6 bytes a call, its two top bits then set; asked again
    while they make no valid address): a fresh one, as a central picks at power-on, by default."""
    while True:
        raw = bytearray(entropy())
        raw[0] |= 0xC0
        if static_random(bytes(raw)):
            return ":".join(f"{b:02X}" for b in raw)


async def open_central(hci: str, address: str | None = None) -> Device:
    """A powered-on central on the bumble transport ``hci``, with ``address`` or a fresh static random one
    (so that centrals on one radio never share one); the transport closes when the loop's tasks are
    cancelled (``asyncio.run`` does it at the end)."""
    from bumble.transport import open_transport

    address = address or static_random_address()

    transport = await open_transport(hci)
    device = Device.with_hci("itbproto", Address(address), transport.source, transport.sink)
    opened: asyncio.Future[Device] = asyncio.get_running_loop().create_future()

    async def keep() -> None:  # owns the transport: closed when cancelled
        try:
            await device.power_on()
            opened.set_result(device)
            await asyncio.Event().wait()
        except BaseException as exc:
            if not opened.done():
                opened.set_exception(exc)
            raise
        finally:  # a courteous goodbye to the peers, then the transport
            for connection in list(device.connections.values()):
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.disconnect(), 1.0)
            await transport.close()

    _background.add(task := asyncio.ensure_future(keep()))
    task.add_done_callback(_background.discard)
    return await opened


async def central(given: Device | None, peer: str | None = None) -> Device:
    """The central for a scanner or client: ``given``, or one of this loop's on ``ITBPROTO_BLE_HCI`` (with a
    ``peer``: one with no link to it, claimed until :func:`release`)."""
    if given is not None:
        return given
    hci = os.environ.get(HCI_ENV)
    if not hci:
        raise BleakError(f"the bumble backend needs a central: use bound_to(device), or set {HCI_ENV}")
    loop = asyncio.get_running_loop()
    centrals = _here()
    for index in itertools.count():
        if index == len(centrals.opening):
            centrals.opening.append(loop.create_task(open_central(hci)))
        opening = centrals.opening[index]
        if opening.done() and (opening.cancelled() or opening.exception() is not None):
            centrals.opening[index] = opening = loop.create_task(open_central(hci))
        device = await opening
        if peer is None:
            return device
        if (device, peer) not in centrals.claimed:  # (no await between the test and the claim)
            centrals.claimed.add((device, peer))
            return device
    raise AssertionError("unreachable")


def _here() -> _Centrals:
    """The running loop's centrals."""
    return _centrals.setdefault(asyncio.get_running_loop(), _Centrals())


def connecting(peer: str) -> asyncio.Lock:
    """This loop's lock on making a link to ``peer`` (see ``_Centrals.connecting``)."""
    return _here().connecting.setdefault(peer, asyncio.Lock())


def release(device: Device, peer: str) -> None:
    """The client's link from ``device`` to ``peer`` is gone: another client may take that central for it."""
    _here().claimed.discard((device, peer))


class BumbleScanner(BaseBleakScanner):
    """bleak's scanner interface on a bumble central."""

    #: the central to scan with (:func:`bound_to`); None: this loop's one on ``ITBPROTO_BLE_HCI``
    central: ClassVar[Device | None] = None

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._active = scanning_mode != "passive"
        self._device: Device | None = None

    async def start(self) -> None:
        self.seen_devices = {}
        self._device = await central(self.central)
        self._device.on("advertisement", self._seen)
        await self._device.start_scanning(active=self._active, filter_duplicates=False)

    async def stop(self) -> None:
        if self._device is not None:
            self._device.remove_listener("advertisement", self._seen)
            await self._device.stop_scanning()
            self._device = None

    def _seen(self, advertisement: Advertisement) -> None:
        data = advertisement.data
        uuids: list[str] = []  # the software controller repeats ADV data as the scan response: once each
        for kind in _UUID_LISTS:
            for found in data.get_all(kind):
                for uuid in found if isinstance(found, list) else [found]:
                    if isinstance(uuid, UUID) and (text := bleak_uuid(uuid)) not in uuids:
                        uuids.append(text)
        if not self.is_allowed_uuid(uuids):
            return
        name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or data.get(AdvertisingData.SHORTENED_LOCAL_NAME)
        local_name = name if isinstance(name, str) else None
        manufacturer: dict[int, bytes] = {}
        for company, payload in data.get_all(AdvertisingData.MANUFACTURER_SPECIFIC_DATA):
            manufacturer[company] = bytes(payload)
        service_data = {
            bleak_uuid(uuid): bytes(payload)
            for uuid, payload in (
                data.get_all(AdvertisingData.SERVICE_DATA_16_BIT_UUID)
                + data.get_all(AdvertisingData.SERVICE_DATA_32_BIT_UUID)
                + data.get_all(AdvertisingData.SERVICE_DATA_128_BIT_UUID)
            )
        }
        tx_power = data.get(AdvertisingData.TX_POWER_LEVEL)
        adv = AdvertisementData(
            local_name=local_name,
            manufacturer_data=manufacturer,
            service_data=service_data,
            service_uuids=uuids,
            tx_power=tx_power if isinstance(tx_power, int) else None,
            rssi=advertisement.rssi,
            platform_data=(advertisement,),
        )
        address = advertisement.address.to_string(False)
        device = self.create_or_update_device(address, address, local_name, advertisement.address, adv)
        self.call_detection_callbacks(device, adv)


class BumbleClient(BaseBleakClient):
    """bleak's client interface on a bumble central: connect exchanges the MTU and fills ``services``."""

    #: the central to connect with (:func:`bound_to`); None: this loop's one on ``ITBPROTO_BLE_HCI``
    central: ClassVar[Device | None] = None

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        services: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback, timeout=timeout)
        self._wanted = services
        details = address_or_ble_device.details if isinstance(address_or_ble_device, BLEDevice) else None
        self._peer_address: Address = details if isinstance(details, Address) else Address(self.address)
        self._name = address_or_ble_device.name if isinstance(address_or_ble_device, BLEDevice) else None
        self._peer: Peer | None = None
        self._subscribers: dict[int, Callable[[bytes], None]] = {}

    @property
    def name(self) -> str:
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        return self._connection().att_mtu

    @property
    def is_connected(self) -> bool:
        return self._peer is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        address = str(self._peer_address)
        device = await central(self.central, address)
        try:
            async with connecting(address):
                connection = await device.connect(self._peer_address, timeout=self._timeout)
        except Exception as exc:  # bumble: a timeout or the controller's refusal
            release(device, address)
            raise BleakDeviceNotFoundError(
                self.address, f"could not connect to {self.address}: {exc}"
            ) from exc
        connection.on("disconnection", lambda reason: release(device, address))
        connection.on("disconnection", self._disconnected)
        self._peer = peer = Peer(connection)
        if pair:
            await connection.pair()
        await peer.request_mtu(ASKED_MTU)
        self.services = await self._discover(peer)

    async def _discover(self, peer: Peer) -> BleakGATTServiceCollection:
        collection = BleakGATTServiceCollection()
        wanted = [UUID(uuid) for uuid in self._wanted or ()]
        for service in await peer.discover_services(wanted):
            bleak_service = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in await service.discover_characteristics():
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic,
                    characteristic.handle,
                    bleak_uuid(characteristic.uuid),
                    sorted(gatt_char_props_to_strs(characteristic.properties)),
                    lambda: self.mtu_size - 3,
                    bleak_service,
                )
                collection.add_characteristic(bleak_characteristic)
                for descriptor in await characteristic.discover_descriptors():
                    collection.add_descriptor(
                        BleakGATTDescriptor(
                            descriptor, descriptor.handle, bleak_uuid(descriptor.type), bleak_characteristic
                        )
                    )
        return collection

    def _disconnected(self, reason: int) -> None:
        self._peer = None
        if self._disconnected_callback is not None:  # unsolicited only: disconnect() clears it first
            self._disconnected_callback()

    def _connection(self) -> Connection:
        if self._peer is None:
            raise BleakError(f"not connected to {self.address}")
        return self._peer.connection

    async def disconnect(self) -> None:
        if self._peer is None:
            return
        callback, self._disconnected_callback = self._disconnected_callback, None
        try:
            await self._peer.connection.disconnect()
        finally:
            self._peer, self._disconnected_callback = None, callback

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        await self._connection().pair()

    async def unpair(self) -> None:
        device = await central(self.central)
        if device.keystore is not None:
            await device.keystore.delete(str(self._peer_address))

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(characteristic.obj)

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any
    ) -> bytearray:
        return await self._read(descriptor.obj)

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        await self._write(characteristic.obj, data, response)

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor, data: SizedBuffer) -> None:
        await self._write(descriptor.obj, data, True)

    async def _read(self, attribute: Any) -> bytearray:
        self._connection()
        try:
            return bytearray(await attribute.read_value())
        except ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc

    async def _write(self, attribute: Any, data: SizedBuffer, response: bool) -> None:
        self._connection()
        try:
            await attribute.write_value(bytes(data), with_response=response)
        except ATT_Error as exc:
            raise BleakGATTProtocolError(exc.error_code) from exc

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any
    ) -> None:
        def notified(value: bytes) -> None:
            callback(bytearray(value))

        self._subscribers[characteristic.handle] = notified
        await characteristic.obj.subscribe(notified, prefer_notify=not kwargs.get("force_indicate", False))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        await characteristic.obj.unsubscribe(self._subscribers.pop(characteristic.handle, None))


def bound_to(device: Device) -> tuple[type[BumbleScanner], type[BumbleClient]]:
    """The scanner and client backends on ``device`` (powered on), to pass as bleak's ``backend=``."""
    scanner = type("BumbleScanner", (BumbleScanner,), {"central": device})
    client = type("BumbleClient", (BumbleClient,), {"central": device})
    return scanner, client


def install() -> None:
    """Make bleak pick :class:`BumbleScanner` and :class:`BumbleClient` by default while ``ITBPROTO_BLE_HCI``
    is set (checked at each use); bleak's own backends otherwise. Idempotent."""
    import bleak
    from bleak.backends import client, scanner

    global _installed
    if _installed:
        return
    native_scanner, native_client = (
        scanner.get_platform_scanner_backend_type,
        client.get_platform_client_backend_type,
    )

    def scanner_type() -> tuple[type[BaseBleakScanner], Any]:
        return (BumbleScanner, "bumble") if os.environ.get(HCI_ENV) else native_scanner()

    def client_type() -> tuple[type[BaseBleakClient], Any]:
        return (BumbleClient, "bumble") if os.environ.get(HCI_ENV) else native_client()

    for module in (bleak, scanner):  # bleak's __init__ calls the names it imported
        setattr(module, "get_platform_scanner_backend_type", scanner_type)  # noqa: B010
    for module in (bleak, client):
        setattr(module, "get_platform_client_backend_type", client_type)  # noqa: B010
    _installed = True


_installed = False
