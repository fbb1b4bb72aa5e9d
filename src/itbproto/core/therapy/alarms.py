"""The life of one alarm, kept in its wire record: sounding, silenced, acknowledged.

The record says which state an alarm is in (:func:`alarm_state`); there is no
other copy. A non-critical alarm that is acknowledged stays quiet until its
condition clears. A critical alarm is never quiet for long: acknowledging it
only silences it for the re-annunciation period, and a silence of any alarm
ends with it sounding again, until its condition clears (the pump removes the
record then). The legal moves are drawn in specs/diagrams/alarm.mmd.
"""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.wire.enums import AlarmCode, Severity
from itbproto.core.wire.messages import AlarmRecord, AlarmThresholds
from itbproto.errors import UnknownIdError

__all__ = ["SEVERITY", "alarm_state", "quiet", "sound_again"]

SEVERITY = {
    AlarmCode.LOW_RESERVOIR: Severity.NON_CRITICAL,
    AlarmCode.EMPTY_RESERVOIR: Severity.CRITICAL,
    AlarmCode.BATTERY_ERI: Severity.NON_CRITICAL,
    AlarmCode.BATTERY_EOS: Severity.CRITICAL,
    AlarmCode.MOTOR_STALL: Severity.CRITICAL,
    AlarmCode.DELIVERY_STOPPED: Severity.NON_CRITICAL,
    AlarmCode.DRUG_EXPIRED: Severity.NON_CRITICAL,
}


def alarm_state(record: AlarmRecord) -> str:
    """``sounding``, ``silenced`` (until ``silenced_until``) or ``acknowledged`` (quiet until cleared)."""
    if record.silenced_until:
        return "silenced"
    return "acknowledged" if record.acknowledged else "sounding"


def quiet(
    alarms: tuple[AlarmRecord, ...], alarm_id: int, now: int, until: int | None, thresholds: AlarmThresholds
) -> tuple[AlarmRecord, ...]:
    """The alarms after the user acknowledged (``until`` None) or silenced (until ``until``) one."""
    if all(a.alarm_id != alarm_id for a in alarms):
        raise UnknownIdError(f"no active alarm {alarm_id}")

    def after(a: AlarmRecord) -> AlarmRecord:
        nonlocal until
        if until is None:  # acknowledged: a critical alarm is only silenced, until it must sound again
            until = now + thresholds.reannunciate_s if a.severity is Severity.CRITICAL else 0
        return replace(a, acknowledged=True, silenced_until=until)

    return tuple(after(a) if a.alarm_id == alarm_id else a for a in alarms)


def sound_again(record: AlarmRecord) -> AlarmRecord:
    """A silence that ran out: the alarm sounds and waits to be acknowledged again."""
    return replace(record, silenced_until=0, acknowledged=False)
