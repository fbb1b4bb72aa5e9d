"""The pump's GATT layout (specs/gatt.md): one service, a request characteristic the programmer writes
fragments to, a response characteristic the pump notifies fragments on."""

from __future__ import annotations

import uuid

__all__ = ["ASKED_MTU", "REQUEST_UUID", "RESPONSE_UUID", "SERVICE_UUID", "uuid_text"]

SERVICE_UUID = "6b3f0001-1d0e-4c59-9f8e-5a1c2d7e4b90"
REQUEST_UUID = "6b3f0002-1d0e-4c59-9f8e-5a1c2d7e4b90"
RESPONSE_UUID = "6b3f0003-1d0e-4c59-9f8e-5a1c2d7e4b90"
#: the ATT MTU a programmer asks for (the largest ATT allows): one fragment of up to 514 bytes per write
ASKED_MTU = 517


def uuid_text(little_endian: bytes) -> str:
    """A 128-bit UUID as ATT carries it (little-endian) in the usual text: lowercase, with dashes."""
    return str(uuid.UUID(bytes=bytes(reversed(little_endian))))
