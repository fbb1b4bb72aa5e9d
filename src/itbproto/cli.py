"""The ``itbproto`` command: demo, decode, catalog, rules, profiles, specs, qa-report.

Every failure is one line on stderr and a non-zero exit status; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from itbproto import __version__
from itbproto.core.security.pairing import PairedKey
from itbproto.core.wire import CATALOG, decode
from itbproto.core.wire.frame import Frame
from itbproto.errors import ItbError
from itbproto.tools.display import describe
from itbproto.tools.extras import install_hint
from itbproto.tools.remote import add_commands


def parse_hex(text: str) -> bytes:
    """Bytes from hex as people paste it: ``0x`` prefixes, spaces, newlines, ``:`` or ``-`` between bytes."""
    digits = "".join(_clean(part) for part in text.split())
    if len(digits) % 2:
        raise ValueError(f"{len(digits)} hex digits: an odd number cannot be whole bytes")
    return bytes.fromhex(digits)


def _clean(part: str) -> str:
    if part.lower().startswith("0x"):
        part = part[2:]
    bad = sorted({c for c in part if c not in "0123456789abcdefABCDEF:_-"})
    if bad:
        if not all(c.isprintable() and c.isascii() for c in bad):
            raise ValueError("not hex: binary data (decode takes frames as hex text; a capture: --btsnoop)")
        raise ValueError(f"not hex: {''.join(bad)!r} in {part[:24]!r}")
    return re.sub(r"[:_-]", "", part)


def _print_frame(frame_bytes: bytes, frame: Frame | None = None, prefix: str = "") -> None:
    frame = frame or decode(frame_bytes)
    msg = frame.message
    where = f"type 0x{msg.TYPE:02x}, txn {frame.txn}, seq {frame.seq}, {len(frame_bytes)} B"
    print(f"{prefix}{type(msg).__name__}  ({where})")
    rows = describe(msg)
    width = max((len(name) for name, _ in rows), default=0)
    for name, text in rows:
        print(f"  {name:<{width}}  {text}")


def _frames(args: argparse.Namespace) -> Iterator[str]:
    """The hex frames to decode: the arguments, or standard input's lines (bytes that are not text are
    reported by :func:`parse_hex`, never echoed)."""
    if args.frames and args.frames != ["-"]:
        yield from args.frames
        return
    if sys.stdin.isatty():
        print("reading hex frames from standard input, one per line (end with Ctrl-D)", file=sys.stderr)
    stream = getattr(sys.stdin, "buffer", sys.stdin)
    for line in stream:
        text = line.decode("ascii", "replace") if isinstance(line, bytes) else line
        if text.strip():
            yield text


def cmd_demo(args: argparse.Namespace) -> int:
    from itbproto.tools.demo import run

    run(args.mtu or None)
    return 0


def _decode_capture(args: argparse.Namespace) -> int:
    from itbproto.core.capture import frames
    from itbproto.io.keystore import find_key

    keystore = args.keystore

    def key_for(serial: str) -> PairedKey | None:
        return find_key(keystore, serial) if keystore is not None else None

    status = 0
    for captured in frames(Path(args.btsnoop).read_bytes(), key_for):
        way = "programmer -> pump" if captured.to_pump else "pump -> programmer"
        prefix = f"[connection {captured.connection}] {way}  "
        if captured.frame is None:
            print(f"{prefix}not decoded: {type(captured.error).__name__}: {captured.error}")
            status = 1
        else:
            _print_frame(captured.data, captured.frame, prefix)
    return status


def cmd_decode(args: argparse.Namespace) -> int:
    if args.btsnoop is not None:
        return _decode_capture(args)
    status = 0
    for text in _frames(args):
        try:
            frame = parse_hex(text)
            _print_frame(frame)
        except (ValueError, ItbError) as exc:
            shown = " ".join(text.split())
            printable = shown.isascii() and shown.isprintable()
            shown = ("" if not printable else shown if len(shown) <= 40 else shown[:37] + "...") + ": "
            print(
                f"itbproto decode: {shown if printable else ''}{type(exc).__name__}: {exc}", file=sys.stderr
            )
            status = 1
    return status


def cmd_catalog(args: argparse.Namespace) -> int:
    for cls in sorted(CATALOG.values(), key=lambda c: c.TYPE):
        size = f"{cls.CODEC.size}" if cls.CODEC.size is not None else f"..{cls.CODEC.max_size}"
        effect = cls.EFFECT.value if cls.EFFECT is not None else ""
        flag = " changes delivery" if cls.CHANGES_DELIVERY else ""
        print(f"0x{cls.TYPE:02x}  {cls.__name__:<20} {cls.KIND.value:<12} {effect:<8} {size:>6} B{flag}")
    return 0


def _root(args: argparse.Namespace) -> Path:
    root = Path(args.root)
    if not (root / "specs" / "protocol.md").is_file():
        raise ItbError(f"{root.resolve()} is not an itbproto checkout (no specs/protocol.md); pass --root")
    return root


def cmd_specs(args: argparse.Namespace) -> int:
    from itbproto.tools import specgen

    root = _root(args)
    if args.write:
        for path in specgen.write(root):
            print(f"wrote {path}")
        return 0
    stale = specgen.check(root)
    for path in stale:
        print(f"out of date: {path}  (run: itbproto specs --write)", file=sys.stderr)
    if not stale:
        print(f"specs/ under {root} is up to date")
    return 1 if stale else 0


def cmd_rules(args: argparse.Namespace) -> int:
    from itbproto.core.safety.engine import enforcement_points
    from itbproto.io.specfiles import load_rules
    from itbproto.tools import specgen

    if args.matrix:
        root = Path(args.root)
        checkout = (root / "specs" / "safety-rules.toml").is_file() and (root / "tests").is_dir()
        print(specgen.rule_matrix(root / "tests" if checkout else None), end="")
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
    from itbproto.io.specfiles import load_profile, profile_ids
    from itbproto.units import FlowRate, Volume

    for pid in profile_ids():
        p = load_profile(pid)
        rates = f"{FlowRate(p.min_rate_ul_day)}..{FlowRate(p.max_rate_ul_day)}"
        size = Volume(p.reservoir_capacity_ul)
        print(f"{p.id:<8} {p.model:<6} reservoir {size}, rate {rates}  {p.description}")
    return 0


def cmd_qa_report_merge(args: argparse.Namespace) -> int:
    from itbproto.qa.report import Report

    report = Report.merged(Report.load(path) for path in args.reports)
    for line in report.lines():
        print(line)
    missing = ", ".join(map(str, report.missing()))
    print(
        f"itbproto QA: {report.summary()}; {len(report.shards)} shard(s) merged "
        f"({', '.join(map(str, sorted(report.shards)))}){f', missing {missing}' if missing else ''}"
    )
    if args.json is not None:
        args.json.write_text(json.dumps(report.as_json(), indent=1))
    if args.junitxml is not None:
        args.junitxml.write_text(report.junit_xml(), encoding="utf-8")
    return 1 if report.found else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itbproto",
        description="Intrathecal baclofen pump programming protocol tools "
        "(research software, not a medical device).",
    )
    parser.add_argument("--version", action="version", version=f"itbproto {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="a programmer session with a pump, frame by frame",
        description="Run a clinician's session with a pump (the library's own machines) and print every "
        "frame: its hex, which `itbproto decode` takes, and its fields.",
    )
    demo.add_argument(
        "--mtu",
        type=int,
        default=23,
        help="ATT MTU to split frames for (23..517; 0: whole frames; default 23)",
    )
    demo.set_defaults(func=cmd_demo)

    dec = sub.add_parser(
        "decode",
        help="decode frames given as hex, or the ITB frames of a BLE capture",
        description="Decode plain frames. Hex may have a 0x prefix, spaces, newlines or : between bytes. "
        "With no HEX argument (or -), frames are read from standard input, one per line. With --btsnoop, "
        "the frames both sides sent in a BLE capture (sealed ones opened with the pump's key from "
        "--keystore).",
    )
    dec.add_argument("frames", nargs="*", metavar="HEX", help="one frame per argument")
    dec.add_argument(
        "--btsnoop", type=Path, metavar="FILE", help="a btsnoop capture (BUMBLE_SNOOPER, Android)"
    )
    dec.add_argument("--keystore", type=Path, help="paired keys, to open sealed sessions (itbproto pair)")
    dec.set_defaults(func=cmd_decode)

    cat = sub.add_parser(
        "catalog",
        help="list every message type",
        description="Every message: type byte, name, kind, effect, payload size, whether it changes "
        "delivery.",
    )
    cat.set_defaults(func=cmd_catalog)

    rules = sub.add_parser(
        "rules",
        help="list the safety rules, or print the traceability matrix",
        description="The safety rules of specs/safety-rules.toml, or (--matrix) rule -> hazard -> "
        "enforcement -> tests.",
    )
    rules.add_argument("--matrix", action="store_true", help="print the traceability matrix")
    rules.add_argument(
        "-v", "--verbose", action="store_true", help="statements, enforcement points, parameters"
    )
    rules.add_argument(
        "--root",
        default=".",
        help="source checkout whose tests/ the matrix reads (default: the current directory)",
    )
    rules.set_defaults(func=cmd_rules)

    profiles = sub.add_parser(
        "profiles", help="list the device profiles", description="The device profiles in specs/profiles/."
    )
    profiles.set_defaults(func=cmd_profiles)

    specs = sub.add_parser(
        "specs",
        help="check (default) or rewrite the generated parts of specs/",
        description="Check that the generated parts of specs/ (protocol tables, golden vectors, rule matrix, "
        "diagrams) match the code, or rewrite them. Needs a source checkout.",
    )
    specs.add_argument("--write", action="store_true", help="rewrite instead of checking")
    specs.add_argument("--root", default=".", help="the checkout (default: the current directory)")
    specs.set_defaults(func=cmd_specs)

    qa_report = sub.add_parser(
        "qa-report",
        help="work with the QA suite's reports (--itb-report)",
        description="The JSON reports the QA safety suite writes (pytest --pyargs itbproto.qa "
        "--itb-report=FILE).",
    )
    qa_sub = qa_report.add_subparsers(dest="action", required=True, metavar="ACTION", help="what to do")
    merge = qa_sub.add_parser(
        "merge",
        help="add the reports of a run's shards up into one",
        description="Add up the reports of the shards of one QA run (--itb-shard I/N) into one per-rule "
        "table, with the suite's verdicts, and a summary line. Exit status 1 when any rule is violated. "
        "Reports of different shard counts, or a shard given twice, are refused; missing shards are named.",
    )
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT", help="a shard's --itb-report")
    merge.add_argument("--json", type=Path, metavar="FILE", help="write the merged report (same format)")
    merge.add_argument(
        "--junitxml", type=Path, metavar="FILE", help="write JUnit XML: one test case per rule ID"
    )
    merge.set_defaults(func=cmd_qa_report_merge)
    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `itbproto demo | head`: the reader left; say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (ItbError, ValueError, OSError) as exc:
        print(f"itbproto: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if (hint := install_hint(exc)) is None:
            raise
        print(f"itbproto: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
