"""One table per state machine: it drives the runtime ``transitions`` machine and the mermaid diagram.

h11's rule: everything that decides a transition lives in the table. A model
declares its triggers as stubs (``model_override=True`` replaces them) so that
``mypy --strict`` sees them; an invalid trigger raises :class:`SessionError` and
changes nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transitions import Machine, MachineError
from transitions.extensions import GraphMachine

from itbproto.errors import SessionError

__all__ = ["Definition", "fire"]


class _QuietOverride(logging.Filter):
    """model_override=True makes transitions log every helper it does not bind; that is the intent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "due to model override policy" not in record.getMessage()


logging.getLogger("transitions.core").addFilter(_QuietOverride())


@dataclass(frozen=True)
class Definition:
    """States, transitions (transitions' dict form) and the initial state of one machine."""

    name: str
    states: Sequence[str]
    transitions: Sequence[Mapping[str, Any]]
    initial: str

    def bind(self, model: object) -> Machine:
        """A runtime machine driving ``model`` (whose trigger stubs it replaces)."""
        return Machine(
            model=model,
            states=list(self.states),
            transitions=[dict(t) for t in self.transitions],
            initial=self.initial,
            model_override=True,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )

    def mermaid(self) -> str:
        """The machine as a mermaid ``stateDiagram-v2`` (specs/diagrams/)."""
        graph = GraphMachine(
            states=list(self.states),
            transitions=[
                {k: v for k, v in t.items() if k in ("trigger", "source", "dest")} for t in self.transitions
            ],
            initial=self.initial,
            auto_transitions=False,
            graph_engine="mermaid",
            title=self.name,
        )
        text = str(graph.get_graph().draw(None))
        # transitions 0.9.3 writes "Class"; mermaid's keyword is lower-case "class"
        text = re.sub(r"^(\s*)Class ", r"\1class ", text, flags=re.MULTILINE)
        return "\n".join(line.rstrip() for line in text.splitlines()).rstrip() + "\n"


def fire(model: Any, definition: Definition, trigger: str, *args: Any) -> bool:
    """Run ``trigger`` on ``model``; a trigger invalid in the current state raises SessionError."""
    try:
        return bool(getattr(model, trigger)(*args))
    except MachineError as exc:
        raise SessionError(definition.name, trigger, str(model.state), str(exc.value)) from None
