"""BLE: the pump's GATT layout (specs/gatt.md), the PumpClient transport on bleak, and a bleak backend on
bumble (:mod:`itbproto.ble.bumble_backend`) for a software radio without Bluetooth hardware."""

from itbproto.ble.gatt import ASKED_MTU, REQUEST_UUID, RESPONSE_UUID, SERVICE_UUID
from itbproto.ble.transport import BleTransport, find_pump

__all__ = ["ASKED_MTU", "REQUEST_UUID", "RESPONSE_UUID", "SERVICE_UUID", "BleTransport", "find_pump"]
