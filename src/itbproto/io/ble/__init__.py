"""BLE: the PumpClient transport on bleak over the pump's GATT layout (:mod:`itbproto.core.wire.gatt`,
specs/gatt.md), and a bleak backend on bumble (:mod:`itbproto.io.ble.bumble_backend`) for a software radio
without Bluetooth hardware.

The GATT layout needs nothing; the transport needs bleak (``itbproto[ble]``), imported when first used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from itbproto.core.wire.gatt import ASKED_MTU, REQUEST_UUID, RESPONSE_UUID, SERVICE_UUID

if TYPE_CHECKING:
    from itbproto.io.ble.transport import BleTransport, find_pump

__all__ = [
    "ASKED_MTU",
    "HCI_ENV",
    "REQUEST_UUID",
    "RESPONSE_UUID",
    "SERVICE_UUID",
    "BleTransport",
    "find_pump",
]

#: the environment variable naming the bumble transport of a virtual radio (``tcp-client:127.0.0.1:9100``):
#: bleak scripts and ``ble://`` targets then use it (:mod:`~itbproto.io.ble.bumble_backend`) instead of an
#: adapter; the ``.pth`` hook installed with the package reads it at start-up
HCI_ENV = "ITBPROTO_BLE_HCI"


def __getattr__(name: str) -> Any:
    if name in ("BleTransport", "find_pump"):
        from itbproto.io.ble import transport

        return getattr(transport, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
