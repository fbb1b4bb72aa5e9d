"""Security, sans-IO: PIN pairing with SPAKE2, per-connection keys, the AES-CCM sealed channel.

The pump pairs in its firmware (:class:`~itbproto.core.firmware.Firmware`: ``pin``, ``require_pairing``); a
:class:`~itbproto.io.client.PumpClient` pairs with ``pair()`` and connects sealed with ``connect(key)``;
:mod:`itbproto.io.keystore` keeps the keys on disk.
"""

from itbproto.core.security.channel import TO_PROGRAMMER, TO_PUMP, SealedChannel
from itbproto.core.security.keys import SessionKeys, session_keys
from itbproto.core.security.pairing import PairedKey, PinGuard, ProgrammerPairing, PumpPairing

__all__ = [
    "TO_PROGRAMMER",
    "TO_PUMP",
    "PairedKey",
    "PinGuard",
    "ProgrammerPairing",
    "PumpPairing",
    "SealedChannel",
    "SessionKeys",
    "session_keys",
]
