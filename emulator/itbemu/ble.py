"""The emulator as a BLE GATT peripheral on bumble (specs/gatt.md): no radio, no kernel Bluetooth needed.

A bumble :class:`~bumble.device.Device` (:func:`pump_device`: a software controller on a ``LocalLink``, at
the static random address its serial gives, named as it advertises, with a medication-delivery Appearance)
carries the ITB programming service and the Device Information Service, and advertises the pump's model and
the service UUID. Each BLE connection is a link of the emulator: the fragments written to the
request characteristic go into that link's device-side Connection (fragmenting for the connection's ATT MTU),
and what the emulator says to a link goes back as notifications on the response characteristic.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

from bumble.att import ATT_READ_NOT_PERMITTED_ERROR, ATT_Error
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection as BleConnection
from bumble.device import Device, DeviceConfiguration
from bumble.gatt import (
    GATT_DEVICE_INFORMATION_SERVICE,
    GATT_FIRMWARE_REVISION_STRING_CHARACTERISTIC,
    GATT_MANUFACTURER_NAME_STRING_CHARACTERISTIC,
    GATT_MODEL_NUMBER_STRING_CHARACTERISTIC,
    GATT_SERIAL_NUMBER_STRING_CHARACTERISTIC,
    Characteristic,
    CharacteristicValue,
    Service,
)
from bumble.hci import Address
from bumble.profiles.gap import GenericAccessService

from itbemu.clock import Clock
from itbemu.device import Emulator
from itbemu.faults import DeviceFault, LinkFaults
from itbproto.core.connection import Connection, Side
from itbproto.core.firmware import Output
from itbproto.core.machines.pump.reports import FIRMWARE
from itbproto.core.therapy import DeviceProfile
from itbproto.core.wire.gatt import REQUEST_UUID, RESPONSE_UUID, SERVICE_UUID
from itbproto.io.ble.bumble_backend import static_random_address

__all__ = [
    "APPEARANCE",
    "BlePeripheral",
    "Hub",
    "local_device",
    "open_hub",
    "pump_address",
    "pump_device",
    "pump_name",
]

#: the GAP Appearance: Medication Delivery, generic (Bluetooth Assigned Numbers: category 0x036, subcategory
#: 0x00, so 0x036 << 6); the SIG lists no intrathecal pump, and the insulin pump's category is not it
APPEARANCE = 0x0D80


def pump_name(profile: DeviceProfile) -> str:
    """The name the pump advertises and its GAP Device Name: its model, at most 8 characters (``ITB20``)."""
    return profile.model[:8]


def pump_address(serial: str) -> str:
    """The pump's BLE address: a static random address (its two top bits set, the rest neither all 0 nor all
    1) from the SHA-256 of its serial, so one pump keeps one address across restarts of its store."""
    digests = (
        hashlib.sha256(f"itbproto ble address {n} {serial}".encode()).digest()[:6] for n in itertools.count()
    )
    return static_random_address(lambda: next(digests))


@dataclass
class BlePeripheral:
    """Serve ``emulator`` on ``device`` (powered on by :meth:`start`)."""

    emulator: Emulator
    clock: Clock
    device: Device
    advertising_interval_ms: float = 20.0
    #: ``faults.lose_next`` loses the next so many notifications (a fault for tests)
    faults: LinkFaults = field(default_factory=LinkFaults)
    _links: dict[BleConnection, int] = field(default_factory=dict)
    _by_link: dict[int, BleConnection] = field(default_factory=dict)
    _response: Characteristic[bytes] = field(init=False)
    _advertising: asyncio.Future[None] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        info = self.emulator.pump.state
        profile = self.emulator.therapy.profile
        readable, notify = Characteristic.READABLE, Characteristic.Properties.NOTIFY
        self._response = Characteristic(RESPONSE_UUID, notify, readable, b"")
        request: Characteristic[bytes] = Characteristic(
            REQUEST_UUID,
            Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
            Characteristic.WRITEABLE,
            CharacteristicValue[bytes](read=_write_only, write=self._written),
        )
        text = Characteristic.Properties.READ
        strings = (
            (GATT_MODEL_NUMBER_STRING_CHARACTERISTIC, profile.model),
            (GATT_SERIAL_NUMBER_STRING_CHARACTERISTIC, info.serial),
            (GATT_FIRMWARE_REVISION_STRING_CHARACTERISTIC, FIRMWARE),
            (GATT_MANUFACTURER_NAME_STRING_CHARACTERISTIC, "itbproto"),
        )
        dis = Service(
            GATT_DEVICE_INFORMATION_SERVICE,
            [Characteristic(uuid, text, readable, value.encode()) for uuid, value in strings],
        )
        self.device.add_services([Service(UUID(SERVICE_UUID), [request, self._response]), dis])
        self.device.advertising_data = bytes(
            AdvertisingData(
                [
                    (AdvertisingData.FLAGS, bytes([0x06])),
                    (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(SERVICE_UUID))),
                    (AdvertisingData.COMPLETE_LOCAL_NAME, pump_name(profile).encode()),
                ]
            )
        )
        # (31 bytes hold no more: what an active scanner asks next)
        self.device.scan_response_data = bytes(
            AdvertisingData([(AdvertisingData.APPEARANCE, APPEARANCE.to_bytes(2, "little"))])
        )
        self.device.on("connection", self._connected)

    async def start(self) -> None:
        await self.device.power_on()
        await self.device.start_advertising(
            auto_restart=True, advertising_interval_min=self.advertising_interval_ms
        )

    def _connected(self, connection: BleConnection) -> None:
        connection.on("disconnection", lambda reason: self._gone(connection))
        # advertise again: other programmers may connect too (one of them programs at a time)
        self._advertising = asyncio.ensure_future(self._advertise())

    async def _advertise(self) -> None:
        interval = self.advertising_interval_ms
        await self.device.start_advertising(auto_restart=True, advertising_interval_min=interval)

    def _gone(self, connection: BleConnection) -> None:
        link = self._links.pop(connection, None)
        if link is not None:
            self._by_link.pop(link, None)
            self.emulator.detach(link)

    async def _written(self, connection: BleConnection, value: bytes) -> None:
        link = self._links.get(connection)
        if link is None:  # the first write: the MTU is agreed by now (specs/gatt.md)
            link = self.emulator.attach(Connection(Side.PUMP, mtu=connection.att_mtu))
            self._links[connection], self._by_link[link] = link, connection
        await self.deliver(self.emulator.receive(link, bytes(value), self.clock.now()))

    async def deliver(self, out: Output) -> None:
        """Notify each link's programmer of what the emulator said to it."""
        for link, chunks in out.items():
            connection = self._by_link.get(link)
            if connection is None:
                continue
            for chunk in self.faults.kept(chunks):
                await self.device.notify_subscriber(connection, self._response, chunk)

    async def inject(self, fault: DeviceFault) -> None:
        """A device fault now; every connected programmer is told what it raised."""
        await self.deliver(self.emulator.inject(fault, self.clock.now()))

    async def advance(self) -> None:
        """Let device time reach the clock's; alarms go to every connected programmer."""
        await self.deliver(self.emulator.advance_to(self.clock.now()))


