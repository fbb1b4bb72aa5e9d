"""The pump's event log: append-only, numbered from 0, read page by page over the protocol.

What strangers cause (entries from a link without a session: its refused requests, its dropped frames, their
totals) is kept in a ring of its own, so no amount of it can push out what a clinician and an auditor need
(specs/protocol.md §8): the pump keeps the newest :data:`EVENT_LOG_LIMIT` of the other entries and the newest
:data:`STRANGER_LOG_LIMIT` of the strangers'. Both share one numbering; a page merges them.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from collections.abc import Iterable
from itertools import islice

from itbproto.core.wire.enums import EventCode
from itbproto.core.wire.fields import I32
from itbproto.core.wire.messages import MAX_LOG_DETAIL, EventRecord

__all__ = ["EVENT_LOG_LIMIT", "STRANGER_LOG_LIMIT", "EventLog"]

#: entries kept readable (strangers' not counted); older ones are only in the emulator's store
EVENT_LOG_LIMIT = 10_000
#: entries caused by links without a session kept readable, in their own ring
STRANGER_LOG_LIMIT = 1_000


class EventLog:
    """Every programming change, bolus, refill, alarm, fault and refusal, with time and transaction."""

    def __init__(
        self,
        entries: Iterable[EventRecord] = (),
        *,
        strangers: Iterable[int] = (),
        limit: int = EVENT_LOG_LIMIT,
        stranger_limit: int = STRANGER_LOG_LIMIT,
    ) -> None:
        """``entries`` oldest first; ``strangers`` the indices among them that strangers caused."""
        self.limit, self.stranger_limit = limit, stranger_limit
        marked = set(strangers)
        entries = list(entries)
        self._own = [e for e in entries if e.index not in marked][-limit:] if limit else []
        self._strangers = (
            [e for e in entries if e.index in marked][-stranger_limit:] if stranger_limit else []
        )
        self.total = entries[-1].index + 1 if entries else 0

    @property
    def strangers(self) -> frozenset[int]:
        """The indices of the strangers' entries still kept."""
        return self.strangers_since(0)

    def own_since(self, index: int) -> bool:
        """Whether an entry not a stranger's was written at ``index`` or later."""
        return bool(self._own) and self._own[-1].index >= index

    def strangers_since(self, index: int) -> frozenset[int]:
        """The indices of the strangers' entries from ``index`` on."""
        ring = self._strangers
        return frozenset(e.index for e in ring[bisect_left(ring, index, key=_index) :])

    def append(
        self,
        at: int,
        code: EventCode,
        txn: int = 0,
        value: int = 0,
        detail: str = "",
        *,
        stranger: bool = False,
    ) -> EventRecord:
        """Record one event (``stranger``: caused by a link without a session); ``value`` (µL, µL/day, an
        id or a code) is clamped to the wire's i32 and ``detail`` cut to what an entry carries, so that
        every entry can be read over the wire."""
        value, detail = min(max(value, I32.lo), I32.hi), detail[:MAX_LOG_DETAIL]
        record = EventRecord(index=self.total, at=at, code=code, txn=txn, value=value, detail=detail)
        ring, limit = (self._strangers, self.stranger_limit) if stranger else (self._own, self.limit)
        ring.append(record)
        self.total += 1
        if len(ring) > limit:
            del ring[: len(ring) - limit]
        return record

    def page(self, first: int, count: int) -> tuple[EventRecord, ...]:
        """Up to ``count`` entries from index ``first`` on (the oldest kept, if that is later)."""
        parts = (
            map(ring.__getitem__, range(bisect_left(ring, first, key=_index), len(ring)))
            for ring in (self._own, self._strangers)
        )
        return tuple(islice(heapq.merge(*parts, key=_index), count))

    def since(self, index: int) -> tuple[EventRecord, ...]:
        """The entries from ``index`` on (what a store has not saved yet)."""
        return self.page(index, self.total)


def _index(record: EventRecord) -> int:
    return record.index
