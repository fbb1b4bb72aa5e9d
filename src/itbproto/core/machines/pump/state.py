"""The pump's whole mutable state as one value, and the per-link session it answers within.

:class:`DeviceState` is everything a pump must keep across a restart: the
therapy (prescription, staged programming, refill, reservoir, alarms, ids) and
the transaction memory that makes commands at-most-once. The emulator saves and
restores it exactly (:mod:`itbproto.core.machines.pump.snapshot`). The event log is
kept beside it (:class:`~itbproto.core.machines.pump.log.EventLog`), append-only.

A :class:`Session` belongs to one link (one programmer's connection), not to
the pump: several programmers may be connected at once, each in its own role;
sessions end with their link and do not survive a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from itbproto.core.therapy.state import TherapyState
from itbproto.core.wire.enums import Role
from itbproto.core.wire.frame import MAX_FRAME
from itbproto.core.wire.message import Message
from itbproto.core.wire.messages import AlarmNotify

__all__ = ["CLOSED", "MAX_TXN_STEP", "TXN_MEMORY", "Answer", "DeviceState", "Outcome", "Session", "StoredKey"]

#: how many answered commands the pump remembers for retries
TXN_MEMORY = 16
#: how far ahead of ``last_txn`` a new transaction id may jump (the id space must not run out)
MAX_TXN_STEP = 65_536


@dataclass(frozen=True, slots=True)
class Outcome:
    """A command the pump answered: the identical request with the same id gets the same reply."""

    txn: int
    request: Message
    reply: Message


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A programmer's key, kept since pairing: its id, the role it carries, the long-term key."""

    key_id: int
    role: Role
    long_term: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceState:
    """Everything the pump keeps; saved and restored exactly."""

    serial: str
    therapy: TherapyState
    last_txn: int = 0  # the highest command transaction id answered
    outcomes: tuple[Outcome, ...] = ()  # the last TXN_MEMORY commands answered, oldest first
    keys: tuple[StoredKey, ...] = ()  # the paired programmers
    pin_failures: int = 0  # wrong PINs in a row
    pin_locked_until: int = 0  # no pairing before this device time

    def key(self, key_id: int) -> StoredKey | None:
        return next((k for k in self.keys if k.key_id == key_id), None)

    @property
    def next_key_id(self) -> int:
        """The id the next paired programmer's key gets."""
        return max((k.key_id for k in self.keys), default=0) + 1

    def outcome(self, txn: int) -> Outcome | None:
        return next((o for o in self.outcomes if o.txn == txn), None)


@dataclass(frozen=True, slots=True)
class Session:
    """One link's session: the role it opened with Hello (None: no session) and its frame limit."""

    role: Role | None = None
    max_frame: int = MAX_FRAME
    client: str = ""


CLOSED = Session()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the pump says to one request: the reply, the link's session after it, and the alarms
    raised while time moved to the request (for every link)."""

    reply: Message
    session: Session
    notifications: tuple[AlarmNotify, ...] = ()
    #: the reply is a remembered command's, sent again (§5 step 5): nothing was applied
    repeated: bool = False
