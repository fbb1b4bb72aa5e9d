"""One table per state machine: the law its runtime obeys, and the mermaid diagram in specs/diagrams/.

h11's rule: everything that decides a transition lives in the table. ``transitions`` reads each table once
(:attr:`Definition.moves`: from each state, each trigger and where it leads); the table is then used two
ways:

- :meth:`Definition.machine` runs it on a private state: the only way to move it is
  :meth:`StateMachine.fire`, so no public trigger method can move it behind its owner's back (the
  programmer's session works this way); a move is a look-up in the table transitions read, not a pass
  through its callback machinery, on every request;
- :meth:`Definition.allows` checks one move against it, for machines whose state is
  derived from data (the pump's mode comes from its device state; an alarm's from its
  record), so that there is one source of truth and the table still governs it.

An invalid trigger raises :class:`~itbproto.errors.SessionError` and changes nothing.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transitions import Machine
from transitions.extensions import GraphMachine

from itbproto.errors import SessionError

__all__ = ["Definition", "StateMachine"]


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
        return dest in self.moves.get(source, {}).get(trigger, ())

    def triggers(self, source: str) -> frozenset[str]:
        """The triggers the table allows from ``source``."""
        return frozenset(self.moves.get(source, {}))

    @functools.cached_property
    def moves(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """From each state, each trigger it allows and the states it may lead to, as a ``transitions``
        machine on the table reads them (``"="``: the same state)."""
        machine = Machine(
            model=None,
            states=list(self.states),
            transitions=[dict(t) for t in self.transitions],
            initial=self.initial,
            auto_transitions=False,
            ignore_invalid_triggers=False,
        )
        moves: dict[str, dict[str, tuple[str, ...]]] = {state: {} for state in self.states}
        for trigger, event in machine.events.items():
            for source, found in event.transitions.items():
                moves[source][trigger] = tuple(t.dest or source for t in found)
        return moves

    @functools.cached_property
    def runnable(self) -> dict[str, dict[str, str]]:
        """:attr:`moves` where each trigger leads each state one way (ValueError otherwise)."""
        if any(len(dests) > 1 for by_trigger in self.moves.values() for dests in by_trigger.values()):
            raise ValueError(f"{self.name}: a trigger leads a state two ways; it cannot be run")
        return {state: {t: d for t, (d,) in by.items()} for state, by in self.moves.items()}

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


class StateMachine:
    """A machine on its table, in a state of its own: it moves only through :meth:`fire`."""

    def __init__(self, definition: Definition, initial: str) -> None:
        """ValueError for an unknown ``initial``, or a table where a trigger may lead a state two ways
        (such a table checks moves with :meth:`Definition.allows`; it cannot be run)."""
        if initial not in definition.states:
            raise ValueError(f"{definition.name}: no state {initial!r}")
        self.definition, self._moves, self._state = definition, definition.runnable, initial

    @property
    def state(self) -> str:
        return self._state

    def can(self, trigger: str) -> bool:
        return trigger in self._moves[self._state]

    def fire(self, trigger: str) -> None:
        """Move by ``trigger``; SessionError (and no change) if the table does not allow it here."""
        dest = self._moves[self._state].get(trigger)
        if dest is None:
            raise SessionError(self.definition.name, trigger, self._state)
        self._state = dest
