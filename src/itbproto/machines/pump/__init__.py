"""The pump (device side), sans-IO: its state, its mode table, its handlers, its reports."""

from itbproto.machines.pump.log import EventLog
from itbproto.machines.pump.machine import REFILL_TIMEOUT_S, PumpMachine
from itbproto.machines.pump.state import CLOSED, Answer, DeviceState, Outcome, Session, StoredKey
from itbproto.machines.pump.table import PUMP, mode_of

__all__ = [
    "CLOSED",
    "PUMP",
    "REFILL_TIMEOUT_S",
    "Answer",
    "DeviceState",
    "EventLog",
    "Outcome",
    "PumpMachine",
    "Session",
    "StoredKey",
    "mode_of",
]
