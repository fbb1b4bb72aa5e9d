"""State machines, sans-IO: the pump's behaviour (device side) and the programmer's session.

Each machine is a table (:class:`Definition`) that drives its runtime and its
diagram in specs/diagrams/.
"""

from itbproto.core.machines.alarm import ALARM
from itbproto.core.machines.definition import Definition, StateMachine
from itbproto.core.machines.pump import (
    CLOSED,
    PUMP,
    Answer,
    DeviceState,
    EventLog,
    PumpMachine,
    Session,
    mode_of,
)
from itbproto.core.machines.session import (
    SESSION,
    AlarmAnnounced,
    Ignored,
    Mismatch,
    ProgrammingSession,
    PumpView,
    Refused,
    Replied,
    Resolved,
    SessionEvent,
    Summary,
    Verified,
)

__all__ = [
    "ALARM",
    "CLOSED",
    "PUMP",
    "SESSION",
    "AlarmAnnounced",
    "Answer",
    "Definition",
    "DeviceState",
    "EventLog",
    "Ignored",
    "Mismatch",
    "ProgrammingSession",
    "PumpMachine",
    "PumpView",
    "Refused",
    "Replied",
    "Resolved",
    "Session",
    "SessionEvent",
    "StateMachine",
    "Summary",
    "Verified",
    "mode_of",
]

DEFINITIONS = (PUMP, SESSION, ALARM)