def _write_only(connection: BleConnection) -> bytes:
    """A read of the request characteristic: refused as ATT says (bumble checks no READABLE permission and,
    with no read function, raised inside the server, leaving the reader waiting 30 s for its answer)."""
    raise ATT_Error(ATT_READ_NOT_PERMITTED_ERROR)


async def open_hub(link: Any, hci: str) -> Hub:
    """Serve the virtual radio ``link`` to programmers' hosts on ``hci`` (``tcp-server:HOST:PORT`` or
    ``unix-server:PATH``): each host that connects gets a software controller of its own on the radio, as
    each phone has its own, so several programmer processes use the pump at once and none can reset another's
    links. When a host goes (its process ended or its connection dropped), its links end: the pump sees the
    programmer go, as on a supervision time-out. When the hub closes, every host is told its links ended
    (HCI Disconnection Complete) before its connection closes."""
    kind, _, where = hci.partition(":")
    hub = Hub(link)
    loop = asyncio.get_running_loop()
    if kind == "tcp-server":
        host, _, port = where.rpartition(":")
        hub.server = await loop.create_server(hub.host, None if host in ("", "_") else host, int(port))
    elif kind == "unix-server":
        hub.server = await loop.create_unix_server(hub.host, where)
    else:
        raise ValueError(f"the hub serves hosts on tcp-server:HOST:PORT or unix-server:PATH, not {hci!r}")
    return hub


