"""The emulator as a BLE GATT peripheral on bumble (specs/gatt.md): no radio, no kernel Bluetooth needed.

A bumble :class:`~bumble.device.Device` (its HCI from a bumble transport, or a software controller on a
``LocalLink``) carries the ITB programming service and the Device Information Service, and advertises the
pump's model and the service UUID. Each BLE connection is a link of the emulator: the fragments written to the
request characteristic go into that link's device-side Connection (fragmenting for the connection's ATT MTU),
and what the emulator says to a link goes back as notifications on the response characteristic.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bumble.core import UUID, AdvertisingData
from bumble.device import Connection as BleConnection
from bumble.device import Device
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

from itbemu.clock import Clock
from itbemu.device import Emulator
from itbemu.faults import DeviceFault, LinkFaults
from itbproto.ble.gatt import REQUEST_UUID, RESPONSE_UUID, SERVICE_UUID
from itbproto.connection import Connection, Side
from itbproto.firmware import Output
from itbproto.machines.pump.reports import FIRMWARE

__all__ = ["BlePeripheral", "local_device", "open_hub"]


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
            CharacteristicValue[bytes](write=self._written),
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
                    (AdvertisingData.COMPLETE_LOCAL_NAME, profile.model[:8].encode()),
                ]
            )
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


async def open_hub(link: Any, hci: str) -> Any:
    """Serve a software controller on ``link`` to the programmers' host on the bumble transport ``hci``
    (``tcp-server:HOST:PORT``, ``unix-server:PATH``); the transport, to close when done.

    The controller behaves as a real one on HCI Reset, which bumble's does not yet: the links its previous
    host left open are dropped (the pump sees the programmer go, as on a supervision time-out); without
    that, a programmer process that died connected would keep the pump's address busy for every later one."""
    from bumble import hci as bumble_hci
    from bumble import ll
    from bumble.controller import Controller
    from bumble.transport import open_transport

    class HubController(Controller):
        def on_hci_reset_command(self, command: bumble_hci.HCI_Reset_Command) -> Any:
            timeout = bumble_hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR
            for stale in list(self.le_connections.values()):
                stale.send_ll_control_pdu(ll.TerminateInd(timeout))
            self.le_connections.clear()
            self.pending_le_connection = None
            return super().on_hci_reset_command(command)

    hub = await open_transport(hci)
    HubController("hub", host_source=hub.source, host_sink=hub.sink, link=link)
    return hub


def local_device(link: Any, name: str, address: str) -> Device:
    """A bumble Device with a software controller on ``link`` (a ``bumble.link.LocalLink``)."""
    from bumble.controller import Controller
    from bumble.host import Host
    from bumble.transport.common import AsyncPipeSink

    controller = Controller(name, link=link)
    return Device(name=name, address=Address(address), host=Host(controller, AsyncPipeSink(controller)))
