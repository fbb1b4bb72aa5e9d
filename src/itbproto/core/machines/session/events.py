"""What a programming session reports to the app, and the summary a user confirms."""

from __future__ import annotations

from dataclasses import dataclass

from itbproto.core.wire import messages as m
from itbproto.core.wire.message import Message
from itbproto.errors import ProtocolError

__all__ = [
    "AlarmAnnounced",
    "Ignored",
    "Mismatch",
    "Refused",
    "Replied",
    "Resolved",
    "SessionEvent",
    "Summary",
    "Verified",
    "WrongDevice",
]


class SessionEvent:
    """Base of what :meth:`ProgrammingSession.receive` reports."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class Replied(SessionEvent):
    """The pump answered ``request``."""

    reply: Message
    request: Message


@dataclass(frozen=True, slots=True)
class Refused(SessionEvent):
    """The pump refused ``request``; nothing changed there."""

    nack: m.Nack
    request: Message


@dataclass(frozen=True, slots=True)
class Verified(SessionEvent):
    """The prescription read back equals the one the user confirmed."""

    prescription: m.Prescription


@dataclass(frozen=True, slots=True)
class Mismatch(SessionEvent):
    """The prescription read back is not the one the user confirmed: show both, act on it."""

    confirmed: m.Prescription
    found: m.Prescription


@dataclass(frozen=True, slots=True)
class Resolved(SessionEvent):
    """The fate of a delivery change whose reply was lost.

    ``applied`` is True or False when the pump said so (``reply`` is its answer, if it
    was read again); None when the pump no longer remembers the transaction (another
    programmer sent many commands since): read its event log.
    """

    request: Message
    applied: bool | None
    reply: Message | None = None


@dataclass(frozen=True, slots=True)
class WrongDevice(SessionEvent):
    """The pump is not one this session can check commands for (``reason`` says why); the session stays
    unopened: close the link."""

    device: m.DeviceInfo
    reason: str


@dataclass(frozen=True, slots=True)
class AlarmAnnounced(SessionEvent):
    """Annunciate this alarm to the user (again, for a critical alarm not yet acknowledged)."""

    alarm: m.AlarmRecord


@dataclass(frozen=True, slots=True)
class Ignored(SessionEvent):
    """The pump sent something this session cannot take (malformed, stale, not an answer); nothing
    changed here."""

    error: ProtocolError


@dataclass(frozen=True, slots=True)
class Summary:
    """What the user must confirm: old and new settings side by side, as the pump computed them."""

    old: m.Prescription | None
    new: m.Prescription
    daily_dose_ng: int
    stage_id: int
    digest: int
    acknowledge: tuple[str, ...] = ()  # hazards the commit must acknowledge (the pump said so)
