"""The pump's one state value (saved and restored exactly), its handler table, and its mode table as law."""

from __future__ import annotations

import json

import pytest

from factories import POLICY, T0, prescription, programmed
from itbproto.core.machines import PumpMachine
from itbproto.core.machines.pump import EventLog, snapshot
from itbproto.core.machines.pump.handlers import HANDLERS
from itbproto.core.safety import evaluate
from itbproto.core.wire import (
    CATALOG,
    BolusKind,
    BolusStart,
    CommitPrescription,
    ErrorCode,
    EventCode,
    Kind,
    Message,
    Nack,
    PrescriptionStaged,
    RefillBegin,
    SetRate,
    StagePrescription,
    Suspend,
)
from itbproto.errors import SpecError
from machines_link import CLINICIAN, answer, new_pump


def test_every_request_has_exactly_one_handler() -> None:
    requests = {cls for cls in CATALOG.values() if cls.KIND is Kind.REQUEST}
    assert set(HANDLERS) == requests


def test_reads_and_open_requests_bypass_the_engine_and_commands_do_not() -> None:
    for cls, handler in HANDLERS.items():
        if cls.EFFECT is not None and cls.EFFECT.value == "command":
            assert handler.engine, cls.__name__


def _script() -> list[tuple[Message, int, int]]:
    return [
        (StagePrescription(prescription=prescription(rate=880)), 10, T0),
        (SetRate(rate_ul_day=840), 11, T0 + 3_600),
        (BolusStart(kind=BolusKind.CLINICIAN, volume_ul=40, duration_s=600), 12, T0 + 7_200),
        (Suspend(duration_s=1_800), 13, T0 + 9_000),
        (SetRate(rate_ul_day=800), 14, T0 + 20_000),
    ]


def test_a_restored_pump_carries_on_exactly_as_the_original() -> None:
    original = new_pump(programmed())
    script = _script()
    for request, txn, now in script[:3]:
        original.handle(request, txn, now, CLINICIAN)
    text = json.dumps(snapshot.dump(original.state))
    restored = PumpMachine(snapshot.load(json.loads(text)), POLICY, log=EventLog(original.log.since(0)))
    assert restored.state == original.state
    for request, txn, now in script[3:]:
        assert restored.handle(request, txn, now, CLINICIAN) == original.handle(request, txn, now, CLINICIAN)
        assert restored.state == original.state
    # and at-most-once survives the restart: a retry of a command answered before it gets the stored reply
    before = restored.state
    assert answer(restored, *script[2][:2]) == answer(original, *script[2][:2])
    assert restored.state == before
    assert restored.log.page(0, 1000) == original.log.page(0, 1000)


@pytest.mark.parametrize(
    "data", [None, {}, {"format": 2, "state": {}}, {"format": 1, "state": {"serial": 3}}, {"format": 1}]
)
def test_a_snapshot_that_is_not_one_is_refused(data: object) -> None:
    with pytest.raises(SpecError):
        snapshot.load(data)  # type: ignore[arg-type]


def test_the_mode_table_is_the_law() -> None:
    """The therapy model would commit a prescription during a refill; the table has no such move: the pump
    refuses."""
    pump = new_pump(programmed())
    answer(pump, RefillBegin(), 1, T0)
    staged = answer(pump, StagePrescription(prescription=prescription(rate=840)), 2, T0 + 60)
    assert isinstance(staged, PrescriptionStaged)
    commit = CommitPrescription(stage_id=staged.stage_id, digest=staged.digest)
    assert evaluate(commit, pump.therapy, POLICY).accepted  # the therapy model alone would take it
    reply = answer(pump, commit, 3, T0 + 60)
    assert isinstance(reply, Nack)
    assert reply.code is ErrorCode.WRONG_STATE
    assert "commit" in reply.detail
    assert pump.mode == "refill_begun"


def test_the_event_log_pages_and_keeps_its_numbering() -> None:
    log = EventLog(limit=3)
    for i in range(5):
        log.append(T0 + i, EventCode.BOOT, i)
    assert log.total == 5
    assert [e.index for e in log.page(0, 10)] == [2, 3, 4]
    assert [e.index for e in log.since(3)] == [3, 4]
    assert EventLog(log.page(0, 10)).total == 5
