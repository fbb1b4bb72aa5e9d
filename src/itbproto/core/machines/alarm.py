"""The alarm table: sounding → silenced / acknowledged → cleared; critical alarms come back.

An alarm's state lives in its wire record (:func:`itbproto.core.therapy.alarms.alarm_state`);
this table is the law the pump checks every move against, and the diagram
(specs/diagrams/alarm.mmd). Acknowledging a critical alarm lands in ``silenced`` (for
the re-annunciation period), a non-critical one in ``acknowledged`` (where acknowledging again is accepted
and changes nothing: a user who retries is not refused).
"""

from __future__ import annotations

from itbproto.core.machines.definition import Definition

__all__ = ["ALARM"]

_QUIET = ["sounding", "silenced"]

ALARM = Definition(
    name="alarm",
    states=("sounding", "silenced", "acknowledged", "cleared"),
    transitions=(
        {"trigger": "acknowledge", "source": _QUIET, "dest": "silenced", "conditions": "critical"},
        {"trigger": "acknowledge", "source": _QUIET, "dest": "acknowledged", "unless": "critical"},
        # acknowledging again changes nothing and is not an error: users retry
        {"trigger": "acknowledge", "source": "acknowledged", "dest": "acknowledged"},
        {"trigger": "silence", "source": _QUIET, "dest": "silenced"},
        {"trigger": "reannunciate", "source": "silenced", "dest": "sounding"},
        {"trigger": "clear", "source": ["sounding", "silenced", "acknowledged"], "dest": "cleared"},
    ),
    initial="sounding",
)
