"""Key derivation: every key comes from one HKDF-SHA256 expansion, with a label saying what it is for.

- pairing: SPAKE2's shared secret (salted by the pump's 16 random bytes) gives the two key-confirmation MAC
  keys and the long-term key the pump stores with the programmer's role;
- each connection: the long-term key and both sides' fresh nonces give the two directions' AES-CCM keys,
  so no two sessions share a key (and a frame of one session never opens in another).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from itbproto.core.security.channel import KEY_SIZE, TO_PROGRAMMER, TO_PUMP, SealedChannel

__all__ = ["LONG_TERM_SIZE", "PairingKeys", "SessionKeys", "hkdf", "pairing_keys", "session_keys"]

LONG_TERM_SIZE = 32
_PREFIX = b"itbproto v1 "


def hkdf(secret: bytes, salt: bytes, label: str, size: int) -> bytes:
    """``size`` bytes of HKDF-SHA256 of ``secret`` with ``salt``, for the purpose ``label``."""
    return HKDF(algorithm=hashes.SHA256(), length=size, salt=salt, info=_PREFIX + label.encode()).derive(
        secret
    )


@dataclass(frozen=True, slots=True)
class PairingKeys:
    programmer_confirm: bytes  # MAC key of the programmer's confirmation
    pump_confirm: bytes  # MAC key of the pump's
    long_term: bytes  # what the pump keeps with the role; the programmer keeps it in its keystore


def pairing_keys(shared: bytes, salt: bytes) -> PairingKeys:
    """The keys a pairing derives from SPAKE2's shared secret."""
    return PairingKeys(
        hkdf(shared, salt, "confirm programmer", 32),
        hkdf(shared, salt, "confirm pump", 32),
        hkdf(shared, salt, "long-term key", LONG_TERM_SIZE),
    )


@dataclass(frozen=True, slots=True)
class SessionKeys:
    to_pump: bytes
    to_programmer: bytes

    def programmer(self) -> SealedChannel:
        """The programmer's channel: it seals towards the pump."""
        return SealedChannel(self.to_pump, self.to_programmer, TO_PUMP)

    def pump(self) -> SealedChannel:
        """The pump's channel: it seals towards the programmer."""
        return SealedChannel(self.to_programmer, self.to_pump, TO_PROGRAMMER)


def session_keys(long_term: bytes, programmer_nonce: bytes, pump_nonce: bytes) -> SessionKeys:
    """The keys of one connection, from the long-term key and both sides' nonces (16 random bytes each)."""
    if len(programmer_nonce) != 16 or len(pump_nonce) != 16:
        raise ValueError("session nonces are 16 bytes")
    salt = programmer_nonce + pump_nonce
    return SessionKeys(
        hkdf(long_term, salt, "session to pump", KEY_SIZE),
        hkdf(long_term, salt, "session to programmer", KEY_SIZE),
    )
