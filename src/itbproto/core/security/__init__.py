"""Security, sans-IO: PIN pairing with SPAKE2, per-connection keys, the AES-CCM sealed channel.

The pump pairs in its firmware (:class:`~itbproto.core.firmware.Firmware`: ``pin``, ``require_pairing``); a
:class:`~itbproto.io.client.PumpClient` pairs with ``pair()`` and connects sealed with ``connect(key)``.
"""

from itbproto.core.security.channel import TO_PROGRAMMER, TO_PUMP, SealedChannel
from itbproto.core.security.keys import SessionKeys, session_keys
from itbproto.core.security.pairing import PairedKey, PinGuard, ProgrammerPairing, PumpPairing
from itbproto.io.keystore import load_key, save_key

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
