"""Connect to an ITB pump over BLE, read its Device Information with bleak, pair with the PIN it shows,
and print its status over the sealed session.

    itbemu serve --ble tcp-server:127.0.0.1:9100 --pin 493817 --btsnoop pump.btsnoop
    ITBPROTO_BLE_HCI=tcp-client:127.0.0.1:9100 python examples/status.py --pin 493817 --keystore keys.json
    itbproto decode --btsnoop pump.btsnoop --keystore keys.json     # the sealed session, opened
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bleak.uuids import normalize_uuid_16

from itbproto import PumpClient
from itbproto.io.ble import BleTransport
from itbproto.io.keystore import save_key
from itbproto.tools.display import describe

MODEL, SERIAL = normalize_uuid_16(0x2A24), normalize_uuid_16(0x2A25)  # Device Information Service


async def status(name: str | None, pin: str | None, keystore: Path | None) -> int:
    transport = await BleTransport.connect(name)
    model = (await transport.client.read_gatt_char(MODEL)).decode()
    serial = (await transport.client.read_gatt_char(SERIAL)).decode()
    print(f"{model} {serial} at {transport.client.address}, ATT MTU {transport.mtu}")
    key = None
    if pin is not None:  # pair on this link, then connect again sealed under the key
        pairing = PumpClient.shipped(transport)
        try:
            key = await pairing.pair(pin, serial)
        finally:
            await pairing.close()
        print(f"paired as {key.role.name.lower()} (key {key.key_id})")
        if keystore is not None:  # (0600) what `itbproto decode --keystore` opens sealed sessions with
            save_key(keystore, serial, key)
        transport = await BleTransport.connect(address=transport.client.address)
    async with PumpClient.shipped(transport, key=key) as pump:
        for field, value in describe(await pump.status()):
            print(f"{field:>24}: {value}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", help="the pump's advertised name (default: the first ITB pump)")
    parser.add_argument("--pin", help="pair first, with the PIN the pump shows")
    parser.add_argument("--keystore", type=Path, help="keep the key there, under the pump's serial")
    args = parser.parse_args()
    return asyncio.run(status(args.name, args.pin, args.keystore))


if __name__ == "__main__":
    raise SystemExit(main())
