"""The programmer's side of a session, sans-IO: its table, its view of the pump, its events."""

from itbproto.core.machines.session.events import (
    AlarmAnnounced,
    Ignored,
    Mismatch,
    Refused,
    Replied,
    Resolved,
    SessionEvent,
    Summary,
    Verified,
    WrongDevice,
)
from itbproto.core.machines.session.session import ProgrammingSession, Uncertain
from itbproto.core.machines.session.table import SESSION
from itbproto.core.machines.session.view import PumpView

__all__ = [
    "SESSION",
    "AlarmAnnounced",
    "Ignored",
    "Mismatch",
    "ProgrammingSession",
    "PumpView",
    "Refused",
    "Replied",
    "Resolved",
    "SessionEvent",
    "Summary",
    "Uncertain",
    "Verified",
    "WrongDevice",
]
