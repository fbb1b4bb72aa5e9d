"""BLE: the pump's GATT layout (specs/gatt.md), the PumpClient transport on bleak, and a bleak backend on
bumble (:mod:`itbproto.io.ble.bumble_backend`) for a software radio without Bluetooth hardware.

The GATT layout needs nothing; the transport needs bleak (``itbproto[ble]``), imported when first used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from itbproto.core.wire.gatt import ASKED_MTU, REQUEST_UUID, RESPONSE_UUID, SERVICE_UUID

if TYPE_CHECKING:
    from itbproto.io.ble.transport import BleTransport, find_pump

__all__ = ["ASKED_MTU", "REQUEST_UUID", "RESPONSE_UUID", "SERVICE_UUID", "BleTransport", "find_pump"]


def __getattr__(name: str) -> Any:
    if name in ("BleTransport", "find_pump"):
        from itbproto.io.ble import transport

        return getattr(transport, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
