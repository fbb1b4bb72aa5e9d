"""The ``itbemu`` command: serve an emulated pump, simulate therapy, export a pump's log and ledger.

Every failure is one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from itbemu.audit import audit_text
from itbemu.clock import RealClock
from itbemu.device import Emulator, new_therapy
from itbemu.export import export_lines
from itbemu.faults import FaultPlan
from itbemu.server import TcpServer
from itbemu.store import Store
from itbproto.core.safety import SafetyPolicy
from itbproto.errors import ItbError
from itbproto.io.specfiles import (
    load_drug,
    load_policy,
    load_prescription,
    load_profile,
    load_rules,
    profile_ids,
)
from itbproto.tools.extras import install_hint

__all__ = ["build_parser", "main"]


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _ble_address(text: str) -> str:
    from itbproto.io.ble.bumble_backend import static_random

    if not re.fullmatch(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}", text):
        raise argparse.ArgumentTypeError(f"expected a BLE address XX:XX:XX:XX:XX:XX, got {text!r}")
    if not static_random(bytes.fromhex(text.replace(":", ""))):
        raise argparse.ArgumentTypeError(f"{text} is not a static random address (its first byte C0 to FF)")
    return text.upper()


def _new_pump(args: argparse.Namespace, policy: SafetyPolicy, store: Store | None) -> Emulator:
    therapy = new_therapy(
        load_profile(args.profile),
        load_drug(),
        concentration_ug_ml=args.concentration,
        screening_dose_ng=args.screening_ug * 1000,
        reservoir_ul=args.reservoir,
    )
    return Emulator.create(therapy, policy, serial=args.serial, store=store)


#: TCP admission and time-outs: the option, the TcpServer field it sets, what it means (specs/protocol.md §3)
_ADMISSION = (
    ("--max-links", "max_links", "links at once"),
    ("--max-strangers", "max_strangers", "links without a session at once"),
    ("--max-strangers-per-peer", "max_strangers_per_peer", "of those, from one address"),
    ("--max-stranger-frames", "max_stranger_frames", "frames a link may send before it has a session"),
    ("--handshake-timeout", "handshake_timeout_s", "seconds a new link has to open a session"),
    ("--frame-timeout", "frame_timeout_s", "seconds a frame may take once begun"),
    ("--idle-timeout", "idle_timeout_s", "seconds a session may send nothing before it is closed; 0: never"),
    (
        "--penalty",
        "penalty_s",
        "seconds an address is refused after its stranger was closed for what it sent or its time-out;"
        " doubling while it goes on, at most 60",
    ),
)


def cmd_serve(args: argparse.Namespace) -> int:
    if not args.ble and (args.ble_address or args.btsnoop):
        raise ValueError("--ble-address and --btsnoop go with --ble")
    if args.defect:
        from itbemu.defects import seed

        seed(args.defect)
        print(f"itbemu: DEFECTIVE pump ({args.defect}), for testing the QA suite only", file=sys.stderr)
    policy = SafetyPolicy(load_rules(), load_policy(args.policy) if args.policy else {})
    store = Store(args.store, fsync=args.fsync) if args.store else None
    if store is not None and store.load(0) is not None:
        emulator = Emulator.open(store, policy)
    else:
        emulator = _new_pump(args, policy, store)
    emulator.firmware.pin, emulator.firmware.require_pairing = args.pin, args.require_pairing
    plan = FaultPlan.load(args.faults) if args.faults else FaultPlan()
    clock = RealClock(start=emulator.now, speed=args.speed)
    emulator.schedule([(emulator.now + at, fault) for at, fault in plan.faults])
    if args.ble:
        asyncio.run(_serve_ble(emulator, clock, args.ble, args.btsnoop, args.ble_address))
        emulator.close()  # every link's totals logged and saved
        if store is not None:
            store.close()
        print("itbemu: stopped")
        return 0
    if args.tcp is None:
        raise ValueError("say where to serve: --tcp HOST:PORT or --ble TRANSPORT")
    host, port = args.tcp
    server = TcpServer(
        emulator,
        clock,
        host=host,
        port=port,
        faults=plan.link,
        **{name: getattr(args, flag[2:].replace("-", "_")) for flag, name, _ in _ADMISSION},
    )

    async def run() -> None:
        bound = await server.start()
        server.install_signal_handlers()
        print(
            f"itbemu: pump {emulator.pump.state.serial} ({emulator.therapy.profile.id}) on tcp://{bound[0]}:{bound[1]}"
        )
        sys.stdout.flush()
        await server.wait_closed()

    asyncio.run(run())
    if store is not None:
        store.close()
    print("itbemu: stopped")
    return 0


async def _serve_ble(
    emulator: Emulator, clock: RealClock, hci: str, btsnoop: Path | None, address: str | None
) -> None:
    """The pump as a BLE peripheral on a bumble virtual link whose other controller's HCI is served on
    ``hci`` (e.g. ``tcp-server:127.0.0.1:9100``): a programmer connects with the matching client transport.
    ``btsnoop``: record the pump's HCI there (``itbproto decode --btsnoop`` reads it). ``address``: the
    pump's, instead of the one its serial gives."""
    from bumble.link import LocalLink
    from bumble.snoop import BtSnooper

    from itbemu.ble import BlePeripheral, open_hub, pump_device

    radio = LocalLink()  # type: ignore[no-untyped-call]
    hub = await open_hub(radio, hci)
    peripheral = BlePeripheral(emulator, clock, pump_device(radio, emulator, address))
    with contextlib.ExitStack() as files:
        if btsnoop is not None:
            capture = files.enter_context(btsnoop.open("wb", buffering=0))
            peripheral.device.host.snooper = BtSnooper(capture)
        await peripheral.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        name, at = peripheral.device.name, peripheral.device.static_address
        pump = f"itbemu: pump {emulator.pump.state.serial} ({emulator.therapy.profile.id}) on ble {hci}"
        print(f"{pump}, advertising as {name} at {at}")
        sys.stdout.flush()
        while not stop.is_set():  # time passes: alarms go to every connected programmer
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
            await peripheral.advance()
        await hub.close()


