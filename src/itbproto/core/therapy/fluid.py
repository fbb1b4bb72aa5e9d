"""The fluid path, first in first out: what reaches the catheter tip, and when, in exact integers.

Between the reservoir and the patient lie the pump's internal tubing and the
catheter: a few hundred µL that always hold drug (or, after surgery, saline).
Whatever the pump pushes in at the outlet, the same volume leaves at the tip,
oldest first; so after a concentration change the old drug leaves at the new
volume rate, and after implant or catheter work the first drug reaches the tip
only once the path is full. Every dose count in the rules is made at the tip.

A :class:`Path` is its contents from the tip to the outlet, as segments of
scaled volume (µL × 86 400, as in :mod:`itbproto.core.therapy.flows`) at one
concentration each. :func:`push` runs outlet flows through it and returns the
flows at the tip. A segment boundary usually leaves the tip within a second; that
second is split into one-second flows, one per concentration, whose rates carry
exactly the volume of each part (a one-second flow at r µL/day delivers r scaled
µL), so nothing is rounded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from itbproto.core.therapy.flows import Flow, joined

__all__ = ["Path", "Segment", "outlet_steps", "push"]


@dataclass(frozen=True, slots=True)
class Segment:
    """``volume_scaled`` (µL × 86 400) of drug at ``conc_ug_ml`` (0: saline or CSF, no drug)."""

    volume_scaled: int
    conc_ug_ml: int


@dataclass(frozen=True, slots=True)
class Path:
    """The contents of the fluid path, tip first; its total volume never changes."""

    segments: tuple[Segment, ...] = ()

    @classmethod
    def filled(cls, volume_ul: int, conc_ug_ml: int) -> Path:
        """A path of ``volume_ul`` holding one concentration (0: not primed)."""
        return cls((Segment(volume_ul * 86_400, conc_ug_ml),) if volume_ul else ())

    @property
    def volume_scaled(self) -> int:
        return sum(s.volume_scaled for s in self.segments)

    @property
    def saline_scaled(self) -> int:
        """The saline (no drug) at the tip end of the path: what a priming bolus pushes out."""
        saline = 0
        for s in self.segments:
            if s.conc_ug_ml:
                break
            saline += s.volume_scaled
        return saline

    @property
    def dose_scaled(self) -> int:
        """The drug in the path, ng × 86 400."""
        return sum(s.volume_scaled * s.conc_ug_ml for s in self.segments)

    def ahead(self, volume_scaled: int, conc_ug_ml: int) -> int:
        """The drug (ng × 86 400) in the next ``volume_scaled`` to leave the tip if the pump pushes
        drug at ``conc_ug_ml`` behind the path."""
        dose, left = 0, volume_scaled
        for s in self.segments:
            take = min(left, s.volume_scaled)
            dose, left = dose + take * s.conc_ug_ml, left - take
        return dose + left * conc_ug_ml

    def split(self, volume_scaled: int) -> tuple[Path, Path]:
        """The first ``volume_scaled`` from the tip (the catheter, say) and the rest (the pump's tubing)."""
        head: list[Segment] = []
        tail: list[Segment] = []
        left = volume_scaled
        for s in self.segments:
            take = min(left, s.volume_scaled)
            head += [Segment(take, s.conc_ug_ml)] if take else []
            tail += [Segment(s.volume_scaled - take, s.conc_ug_ml)] if take < s.volume_scaled else []
            left -= take
        return _merged(head), _merged(tail)

    def __add__(self, other: Path) -> Path:
        """This path, then ``other`` towards the outlet."""
        return _merged((*self.segments, *other.segments))


def _merged(segments: Iterable[Segment]) -> Path:
    out: list[Segment] = []
    for s in segments:
        if not s.volume_scaled:
            continue
        if out and out[-1].conc_ug_ml == s.conc_ug_ml:
            out[-1] = Segment(out[-1].volume_scaled + s.volume_scaled, s.conc_ug_ml)
        else:
            out.append(s)
    return Path(tuple(out))


def outlet_steps(flows: Iterable[Flow]) -> list[Flow]:
    """Concurrent outlet flows as one flow per interval: their total rate, in time order.

    All flows at one time come out of the reservoir, so they share one concentration;
    where two disagree (a refill between them), each interval takes the later one's.
    """
    edges: dict[int, list[tuple[int, int]]] = {}
    for f in flows:
        if f.end > f.start and f.rate_ul_day:
            edges.setdefault(f.start, []).append((f.rate_ul_day, f.conc_ug_ml))
            edges.setdefault(f.end, []).append((-f.rate_ul_day, f.conc_ug_ml))
    steps: list[Flow] = []
    rate, conc, times = 0, 0, sorted(edges)
    for a, b in pairwise(times):
        for delta, c in edges[a]:
            rate += delta
            if delta > 0:
                conc = c
        if rate:
            steps.append(Flow(a, b, rate, conc))
    return steps


def push(path: Path, flows: Iterable[Flow]) -> tuple[Path, tuple[Flow, ...]]:
    """Run outlet ``flows`` through ``path``: the path after them and the flows at the tip (saline too:
    as much volume leaves the tip as enters the path, second by second)."""
    segments = list(path.segments)
    tip: list[Flow] = []
    for step in outlet_steps(flows):
        pushed = step.volume_scaled
        segments.append(Segment(pushed, step.conc_ug_ml))
        t, carry, left = step.start, 0, pushed  # carry: volume already out in second t
        while left:
            s = segments[0]
            take = min(s.volume_scaled, left)
            t, carry = _emit(tip, t, carry, take, step.rate_ul_day, s.conc_ug_ml)
            left -= take
            if take == s.volume_scaled:
                segments.pop(0)
            else:
                segments[0] = Segment(s.volume_scaled - take, s.conc_ug_ml)
    return _merged(segments), joined(tip)


def _emit(tip: list[Flow], t: int, carry: int, volume: int, rate: int, conc: int) -> tuple[int, int]:
    """Emit ``volume`` at ``rate`` from second ``t`` (``carry`` of it taken); return the new (t, carry)."""
    if carry:
        part = min(volume, rate - carry)
        _add(tip, Flow(t, t + 1, part, conc))
        volume, carry = volume - part, carry + part
        if carry == rate:
            t, carry = t + 1, 0
        if not volume:
            return t, carry
    whole, rest = divmod(volume, rate)
    if whole:
        _add(tip, Flow(t, t + whole, rate, conc))
        t += whole
    if rest:
        _add(tip, Flow(t, t + 1, rest, conc))
        carry = rest
    return t, carry


def _add(tip: list[Flow], flow: Flow) -> None:
    if flow.rate_ul_day:
        tip.append(flow)
