"""The store's promise, tried the hard way: a real process programs a stored pump and is killed with
SIGKILL at a random moment, again and again; after each kill the store must hold every change the
pump acknowledged, every log entry, and a transaction memory that answers a retry without applying it
twice. The test suite runs hundreds of kills; bench/bench_crash.py runs thousands.

Each cycle forks a child (so it starts in milliseconds, with the library already imported): it opens
the store, opens a session, and sends ``SetThresholds`` commands, each with the next transaction id
and a low-reservoir threshold derived from it; after each acknowledgement it writes the id to a pipe.
The parent kills it after a random delay and checks the store against what was acknowledged.
POSIX only (``os.fork``).
"""

from __future__ import annotations

import os
import random
import signal
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from itbemu.device import Emulator
from itbemu.store import Store
from itbproto.core.connection import Connection, Side
from itbproto.core.safety import SafetyPolicy
from itbproto.core.wire import Ack, EventCode, Hello, Role, SetThresholds, decode, encode
from itbproto.core.wire.message import Message

__all__ = ["CrashReport", "crash_test", "program", "threshold_for"]


def threshold_for(txn: int) -> int:
    """The low-reservoir threshold (µL) the command with transaction ``txn`` sets."""
    return 2_000 + txn % 1_000  # (RES-001: at least 2 mL)


@dataclass
class CrashReport:
    """What a run of kills found."""

    kills: int = 0
    acknowledged: int = 0  # commands whose Ack the killed process received
    applied: int = 0  # commands the store holds as applied (acknowledged or not)
    retries_answered: int = 0  # retries of the last acknowledged command answered from memory
    violations: list[str] = field(default_factory=list)


def _request(emulator: Emulator, txn: int) -> SetThresholds:
    thresholds = replace(emulator.therapy.thresholds, low_reservoir_ul=threshold_for(txn))
    return SetThresholds(thresholds=thresholds)


def _send(emulator: Emulator, link: int, request: Message, txn: int, seq: int) -> Message:
    out = emulator.receive(link, encode(request, txn=txn, seq=seq), emulator.now + 1)
    (reply,) = [decode(chunk).message for chunk in out.get(link, [])]
    return reply


def program(emulator: Emulator, acked: Callable[[int], object], count: int | None = None) -> None:
    """Open a session on a new link and send ``count`` commands (None: until killed); ``acked(txn)`` after
    each acknowledgement."""
    link = emulator.attach(Connection(Side.PUMP))
    _send(emulator, link, Hello(protocol_version=1, role=Role.CLINICIAN, max_frame=512, client="crash"), 1, 0)
    txn, seq = emulator.pump.state.last_txn + 1, 1
    while count is None or seq <= count:
        reply = _send(emulator, link, _request(emulator, txn), txn, seq)
        if isinstance(reply, Ack):
            acked(txn)
        txn, seq = txn + 1, seq + 1


def _child(path: Path, policy: SafetyPolicy, acks: int) -> None:
    """Program the stored pump until killed; write each acknowledged transaction id to ``acks``."""
    program(Emulator.open(Store(path), policy), lambda txn: os.write(acks, txn.to_bytes(4, "big")))


def _applied(store: Store) -> list[int]:
    """The transactions of every threshold change the store's log holds."""
    return [entry.txn for entry in store.log() if entry.code is EventCode.THRESHOLDS_CHANGED]


def _check(path: Path, policy: SafetyPolicy, acked: list[int], report: CrashReport, before: int) -> None:
    with Store(path) as store:
        emulator = Emulator.open(store, policy)
        state, applied = emulator.pump.state, _applied(store)
        entries = [e.index for e in store.log()]
        if entries != list(range(len(entries))):
            report.violations.append(f"log entries missing: {len(entries)} entries, last {entries[-1:]}")
        lost = sorted(set(acked) - set(applied))
        if lost:
            report.violations.append(f"acknowledged but not stored: transactions {lost[:5]}")
        if applied and (state.last_txn != applied[-1] or len(set(applied)) != len(applied)):
            report.violations.append(f"last_txn {state.last_txn}, applied {applied[-3:]} (twice?)")
        if applied and state.therapy.thresholds.low_reservoir_ul != threshold_for(state.last_txn):
            report.violations.append(f"the state is not the last applied change ({state.last_txn})")
        report.applied = len(applied) - before
        if acked:  # a retry of the last acknowledged command is answered from memory, not applied again
            link = emulator.attach(Connection(Side.PUMP))
            hello = Hello(protocol_version=1, role=Role.CLINICIAN, max_frame=512, client="check")
            _send(emulator, link, hello, 1, 0)
            before = emulator.pump.log.total
            reply = _send(emulator, link, _request(emulator, acked[-1]), acked[-1], 1)
            if not isinstance(reply, Ack) or any(
                e.code is EventCode.THRESHOLDS_CHANGED for e in emulator.pump.log.since(before)
            ):
                report.violations.append(f"retry of {acked[-1]} got {reply!r} or was applied again")
            else:
                report.retries_answered += 1


def crash_test(
    path: str | Path,
    policy: SafetyPolicy,
    *,
    kills: int,
    seed: int = 0,
    max_delay_s: float = 0.03,
    min_acks: int = 0,
) -> CrashReport:
    """Kill a process programming the pump stored at ``path`` (which must exist) ``kills`` times, each a
    random delay after it has had ``min_acks`` commands acknowledged (so the counts do not hang on speed)."""
    path, rng, report = Path(path), random.Random(seed), CrashReport()
    with Store(path) as store:
        before = len(_applied(store))
    for _ in range(kills):
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads: the child only computes
            pid = os.fork()
        if pid == 0:  # pragma: no cover  (the child; killed, never returns)
            os.close(read)
            try:
                _child(path, policy, write)
            finally:
                os._exit(1)
        os.close(write)
        data = b""
        while len(data) < 4 * min_acks and (chunk := os.read(read, 4 * min_acks - len(data))):
            data += chunk
        time.sleep(rng.uniform(0, max_delay_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        while chunk := os.read(read, 65_536):
            data += chunk
        os.close(read)
        acked = [int.from_bytes(data[i : i + 4], "big") for i in range(0, len(data) - len(data) % 4, 4)]
        report.kills += 1
        report.acknowledged += len(acked)
        _check(path, policy, acked, report, before)
    return report
