"""QA runs past one machine (issue 27): the packaged suite's shards (`--itb-shard I/N`) share a redis example
database (`--itb-db redis://...`), a failure one shard finds is replayed by the next from it, and
`itbproto qa-report merge` adds the shards' reports up. Against a real `redis-server` (Debian's), in its own
process; each shard is a `pytest --pyargs itbproto.qa` process of its own with its own in-process pump
carrying a seeded defect (the way the suite is made to fail)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest
import redis

from conftest import free_port, run_qa_suite
from itbproto.cli import main
from itbproto.errors import QaReportError
from itbproto.qa.plugin import example_database
from itbproto.qa.report import Report, Shard

DEFECT = "accept-replay"  # caught by the boundary probes and by the stateful search (REPLAY)


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A redis server of its own (no persistence) on a free port, for the test's length."""
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs Debian's)")
        pytest.skip("redis-server is not on PATH (apt-get install redis-server)")
    port = free_port()
    options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([server, *options, "--dir", str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # it says when it accepts connections
        if "Ready to accept connections" in line:
            break
    else:
        pytest.fail(f"redis-server ended with status {proc.wait()} before accepting connections")
    try:
        yield f"redis://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def shard(tmp_path: Path, which: str, db: str) -> tuple[int, dict[str, Any]]:
    """Shard ``which`` of the suite against an in-process pump with :data:`DEFECT` (a remote pump cannot be
    reset, so it cannot replay an example), in a directory of its own, on example database ``db``: its exit
    status and JSON report (beside that directory)."""
    name = which.replace("/", "-of-")
    options = (f"--itb-shard={which}", f"--itb-db={db}", f"--itb-defect={DEFECT}")
    return run_qa_suite(tmp_path / name, tmp_path / f"{name}.json", *options)


def falsifying(result: dict[str, Any]) -> list[str]:
    """The steps hypothesis printed for the stateful search's failure (its shrunk example)."""
    text = next(r for r in result["reproducers"] if "Failing test case: <state machine>" in r)
    return [line for line in text.splitlines() if line.startswith("E       state")]


def test_shards_share_failures_through_redis_and_their_reports_merge(tmp_path: Path, redis_url: str) -> None:
    status, first = shard(tmp_path, "1/2", f"{redis_url}/0")
    assert status == 1
    assert first["shards"] == ["1/2"]
    assert first["seeds"] == [0]
    assert first["probes"] > 0  # the boundary probes run on shard 1
    steps = falsifying(first)
    assert steps  # the stateful search found it (not only the probes)
    saved = redis.Redis.from_url(f"{redis_url}/0").keys(b"hypothesis-example:itbproto-qa\\[*")
    assert saved  # saved to the shared database, under the target kind's scope

    # shard 2 on the shared database replays the failure; the same shard on an empty one searches for it
    status, second = shard(tmp_path, "2/2", f"{redis_url}/0")
    _, control = shard(tmp_path / "control", "2/2", f"{redis_url}/1")
    assert status == 1
    assert second["shards"] == ["2/2"]
    assert second["seeds"] == [1]
    assert second["probes"] == 0  # not repeated on the other shards
    assert falsifying(second) == steps
    assert second["total_steps"] < control["total_steps"]  # it started from the saved example

    done = subprocess.run(
        [sys.executable, "-m", "itbproto", "qa-report", "merge", str(tmp_path / "1-of-2.json"),
         str(tmp_path / "2-of-2.json"), "--junitxml", str(tmp_path / "junit.xml"), "--json",
         str(tmp_path / "merged.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "2 shard(s) merged (1/2, 2/2)" in done.stdout
    merged = json.loads((tmp_path / "merged.json").read_text())
    for total in ("total_steps", "probes"):
        assert merged[total] == first[total] + second[total]
    assert merged["seeds"] == [0, 1]
    assert merged["shards"] == ["1/2", "2/2"]
    found = merged["rules"]["REPLAY"]["violations"]
    assert set(second["rules"]["REPLAY"]["violations"]) <= set(first["rules"]["REPLAY"]["violations"])
    assert found == first["rules"]["REPLAY"]["violations"]  # the failure both shards saw, once
    rows = {row.get("name"): row for row in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")}
    assert set(rows) == set(merged["rules"])
    assert [rule for rule, row in rows.items() if row.find("failure") is not None] == ["REPLAY"]


def test_a_shard_is_one_of_n_and_its_searches_are_its_own() -> None:
    assert Shard.parse("2/4") == Shard(2, 4)
    assert str(Shard.parse(" 3 / 3 ")) == "3/3"
    for bad in ("0/2", "3/2", "1", "1/0", "a/b", "-1/2", ""):
        with pytest.raises(QaReportError, match="shard"):
            Shard.parse(bad)
    assert Shard(1, 1).search(0, 1) == 0  # one machine, one search: the profile's own (quick: derandomized)
    for count, per_shard in ((1, 3), (3, 1), (4, 2)):
        searches = [
            Shard(i, count).search(k, per_shard) for i in range(1, count + 1) for k in range(per_shard)
        ]
        assert sorted(searches) == list(range(count * per_shard))  # N x K searches, all distinct


def usage_error(*options: str) -> str:
    """The suite's stderr for ``options``, which must be a usage error (pytest's status 4), in one line."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "itbproto.qa", *options],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    return done.stderr.strip()


@pytest.mark.parametrize("bad", ["3/2", "two of three"])
def test_a_bad_shard_is_a_usage_error(bad: str) -> None:
    assert "--itb-shard: shard" in usage_error(f"--itb-shard={bad}")


def test_a_redis_nobody_answers_on_is_a_usage_error_before_the_run() -> None:
    message = usage_error(f"--itb-db=redis://127.0.0.1:{free_port()}/0")
    assert "no redis server answers" in message
    assert len(message.splitlines()) == 1


def test_a_redis_database_without_its_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # as if not installed
    with pytest.raises(pytest.UsageError, match=r"pip install 'itbproto\[redis\]'"):
        example_database("redis://127.0.0.1:6379/0")


def report(*shards: str, steps: int = 10, found: str | None = None) -> Report:
    made = Report(("DOSE-001", "DOSE-002"), shards=[Shard.parse(s) for s in shards])
    made.merge({"steps": steps, "probes": 2, "seconds": 1.5, "checked": {"DOSE-001": steps}})
    made.tally.unreachable["DOSE-002"] = "not on this target"
    if found:
        made.tally.find("TXN", found)
    return made


def test_a_report_reads_back_as_written_and_merges_by_adding_up() -> None:
    one = report("1/2", found="applied twice")
    again = Report.from_json(json.loads(json.dumps(one.as_json())))
    assert again.rows() == one.rows()
    assert again.as_json() == one.as_json()
    whole = Report.merged([again, report("2/2", steps=5, found="applied twice")])
    assert (whole.total_steps, whole.probes, whole.seconds) == (15, 4, 3.0)
    assert whole.verdict("DOSE-001") == "allowed 0, refused 0, checked 15"
    assert whole.verdict("DOSE-002") == "not reached on this target: not on this target"
    assert whole.tally.findings["TXN"] == ["applied twice"]
    assert whole.missing() == []
    assert Report.merged([report("2/3")]).missing() == [Shard(1, 3), Shard(3, 3)]


def write(tmp_path: Path, name: str, data: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data.as_json() if isinstance(data, Report) else data))
    return str(path)


def test_merge_prints_the_table_and_fails_on_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clean = [write(tmp_path, "a.json", report("1/2")), write(tmp_path, "b.json", report("2/2"))]
    assert main(["qa-report", "merge", *clean, "--junitxml", str(tmp_path / "j.xml")]) == 0
    out = capsys.readouterr().out
    assert "DOSE-001     allowed 0, refused 0, checked 20" in out
    assert (
        "4 boundary probes and 20 random steps in 3.0 s, 0 violation(s); 2 shard(s) merged (1/2, 2/2)" in out
    )
    cases = ET.parse(tmp_path / "j.xml").getroot()
    assert cases.get("failures") == "0"
    assert {c.get("name") for c in cases if c.find("skipped") is not None} >= {"DOSE-002"}
    found = write(tmp_path, "c.json", report("2/2", found="applied twice"))
    assert main(["qa-report", "merge", clean[0], found]) == 1


@pytest.mark.parametrize(
    ("reports", "why"),
    [
        ([report("1/2"), report("1/3")], "of different runs"),
        ([report("1/2"), report("1/2")], "shard 1/2 is given twice"),
        ([report("1/2"), ["not", "a", "report"]], "not an itbproto QA report"),
        ([{"rules": {}}], "not an itbproto QA report"),
    ],
)
def test_merge_refuses_reports_of_other_runs_or_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], reports: list[object], why: str
) -> None:
    paths = [write(tmp_path, f"{n}.json", r) for n, r in enumerate(reports)]
    assert main(["qa-report", "merge", *paths]) == 2
    err = capsys.readouterr().err
    assert why in err
    assert len(err.strip().splitlines()) == 1
