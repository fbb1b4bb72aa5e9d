"""The pump (device side), sans-IO: its state, its mode table, its handlers, its reports."""

from itbproto.core.machines.pump.log import EVENT_LOG_LIMIT, STRANGER_LOG_LIMIT, EventLog
from itbproto.core.machines.pump.machine import REFILL_TIMEOUT_S, PumpMachine
from itbproto.core.machines.pump.state import CLOSED, Answer, DeviceState, Outcome, Session, StoredKey
from itbproto.core.machines.pump.table import PUMP, mode_of

__all__ = [
    "CLOSED",
    "EVENT_LOG_LIMIT",
    "PUMP",
    "REFILL_TIMEOUT_S",
    "STRANGER_LOG_LIMIT",
    "Answer",
    "DeviceState",
    "EventLog",
    "Outcome",
    "PumpMachine",
    "Session",
    "StoredKey",
    "mode_of",
]
