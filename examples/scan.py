"""Find ITB pumps over BLE: plain bleak, filtered by the ITB service UUID.

    itbemu serve --ble tcp-server:127.0.0.1:9100                       # one terminal: the emulated pump
    ITBPROTO_BLE_HCI=tcp-client:127.0.0.1:9100 python examples/scan.py  # another: on the virtual radio

Without ``ITBPROTO_BLE_HCI`` bleak scans with this machine's Bluetooth adapter.
"""

from __future__ import annotations

import argparse
import asyncio

from bleak import BleakScanner

from itbproto.io.ble import SERVICE_UUID


async def scan(seconds: float) -> int:
    found = await BleakScanner.discover(timeout=seconds, service_uuids=[SERVICE_UUID], return_adv=True)
    for device, adv in found.values():
        print(f"{adv.local_name or '(no name)':<12} {adv.rssi:>4} dBm  {device.address}")
    print(f"{len(found)} pump(s) found")
    return 0 if found else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to scan")
    return asyncio.run(scan(parser.parse_args().seconds))


if __name__ == "__main__":
    raise SystemExit(main())
