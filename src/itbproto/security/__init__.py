"""Security, sans-IO: PIN pairing with SPAKE2, per-connection keys, the AES-CCM sealed channel.

Not wired into the pump and the client yet (issue 15 goes on): these are the pieces, tested on their own and
through a :class:`~itbproto.connection.Connection`.
"""

from itbproto.security.channel import TO_PROGRAMMER, TO_PUMP, SealedChannel
from itbproto.security.keys import SessionKeys, session_keys
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
    "session_keys",
]
