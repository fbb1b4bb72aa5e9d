"""The emulator's store: a pump saved and opened again is the same pump, and a process killed with SIGKILL
at random moments, hundreds of times, loses no acknowledged change, no log entry and no retry's meaning."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from factories import POLICY, T0, programmed
from itbemu import Emulator, Store
from itbemu.crash import crash_test, threshold_for
from itbproto.core.connection import Connection, Side
from itbproto.core.machines.pump import snapshot
from itbproto.core.wire import Hello, Role, SetThresholds, StatusRequest, decode, encode
from itbproto.core.wire.message import Message


def test_a_saved_pump_opens_as_it_was(tmp_path: Path) -> None:
    with Store(tmp_path / "pump.db") as store:
        emulator = Emulator.create(programmed(), POLICY, serial="EMU-1", store=store)
        emulator.pump.set_motor_stalled(True, T0 + 60)
        emulator.advance_to(T0 + 3_600)
        saved = snapshot.dump(emulator.pump.state)
        log = emulator.pump.log.since(0)
    with Store(tmp_path / "pump.db") as store:
        opened = Emulator.open(store, POLICY)
        assert snapshot.dump(opened.pump.state) == saved
        assert opened.pump.log.since(0) == log
        assert list(store.log()) == list(log)
        assert [f.end for f in store.ledger()][-1] == T0 + 3_600 or opened.therapy.motor_stalled
        with pytest.raises(ValueError, match="already holds a pump"):
            Emulator.create(programmed(), POLICY, serial="EMU-2", store=store)


def test_a_store_of_another_format_is_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "pump.db") as store:
        store._db.execute("UPDATE meta SET value = '0' WHERE key = 'format'")
    with pytest.raises(ValueError, match="store format 0"):
        Store(tmp_path / "pump.db")


@pytest.mark.skipif(sys.platform == "win32", reason="os.fork")
def test_kill_9_at_random_moments_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "pump.db"
    with Store(path) as store:
        Emulator.create(programmed(), POLICY, serial="EMU-KILL", store=store)
    report = crash_test(path, POLICY, kills=200, seed=1, max_delay_s=0.05, min_acks=1)
    assert report.violations == []
    assert report.kills == 200
    assert report.acknowledged >= 200  # each kill came after a command went through, whatever the speed
    # a kill may come after a change was saved and before its Ack was out: stored, never acknowledged
    assert report.acknowledged <= report.applied <= report.acknowledged + report.kills
    assert report.retries_answered == 200  # each kill's last acknowledged command, retried
    with Store(path) as store:
        opened = Emulator.open(store, POLICY)
        assert opened.therapy.thresholds.low_reservoir_ul == threshold_for(opened.pump.state.last_txn)


def _ask(emulator: Emulator, link: int, request: Message, txn: int, seq: int, now: int) -> Message:
    (reply,) = [
        decode(c).message for c in emulator.receive(link, encode(request, txn=txn, seq=seq), now)[link]
    ]
    return reply


def test_reads_write_nothing_and_a_restart_lets_the_same_time_pass(tmp_path: Path) -> None:
    """Status reads hours apart commit nothing; the pump opened from the store as the reads left it (as after
    kill -9) and brought to the same time reports what the running one did; a command commits once."""
    path = tmp_path / "pump.db"
    with Store(path) as store:
        emulator = Emulator.create(programmed(), POLICY, serial="EMU-READ", store=store)
        link = emulator.attach(Connection(Side.PUMP))
        hello = Hello(protocol_version=1, role=Role.CLINICIAN, max_frame=512, client="reads")
        _ask(emulator, link, hello, 1, 0, T0)
        commits = store.commits
        for seq, hours in enumerate((1, 5, 20), start=1):
            report = _ask(emulator, link, StatusRequest(), 1 + seq, seq, T0 + hours * 3_600)
        assert store.commits == commits  # (no alarm came due: nothing logged either)
        with Store(path) as again:
            opened = Emulator.open(again, POLICY)
            opened.advance_to(T0 + 20 * 3_600)
            assert opened.pump.status() == report
        thresholds = emulator.therapy.thresholds
        _ask(emulator, link, SetThresholds(thresholds=thresholds), 9, 4, T0 + 20 * 3_600)
        assert store.commits == commits + 1


def test_the_dumper_gives_what_dump_gives_as_the_state_changes() -> None:
    """What a store writes reuses the unchanged parts of the last dump; it must be the whole state still."""
    emulator, dumper = Emulator.create(programmed(), POLICY, serial="EMU-DUMP"), snapshot.Dumper()
    for hours in (0, 1, 30, 200):
        emulator.pump.set_motor_stalled(hours == 30, T0 + hours * 3_600)
        assert dumper(emulator.pump.state) == snapshot.dump(emulator.pump.state)


@pytest.mark.parametrize(("fsync", "level"), [(False, 1), (True, 2)])
def test_a_store_flushes_each_change_to_the_disk_only_when_asked(
    tmp_path: Path, fsync: bool, level: int
) -> None:
    """WAL with synchronous NORMAL (1) keeps a commit through kill -9; FULL (2) through a power cut too."""
    with Store(tmp_path / "pump.db", fsync=fsync) as store:
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == level
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