def cmd_simulate(args: argparse.Namespace) -> int:
    from itbemu.simulate import simulate

    prescription = load_prescription(args.prescription)
    plan = FaultPlan.load(args.faults) if args.faults else FaultPlan()
    progress = _Progress(args.days) if sys.stderr.isatty() and not args.quiet else None
    sim = simulate(
        days=args.days,
        profile=load_profile(args.profile),
        drug=load_drug(),
        policy=SafetyPolicy(load_rules()),
        prescription=prescription,
        refill_every=args.refill_every,
        plan=plan,
        progress=progress,
    )
    if progress is not None:
        progress.done()
    summary = sim.summary()
    if args.plot:
        from itbemu.plot import plot

        summary["plot"] = str(plot(sim, args.plot, f"{args.days} days, profile {args.profile}").resolve())
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>18}: {'-' if value is None else value}")
    return 0


def cmd_export_log(args: argparse.Namespace) -> int:
    with Store(args.store, create=False) as store:
        for line in export_lines(store, SafetyPolicy(load_rules()).values):
            print(json.dumps(line, separators=(",", ":")))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    try:
        text = sys.stdin.read() if str(args.export) == "-" else args.export.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ItbError(f"{args.export}: not a text file") from None
    findings = audit_text(text)
    if args.json:
        print(json.dumps([f.as_json() for f in findings]))
    else:
        for finding in findings:
            print(finding)
        if not findings:
            print("no rule broken")
    return 1 if findings else 0


class _Progress:
    """A progress bar on stderr for long runs."""

    def __init__(self, total: int) -> None:
        self.total, self.shown = total, -1

    def __call__(self, day: int) -> None:
        percent = day * 100 // self.total
        if percent != self.shown:
            self.shown = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\rsimulating [{bar:<25}] {percent:3d}% day {day}/{self.total}")
            sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\n")


def cmd_demo(args: argparse.Namespace) -> int:
    from itbemu.demo import run_demo

    run_demo(args.out, args.days)
    return 0


