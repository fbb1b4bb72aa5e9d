"""``itbproto status | log | alarms | program | bolus | refill | pair --target tcp://HOST:PORT | ble://NAME``.

Each command opens a :class:`~itbproto.io.client.PumpClient` on the target (the device profile the pump
reports, unless ``--profile`` insists on one), does one thing, ends the session and prints the result
(``--json``: JSON). Run the emulator in one terminal (``itbemu serve --tcp 127.0.0.1:7878``) and program it
from another.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from itbproto.core.machines.session import Summary
from itbproto.core.security.pairing import PairedKey
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, Role
from itbproto.core.wire.fields import RecordType
from itbproto.core.wire.message import Message
from itbproto.errors import NotAppliedError
from itbproto.io.client import PumpClient
from itbproto.io.keystore import load_key, save_key
from itbproto.io.specfiles import load_prescription, load_rules, profile_ids
from itbproto.io.transport import open_target
from itbproto.tools.display import describe, summary_lines

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
        client = await _client(args, None)
        if args.keystore:  # the key kept for this pump: by --serial, or the serial the pump says (§6)
            try:
                serial = args.serial or (await client.identify()).serial
            except BaseException:
                await client.close()
                raise
            client.key = load_key(args.keystore, serial)
        async with client as pump:
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
        if not args.json:
            print(f"{'#':<6} {'at (s)':>13}  {'event':<24} {'txn':<10} {'value':<10} detail")
        for entry in entries:
            if args.json:
                print(json.dumps(_EVENT.to_json(entry)))
            else:
                detail = f"  {entry.detail}" if entry.detail else ""
                what = f"{entry.code.name:<24} {entry.txn:<10} {entry.value:<10}{detail}"
                print(f"{entry.index:<6} {entry.at:>11} s  {what}")

    return _run(args, work)


def cmd_alarms(args: argparse.Namespace) -> int:
    async def work(pump: PumpClient) -> None:
        alarms = await pump.alarm_list()
        now = {a.alarm_id for a in alarms if not a.acknowledged} if args.acknowledge else set()
        for alarm_id in sorted(now):
            await pump.acknowledge_alarm(alarm_id)
        if now:
            alarms = await pump.alarm_list()
        if args.json:
            print(json.dumps([_ALARM.to_json(alarm) for alarm in alarms]))
            return
        for alarm in alarms:
            state = "acknowledged now" if alarm.alarm_id in now else "acknowledged" * alarm.acknowledged
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
    if args.keystore is None:
        raise ValueError("pair needs --keystore (where the key goes)")

    async def pair() -> None:
        client = await _client(args, None)
        try:
            serial = args.serial or (await client.identify()).serial  # the pump says it (§6)
            key = await client.pair(args.pin, serial)
        finally:
            await client.close()
        save_key(args.keystore, serial, key)
        role = key.role.name.lower()
        if args.json:
            kept = {"serial": serial, "role": role, "key_id": key.key_id, "keystore": str(args.keystore)}
            print(json.dumps(kept))
        else:
            print(f"paired with {serial} as {role} (key {key.key_id}); kept in {args.keystore}")

    asyncio.run(pair())
    return 0


def cmd_program(args: argparse.Namespace) -> int:
    prescription = load_prescription(args.prescription)
    titles = {rule.id: rule.title for rule in load_rules()}

    async def work(pump: PumpClient) -> None:
        def confirm(summary: Summary) -> m.Acknowledgement | None:
            for line in summary_lines(summary, pump.session.pump.device, titles):
                print(line, file=sys.stderr)
            if not args.yes and not _confirmed():
                return None
            return m.Acknowledgement(rules=summary.acknowledge, by=args.by)

        await pump.program(prescription, confirm)
        _show(await pump.status(), args.json)
        await pump.end()

    return _run(args, work)


def _confirmed() -> bool:
    """The user's answer to the summary: y or yes; anything else declines. No answer to read is an error."""
    print("confirm? [y/N] ", end="", file=sys.stderr, flush=True)
    line = sys.stdin.readline()
    if not line:
        print(file=sys.stderr)
        raise NotAppliedError(
            "no answer could be read (standard input is closed): not programmed; --yes confirms"
        )
    if line.strip().lower() in ("y", "yes"):
        return True
    raise NotAppliedError("not confirmed: nothing was programmed")


#: each remote command: what it does (its --help) and what it says more (its description)
_COMMANDS: dict[str, tuple[Callable[[argparse.Namespace], int], str, str]] = {
    "pair": (
        cmd_pair,
        "pair with the PIN the pump shows; the key goes to the keystore (0600)",
        "SPAKE2 with the PIN the pump shows (itbemu serve --pin); the pump's key for this role is kept in "
        "--keystore under the pump's serial (--serial, or asked of the pump: a pump that requires "
        "pairing says it to a Hello without a key, specs/protocol.md §6), and later commands given "
        "--keystore are sealed under it.",
    ),
    "status": (
        cmd_status,
        "read a pump's status",
        "The pump's status: mode, reservoir, rate, the dose of the last 24 h, battery, alarms.",
    ),
    "log": (
        cmd_log,
        "download a pump's event log (a progress bar on a terminal)",
        "Every entry of the pump's event log, oldest first (--json: one JSON object per line).",
    ),
    "alarms": (
        cmd_alarms,
        "list a pump's active alarms (--acknowledge: acknowledge them)",
        "The pump's active alarms (--json: one JSON array); --acknowledge acknowledges those not yet "
        "acknowledged (again is not an error).",
    ),
    "bolus": (
        cmd_bolus,
        "start a bolus (checked by the programmer, then by the pump)",
        "Start a bolus of --volume-ul over --duration-s; the programmer checks it against what it read, the "
        "pump again. A refusal names its rules; --ack acknowledges hazards.",
    ),
    "refill": (
        cmd_refill,
        "refill: what was withdrawn, the new drug, confirmed twice",
        "A refill's three steps: the residual withdrawn, the new drug staged, then volume and concentration "
        "confirmed against the pump's digest (--bridge after a concentration change).",
    ),
    "program": (
        cmd_program,
        "program a prescription: check, stage, confirm the summary, commit, read back",
        "Check a prescription (TOML), stage it on the pump, show its summary (schedule, daily dose, limits, "
        "boluses, hazards) for confirmation (y/yes; --yes confirms without asking), commit, read it back.",
    ),
}


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The remote commands, on the ``itbproto`` parser."""
    for name, (func, text, description) in _COMMANDS.items():
        p = sub.add_parser(name, help=text, description=description)
        p.add_argument(
            "--target",
            required=True,
            metavar="tcp://HOST:PORT|ble://NAME",
            help="the pump (itbemu serve --tcp, or --ble with ITBPROTO_BLE_HCI set)",
        )
        p.add_argument(
            "--profile",
            choices=profile_ids(),
            help="only a pump of this device profile (default: the one the pump reports)",
        )
        p.add_argument(
            "--role", choices=[r.name.lower() for r in Role], default="clinician", help="session role"
        )
        p.add_argument("--by", default="cli", help="who acknowledges (logged by the pump)")
        p.add_argument("--json", action="store_true", help="JSON output")
        p.add_argument(
            "--keystore", type=Path, help="the keys of paired pumps (connect sealed under the pump's key)"
        )
        p.add_argument(
            "--serial",
            default="",
            help="the pump's serial: which key of the keystore (default: the serial the pump says)",
        )
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
