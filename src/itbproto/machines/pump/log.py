"""The pump's event log: append-only, numbered from 0, read page by page over the protocol."""

from __future__ import annotations

from itbproto.wire.enums import EventCode
from itbproto.wire.fields import I32
from itbproto.wire.messages import MAX_LOG_DETAIL, EventRecord

__all__ = ["EVENT_LOG_LIMIT", "EventLog"]

#: entries kept in memory; older ones are only in the emulator's store
EVENT_LOG_LIMIT = 10_000


class EventLog:
    """Every programming change, bolus, refill, alarm, fault and refusal, with time and transaction."""

    def __init__(self, entries: tuple[EventRecord, ...] = (), *, limit: int = EVENT_LOG_LIMIT) -> None:
        self.limit = limit
        self._entries = list(entries[-limit:])
        self.total = entries[-1].index + 1 if entries else 0

    def append(self, at: int, code: EventCode, txn: int = 0, value: int = 0, detail: str = "") -> EventRecord:
        """Record one event; ``value`` (µL, µL/day, an id or a code) is clamped to the wire's i32 and
        ``detail`` cut to what an entry carries, so that every entry can be read over the wire."""
        value, detail = min(max(value, I32.lo), I32.hi), detail[:MAX_LOG_DETAIL]
        record = EventRecord(index=self.total, at=at, code=code, txn=txn, value=value, detail=detail)
        self._entries.append(record)
        self.total += 1
        del self._entries[: -self.limit]
        return record

    def page(self, first: int, count: int) -> tuple[EventRecord, ...]:
        """Up to ``count`` entries from index ``first`` (from the oldest kept, if that is later)."""
        oldest = self.total - len(self._entries)
        start = max(first, oldest) - oldest
        return tuple(self._entries[start : start + count])

    def since(self, index: int) -> tuple[EventRecord, ...]:
        """The entries from ``index`` on (what a store has not saved yet)."""
        return self.page(index, self.total)
