"""The QA suite's per-rule report, and the shards it may be split into: what ``--itb-report`` writes and
``itbproto qa-report merge`` adds up. It needs neither pytest nor hypothesis.

A run of the suite is shard ``I/N`` of a QA run (``--itb-shard``, 1 <= I <= N; ``1/1`` by default). Its
report names the shards it covers and the seeds of its stateful searches; reports of the shards of one run
add up to the report of the whole run, with the same verdicts as a run on one machine.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from itbproto.errors import QaReportError
from itbproto.qa.bench import Tally
from itbproto.qa.oracle import PROTOCOL, Violation

__all__ = ["Report", "Shard"]

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
_COUNTED = ("allowed", "refused", "checked")


@dataclass(frozen=True, order=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``I/N`` with 1 <= I <= N."""
        match = _SHARD.fullmatch(text)
        if match is None:
            raise QaReportError(f"shard {text!r}: expected I/N, e.g. 2/4 (shard 2 of 4)")
        shard = cls(int(match[1]), int(match[2]))
        if not 1 <= shard.index <= shard.count:
            raise QaReportError(f"shard {text!r}: I/N needs 1 <= I <= N")
        return shard

    def search(self, local: int, per_shard: int) -> int:
        """The run-wide number of this shard's ``local``-th stateful search of ``per_shard``
        (``--itb-shards``): its hypothesis seed, 0 being the profile's own search (quick: derandomized)."""
        return (self.index - 1) * per_shard + local

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class Report:
    """What the suite saw, per rule: steps that reached it and were allowed, steps it refused, oracle checks
    run, findings (each once); what the target could not reach, and why; which shards and seeds it covers."""

    rule_ids: tuple[str, ...]
    tests: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tally: Tally = field(default_factory=Tally)
    reproducers: list[str] = field(default_factory=list)
    total_steps: int = 0
    probes: int = 0
    seconds: float = 0.0
    shards: list[Shard] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    def step(self, exercised: set[str], found: list[Violation]) -> None:
        """One step of the stateful suite: the oracle's checks that had something to check, its findings."""
        self.total_steps += 1
        for rule_id in exercised:
            self.tally.checked[rule_id] += 1
        for violation in found:
            self.tally.find(violation.rule_id, violation.what)

    def counts(self) -> dict[str, Any]:
        """What one test saw, to travel in its report's ``user_properties`` (across xdist workers too)."""
        return {
            "steps": self.total_steps,
            "probes": self.probes,
            "seconds": self.seconds,
            "seeds": list(self.seeds),
            **self.tally.as_dict(),
        }

    def merge(self, counts: dict[str, Any]) -> None:
        self.total_steps += counts.get("steps", 0)
        self.probes += counts.get("probes", 0)
        self.seconds += counts.get("seconds", 0.0)
        self.seeds.extend(s for s in counts.get("seeds", ()) if s not in self.seeds)
        self.tally.merge(counts)

    @property
    def found(self) -> int:
        return sum(len(v) for v in self.tally.findings.values())

    def status(self, rule_id: str) -> str:
        """``violated``, ``exercised``, ``unreachable`` (on this target) or ``not exercised``."""
        t = self.tally
        if t.findings.get(rule_id):
            return "violated"
        if t.allowed.get(rule_id) or t.refused.get(rule_id) or t.checked.get(rule_id):
            return "exercised"
        return "unreachable" if rule_id in t.unreachable else "not exercised"

    def verdict(self, rule_id: str) -> str:
        t, status = self.tally, self.status(rule_id)
        if status == "violated":
            return f"VIOLATED ({len(t.findings[rule_id])}): {t.findings[rule_id][0]}"
        if status == "exercised":
            seen = (t.allowed.get(rule_id, 0), t.refused.get(rule_id, 0), t.checked.get(rule_id, 0))
            return "allowed {}, refused {}, checked {}".format(*seen)
        if status == "unreachable":
            return f"not reached on this target: {t.unreachable[rule_id]}"
        return "NOT EXERCISED"

    @property
    def all_ids(self) -> tuple[str, ...]:
        """The catalog's rule IDs, then the protocol's checks."""
        return (*self.rule_ids, *PROTOCOL)

    def rows(self) -> list[tuple[str, str]]:
        return [
            (rule_id, f"{self.verdict(rule_id)}; {len(self.tests.get(rule_id, ()))} test(s) marked")
            for rule_id in self.all_ids
        ]

    def lines(self) -> list[str]:
        """The table as printed: one line per rule."""
        return [f"{rule_id:<12} {verdict}" for rule_id, verdict in self.rows()]

    def summary(self) -> str:
        return (
            f"{self.probes} boundary probes and {self.total_steps} random steps in {self.seconds:.1f} s, "
            f"{self.found} violation(s)"
        )

    def as_json(self) -> dict[str, object]:
        t = self.tally
        return {
            "shards": [str(s) for s in sorted(self.shards)],
            "seeds": sorted(self.seeds),
            "total_steps": self.total_steps,
            "probes": self.probes,
            "seconds": round(self.seconds, 3),
            "steps_per_s": round(self.total_steps / self.seconds, 1) if self.seconds else None,
            "violations": self.found,
            "rules": {
                rule_id: {
                    "tests": self.tests.get(rule_id, []),
                    "allowed": t.allowed.get(rule_id, 0),
                    "refused": t.refused.get(rule_id, 0),
                    "checked": t.checked.get(rule_id, 0),
                    "violations": t.findings.get(rule_id, []),
                    "unreachable": t.unreachable.get(rule_id),
                    "verdict": self.verdict(rule_id),
                }
                for rule_id in self.all_ids
            },
            "reproducers": self.reproducers,
        }

    @classmethod
    def from_json(cls, data: object, source: str = "report") -> Report:
        """A report back from :meth:`as_json`; :class:`QaReportError` if ``data`` is not one."""
        try:
            if not isinstance(data, dict):
                raise TypeError(f"a JSON {type(data).__name__}, not an object")
            rules: dict[str, dict[str, Any]] = data["rules"]
            report = cls(tuple(r for r in rules if r not in PROTOCOL))
            report.shards = [Shard.parse(s) for s in data["shards"]]
            report.reproducers = [str(r) for r in data["reproducers"]]
            for rule_id, row in rules.items():
                report.tests[rule_id] = [str(t) for t in row["tests"]]
                if row["unreachable"] is not None:
                    report.tally.unreachable[rule_id] = str(row["unreachable"])
            report.merge(
                {
                    "steps": int(data["total_steps"]),
                    "probes": int(data["probes"]),
                    "seconds": float(data["seconds"]),
                    "seeds": [int(s) for s in data["seeds"]],
                    **{n: {r: int(row[n]) for r, row in rules.items()} for n in _COUNTED},
                    "findings": {r: [str(v) for v in row["violations"]] for r, row in rules.items()},
                }
            )
        except (KeyError, TypeError, ValueError, AttributeError, QaReportError) as exc:
            why = f"no {exc}" if isinstance(exc, KeyError) else str(exc)
            raise QaReportError(f"{source}: not an itbproto QA report (--itb-report): {why}") from None
        return report

    @classmethod
    def load(cls, path: Path) -> Report:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise QaReportError(f"{path}: not an itbproto QA report (--itb-report): {exc}") from None
        return cls.from_json(data, str(path))

    @classmethod
    def merged(cls, reports: Iterable[Report]) -> Report:
        """The report of the shards of one run; :class:`QaReportError` for shards of different counts, a
        shard given twice, or another rule catalog."""
        parts = list(reports)
        if not parts:
            raise QaReportError("no reports to merge")
        whole = cls(parts[0].rule_ids)
        for part in parts:
            if part.rule_ids != whole.rule_ids:
                raise QaReportError("the reports are of different rule catalogs (other itbproto versions)")
            for shard in part.shards:
                if shard in whole.shards:
                    raise QaReportError(f"shard {shard} is given twice")
                if whole.shards and shard.count != whole.shards[0].count:
                    raise QaReportError(f"shard {shard} and shard {whole.shards[0]} are of different runs")
                whole.shards.append(shard)
            whole.merge(part.counts())
            whole.reproducers.extend(part.reproducers)
            for rule_id, tests in part.tests.items():
                whole.tests[rule_id].extend(t for t in tests if t not in whole.tests[rule_id])
        return whole

    def missing(self) -> list[Shard]:
        """The shards of the run this report does not cover."""
        count = self.shards[0].count if self.shards else 0
        return [s for i in range(1, count + 1) if (s := Shard(i, count)) not in self.shards]

    def junit_xml(self) -> str:
        """JUnit XML, one test case per rule: failed when violated, skipped when not exercised or not
        reachable on the target."""
        suite = ET.Element("testsuite", name="itbproto.qa", time=f"{self.seconds:.3f}")
        failures = skipped = 0
        for rule_id in self.all_ids:
            case = ET.SubElement(suite, "testcase", classname="itbproto.qa.rules", name=rule_id)
            verdict, status = self.verdict(rule_id), self.status(rule_id)
            if status == "violated":
                failures += 1
                ET.SubElement(case, "failure", message=verdict).text = "\n".join(self.tally.findings[rule_id])
            elif status != "exercised":
                skipped += 1
                ET.SubElement(case, "skipped", message=verdict)
        suite.set("tests", str(len(self.all_ids)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)
