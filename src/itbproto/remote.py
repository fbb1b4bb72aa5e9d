"""``itbproto status | log | alarms | program --target tcp://HOST:PORT | ble://NAME``: pumps from the shell.

Each command opens a :class:`~itbproto.client.PumpClient` on the target, does one thing, ends the session
and prints the result (``--json``: JSON, one object or one per line). Run the emulator in one terminal
(``itbemu serve --tcp 127.0.0.1:7878``) and program it from another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from itbproto.client import PumpClient
from itbproto.display import describe
from itbproto.machines.session import Summary
from itbproto.security.keystore import load_key, save_key
from itbproto.security.pairing import PairedKey
from itbproto.specfiles import load_prescription, profile_ids
from itbproto.transport import open_target
from itbproto.wire import messages as m
from itbproto.wire.enums import BolusKind, Role
from itbproto.wire.fields import RecordType
from itbproto.wire.message import Message

__all__ = ["add_commands"]

_EVENT = RecordType(m.EventRecord)
_ALARM = RecordType(m.AlarmRecord)


async def _client(args: argparse.Namespace, key: PairedKey | None) -> PumpClient:
    """A client on the ``--target`` (sealed under ``key``, if any), in the ``--role``."""
    transport = await open_target(args.target)
    role = Role[args.role.upper()]
    return PumpClient.shipped(transport, args.profile, role=role, name="itbproto cli", key=key)


def _run(args: argparse.Namespace, work: Callable[[PumpClient], Awaitable[None]]) -> int:
    async def session() -> None:
        key = load_key(args.keystore, args.serial) if args.keystore else None
        async with await _client(args, key) as pump:
            await work(pump)  # (reads leave by closing the link; program ends its session itself)

    asyncio.run(session())
    return 0


def _show(message: Message, as_json: bool) -> None:
    if as_json:
        print(json.dumps(message.to_json()))
    else:
        for name, value in describe(message):
            print(f"{name:>24}: {value}")


def cmd_status(args: argparse.Namespace) -> int:
    async def work(pump: PumpClient) -> None:
        _show(await pump.status(), args.json)

    return _run(args, work)


def cmd_log(args: argparse.Namespace) -> int:
    def progress(read: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rreading the log: {read}/{total}")
            sys.stderr.flush()

    async def work(pump: PumpClient) -> None:
        entries = await pump.events(progress)
        if sys.stderr.isatty():
            sys.stderr.write("\n")
        for entry in entries:
            if args.json:
                print(json.dumps(_EVENT.to_json(entry)))
            else:
                detail = f"  {entry.detail}" if entry.detail else ""
                what = f"{entry.code.name:<24} txn {entry.txn:<6} {entry.value}{detail}"
                print(f"#{entry.index:<5} {entry.at:>11} s  {what}")

    return _run(args, work)


def cmd_alarms(args: argparse.Namespace) -> int:
    async def work(pump: PumpClient) -> None:
        for alarm in await pump.alarm_list():
            if args.acknowledge:
                await pump.acknowledge_alarm(alarm.alarm_id)
            if args.json:
                print(json.dumps(_ALARM.to_json(alarm)))
            else:
                state = (
                    "acknowledged now" if args.acknowledge else ("acknowledged" if alarm.acknowledged else "")
                )
                print(f"{alarm.alarm_id:>4}  {alarm.code.name:<18} {alarm.severity.name.lower():<13} {state}")

    return _run(args, work)


def _ack(args: argparse.Namespace) -> m.Acknowledgement:
    """The hazards the user acknowledges on the command line (``--ack RULE,RULE``), and who."""
    rules = tuple(r for r in args.ack.split(",") if r) if args.ack else ()
    return m.Acknowledgement(rules=rules, by=args.by)


def cmd_bolus(args: argparse.Namespace) -> int:
    async def work(pump: PumpClient) -> None:
        kind = BolusKind[args.kind.upper()]
        _show(await pump.bolus(kind, args.volume_ul, args.duration_s, _ack(args)), args.json)

    return _run(args, work)


def cmd_refill(args: argparse.Namespace) -> int:
    async def work(pump: PumpClient) -> None:
        bridge = args.bridge
        await pump.refill(
            args.withdrawn_ul, args.volume_ul, args.concentration, bridge=bridge, ack=_ack(args)
        )
        _show(await pump.status(), args.json)

    return _run(args, work)


def cmd_pair(args: argparse.Namespace) -> int:
    if args.keystore is None or not args.serial:
        raise ValueError("pair needs --keystore (where the key goes) and --serial (the pump's)")

    async def pair() -> None:
        client = await _client(args, None)
        try:
            key = await client.pair(args.pin, args.serial)
        finally:
            await client.close()
        save_key(args.keystore, args.serial, key)
        role = key.role.name.lower()
        print(f"paired with {args.serial} as {role} (key {key.key_id}); kept in {args.keystore}")

    asyncio.run(pair())
    return 0


def cmd_program(args: argparse.Namespace) -> int:
    prescription = load_prescription(args.prescription)

    def confirm(summary: Summary) -> m.Acknowledgement | None:
        print(f"new daily dose: {summary.daily_dose_ng} ng (the pump computed it)", file=sys.stderr)
        if summary.acknowledge:
            print(f"to acknowledge: {', '.join(summary.acknowledge)}", file=sys.stderr)
        if not args.yes:
            answer = input("confirm? [yes/no] ")
            if answer.strip().lower() != "yes":
                return None
        return m.Acknowledgement(rules=summary.acknowledge, by=args.by)

    async def work(pump: PumpClient) -> None:
        await pump.program(prescription, confirm)
        _show(await pump.status(), args.json)
        await pump.end()

    return _run(args, work)


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The remote commands, on the ``itbproto`` parser."""
    commands = {
        "pair": (cmd_pair, "pair with the PIN the pump shows; the key goes to the keystore (0600)"),
        "status": (cmd_status, "read a pump's status"),
        "log": (cmd_log, "download a pump's event log (a progress bar on a terminal)"),
        "alarms": (cmd_alarms, "list a pump's active alarms (--acknowledge: acknowledge them)"),
        "bolus": (cmd_bolus, "start a bolus (checked by the programmer, then by the pump)"),
        "refill": (cmd_refill, "refill: what was withdrawn, the new drug, confirmed twice"),
        "program": (
            cmd_program,
            "program a prescription: check, stage, confirm the summary, commit, read back",
        ),
    }
    for name, (func, text) in commands.items():
        p = sub.add_parser(name, help=text, description=text + ". " + (__doc__ or "").splitlines()[0])
        p.add_argument(
            "--target",
            required=True,
            metavar="tcp://HOST:PORT|ble://NAME",
            help="the pump (itbemu serve --tcp, or --ble with ITBPROTO_BLE_HCI set)",
        )
        p.add_argument("--profile", choices=profile_ids(), default="itb-20", help="the pump's device profile")
        p.add_argument(
            "--role", choices=[r.name.lower() for r in Role], default="clinician", help="session role"
        )
        p.add_argument("--by", default="cli", help="who acknowledges (logged by the pump)")
        p.add_argument("--json", action="store_true", help="JSON output")
        p.add_argument(
            "--keystore", type=Path, help="the keys of paired pumps (connect sealed with --serial)"
        )
        p.add_argument("--serial", default="", help="the pump's serial: which key of the keystore")
        if name == "pair":
            p.add_argument("--pin", required=True, help="the PIN the pump shows")
        if name == "alarms":
            p.add_argument("--acknowledge", action="store_true", help="acknowledge every active alarm")
        if name in ("bolus", "refill"):
            p.add_argument("--ack", default="", help="hazards acknowledged, comma separated (e.g. FLOW-001)")
        if name == "bolus":
            kinds = [k.name.lower() for k in BolusKind]
            p.add_argument("--kind", choices=kinds, default="clinician", help="the bolus kind")
            p.add_argument("--volume-ul", type=int, required=True, help="µL")
            p.add_argument("--duration-s", type=int, required=True, help="s")
        if name == "refill":
            p.add_argument("--withdrawn-ul", type=int, required=True, help="µL withdrawn (measured)")
            p.add_argument("--volume-ul", type=int, required=True, help="µL put in")
            p.add_argument("--concentration", type=int, required=True, help="µg/mL put in")
            p.add_argument("--bridge", action="store_true", help="bridge a concentration change")
        if name == "program":
            p.add_argument(
                "--prescription", type=Path, required=True, help="a prescription (TOML, examples/)"
            )
            p.add_argument("--yes", action="store_true", help="confirm the summary without asking")
        p.set_defaults(func=func)
