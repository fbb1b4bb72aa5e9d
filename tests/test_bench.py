"""The benchmark compares like with like: its struct baseline gives the library's exact results.

The baseline is laid out by hand from specs/protocol.md, so it is also an independent check of the
Status frame layout.
"""

from __future__ import annotations

import pytest
from bench.bench_codec import baseline_decode, baseline_encode, main

from itbproto import errors
from itbproto.samples import SAMPLES
from itbproto.wire import MsgType, StatusReport, decode, encode


def test_baseline_matches_the_library() -> None:
    msg = SAMPLES[MsgType.STATUS_REPORT]
    assert isinstance(msg, StatusReport)
    wire = encode(msg, txn=4, seq=9)
    assert baseline_encode(msg, 4, 9) == wire
    assert baseline_decode(wire) == decode(wire)
    with pytest.raises(errors.BadCrcError):
        baseline_decode(wire[:-1] + bytes([wire[-1] ^ 1]))


def test_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-n", "10", "--rounds", "1"]) == 0
    assert "struct is faster by" in capsys.readouterr().out
