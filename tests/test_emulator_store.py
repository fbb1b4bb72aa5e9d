"""The emulator's store: a pump saved and opened again is the same pump, and a process killed with SIGKILL
at random moments, hundreds of times, loses no acknowledged change, no log entry and no retry's meaning."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from factories import POLICY, T0, programmed
from itbemu import Emulator, Store
from itbemu.crash import crash_test, threshold_for
from itbproto.machines.pump import snapshot


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
