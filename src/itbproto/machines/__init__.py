"""State machines (transitions), sans-IO: the pump's behaviour and the programmer's session.

Diagrams generated from the same tables live in specs/diagrams/.
"""

from itbproto.machines.alarm import ALARM, Alarm
from itbproto.machines.definition import Definition
from itbproto.machines.pump import PUMP, PumpMachine, state_of
from itbproto.machines.session import (
    SESSION,
    AlarmAnnounced,
    Event,
    Outgoing,
    ProgrammingSession,
    Refused,
    Replied,
    Resolved,
    Summary,
    Verified,
)

__all__ = [
    "ALARM",
    "PUMP",
    "SESSION",
    "Alarm",
    "AlarmAnnounced",
    "Definition",
    "Event",
    "Outgoing",
    "ProgrammingSession",
    "PumpMachine",
    "Refused",
    "Replied",
    "Resolved",
    "Summary",
    "Verified",
    "state_of",
]

DEFINITIONS = (PUMP, SESSION, ALARM)
