"""PumpClient over BLE (bleak on the bumble virtual radio), against a raw GATT echo on the same radio.

1. Round trip: the mean time of a status read through PumpClient and the emulated pump over BLE, and of the
   same number of bytes written to a bare echo characteristic and notified back, through the same bleak
   backend on the same ``LocalLink``. Goal (issue 16): at most 2x.
2. Event-log download: 10,000 entries at ATT MTU 517, recorded on the programmer's HCI; the event records'
   bytes against every ATT byte of the connection (both ways: ATT headers, fragment and frame headers,
   trailers, requests). Goals: at least 90 % payload, at most 2 s.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from bleak import BleakClient, BleakScanner
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.link import LocalLink
from bumble.snoop import BtSnooper

from itbemu import Emulator, VirtualClock
from itbemu.ble import BlePeripheral, local_device, pump_device
from itbemu.device import START, new_therapy
from itbproto.core.capture import att_values, frames
from itbproto.core.machines.pump import PumpMachine
from itbproto.core.machines.pump.log import EVENT_LOG_LIMIT, EventLog
from itbproto.core.safety import SafetyPolicy
from itbproto.core.wire import EventCode, EventLogPage, EventRecord, StatusRequest, encode
from itbproto.core.wire.fields import RecordType
from itbproto.io.ble import BleTransport
from itbproto.io.ble.bumble_backend import bound_to
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_profile, load_rules

GOAL_RATIO, GOAL_PAYLOAD, GOAL_DOWNLOAD_S = 2.0, 0.90, 2.0
ECHO_SERVICE = "12345678-0000-4000-8000-0000000000e0"
ECHO_IN, ECHO_OUT = "12345678-0000-4000-8000-0000000000e1", "12345678-0000-4000-8000-0000000000e2"
#: what a pump's log holds: mostly events without detail, some acknowledgements and faults with one
DETAILS = ("", "", "", "TITR-001 by dr smith", "", "STOP-002 by dr jones", "", "motor stall")


def logged(n: int) -> tuple[EventRecord, ...]:
    codes = (EventCode.RATE_CHANGED, EventCode.BOLUS_STARTED, EventCode.ACKNOWLEDGED, EventCode.ALARM_RAISED)
    return tuple(
        EventRecord(
            index=i, at=86_400 + 60 * i, code=codes[i % 4], txn=i // 3, value=i, detail=DETAILS[i % 8]
        )
        for i in range(n)
    )


def pump(entries: int) -> Emulator:
    therapy = new_therapy(
        load_profile("itb-20"), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
    )
    machine = PumpMachine.new(therapy, SafetyPolicy(load_rules()), serial="BENCH")
    return Emulator(PumpMachine(machine.state, machine.policy, log=EventLog(logged(entries))))


async def echo_device(
    link: LocalLink, address: str = "F0:00:00:00:00:EE", extra: Sequence[Characteristic[bytes]] = ()
) -> Device:
    """A bare GATT echo advertising as "Echo" with its service: what is written to ECHO_IN (with or
    without response) comes back as a notification on ECHO_OUT; ``extra`` characteristics join the service."""
    device = local_device(link, "echo", address)
    out: Characteristic[bytes] = Characteristic(
        ECHO_OUT, Characteristic.Properties.NOTIFY, Characteristic.READABLE, b""
    )

    async def echo(connection: Connection, value: bytes) -> None:
        await device.notify_subscriber(connection, out, value)

    written: Characteristic[bytes] = Characteristic(
        ECHO_IN,
        Characteristic.Properties.WRITE | Characteristic.Properties.WRITE_WITHOUT_RESPONSE,
        Characteristic.WRITEABLE,
        CharacteristicValue[bytes](write=echo),
    )
    device.add_services([Service(UUID(ECHO_SERVICE), [written, out, *extra])])
    device.advertising_data = bytes(
        AdvertisingData(
            [
                (AdvertisingData.FLAGS, bytes([0x06])),
                (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS, bytes(UUID(ECHO_SERVICE))),
                (AdvertisingData.COMPLETE_LOCAL_NAME, b"Echo"),
            ]
        )
    )
    await device.power_on()
    await device.start_advertising(auto_restart=True, advertising_interval_min=20.0)
    return device


async def central(link: LocalLink, number: int) -> Device:
    device = local_device(link, "programmer", f"F0:00:00:00:01:{number:02X}")
    await device.power_on()
    return device


async def round_trips(n: int) -> tuple[float, float]:
    link = LocalLink()  # type: ignore[no-untyped-call]
    emulator = pump(0)
    await BlePeripheral(emulator, VirtualClock(START), pump_device(link, emulator)).start()
    await echo_device(link)
    programmer = await central(link, 1)
    async with PumpClient.shipped(await BleTransport.connect("ITB20", central=programmer)) as client:
        await client.status()
        started = time.perf_counter()
        for _ in range(n):
            await client.status()
        stack = (time.perf_counter() - started) / n
    scanner, bleak_client = bound_to(await central(link, 2))
    echoed: asyncio.Queue[bytearray] = asyncio.Queue()
    frame = encode(StatusRequest(), txn=1, seq=1)
    echo = await BleakScanner.find_device_by_name("Echo", backend=scanner)
    assert echo is not None
    async with BleakClient(echo, backend=bleak_client) as raw:
        await raw.start_notify(ECHO_OUT, lambda _, data: echoed.put_nowait(data))
        started = time.perf_counter()
        for _ in range(n):
            await raw.write_gatt_char(ECHO_IN, frame, response=False)
            await echoed.get()
        bare = (time.perf_counter() - started) / n
    return stack, bare


async def download(entries: int) -> dict[str, Any]:
    link = LocalLink()  # type: ignore[no-untyped-call]
    emulator = pump(entries)
    await BlePeripheral(emulator, VirtualClock(START), pump_device(link, emulator)).start()
    programmer = await central(link, 1)
    capture = io.BytesIO()
    programmer.host.snooper = BtSnooper(capture)
    transport = await BleTransport.connect("ITB20", central=programmer)
    async with PumpClient.shipped(transport) as client:
        started = time.perf_counter()
        log = await client.events()
        seconds = time.perf_counter() - started
        total = emulator.pump.log.total  # what was written until the download (the session's end comes after)
    kept = min(total, EVENT_LOG_LIMIT)  # the session's own entries come on top
    assert [e.index for e in log] == list(range(total - kept, total))
    recorded = capture.getvalue()
    att_bytes = sum(3 + len(v.data) for v in att_values(recorded))  # opcode and handle, then the value
    size = RecordType(EventRecord).encoder()
    pages = [
        f.frame.message for f in frames(recorded) if f.frame and isinstance(f.frame.message, EventLogPage)
    ]
    payload = sum(len(size(e, "")) for page in pages for e in page.events)
    return {
        "entries": len(log),
        "mtu": transport.mtu,
        "pages": len(pages),
        "seconds": round(seconds, 3),
        "payload_bytes": payload,
        "att_bytes": att_bytes,
        "payload_share": round(payload / att_bytes, 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1_000, help="round trips")
    parser.add_argument("--entries", type=int, default=10_000, help="event-log entries to download")
    args = parser.parse_args(argv)
    stack, bare = asyncio.run(round_trips(args.n))
    log = asyncio.run(download(args.entries))
    ratio = stack / bare
    print(f"round trip: client {stack * 1e6:.0f} µs, raw GATT echo {bare * 1e6:.0f} µs, ratio {ratio:.2f}")
    print(
        f"log download: {log['entries']} entries in {log['pages']} pages, {log['seconds']} s, "
        f"payload {log['payload_share']:.1%} of {log['att_bytes']} ATT bytes"
    )
    summary = {
        "round_trip": {
            "client_us": round(stack * 1e6, 1),
            "echo_us": round(bare * 1e6, 1),
            "ratio": round(stack / bare, 2),
        },
        "download": log,
        "goals": {"ratio": GOAL_RATIO, "payload_share": GOAL_PAYLOAD, "seconds": GOAL_DOWNLOAD_S},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
