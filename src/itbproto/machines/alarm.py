"""The life of one alarm: sounding → silenced / acknowledged → cleared; critical alarms come back.

A non-critical alarm that is acknowledged stays quiet until its condition clears.
A critical alarm is never quiet for long: acknowledging or silencing it only
silences it until the re-annunciation period (at most) has passed, and then it
sounds again, until its condition clears.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from itbproto.machines.definition import Definition, fire
from itbproto.wire.enums import Severity
from itbproto.wire.messages import AlarmRecord

__all__ = ["ALARM", "Alarm"]

_QUIET = ["sounding", "silenced"]

ALARM = Definition(
    name="alarm",
    states=("sounding", "silenced", "acknowledged", "cleared"),
    transitions=(
        {"trigger": "acknowledge", "source": _QUIET, "dest": "silenced", "conditions": "critical"},
        {"trigger": "acknowledge", "source": _QUIET, "dest": "acknowledged", "unless": "critical"},
        {"trigger": "silence", "source": _QUIET, "dest": "silenced"},
        {"trigger": "reannunciate", "source": "silenced", "dest": "sounding"},
        {"trigger": "clear", "source": ["sounding", "silenced", "acknowledged"], "dest": "cleared"},
    ),
    initial="sounding",
)


class Alarm:
    """One raised alarm; ``record`` is its wire form."""

    state: str

    def __init__(self, record: AlarmRecord) -> None:
        self._record = record
        self.machine = ALARM.bind(self)

    # trigger stubs, replaced by the machine (model_override=True)
    def acknowledge(self, *args: Any) -> bool:
        raise NotImplementedError

    def silence(self, *args: Any) -> bool:
        raise NotImplementedError

    def reannunciate(self, *args: Any) -> bool:
        raise NotImplementedError

    def clear(self, *args: Any) -> bool:
        raise NotImplementedError

    def critical(self) -> bool:
        return self._record.severity is Severity.CRITICAL

    @property
    def record(self) -> AlarmRecord:
        return self._record

    @property
    def alarm_id(self) -> int:
        return self._record.alarm_id

    def quiet_until(self, until: int, trigger: str) -> None:
        """Acknowledge or silence until device time ``until`` (the rules bound it for critical alarms)."""
        fire(self, ALARM, trigger)
        if self.state == "silenced":
            self._record = replace(self._record, silenced_until=until, acknowledged=True)
        else:
            self._record = replace(self._record, silenced_until=0, acknowledged=True)

    def due(self, now: int) -> bool:
        """True when a silence has run out and the alarm must sound again."""
        return self.state == "silenced" and now >= self._record.silenced_until

    def sound_again(self) -> None:
        fire(self, ALARM, "reannunciate")
        self._record = replace(self._record, silenced_until=0, acknowledged=False)
