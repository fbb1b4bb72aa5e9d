"""Watch an ITB pump's alarms over BLE: print each as the pump announces it.

itbemu serve --ble tcp-server:127.0.0.1:9100 --faults examples/faults/motor-stall.toml --speed 10
ITBPROTO_BLE_HCI=tcp-client:127.0.0.1:9100 python examples/watch_alarms.py --count 1
"""

from __future__ import annotations

import argparse
import asyncio

from itbproto import PumpClient
from itbproto.core.wire.messages import AlarmRecord
from itbproto.io.ble import BleTransport


def said(alarm: AlarmRecord) -> str:
    return f"{alarm.code.name} (alarm {alarm.alarm_id}, raised at {alarm.raised_at} s)"


async def watch(name: str | None, count: int | None) -> int:
    """Print the active alarms, then each one the pump announces; stop after ``count`` in all."""
    async with PumpClient.shipped(await BleTransport.connect(name), name="watch_alarms") as pump:
        seen = 0
        for alarm in await pump.alarm_list():
            print(f"active: {said(alarm)}")
            seen += 1
        print("watching", flush=True)
        if count is not None and seen >= count:
            return 0
        async for alarm in pump.alarms():
            print(f"alarm: {said(alarm)}", flush=True)
            seen += 1
            if count is not None and seen >= count:
                break
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="the pump's advertised name (default: the first ITB pump)")
    parser.add_argument("--count", type=int, help="stop after this many alarms (the active ones count)")
    args = parser.parse_args()
    try:
        return asyncio.run(watch(args.name, args.count))
    except KeyboardInterrupt:  # Ctrl-C: the session was closed on the way out
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
