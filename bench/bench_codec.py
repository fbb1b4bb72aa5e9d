"""Codec throughput: every message type both ways, and Status against a hand-written struct baseline.

The baseline and itbproto do the same job on the Status frame, in the same run:
check the envelope and CRC, parse the payload, build a typed ``StatusReport``
(decode); check and pack the fields, add the CRC (encode). Every other message
type is measured on its sample (specs/vectors/). Rates are the best of several
rounds. The last line printed is one JSON object with every figure and the
ratios against the baseline. Run: ``make bench``.
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import time
from collections.abc import Callable

from itbproto.core.connection import Connection, Side
from itbproto.core.wire import (
    AlarmCode,
    MsgType,
    Phase,
    StatusReport,
    StatusRequest,
    TherapyMode,
    crc16,
    decode,
    encode,
)
from itbproto.core.wire.frame import Frame
from itbproto.errors import BadCrcError, FrameLengthError, TruncatedFrameError, UnknownMessageError
from itbproto.tools.samples import SAMPLES

#: the goals of issue 12: every type with a payload of at most 256 bytes both ways, Status within 4x struct
GOAL_PER_S = 100_000
GOAL_PAYLOAD = 256
GOAL_RATIO = 4.0

_HEADER = struct.Struct("<BBIIBH")
_STATUS = struct.Struct("<IBBHIIIIIHII")
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
        phase=Phase(f[2]),
        alarms=frozenset(code for code in AlarmCode if f[3] >> code & 1),
        reservoir_ul=f[4],
        concentration_ug_ml=f[5],
        rate_ul_day=f[6],
        bolus_remaining_ul=f[7],
        delivered_24h_ng=f[8],
        battery_days=f[9],
        prescription_id=f[10],
        last_txn=f[11],
    )
    return Frame(msg, txn=txn, seq=seq)


def baseline_encode(msg: StatusReport, txn: int, seq: int) -> bytes:
    """Hand-written struct encoder (struct.pack checks the integer widths)."""
    payload = _STATUS.pack(
        msg.device_time,
        msg.mode,
        msg.phase,
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


def round_trip_rate(n: int, rounds: int, mtu: int | None) -> float:
    """StatusRequest and StatusReport through two Connections (encode, fragment, join, decode, match)."""
    status = SAMPLES[MsgType.STATUS_REPORT]

    def one() -> None:
        programmer, pump = Connection(Side.PROGRAMMER, mtu=mtu), Connection(Side.PUMP, mtu=mtu)
        for _ in range(50):
            for chunk in programmer.send(StatusRequest()):
                pump.receive(chunk)
            for chunk in pump.send(status, programmer.last_txn):
                programmer.receive(chunk)

    return 50 * rate(one, max(1, n // 50), rounds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=20_000, help="operations per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    n, rounds = args.n, args.rounds

    status = SAMPLES[MsgType.STATUS_REPORT]
    assert isinstance(status, StatusReport)
    wire = encode(status, txn=4, seq=9)
    assert baseline_encode(status, 4, 9) == wire
    assert baseline_decode(wire) == decode(wire)

    baseline = {
        "parse": rate(lambda: baseline_decode(wire), n, rounds),
        "build": rate(lambda: baseline_encode(status, 4, 9), n, rounds),
    }
    per_type: dict[str, dict[str, float | int]] = {}
    for msg in sorted(SAMPLES.values(), key=lambda m: m.TYPE):
        frame = encode(msg, txn=4, seq=9)
        per_type[type(msg).__name__] = {
            "payload_bytes": len(frame) - 15,
            "parse_per_s": round(rate(lambda frame=frame: decode(frame), n, rounds)),  # type: ignore[misc]
            "build_per_s": round(rate(lambda msg=msg: encode(msg, txn=4, seq=9), n, rounds)),  # type: ignore[misc]
        }
    ours = per_type["StatusReport"]
    ratios = {
        "parse": baseline["parse"] / ours["parse_per_s"],
        "build": baseline["build"] / ours["build_per_s"],
    }
    small = {name: r for name, r in per_type.items() if r["payload_bytes"] <= GOAL_PAYLOAD}
    slowest = min(min(r["parse_per_s"], r["build_per_s"]) for r in small.values())
    links = {"whole_frames": round_trip_rate(n, rounds, None), "mtu_23": round_trip_rate(n, rounds, 23)}

    print(f"every message type, best of {rounds} rounds of {n} (frames/s)")
    for name, r in per_type.items():
        parse, build = r["parse_per_s"] / 1000, r["build_per_s"] / 1000
        print(f"  {name:<20} {r['payload_bytes']:>4} B  parse {parse:7.1f} k  build {build:7.1f} k")
    parse, build = baseline["parse"] / 1000, baseline["build"] / 1000
    print(f"Status: struct baseline parse {parse:.1f} k/s, build {build:.1f} k/s")
    print(f"  struct is faster by {ratios['parse']:.2f}x (parse), {ratios['build']:.2f}x (build)")
    print(
        f"request+reply through two Connections: {links['whole_frames'] / 1000:.1f} k/s whole, "
        f"{links['mtu_23'] / 1000:.1f} k/s at ATT MTU 23"
    )
    met = slowest >= GOAL_PER_S and max(ratios.values()) <= GOAL_RATIO
    print(
        f"goal: >= {GOAL_PER_S // 1000}k/s both ways for payloads <= {GOAL_PAYLOAD} B, "
        f"Status <= {GOAL_RATIO}x struct: {'met' if met else 'MISSED'}"
    )
    summary = {
        "bench": "codec",
        "rounds": rounds,
        "n": n,
        "baseline_status": {k: round(v) for k, v in baseline.items()},
        "status_ratio_vs_struct": {k: round(v, 3) for k, v in ratios.items()},
        "slowest_small_type_per_s": slowest,
        "round_trips_per_s": {k: round(v) for k, v in links.items()},
        "goal_met": met,
        "types": per_type,
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
