"""Seeded defects: a pump that breaks one safety property on purpose, so that the QA suite (itbproto.qa) can
show that it catches each (``itbemu serve --defect NAME``; CI runs the suite against every one).

Test builds only: :func:`seed` refuses unless ``ITBEMU_ALLOW_DEFECTS=1`` is set, and it patches the library in
this process (an emulator process serving a defective pump serves nothing else).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

__all__ = ["ALLOW", "DEFECTS", "seed"]

ALLOW = "ITBEMU_ALLOW_DEFECTS"


def _without(*rule_ids: str) -> None:
    """The pump's safety verdicts forget these rules (limits broken, hazards met)."""
    from itbproto.core.machines.pump import machine
    from itbproto.core.safety import evaluate

    def forgetful(command: Any, state: Any, policy: Any) -> Any:
        verdict = evaluate(command, state, policy)
        if verdict.after is None:  # it cannot apply at all: refused as before
            return verdict
        kept = tuple(v for v in verdict.violations if v.rule_id not in rule_ids)
        hazards = tuple(v for v in verdict.hazards if v.rule_id not in rule_ids)
        return replace(verdict, violations=kept, hazards=hazards)

    setattr(machine, "evaluate", forgetful)  # noqa: B010 (the name the pump's machine calls)


def _no_low_reservoir_alarm() -> None:
    from itbproto.core.machines.pump import alarms
    from itbproto.core.wire.enums import AlarmCode

    conditions = alarms.conditions
    alarms.conditions = lambda t: conditions(t) - {AlarmCode.LOW_RESERVOIR}


def _retry_applied_twice() -> None:
    """A retried transaction (the same id, the same request) is applied again instead of answered."""
    from itbproto.core.machines.pump.machine import PumpMachine

    admit = PumpMachine._admit

    def forgetful(self: PumpMachine, request: Any, txn: int, session: Any) -> Any:
        if self.state.outcome(txn) is not None:
            self._state = replace(self._state, last_txn=txn - 1)
            return None
        return admit(self, request, txn, session)

    PumpMachine._admit = forgetful  # type: ignore[method-assign]


def _replay_accepted() -> None:
    """Frames not newer than the last one received are taken (the sequence check is gone)."""
    from itbproto.core.connection import Connection

    frame = Connection._frame

    def trusting(self: Connection, data: bytes) -> Any:
        self._recv_seq = None
        return frame(self, data)

    Connection._frame = trusting  # type: ignore[method-assign]


def _path_at_new_concentration() -> None:
    """After a refill with another concentration, the pump counts the fluid path as holding the new drug."""
    from itbproto.core.therapy import commands
    from itbproto.core.therapy.fluid import Path, Segment

    confirm = commands._confirm_refill

    def wrong(state: Any, cmd: Any) -> Any:
        new = confirm(state, cmd)
        if new.concentration_ug_ml == state.concentration_ug_ml:
            return new
        return replace(new, path=Path((Segment(new.path.volume_scaled, new.concentration_ug_ml),)))

    setattr(commands, "_confirm_refill", wrong)  # noqa: B010 (the name apply calls)


DEFECTS: dict[str, Callable[[], None]] = {
    "ignore-daily-limit": lambda: _without("DOSE-001", "DOSE-002", "DOSE-003"),
    "accept-overfill": lambda: _without("REFILL-001"),
    "skip-low-reservoir-alarm": _no_low_reservoir_alarm,
    "apply-retry-twice": _retry_applied_twice,
    "accept-replay": _replay_accepted,
    "path-at-new-concentration": _path_at_new_concentration,
    "suspend-unacknowledged": lambda: _without("STOP-002"),
}


def seed(name: str) -> None:
    """Break the pump in this process as ``name`` says (only with ``ITBEMU_ALLOW_DEFECTS=1``)."""
    if os.environ.get(ALLOW) != "1":
        raise ValueError(f"--defect is for test builds: set {ALLOW}=1 to seed {name!r}")
    if name not in DEFECTS:
        raise ValueError(f"no defect {name!r}; there are {sorted(DEFECTS)}")
    DEFECTS[name]()
