"""Pairing with the PIN the pump shows: SPAKE2 (``spake2``, Ed25519 group) with key confirmation, sans-IO.

::

    programmer                                   pump (shows a 6-digit PIN)
    PairStart(role, spake2=A)        ---------->
                                     <---------- PairReply(spake2=B, salt)
    PairConfirm(confirm=MAC_p(T))    ---------->  checks it (a wrong PIN fails here: PinGuard counts it)
                                     <---------- PairResult(confirm=MAC_d(T), key_id)
    checks it; keeps (key_id, role, long-term key)

``T`` is the transcript (both identities, the role, A, B and the salt); the MAC keys and the long-term key
come from SPAKE2's shared secret (:func:`~itbproto.core.security.keys.pairing_keys`). A passive listener
learns nothing about the PIN; an active attacker gets one guess per exchange, and the pump's :class:`PinGuard`
makes guesses slow. Randomness is a parameter (``entropy``), so vectors can be fixed.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from spake2 import SPAKE2_A, SPAKE2_B  # type: ignore[import-untyped]

from itbproto.core.security.keys import PairingKeys, pairing_keys
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import Role
from itbproto.errors import PairingError

__all__ = ["PROGRAMMER_ID", "PairedKey", "PinGuard", "ProgrammerPairing", "PumpPairing"]

PROGRAMMER_ID = b"itbproto programmer"
Entropy = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class PairedKey:
    """What pairing leaves on both sides: the key's id, the role it carries, the long-term key."""

    key_id: int
    role: Role
    long_term: bytes


def _transcript(serial: str, role: Role, a: bytes, b: bytes, salt: bytes) -> bytes:
    parts = (PROGRAMMER_ID, serial.encode(), bytes([int(role)]), a, b, salt)
    return b"itbproto pairing v1" + b"".join(len(p).to_bytes(2, "big") + p for p in parts)


def _mac(key: bytes, transcript: bytes) -> bytes:
    return hmac.new(key, transcript, hashlib.sha256).digest()


class _Side:
    """What both sides of a pairing hold: their ``spake2`` object, the keys it gave, the transcript T."""

    def __init__(self, spake: Any) -> None:
        self._spake = spake
        self._keys: PairingKeys | None = None
        self._transcript = b""

    @property
    def spake2_state(self) -> Any:
        """The ``spake2`` object (its scalars: for the vectors)."""
        return self._spake

    @property
    def keys(self) -> PairingKeys | None:
        """The keys SPAKE2 gave, once the other side's message was taken."""
        return self._keys

    @property
    def transcript(self) -> bytes:
        """T, once the other side's message was taken (specs/protocol.md §6)."""
        return self._transcript


class ProgrammerPairing(_Side):
    """The programmer's side: :meth:`start`, then :meth:`confirm` with the reply, then :meth:`finish`."""

    def __init__(self, pin: str, serial: str, role: Role, entropy: Entropy = os.urandom) -> None:
        super().__init__(SPAKE2_A(pin.encode(), idA=PROGRAMMER_ID, idB=serial.encode(), entropy_f=entropy))
        self.serial, self.role = serial, role
        self._a = b""

    def start(self) -> m.PairStart:
        self._a = bytes(self._spake.start())
        return m.PairStart(role=self.role, spake2=self._a)

    def confirm(self, reply: m.PairReply) -> m.PairConfirm:
        try:
            shared = self._spake.finish(reply.spake2)
        except Exception as exc:  # spake2 raises its own errors for a malformed element
            raise PairingError(f"the pump's SPAKE2 message is not valid: {exc}") from None
        self._keys = pairing_keys(shared, reply.salt)
        self._transcript = _transcript(self.serial, self.role, self._a, reply.spake2, reply.salt)
        return m.PairConfirm(confirm=_mac(self._keys.programmer_confirm, self._transcript))

    def finish(self, result: m.PairResult) -> PairedKey:
        if self._keys is None:
            raise PairingError("no PairReply was confirmed")
        if not hmac.compare_digest(result.confirm, _mac(self._keys.pump_confirm, self._transcript)):
            raise PairingError("the pump's confirmation does not verify: not the pump that showed the PIN")
        return PairedKey(result.key_id, self.role, self._keys.long_term)


class PumpPairing(_Side):
    """The pump's side: :meth:`reply` to PairStart, then :meth:`result` for PairConfirm."""

    def __init__(self, pin: str, serial: str, entropy: Entropy = os.urandom) -> None:
        super().__init__(SPAKE2_B(pin.encode(), idA=PROGRAMMER_ID, idB=serial.encode(), entropy_f=entropy))
        self.serial = serial
        self._entropy = entropy
        self._role = Role.PATIENT

    def reply(self, start: m.PairStart) -> m.PairReply:
        b = bytes(self._spake.start())
        try:
            shared = self._spake.finish(start.spake2)
        except Exception as exc:  # spake2 raises its own errors for a malformed element
            raise PairingError(f"the programmer's SPAKE2 message is not valid: {exc}") from None
        salt = self._entropy(16)
        self._keys = pairing_keys(shared, salt)
        self._role = start.role
        self._transcript = _transcript(self.serial, start.role, start.spake2, b, salt)
        return m.PairReply(spake2=b, salt=salt)

    def result(self, confirm: m.PairConfirm, key_id: int) -> tuple[m.PairResult, PairedKey]:
        """The reply and the key to keep; :class:`~itbproto.errors.PairingError` for a wrong PIN."""
        if self._keys is None:
            raise PairingError("no PairStart was answered")
        if not hmac.compare_digest(confirm.confirm, _mac(self._keys.programmer_confirm, self._transcript)):
            raise PairingError("the programmer's confirmation does not verify: wrong PIN")
        reply = m.PairResult(confirm=_mac(self._keys.pump_confirm, self._transcript), key_id=key_id)
        return reply, PairedKey(key_id, self._role, self._keys.long_term)


@dataclass
class PinGuard:
    """Slows PIN guessing: ``free`` wrong PINs, then each wrong one locks pairing for twice as long as the
    last (from ``base_s``, at most ``max_s``); a right one resets it. Time is a parameter."""

    free: int = 3
    base_s: int = 30
    max_s: int = 86_400
    failures: int = 0
    locked_until: int = 0

    def allowed(self, now: int) -> bool:
        return now >= self.locked_until

    def failed(self, now: int) -> None:
        self.failures += 1
        if self.failures > self.free:
            self.locked_until = now + min(self.max_s, self.base_s << (self.failures - self.free - 1))

    def succeeded(self) -> None:
        self.failures, self.locked_until = 0, 0
