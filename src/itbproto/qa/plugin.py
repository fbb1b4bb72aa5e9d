"""The pytest plugin of the QA safety suite (entry point ``pytest11``: ``itbproto``).

It owns the ``rule(*ids)`` marker (a test proves the safety rules with these IDs; an unknown ID is a usage
error) and the options::

    pytest --pyargs itbproto.qa --itb-target=inproc|tcp://HOST:PORT|ble://NAME
           [--itb-profile=quick|thorough] [--itb-pin=PIN] [--itb-device=itb-20] [--itb-report=FILE]
           [--itb-db=DIR] [--itb-shards=N] [--itb-policy=FILE]
           [--itb-defect=NAME]  (inproc: a seeded defect to catch)

In-process the pump pairs by default (``--itb-pin=`` empty: it does not). At the end it prints the report:
per rule ID (and protocol check) the steps that reached it and were allowed, those it refused, the oracle
checks run, each violation once with the steps that show it, or why the target could not reach it; the
tests that carry its marker; and a summary line. ``--itb-report`` writes it as JSON; ``--junitxml`` gives
JUnit XML as usual. The traceability matrix is built from the collected items.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from itbproto.qa.bench import Tally, tightened
from itbproto.qa.oracle import PROTOCOL, Violation
from itbproto.qa.targets import Target, target_from
from itbproto.specfiles import load_policy, load_rules

__all__ = ["Report"]

_REPORT = pytest.StashKey["Report"]()
_config: pytest.Config | None = None


@dataclass
class Report:
    """What the suite saw, per rule: steps that reached it and were allowed, steps it refused, oracle checks
    run, findings (each once); what the target could not reach, and why."""

    rule_ids: tuple[str, ...]
    tests: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    tally: Tally = field(default_factory=Tally)
    reproducers: list[str] = field(default_factory=list)
    total_steps: int = 0
    probes: int = 0
    seconds: float = 0.0

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
            **self.tally.as_dict(),
        }

    def merge(self, counts: dict[str, Any]) -> None:
        self.total_steps += counts.get("steps", 0)
        self.probes += counts.get("probes", 0)
        self.seconds += counts.get("seconds", 0.0)
        self.tally.merge(counts)

    @property
    def found(self) -> int:
        return sum(len(v) for v in self.tally.findings.values())

    def verdict(self, rule_id: str) -> str:
        t = self.tally
        if t.findings.get(rule_id):
            return f"VIOLATED ({len(t.findings[rule_id])}): {t.findings[rule_id][0]}"
        seen = (t.allowed.get(rule_id, 0), t.refused.get(rule_id, 0), t.checked.get(rule_id, 0))
        if any(seen):
            return "allowed {}, refused {}, checked {}".format(*seen)
        if rule_id in t.unreachable:
            return f"not reached on this target: {t.unreachable[rule_id]}"
        return "NOT EXERCISED"

    def rows(self) -> list[tuple[str, str]]:
        return [
            (rule_id, f"{self.verdict(rule_id)}; {len(self.tests.get(rule_id, ()))} test(s) marked")
            for rule_id in (*self.rule_ids, *PROTOCOL)
        ]

    def as_json(self) -> dict[str, object]:
        t = self.tally
        return {
            "total_steps": self.total_steps,
            "probes": self.probes,
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
                for rule_id in (*self.rule_ids, *PROTOCOL)
            },
            "reproducers": self.reproducers,
        }


#: rules no target reaches through the protocol, and why
BEYOND_THE_PROTOCOL = {
    "POLICY-001": "a pump's safety policy is built into it, not set over the protocol; the suite checks "
    "the catalog's default numbers hold",
}


def pytest_configure(config: pytest.Config) -> None:
    report = Report(load_rules().ids)
    report.tally.unreachable.update(BEYOND_THE_PROTOCOL)
    config.stash[_REPORT] = report
    global _config
    _config = config


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``--itb-shards N``: the stateful suite as N tests, each its own random search (xdist spreads them).
    The boundary probes run under each policy the pump may have: the one given, or (in-process) the
    catalog's and a tightened one."""
    option = metafunc.config.getoption
    if "itb_shard" in metafunc.fixturenames:
        metafunc.parametrize("itb_shard", range(option("--itb-shards")))
    if "itb_policy" in metafunc.fixturenames:
        path = option("--itb-policy")
        if path:
            policies = {Path(path).stem: load_policy(Path(path))}
        elif option("--itb-target") == "inproc":
            policies = {"catalog": {}, "tightened": tightened(load_rules())}
        else:
            policies = {"catalog": {}}
        metafunc.parametrize("itb_policy", list(policies.values()), ids=list(policies))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every rule marker names rules of the catalog (a typo would hide an untested rule); the matrix. The
    boundary probes run first: each takes milliseconds, and a pump that fails one need not be searched."""
    items.sort(key=lambda item: "test_rule_boundary" not in item.name)
    report = config.stash[_REPORT]
    known = set(report.rule_ids)
    for item in items:
        for mark in item.iter_markers("rule"):
            unknown = [rule_id for rule_id in mark.args if rule_id not in known]
            if unknown or not mark.args:
                raise pytest.UsageError(f"{item.nodeid}: unknown rule IDs {unknown or mark.args}")
            for rule_id in mark.args:
                report.tests[rule_id].append(item.nodeid)


@pytest.fixture(scope="session")
def itb_target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """The pump under test (``--itb-target``)."""
    option = request.config.getoption
    spec, device, pin, defect = (option(f"--itb-{o}") for o in ("target", "device", "pin", "defect"))
    target = target_from(spec, device, pin, defect)
    yield target
    target.close()


@pytest.fixture(scope="session")
def itb_profile_name(request: pytest.FixtureRequest) -> str:
    """The device profile of the pump under test (``--itb-device``)."""
    return str(request.config.getoption("--itb-device"))


@pytest.fixture(scope="session")
def itb_report(request: pytest.FixtureRequest) -> Report:
    return request.config.stash[_REPORT]


class ScopedDatabase(ExampleDatabase):
    """An example database whose keys carry what the suite's steps depend on: what the target can do (a
    pump in this process moves time and breaks hardware; a remote one does not). An example found on one
    kind of target is never replayed on another, where the same choices draw other steps (hypothesis would
    fail with FlakyStrategyDefinition); targets of one kind share their examples, on any machine."""

    def __init__(self, inner: ExampleDatabase, scope: str) -> None:
        super().__init__()
        self.inner, self.scope = inner, f"itbproto-qa[{scope}]".encode()

    @classmethod
    def of(cls, inner: ExampleDatabase, target: Target) -> ScopedDatabase:
        return cls(inner, ",".join(sorted(target.can)) + ("" if target.virtual_clock else ",own-clock"))

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(self.scope + key, value)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self.inner.fetch(self.scope + key)

    def delete(self, key: bytes, value: bytes) -> None:
        self.inner.delete(self.scope + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.inner.move(self.scope + src, self.scope + dest, value)


@pytest.fixture(scope="session")
def itb_settings(request: pytest.FixtureRequest) -> settings:
    """The hypothesis settings of the stateful suite: the profile's, on the chosen example database."""
    from itbproto.qa.test_pump_safety import PROFILES

    chosen = PROFILES[request.config.getoption("--itb-profile")]
    where = request.config.getoption("--itb-db")
    return settings(chosen, database=DirectoryBasedExampleDatabase(where)) if where else chosen


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each stateful test's counts (from this process or an xdist worker) join the session's report; a
    failed one's text holds hypothesis' steps: a script that replays them."""
    if report.when != "call" or _config is None:
        return
    for name, counts in report.user_properties:
        if name == "itbproto" and isinstance(counts, dict):
            _config.stash[_REPORT].merge(counts)
            if report.failed:
                _config.stash[_REPORT].reproducers.append(report.longreprtext)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash[_REPORT]
    path = config.getoption("--itb-report")
    if path:
        Path(path).write_text(json.dumps(report.as_json(), indent=1))
    if not report.total_steps and not report.probes:  # the suite did not run: the matrix is in the JSON
        return
    terminalreporter.section("itbproto safety report")
    for rule_id, verdict in report.rows():
        terminalreporter.write_line(f"{rule_id:<12} {verdict}")
    terminalreporter.write_line(
        f"itbproto QA: {report.probes} boundary probes and {report.total_steps} random steps in "
        f"{report.seconds:.1f} s, {report.found} violation(s), target {config.getoption('--itb-target')}"
    )
