"""Security, sans-IO: PIN pairing with SPAKE2, per-connection keys, the AES-CCM sealed channel.

The pump pairs in its firmware (:class:`~itbproto.firmware.Firmware`: ``pin``, ``require_pairing``); a
:class:`~itbproto.client.PumpClient` pairs with ``pair()`` and connects sealed with ``connect(key)``.
"""

from itbproto.security.channel import TO_PROGRAMMER, TO_PUMP, SealedChannel
from itbproto.security.keys import SessionKeys, session_keys
from itbproto.security.keystore import load_key, save_key
from itbproto.security.pairing import PairedKey, PinGuard, ProgrammerPairing, PumpPairing

__all__ = [
    "TO_PROGRAMMER",
    "TO_PUMP",
    "PairedKey",
    "PinGuard",
    "ProgrammerPairing",
    "PumpPairing",
    "SealedChannel",
    "SessionKeys",
    "load_key",
    "save_key",
    "session_keys",
]
