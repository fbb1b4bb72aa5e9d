"""The programmer's session table: the whole life of a session. Drawn in specs/diagrams/session.mmd.

::

    disconnected → connecting → connected → authenticated → ready
    ready → draft → validated → staging → awaiting_confirmation → committing → verifying → ready
    ready → commanding → ready                          (rate, bolus, suspend, resume, alarms, reads)
    ready → refill_begun → residual_recorded → refill_staged → refill_confirming → ready
    a delivery change whose reply is lost → uncertain → (status read, identical retry) → ready
    ready → closing → closed                              (withdrawal guard: STOP-001)
"""

from __future__ import annotations

from itbproto.core.machines.definition import Definition

__all__ = ["SESSION"]

_WORKING = [
    "ready",
    "draft",
    "validated",
    "staging",
    "awaiting_confirmation",
    "committing",
    "verifying",
    "commanding",
    "refill_begun",
    "residual_recorded",
    "refill_staged",
    "refill_confirming",
    "closing",
]
_ONLINE = ["connecting", "connected", "authenticated", "uncertain", *_WORKING]
_REFILL = ["refill_begun", "residual_recorded", "refill_staged", "refill_confirming"]

SESSION = Definition(
    name="session",
    states=("disconnected", *_ONLINE, "closed"),
    transitions=(
        {"trigger": "connect", "source": "disconnected", "dest": "connecting"},
        {"trigger": "device_known", "source": "connecting", "dest": "connected"},
        {"trigger": "authenticate", "source": "connected", "dest": "authenticated"},
        {"trigger": "status_read", "source": "authenticated", "dest": "ready"},
        {"trigger": "unresolved", "source": "authenticated", "dest": "uncertain"},
        {"trigger": "resolved", "source": "uncertain", "dest": "ready"},
        {"trigger": "edit", "source": ["ready", "draft", "validated"], "dest": "draft"},
        {"trigger": "validate", "source": "draft", "dest": "validated"},
        {"trigger": "stage", "source": "validated", "dest": "staging"},
        {"trigger": "staged", "source": "staging", "dest": "awaiting_confirmation"},
        {"trigger": "confirm", "source": "awaiting_confirmation", "dest": "committing"},
        {"trigger": "commit_refused", "source": "committing", "dest": "awaiting_confirmation"},
        {"trigger": "committed", "source": "committing", "dest": "verifying"},
        {"trigger": "verified", "source": "verifying", "dest": "ready"},
        {"trigger": "mismatch", "source": "verifying", "dest": "ready"},
        {"trigger": "discard", "source": ["draft", "validated", "awaiting_confirmation"], "dest": "ready"},
        {"trigger": "command", "source": "ready", "dest": "commanding"},
        {"trigger": "answered", "source": "commanding", "dest": "ready"},
        {"trigger": "begin_refill", "source": "ready", "dest": "refill_begun"},
        {"trigger": "residual_recorded", "source": "refill_begun", "dest": "residual_recorded"},
        {"trigger": "refill_staged", "source": "residual_recorded", "dest": "refill_staged"},
        {"trigger": "confirm_refill", "source": "refill_staged", "dest": "refill_confirming"},
        {"trigger": "refill_confirm_refused", "source": "refill_confirming", "dest": "refill_staged"},
        {"trigger": "refill_done", "source": _REFILL, "dest": "ready"},
        {"trigger": "refused", "source": ["staging", "verifying"], "dest": "ready"},
        {
            "trigger": "reply_lost",
            "source": ["committing", "commanding", "refill_confirming"],
            "dest": "uncertain",
        },
        {"trigger": "close", "source": "ready", "dest": "closing"},
        {"trigger": "closed", "source": "closing", "dest": "closed"},
        {"trigger": "close_refused", "source": "closing", "dest": "ready"},
        {"trigger": "link_lost", "source": _ONLINE, "dest": "disconnected"},
    ),
    initial="disconnected",
)
