"""Codec throughput: itbproto (compiled construct) against a hand-written struct baseline, same run.

Both sides do the same job on the Status frame: check the envelope and CRC, parse the
payload, build a typed ``StatusReport`` (decode); check and pack the fields, add the CRC
(encode). Rates are the best of several rounds. Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable

from itbproto.errors import BadCrcError, FrameLengthError, TruncatedFrameError, UnknownMessageError
from itbproto.samples import SAMPLES
from itbproto.wire import AlarmCode, MsgType, StatusReport, TherapyMode, crc16, decode, encode
from itbproto.wire.frame import Frame

GOAL_PARSE_PER_S = 100_000
GOAL_RATIO = 4.0

_HEADER = struct.Struct("<BBIIBH")
_STATUS = struct.Struct("<IBHIIIIIHII")
_CRC = struct.Struct("<H")


def baseline_decode(data: bytes) -> Frame:
    """Hand-written struct decoder for the Status frame, with the same checks as the library."""
    if len(data) < _HEADER.size + 2:
        raise TruncatedFrameError(_HEADER.size + 2, len(data))
    version, flags, seq, txn, msg_type, length = _HEADER.unpack_from(data)
    end = _HEADER.size + length
    if len(data) != end + 2:
        raise FrameLengthError(end + 2, len(data))
    (carried,) = _CRC.unpack_from(data, end)
    if carried != crc16(data[:end]):
        raise BadCrcError(crc16(data[:end]), carried)
    if msg_type != MsgType.STATUS_REPORT or length != _STATUS.size or version != 1 or flags:
        raise UnknownMessageError(msg_type)
    f = _STATUS.unpack_from(data, _HEADER.size)
    msg = StatusReport(
        device_time=f[0],
        mode=TherapyMode(f[1]),
        alarms=frozenset(code for code in AlarmCode if f[2] >> code & 1),
        reservoir_ul=f[3],
        concentration_ug_ml=f[4],
        rate_ul_day=f[5],
        bolus_remaining_ul=f[6],
        delivered_24h_ng=f[7],
        battery_days=f[8],
        prescription_id=f[9],
        last_txn=f[10],
    )
    return Frame(msg, txn=txn, seq=seq)


def baseline_encode(msg: StatusReport, txn: int, seq: int) -> bytes:
    """Hand-written struct encoder (struct.pack checks the integer widths)."""
    payload = _STATUS.pack(
        msg.device_time,
        msg.mode,
        sum(1 << code for code in msg.alarms),
        msg.reservoir_ul,
        msg.concentration_ug_ml,
        msg.rate_ul_day,
        msg.bolus_remaining_ul,
        msg.delivered_24h_ng,
        msg.battery_days,
        msg.prescription_id,
        msg.last_txn,
    )
    head = _HEADER.pack(1, 0, seq, txn, MsgType.STATUS_REPORT, len(payload)) + payload
    return head + _CRC.pack(crc16(head))


def rate(fn: Callable[[], object], n: int, rounds: int) -> float:
    best = 0.0
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        best = max(best, n / (time.perf_counter() - start))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=50_000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    msg = SAMPLES[MsgType.STATUS_REPORT]
    assert isinstance(msg, StatusReport)
    wire = encode(msg, txn=4, seq=9)
    assert baseline_encode(msg, 4, 9) == wire
    assert baseline_decode(wire) == decode(wire)

    results = {
        "parse itbproto": rate(lambda: decode(wire), args.n, args.rounds),
        "parse struct": rate(lambda: baseline_decode(wire), args.n, args.rounds),
        "build itbproto": rate(lambda: encode(msg, txn=4, seq=9), args.n, args.rounds),
        "build struct": rate(lambda: baseline_encode(msg, 4, 9), args.n, args.rounds),
    }
    print(f"Status frame, {len(wire)} bytes; best of {args.rounds} rounds of {args.n}")
    for name, value in results.items():
        print(f"  {name:<16} {value / 1000:8.1f} k frames/s")
    parse_ratio = results["parse struct"] / results["parse itbproto"]
    build_ratio = results["build struct"] / results["build itbproto"]
    print(f"  struct is faster by {parse_ratio:.2f}x (parse), {build_ratio:.2f}x (build)")
    ok = results["parse itbproto"] >= GOAL_PARSE_PER_S and parse_ratio <= GOAL_RATIO
    verdict = "meets" if ok else "MISSES"
    print(f"  goal: parse >= {GOAL_PARSE_PER_S // 1000}k/s and <= {GOAL_RATIO}x struct: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