@dataclass
class Hub:
    """The programmers' side of a virtual radio, served to their hosts (:func:`open_hub`)."""

    link: Any
    server: asyncio.AbstractServer | None = None
    hosts: list[_Host] = field(default_factory=list)

    def host(self) -> _Host:
        """The protocol for one host's HCI stream (the server's factory)."""
        return _Host(self)

    async def close(self) -> None:
        for host in list(self.hosts):
            host.end_links(TERMINATED_BY_HUB)
            host.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


#: why a host's links end when the hub closes (HCI: remote device terminated the connection, power off)
TERMINATED_BY_HUB = 0x15
#: why a host's links end when the host goes (HCI: connection timeout, as on a supervision time-out)
HOST_GONE = 0x08


class _Host(asyncio.Protocol):
    """One programmer host on the hub: its HCI packets to and from a software controller of its own."""

    def __init__(self, hub: Hub) -> None:
        from bumble.controller import Controller
        from bumble.transport.common import StreamPacketSource

        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.source = StreamPacketSource()
        host = self

        class HostController(Controller):
            def on_hci_reset_command(self, command: Any) -> Any:
                """A reset drops the host's links (bumble's controller keeps them): each peer is told."""
                host.end_links(HOST_GONE, tell_host=False)
                return super().on_hci_reset_command(command)

        self.controller = HostController(
            f"hub-{len(hub.hosts)}", host_source=self.source, host_sink=self, link=hub.link
        )
        hub.hosts.append(self)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.source.data_received(data)

    def on_packet(self, packet: bytes) -> None:
        """From the controller to the host."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(packet)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.end_links(HOST_GONE)
        if self in self.hub.hosts:
            self.hub.hosts.remove(self)
            self.hub.link.remove_controller(self.controller)

    def end_links(self, reason: int, *, tell_host: bool = True) -> None:
        """End this host's links: each peer is told (LL terminate), and so is the host."""
        from bumble import ll

        for connection in list(self.controller.le_connections.values()):
            connection.send_ll_control_pdu(ll.TerminateInd(reason))
            if tell_host:
                self.controller.on_le_disconnected(connection, reason)
        self.controller.le_connections.clear()
        self.controller.pending_le_connection = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def local_device(link: Any, name: str, address: str, appearance: int | None = None) -> Device:
    """A bumble Device with a software controller on ``link`` (a ``bumble.link.LocalLink``), its GAP service
    naming it ``name`` (and its ``appearance``, if given)."""
    from bumble.controller import Controller
    from bumble.host import Host
    from bumble.transport.common import AsyncPipeSink

    controller = Controller(name, link=link)
    config = DeviceConfiguration(gap_service_enabled=appearance is None)
    device = Device(
        name=name, address=Address(address), config=config, host=Host(controller, AsyncPipeSink(controller))
    )
    if appearance is not None:
        device.gatt_server.add_service(GenericAccessService(name, appearance))
    return device


def pump_device(link: Any, emulator: Emulator, address: str | None = None) -> Device:
    """The pump's Device on ``link``: at ``address`` or the one its serial gives (:func:`pump_address`), named
    as it advertises (:func:`pump_name`), with the :data:`APPEARANCE` of a medication-delivery device."""
    address = address or pump_address(emulator.pump.state.serial)
    return local_device(link, pump_name(emulator.therapy.profile), address, APPEARANCE)
