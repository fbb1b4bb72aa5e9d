"""The emulator's crash-safe store: the pump's state, its event log and the delivery ledger in SQLite.

WAL mode; every change the pump acknowledges is one transaction, committed before its reply leaves
(:meth:`Store.save`). After ``kill -9`` at any moment a restart finds every acknowledged change and every log
entry, and the transaction memory that keeps retries at most once: a commit is in the operating system's
hands before it returns (``synchronous=NORMAL``). ``fsync=True`` (``itbemu serve --fsync``) also keeps it
through a power cut or a crash of the host, at a disk flush per change (``synchronous=FULL``: a commit
took 180 µs instead of 17 on a virtual disk; bench/bench_crash.py measures both). A save writes what
changed: the state (unchanged parts are not converted again:
:class:`~itbproto.core.machines.pump.snapshot.Dumper`), new log entries and ledger rows, and the policy and
hardware notes only when they differ from what the store holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itbproto.core.machines.pump import DeviceState, snapshot
from itbproto.core.therapy import Flow
from itbproto.core.wire.enums import EventCode
from itbproto.core.wire.messages import EventRecord

__all__ = ["FORMAT", "Saved", "Store"]

FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log (
    idx INTEGER PRIMARY KEY, at INTEGER NOT NULL, code INTEGER NOT NULL, txn INTEGER NOT NULL,
    value INTEGER NOT NULL, detail TEXT NOT NULL, stranger INTEGER NOT NULL DEFAULT 0,
    facts TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY, start INTEGER NOT NULL, end INTEGER NOT NULL,
    rate_ul_day INTEGER NOT NULL, conc_ug_ml INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Saved:
    """What a store holds: the pump's state, its newest log entries (``strangers``: the indices of those
    links without a session caused), the emulator's own hardware notes."""

    state: DeviceState
    log: tuple[EventRecord, ...]
    hardware: dict[str, Any]
    strangers: frozenset[int] = frozenset()