def _positive(text: str) -> int:
    """A whole number of at least 1 (argparse's type)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itbemu", description="An emulated ITB pump (not a medical device)."
    )
    parser.add_argument("--version", action="version", version=f"itbemu {version('itbproto')}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="serve an emulated pump over TCP or BLE",
        description=(
            "An emulated pump (the library's own machines, exact delivery on a real clock) served "
            "over TCP or as a BLE peripheral on bumble's virtual radio, until SIGINT or SIGTERM. With"
            " --store it keeps everything it acknowledged across restarts and kill -9; the admission "
            "options size it for hostile networks (specs/protocol.md §3)."
        ),
    )
    serve.add_argument("--tcp", type=_address, metavar="HOST:PORT", help="where to listen (TCP)")
    serve.add_argument(
        "--ble",
        metavar="TRANSPORT",
        help="serve as a BLE peripheral; the programmers' HCI (tcp-server:HOST:PORT)",
    )
    serve.add_argument(
        "--ble-address",
        type=_ble_address,
        metavar="XX:XX:XX:XX:XX:XX",
        help="with --ble: the pump's static random address (default: the one its serial gives, the same at "
        "every start)",
    )
    serve.add_argument("--btsnoop", type=Path, metavar="FILE", help="with --ble: record the pump's HCI")
    serve.add_argument(
        "--defect",
        metavar="NAME",
        help="a seeded defect for the QA suite (test builds only: needs ITBEMU_ALLOW_DEFECTS=1)",
    )
    serve.add_argument("--profile", choices=profile_ids(), default="itb-20", help="device profile")
    serve.add_argument("--store", type=Path, help="SQLite file keeping the pump across restarts")
    serve.add_argument(
        "--fsync",
        action="store_true",
        help="flush each acknowledged change to the disk: the store survives a power cut of the host, not "
        "only a kill of the emulator (about half as many changes a second)",
    )
    serve.add_argument("--faults", type=Path, help="a fault plan (TOML): device and link faults")
    serve.add_argument(
        "--policy",
        type=Path,
        help="the site's safety policy (TOML, examples/policies/): catalog parameters, only tightened",
    )
    serve.add_argument("--speed", type=float, default=1.0, help="device seconds per real second")
    serve.add_argument("--serial", default="EMU-000001", help="serial number of a new pump")
    serve.add_argument("--concentration", type=int, default=500, help="µg/mL in a new pump's reservoir")
    serve.add_argument("--reservoir", type=int, help="µL in a new pump's reservoir (default: full)")
    serve.add_argument("--screening-ug", type=int, default=300, help="the patient's effective screening dose")
    serve.add_argument("--pin", help="accept pairing: the PIN the pump shows (e.g. 493817)")
    serve.add_argument("--require-pairing", action="store_true", help="only paired programmers may connect")
    tcp = serve.add_argument_group(
        "TCP admission and time-outs",
        "a link without a session (a stranger) must open one in time; strangers are few and a new connection "
        "evicts the idlest, so they never lock a programmer out (specs/protocol.md §3)",
    )
    for flag, name, text in _ADMISSION:
        kind = type(getattr(TcpServer, name))
        metavar = "S" if name.endswith("_s") else None
        tcp.add_argument(
            flag, type=kind, default=getattr(TcpServer, name), metavar=metavar, help=f"{text} (%(default)s)"
        )
    serve.set_defaults(func=cmd_serve)

    sim = commands.add_parser(
        "simulate",
        help="run therapy on the virtual clock",
        description=(
            "Years of therapy on the virtual clock, event by event: delivery, refills every --refill-"
            "every days, the battery to its end of service, faults from a plan. Prints the day of "
            "each first alarm, ERI, EOS and the µg delivered; --plot draws reservoir, daily dose, "
            "refills, alarms and battery (the emulator extra)."
        ),
    )
    sim.add_argument("--days", type=_positive, required=True, help="how long")
    sim.add_argument("--profile", choices=profile_ids(), default="itb-20", help="device profile")
    sim.add_argument("--prescription", type=Path, required=True, help="a prescription (TOML, see examples/)")
    sim.add_argument("--refill-every", type=int, metavar="DAYS", help="refill to capacity every DAYS days")
    sim.add_argument("--faults", type=Path, help="a fault plan (TOML)")
    sim.add_argument(
        "--plot",
        type=Path,
        help="write a PNG here: reservoir, daily dose, battery; every refill and alarm marked",
    )
    sim.add_argument("--json", action="store_true", help="the summary as one JSON object")
    sim.add_argument("--quiet", action="store_true", help="no progress bar")
    sim.set_defaults(func=cmd_simulate)

    demo = commands.add_parser(
        "demo",
        help="serve a pump, run a clinical session on it over TCP, plot years",
        description=(
            "What `make demo` runs: a pump served over TCP, a clinical session against it through the"
            " bytes (status, titration, a low-reservoir alarm, a refill, a motor stall), its event "
            "log, then years simulated into a plot in --out."
        ),
    )
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="where the store and the plot go")
    demo.add_argument("--days", type=_positive, default=3_650, help="days to simulate for the plot")
    demo.set_defaults(func=cmd_demo)

    export = commands.add_parser(
        "export-log",
        help="a stored pump's export for an auditor: header, event log, delivery ledger, JSON lines",
        description=(
            "A stored pump's export (specs/export.md): a header (the pump, its profile and drug, the policy,"
            " the state its records start from), every event with its facts, then the delivery ledger"
            " (what reached the catheter tip), one JSON object per line, from the store of `serve --store`."
        ),
    )
    export.add_argument("--store", type=Path, required=True, help="the SQLite file of `serve --store`")
    export.set_defaults(func=cmd_export_log)

    audit = commands.add_parser(
        "audit",
        help="re-check the dose rules from an export alone; exit 1 if one was broken",
        description=(
            "Reads an export of `export-log` (specs/export.md) and re-checks, with exact arithmetic and"
            " without the rule engine, DOSE-001 (every 24 h window at the catheter tip), BOL-001, PBOL-001/"
            "002/003, TITR-001/002, REFILL-001, RES-001 and BATT-001/002: one line per broken window,"
            " bolus or change; exit status 0 when none broke, 1 otherwise."
        ),
    )
    audit.add_argument("export", type=Path, help="the export's JSON lines file (- for stdin)")
    audit.add_argument("--json", action="store_true", help="the findings as one JSON list")
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (ItbError, ValueError, OSError) as exc:
        print(f"itbemu: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if (hint := install_hint(exc)) is None:
            raise
        print(f"itbemu: {hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
