"""The benchmark compares like with like: its struct baseline gives the library's exact results.

The baseline is laid out by hand from specs/protocol.md, so it is also an independent check of the
Status frame layout.
"""

from __future__ import annotations

import json

import pytest
from bench.bench_codec import baseline_decode, baseline_encode, main

from itbproto import errors
from itbproto.core.wire import MsgType, StatusReport, decode, encode
from itbproto.tools.samples import SAMPLES


def test_baseline_matches_the_library() -> None:
    msg = SAMPLES[MsgType.STATUS_REPORT]
    assert isinstance(msg, StatusReport)
    wire = encode(msg, txn=4, seq=9)
    assert baseline_encode(msg, 4, 9) == wire
    assert baseline_decode(wire) == decode(wire)
    with pytest.raises(errors.BadCrcError):
        baseline_decode(wire[:-1] + bytes([wire[-1] ^ 1]))


def test_benchmark_ends_with_one_json_object_covering_every_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-n", "50", "--rounds", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(summary["types"]) == {type(m).__name__ for m in SAMPLES.values()}
    assert set(summary["status_ratio_vs_struct"]) == {"parse", "build"}


def test_the_simulation_bench_ends_with_json_and_both_ledgers_agree(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import bench_simulate

    assert bench_simulate.main(["--days", "90", "--baseline-days", "20", "--rounds", "1"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["simulate"]["days"] == 90
    assert result["simulate"]["refills"] == 1
    assert result["baseline"]["same_dose"] is True


def test_the_crash_bench_ends_with_json_and_finds_nothing_lost(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import bench_crash

    assert bench_crash.main(["--kills", "5", "--baseline-commands", "20"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["crash"]["kills"] == 5
    assert result["crash"]["violations"] == 0


def test_the_round_trip_bench_ends_with_json_for_every_transport(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import bench_client

    assert bench_client.main(["-n", "20"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(result["round_trip"]) == {"inprocess", "tcp", "tcp_sealed"}
    assert all(r["client_us"] > 0 and r["echo_us"] > 0 for r in result["round_trip"].values())


def test_the_ble_bench_downloads_the_whole_log_and_counts_every_att_byte(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import bench_ble

    assert bench_ble.main(["-n", "20", "--entries", "300"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result["round_trip"]["client_us"] > 0
    assert result["round_trip"]["echo_us"] > 0
    download = result["download"]
    assert download["entries"] == 301  # and the session's own entry
    assert download["mtu"] == 517
    assert 0 < download["payload_bytes"] < download["att_bytes"]


def test_the_qa_bench_counts_steps_on_every_target(capsys: pytest.CaptureFixture[str]) -> None:
    from bench import bench_qa

    assert bench_qa.main(["--examples", "2", "--breakdown"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(result["qa_steps"]) == {"hypothesis_only", "inproc_plain", "inproc_sealed", "tcp", "ble"}
    assert all(r["steps"] > 0 and r["steps_per_s"] > 0 for r in result["qa_steps"].values())
    assert result["ratio_vs_inproc_plain"]["inproc_plain"] == 1.0
    layers = result["breakdown_us_per_step_profiled"]  # every layer the step crosses took some time
    for layer in ("hypothesis", "pump handler", "connection and codec", "sealing", "client and session"):
        assert layers[layer] > 0, layer


def test_the_hostile_load_bench_ends_with_json_and_the_records_are_kept(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Scaled down: every attack runs, the pump's memory stays put and `itbproto log` shows what it must."""
    from bench import bench_hostile

    assert bench_hostile.main(["--quick"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(result) == {"idle", "garbage", "refusals"}
    assert result["refusals"]["all_kept"] is True
    assert result["refusals"]["refused"] >= 2_000
    assert result["garbage"]["session_frames_taken_by_pump"] >= 50_000
