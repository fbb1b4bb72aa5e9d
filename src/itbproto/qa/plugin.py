"""The pytest plugin of the QA safety suite (entry point ``pytest11``: ``itbproto``).

It owns the ``rule(*ids)`` marker (a test proves the safety rules with these IDs; an unknown ID is a usage
error) and the options::

    pytest --pyargs itbproto.qa --itb-target=inproc|tcp://HOST:PORT|ble://NAME
           [--itb-profile=quick|thorough] [--itb-pin=PIN] [--itb-device=itb-20] [--itb-report=FILE]
           [--itb-db=DIR|redis://HOST:PORT/DB] [--itb-shard=I/N] [--itb-shards=K] [--itb-policy=FILE]
           [--itb-defect=NAME]  (inproc: a seeded defect to catch)

In-process the pump pairs by default (``--itb-pin=`` empty: it does not). At the end it prints the report:
per rule ID (and protocol check) the steps that reached it and were allowed, those it refused, the oracle
checks run, each violation once with the steps that show it, or why the target could not reach it; the
tests that carry its marker; and a summary line. ``--itb-report`` writes it as JSON; ``--junitxml`` gives
JUnit XML as usual. The traceability matrix is built from the collected items.

``--itb-db`` is a directory or a redis server (``redis://``, the ``redis`` extra) that machines share: a
failure one finds, the others replay. ``--itb-shard I/N`` makes this run shard I of a run spread over N
machines (any job runner): its K stateful searches (``--itb-shards``) are searches (I-1)*K .. I*K-1 of the
run's N*K, each its own seed (search 0 is the profile's own: quick's derandomized one, so ``1/1`` is a run
on one machine); the boundary probes, deterministic, run on shard 1 only. ``itbproto qa-report merge`` adds
the shards' reports up.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

from itbproto.errors import QaReportError
from itbproto.io.specfiles import load_policy, load_rules
from itbproto.qa.bench import tightened
from itbproto.qa.report import Report, Shard
from itbproto.qa.targets import Target, target_from
from itbproto.tools.extras import install_hint

__all__ = ["Report", "ScopedDatabase", "example_database"]

_REPORT = pytest.StashKey[Report]()
_SHARD = pytest.StashKey[Shard]()
_DATABASE = pytest.StashKey[ExampleDatabase | None]()
#: the user property that carries a stateful test's seed to the session's report
_SEED = "itbproto.seed"
_config: pytest.Config | None = None


#: rules no target reaches through the protocol, and why
BEYOND_THE_PROTOCOL = {
    "POLICY-001": "a pump's safety policy is built into it, not set over the protocol; the suite checks "
    "the catalog's default numbers hold",
}


def example_database(where: str | None) -> ExampleDatabase | None:
    """``--itb-db``: a directory, or a redis server (``redis://HOST:PORT/DB``) that must answer now; None:
    the profile's (./.hypothesis)."""
    if where is None:
        return None
    if not where.startswith(("redis://", "rediss://")):
        return DirectoryBasedExampleDatabase(where)
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ModuleNotFoundError as exc:
        raise pytest.UsageError(f"--itb-db {where}: {install_hint(exc) or exc}") from None
    try:
        server = redis.Redis.from_url(where, socket_connect_timeout=10)
        server.ping()
    except (ValueError, redis.RedisError) as exc:
        raise pytest.UsageError(f"--itb-db {where}: no redis server answers: {exc}") from None
    return RedisExampleDatabase(server)


def pytest_configure(config: pytest.Config) -> None:
    try:
        shard = Shard.parse(config.getoption("--itb-shard"))
    except QaReportError as exc:
        raise pytest.UsageError(f"--itb-shard: {exc}") from None
    config.stash[_SHARD] = shard
    config.stash[_DATABASE] = example_database(config.getoption("--itb-db"))
    report = Report(load_rules().ids, shards=[shard])
    report.tally.unreachable.update(BEYOND_THE_PROTOCOL)
    config.stash[_REPORT] = report
    global _config
    _config = config


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``--itb-shards K``: the stateful suite as K tests, each its own random search (xdist spreads them),
    numbered across the shards of the run (``--itb-shard``). The boundary probes run under each policy the
    pump may have: the one given, or (in-process) the catalog's and a tightened one."""
    option = metafunc.config.getoption
    if "itb_shard" in metafunc.fixturenames:
        shard, per_shard = metafunc.config.stash[_SHARD], option("--itb-shards")
        metafunc.parametrize("itb_shard", [shard.search(k, per_shard) for k in range(per_shard)])
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
    boundary probes run first: each takes milliseconds, and a pump that fails one need not be searched. They
    are deterministic: shard 1 of a sharded run runs them, the others do not repeat them."""
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
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "itb_shard" in callspec.params:
            item.user_properties.append((_SEED, callspec.params["itb_shard"]))
    if config.stash[_SHARD].index > 1:
        probes = [item for item in items if "test_rule_boundary" in item.name]
        if probes:
            config.hook.pytest_deselected(items=probes)
            items[:] = [item for item in items if "test_rule_boundary" not in item.name]


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
    database = request.config.stash[_DATABASE]
    return chosen if database is None else settings(chosen, database=database)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Each stateful test's counts (from this process or an xdist worker) join the session's report; a
    failed one's text holds hypothesis' steps: a script that replays them."""
    if report.when != "call" or _config is None:
        return
    seen = _config.stash[_REPORT]
    for name, counts in report.user_properties:
        if name == _SEED and isinstance(counts, int) and counts not in seen.seeds:
            seen.seeds.append(counts)
        if name == "itbproto" and isinstance(counts, dict):
            seen.merge(counts)
            if report.failed:
                seen.reproducers.append(report.longreprtext)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    report = config.stash[_REPORT]
    path = config.getoption("--itb-report")
    if path:
        Path(path).write_text(json.dumps(report.as_json(), indent=1))
    if not report.total_steps and not report.probes:  # the suite did not run: the matrix is in the JSON
        return
    terminalreporter.section("itbproto safety report")
    for line in report.lines():
        terminalreporter.write_line(line)
    terminalreporter.write_line(
        f"itbproto QA: {report.summary()}, target {config.getoption('--itb-target')}, "
        f"shard {config.stash[_SHARD]}"
    )
