"""The ``itbproto`` command: demo, decode, catalog, specs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from itbproto import __version__
from itbproto.display import describe
from itbproto.errors import ItbError
from itbproto.wire import CATALOG, decode


def _print_frame(prefix: str, frame_bytes: bytes) -> None:
    frame = decode(frame_bytes)
    msg = frame.message
    print(f"{prefix}{type(msg).__name__}  (type 0x{msg.TYPE:02x}, txn {frame.txn}, seq {frame.seq})")
    rows = describe(msg)
    width = max((len(name) for name, _ in rows), default=0)
    for name, text in rows:
        print(f"      {name:<{width}}  {text}")


def cmd_demo(args: argparse.Namespace) -> int:
    from itbproto.demo import run

    run(args.mtu)
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    status = 0
    for text in args.frames:
        try:
            _print_frame("", bytes.fromhex(text))
        except (ValueError, ItbError) as exc:
            print(f"{text[:32]}...: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    return status


def cmd_catalog(args: argparse.Namespace) -> int:
    for cls in sorted(CATALOG.values(), key=lambda c: c.TYPE):
        size = cls.CODEC.size if cls.CODEC.size is not None else "var"
        flag = " changes delivery" if cls.CHANGES_DELIVERY else ""
        print(f"0x{cls.TYPE:02x}  {cls.__name__:<20} {cls.KIND.value:<12} {size:>4} B{flag}")
    return 0


def cmd_specs(args: argparse.Namespace) -> int:
    from itbproto import specgen

    root = Path(args.root)
    if args.write:
        for path in specgen.write(root):
            print(f"wrote {path}")
        return 0
    stale = specgen.check(root)
    for path in stale:
        print(f"out of date: {path}  (run: itbproto specs --write)", file=sys.stderr)
    return 1 if stale else 0


def cmd_rules(args: argparse.Namespace) -> int:
    from itbproto import specgen
    from itbproto.safety.engine import enforcement_points
    from itbproto.specfiles import load_rules

    if args.matrix:
        print(specgen.rule_matrix(Path(args.root) / "tests"), end="")
        return 0
    points = enforcement_points()
    for rule in load_rules():
        print(f"{rule.id:<11} {rule.hazard:<20} {rule.title}")
        if args.verbose:
            print(f"            {rule.statement}")
            print(f"            enforced on: {', '.join(points.get(rule.id, ()))}")
            for p in rule.params:
                print(f"            {p.name} = {p.default} (may only go {p.tighten})")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from itbproto.specfiles import load_profile, profile_ids
    from itbproto.units import FlowRate, Volume

    for pid in profile_ids():
        p = load_profile(pid)
        rates = f"{FlowRate(p.min_rate_ul_day)}..{FlowRate(p.max_rate_ul_day)}"
        size = Volume(p.reservoir_capacity_ul)
        print(f"{p.id:<8} {p.model:<6} reservoir {size}, rate {rates}  {p.description}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="itbproto", description=__doc__)
    parser.add_argument("--version", action="version", version=f"itbproto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a programmer session with a pump, frame by frame over BLE fragments")
    demo.add_argument("--mtu", type=int, default=23, help="ATT MTU to fragment for (23..517, default 23)")
    demo.set_defaults(func=cmd_demo)

    dec = sub.add_parser("decode", help="decode plain frames given as hex")
    dec.add_argument("frames", nargs="+", metavar="HEX")
    dec.set_defaults(func=cmd_decode)

    cat = sub.add_parser("catalog", help="list every message type")
    cat.set_defaults(func=cmd_catalog)

    rules = sub.add_parser("rules", help="list the safety rules, or print the traceability matrix")
    rules.add_argument("--matrix", action="store_true", help="print rule -> hazard -> enforcement -> tests")
    rules.add_argument(
        "-v", "--verbose", action="store_true", help="statements, enforcement points, parameters"
    )
    rules.add_argument("--root", default=".", help="repository root, for --matrix (default: .)")
    rules.set_defaults(func=cmd_rules)

    profiles = sub.add_parser("profiles", help="list the device profiles")
    profiles.set_defaults(func=cmd_profiles)

    specs = sub.add_parser("specs", help="check (default) or rewrite the generated parts of specs/")
    specs.add_argument("--write", action="store_true", help="rewrite instead of checking")
    specs.add_argument("--root", default=".", help="repository root (default: current directory)")
    specs.set_defaults(func=cmd_specs)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ItbError, ValueError) as exc:
        print(f"itbproto: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