class Store:
    """One emulated pump's data in one SQLite file."""

    def __init__(self, path: str | Path, *, create: bool = True, fsync: bool = False) -> None:
        """Open the store at ``path`` (a new one is made unless ``create`` is False; ``fsync``: each change
        flushed to the disk, see the module docstring); ValueError, in one line, when it cannot be: a missing
        directory, a directory, a file that is not a store."""
        self.path = Path(path)
        self._dump = snapshot.Dumper()
        #: transactions this Store committed (each save is one)
        self.commits = 0
        self._meta_written: dict[str, str] = {}
        if not create and not self.path.is_file():
            raise ValueError(f"{self.path}: no store there")
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a directory, not a store file")
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ValueError(f"{self.path}: cannot open it as a store ({exc})") from None
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(log)")}
        if "stranger" not in columns:  # a store from before strangers had their own ring: none marked
            self._db.execute("ALTER TABLE log ADD COLUMN stranger INTEGER NOT NULL DEFAULT 0")
        if "facts" not in columns:  # a store from before the export (specs/export.md): no facts saved
            self._db.execute("ALTER TABLE log ADD COLUMN facts TEXT NOT NULL DEFAULT '{}'")
        found = self._meta("format")
        if found is None:
            self._db.execute("INSERT INTO meta VALUES ('format', ?)", (str(FORMAT),))
        elif found != str(FORMAT):
            raise ValueError(f"{self.path}: store format {found}, this emulator reads {FORMAT}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def load(self, log_entries: int, stranger_entries: int = 0) -> Saved | None:
        """The saved pump (None for a new store), with its newest ``log_entries`` log entries and the
        newest ``stranger_entries`` of those strangers caused (the log's two rings)."""
        row = self._db.execute("SELECT json FROM state WHERE id = 1").fetchone()
        if row is None:
            return None
        rows = [
            *self._newest(log_entries, stranger=False),
            *self._newest(stranger_entries, stranger=True),
        ]
        rows.sort(key=lambda r: r[0])
        log = tuple(
            EventRecord(index=i, at=at, code=EventCode(code), txn=txn, value=value, detail=detail)
            for i, at, code, txn, value, detail, _ in rows
        )
        strangers = frozenset(r[0] for r in rows if r[-1])
        state = snapshot.load(json.loads(row[0]))
        return Saved(state, log, json.loads(self._meta("hardware") or "{}"), strangers)

    def _newest(self, count: int, *, stranger: bool) -> list[tuple[Any, ...]]:
        return self._db.execute(
            "SELECT idx, at, code, txn, value, detail, stranger FROM log WHERE stranger = ?"
            " ORDER BY idx DESC LIMIT ?",
            (int(stranger), count),
        ).fetchall()

    def save(
        self,
        state: DeviceState,
        log: Sequence[EventRecord] = (),
        ledger: Sequence[Flow] = (),
        hardware: dict[str, Any] | None = None,
        *,
        strangers: Collection[int] = frozenset(),
        facts: Mapping[int, Mapping[str, Any]] | None = None,
        policy: Mapping[str, int] | None = None,
    ) -> None:
        """One change, in one transaction: the new state, the log entries (``strangers``: the indices of
        those links without a session caused; ``facts``: what an auditor needs about them, by index) and
        ledger rows it added; ``policy``, the safety policy's parameters the pump runs with. The first state
        a store gets is kept as the start of its records (what the export's header gives)."""
        facts = facts or {}
        db = self._db
        state_json = json.dumps(self._dump(state), separators=(",", ":"))
        meta = {
            "policy": None if policy is None else json.dumps(dict(policy), sort_keys=True),
            "hardware": None if hardware is None else json.dumps(hardware, sort_keys=True),
        }
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM state WHERE id = 1").fetchone() is None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('start', ?)", (state_json,))
            for key, value in meta.items():
                if value is not None and self._meta_written.get(key) != value:
                    db.execute(
                        "INSERT INTO meta VALUES (?, ?)"
                        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (key, value),
                    )
            db.execute(
                "INSERT INTO state VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                (state_json,),
            )
            db.executemany(
                "INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        *(e.index, e.at, int(e.code), e.txn, e.value, e.detail, e.index in strangers),
                        json.dumps(facts.get(e.index, {}), separators=(",", ":")),
                    )
                    for e in log
                ],
            )
            db.executemany(
                "INSERT INTO ledger (start, end, rate_ul_day, conc_ug_ml) VALUES (?, ?, ?, ?)",
                [(f.start, f.end, f.rate_ul_day, f.conc_ug_ml) for f in ledger],
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.commits += 1
        self._meta_written.update({key: value for key, value in meta.items() if value is not None})

    def log(self) -> Iterator[EventRecord]:
        """Every log entry ever saved, oldest first."""
        for i, at, code, txn, value, detail in self._db.execute(
            "SELECT idx, at, code, txn, value, detail FROM log ORDER BY idx"
        ):
            yield EventRecord(index=i, at=at, code=EventCode(code), txn=txn, value=value, detail=detail)

    def entries(self) -> Iterator[tuple[EventRecord, bool, dict[str, Any]]]:
        """Every log entry ever saved, oldest first, with whether a stranger caused it and its facts."""
        for i, at, code, txn, value, detail, stranger, facts in self._db.execute(
            "SELECT idx, at, code, txn, value, detail, stranger, facts FROM log ORDER BY idx"
        ):
            record = EventRecord(index=i, at=at, code=EventCode(code), txn=txn, value=value, detail=detail)
            yield record, bool(stranger), json.loads(facts)

    def start(self) -> dict[str, Any] | None:
        """The first state this store got (a snapshot's JSON), None in a store from before it was kept."""
        found = self._meta("start")
        return None if found is None else dict(json.loads(found))

    def policy(self) -> dict[str, int] | None:
        """The safety policy's parameters the pump last ran with (None: a store from before they were)."""
        found = self._meta("policy")
        return None if found is None else dict(json.loads(found))

    def ledger(self) -> Iterator[Flow]:
        """Every delivery segment ever saved (drug at the catheter tip), in time order."""
        for start, end, rate, conc in self._db.execute(
            "SELECT start, end, rate_ul_day, conc_ug_ml FROM ledger ORDER BY id"
        ):
            yield Flow(start, end, rate, conc)
