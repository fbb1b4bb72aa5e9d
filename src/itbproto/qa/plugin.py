"""The pytest plugin of the QA safety suite (entry point ``pytest11``: ``itbproto``).

It owns the ``rule(*ids)`` marker (a test proves the safety rules with these IDs; an unknown ID is a usage
error) and the options::

    pytest --pyargs itbproto.qa --itb-target=inproc|tcp://HOST:PORT|ble://NAME
           [--itb-profile=quick|thorough] [--itb-pin=PIN] [--itb-device=itb-20] [--itb-report=FILE]
           [--itb-db=DIR] [--itb-shards=N] [--itb-defect=NAME]  (inproc: a seeded defect to catch)

At the end it prints the report: per rule ID the collected tests that carry its marker, the steps of the
stateful suite that exercised it, the violations found (each with hypothesis' shrunk reproducer) or "not
exercised"; and a summary line with the steps and steps per second. ``--itb-report`` writes it as JSON;
``--junitxml`` gives JUnit XML as usual. The traceability matrix is built from the collected items.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

from itbproto.qa.oracle import PROTOCOL, Violation
from itbproto.qa.targets import Target, target_from
from itbproto.specfiles import load_rules

__all__ = ["Report"]

_REPORT = pytest.StashKey["Report"]()
_config: pytest.Config | None = None


@dataclass
class Report:
    """What the suite saw, per rule."""

    rule_ids: tuple[str, ...]
    tests: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    steps: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    violations: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    reproducers: list[str] = field(default_factory=list)
    total_steps: int = 0
    seconds: float = 0.0

    def step(self, exercised: set[str], found: list[Violation]) -> None:
        self.total_steps += 1
        for rule_id in exercised:
            self.steps[rule_id] += 1
        for violation in found:
            self.violations[violation.rule_id].append(violation.what)

    def counts(self) -> dict[str, object]:
        """What one test saw, to travel in its report's ``user_properties`` (across xdist workers too)."""
        return {
            "steps": self.total_steps,
            "seconds": self.seconds,
            "by_rule": dict(self.steps),
            "violations": {k: list(v) for k, v in self.violations.items()},
        }

    def merge(self, counts: dict[str, Any]) -> None:
        self.total_steps += counts["steps"]
        self.seconds += counts["seconds"]
        for rule_id, n in counts["by_rule"].items():
            self.steps[rule_id] += n
        for rule_id, found in counts["violations"].items():
            self.violations[rule_id] += found

    def rows(self) -> list[tuple[str, str]]:
        rows = []
        for rule_id in (*self.rule_ids, *PROTOCOL):
            if self.violations.get(rule_id):
                verdict = f"VIOLATED ({len(self.violations[rule_id])}): {self.violations[rule_id][0]}"
            elif self.steps.get(rule_id):
                verdict = f"held in {self.steps[rule_id]} steps"
            else:
                verdict = "not exercised by the stateful suite"
            tests = len(self.tests.get(rule_id, ()))
            rows.append((rule_id, f"{verdict}; {tests} test(s) marked"))
        return rows

    def as_json(self) -> dict[str, object]:
        return {
            "total_steps": self.total_steps,
            "steps_per_s": round(self.total_steps / self.seconds, 1) if self.seconds else None,
            "rules": {
                rule_id: {
                    "tests": self.tests.get(rule_id, []),
                    "steps": self.steps.get(rule_id, 0),
                    "violations": self.violations.get(rule_id, []),
                }
                for rule_id in (*self.rule_ids, *PROTOCOL)
            },
            "reproducers": self.reproducers,
        }


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("itbproto", "itbproto QA safety suite")
    group.addoption("--itb-target", default="inproc", help="inproc, tcp://HOST:PORT or ble://NAME")
    group.addoption("--itb-profile", choices=("quick", "thorough"), default="quick", help="how much to run")
    group.addoption("--itb-pin", default=None, help="the PIN the pump shows, to pair (sealed sessions)")
    group.addoption("--itb-device", default="itb-20", help="the pump's device profile (specs/profiles/)")
    group.addoption("--itb-report", default=None, help="write the per-rule report as JSON to this file")
    group.addoption(
        "--itb-db",
        default=None,
        help="hypothesis' example database: a directory shared by QA machines (a failure found on one "
        "replays on the others); default ./.hypothesis",
    )
    group.addoption(
        "--itb-shards",
        type=int,
        default=1,
        help="run the stateful suite as this many independent tests (spread them with pytest-xdist: -n auto)",
    )
    group.addoption(
        "--itb-defect",
        default=None,
        help="inproc only: a seeded defect the suite must catch (test builds: ITBEMU_ALLOW_DEFECTS=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "rule(*ids): the test proves the safety rules with these IDs (specs/safety-rules.toml)"
    )
    config.stash[_REPORT] = Report(load_rules().ids)
    global _config
    _config = config


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``--itb-shards N``: the stateful suite as N tests, each its own random search (xdist spreads them)."""
    if "itb_shard" in metafunc.fixturenames:
        metafunc.parametrize("itb_shard", range(metafunc.config.getoption("--itb-shards")))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every rule marker names rules of the catalog (a typo would hide an untested rule); the matrix."""
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
def itb_target(request: pytest.FixtureRequest) -> Target:
    """The pump under test (``--itb-target``)."""
    option = request.config.getoption
    spec, device, pin, defect = (option(f"--itb-{o}") for o in ("target", "device", "pin", "defect"))
    return target_from(spec, device, pin, defect)


@pytest.fixture(scope="session")
def itb_report(request: pytest.FixtureRequest) -> Report:
    return request.config.stash[_REPORT]


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
    if not report.total_steps:  # the stateful suite did not run: the report is the matrix, in the JSON
        return
    terminalreporter.section("itbproto safety report")
    for rule_id, verdict in report.rows():
        terminalreporter.write_line(f"{rule_id:<12} {verdict}")
    rate = report.total_steps / report.seconds if report.seconds else 0.0
    found = sum(len(v) for v in report.violations.values())
    terminalreporter.write_line(
        f"itbproto QA: {report.total_steps} steps in {report.seconds:.1f} s ({rate:.0f} steps/s), "
        f"{found} violation(s), target {config.getoption('--itb-target')}"
    )
