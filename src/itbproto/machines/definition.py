"""One table per state machine: the law its runtime obeys, and the mermaid diagram in specs/diagrams/.

h11's rule: everything that decides a transition lives in the table. A table is
used two ways:

- :meth:`Definition.machine` runs it with ``transitions`` on a private model: the
  only way to move it is :meth:`StateMachine.fire`, so no public trigger method can
  move it behind its owner's back (the programmer's session works this way);
- :meth:`Definition.allows` checks one move against it, for machines whose state is
  derived from data (the pump's mode comes from its device state; an alarm's from its
  record), so that there is one source of truth and the table still governs it.

An invalid trigger raises :class:`~itbproto.errors.SessionError` and changes nothing.
"""

from __future__ import annotations

import functools
import logging
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transitions import Machine, MachineError
from transitions.extensions import GraphMachine

from itbproto.errors import SessionError

__all__ = ["Definition", "StateMachine"]


class _QuietOverride(logging.Filter):
    """model_override=True makes transitions log every helper it does not bind; that is the intent."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "due to model override policy" not in record.getMessage()


logging.getLogger("transitions.core").addFilter(_QuietOverride())


@dataclass(frozen=True)
class Definition:
    """States, transitions (transitions' dict form; ``"="`` as dest: stay) and the initial state."""

    name: str
    states: Sequence[str]
    transitions: Sequence[Mapping[str, Any]]
    initial: str

    def __post_init__(self) -> None:
        for t in self.transitions:
            for state in [*_sources(t), t["dest"]]:
                if state != "=" and state not in self.states:
                    raise ValueError(f"{self.name}: {t['trigger']} names unknown state {state!r}")

    def allows(self, trigger: str, source: str, dest: str) -> bool:
        """True when the table has a ``trigger`` transition from ``source`` to ``dest``."""
        return any(
            t["trigger"] == trigger
            and source in _sources(t)
            and (source if t["dest"] == "=" else t["dest"]) == dest
            for t in self.transitions
        )

    def triggers(self, source: str) -> frozenset[str]:
        """The triggers the table allows from ``source``."""
        return frozenset(t["trigger"] for t in self.transitions if source in _sources(t))

    @functools.cached_property
    def runtime(self) -> tuple[Machine, dict[str, frozenset[str]]]:
        """One ``transitions`` machine for the table, which every running machine on it joins as a model
        (building one costs half a millisecond; a model joins in a fifth of that); and which triggers each
        state has, asked of transitions once (``can`` is on every request's path)."""
        machine = Machine(
            model=None,
            states=list(self.states),
            transitions=[dict(t) for t in self.transitions],
            initial=self.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        return machine, {state: frozenset(machine.get_triggers(state)) for state in self.states}

    def machine(self, initial: str | None = None) -> StateMachine:
        """A running machine on this table (``transitions``), in ``initial`` or the table's initial state."""
        return StateMachine(self, initial or self.initial)

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


def _sources(transition: Mapping[str, Any]) -> list[str]:
    source = transition["source"]
    return [source] if isinstance(source, str) else list(source)


class _Model:
    """The private model a StateMachine drives; ``transitions`` adds the triggers to it."""

    state: str


class StateMachine:
    """A ``transitions`` machine on a private model: it moves only through :meth:`fire`. The model leaves
    the table's shared machine when the StateMachine is collected."""

    def __init__(self, definition: Definition, initial: str) -> None:
        self.definition = definition
        self._model = _Model()
        machine, self._triggers = definition.runtime
        machine.add_model(self._model, initial=initial)
        weakref.finalize(self, machine.remove_model, self._model)

    @property
    def state(self) -> str:
        return self._model.state

    def can(self, trigger: str) -> bool:
        return trigger in self._triggers[self.state]

    def fire(self, trigger: str) -> None:
        """Move by ``trigger``; SessionError (and no change) if the table does not allow it here."""
        try:
            moved = getattr(self._model, trigger)()
        except (MachineError, AttributeError) as exc:
            raise SessionError(self.definition.name, trigger, self.state, str(exc)) from None
        if not moved:
            raise SessionError(self.definition.name, trigger, self.state)
