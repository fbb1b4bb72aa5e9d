"""The emulator as BLE tools we did not write see it: bumble's own apps with their default configuration
(``bumble-scan``, ``bumble-gatt-dump``) against ``itbemu serve --ble``, checked against specs/gatt.md; two
plain bleak clients of one pump in one process; the pump's address from its serial, as gatt.md derives it."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import ROOT, free_port, itbemu_serve
from itbemu.ble import APPEARANCE, pump_address
from itbproto.io.ble.bumble_backend import static_random

BIN = Path(sys.executable).parent
GATT = (ROOT / "specs" / "gatt.md").read_text()
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def spec_address(serial: str) -> str:
    """The address of specs/gatt.md ("Address and advertising"), written here from its words."""
    for n in range(100):
        raw = bytearray(hashlib.sha256(f"itbproto ble address {n} {serial}".encode()).digest()[:6])
        raw[0] |= 0b1100_0000
        random_bits = int.from_bytes(raw, "big") & ((1 << 46) - 1)
        if random_bits not in (0, (1 << 46) - 1):
            return ":".join(f"{b:02X}" for b in raw)
    raise AssertionError(serial)


@pytest.mark.parametrize("serial", ["EMU-000001", "ITB-000001", "EMU-TCP", "", "ÄÖ-1"])
def test_the_pump_address_is_the_static_random_address_gatt_md_derives_from_the_serial(serial: str) -> None:
    address = pump_address(serial)
    assert address == spec_address(serial)
    assert static_random(bytes.fromhex(address.replace(":", "")))
    assert int(address[:2], 16) >> 6 == 0b11


def test_gatt_md_names_the_default_pumps_address_and_the_appearance() -> None:
    assert f"`EMU-000001`, the emulator's default serial, is `{spec_address('EMU-000001')}`" in GATT
    assert f"Appearance (`0x2A01`): `0x{APPEARANCE:04X}`" in GATT
    assert APPEARANCE == 0x036 << 6  # Medication Delivery, generic (Bluetooth Assigned Numbers)


@pytest.mark.parametrize(
    ("raw", "valid"),
    [
        ("C0:00:00:00:00:00", False),
        ("FF:FF:FF:FF:FF:FF", False),
        ("BF:12:34:56:78:9A", False),
        ("C0:00:00:00:00:01", True),
        ("FF:FF:FF:FF:FF:FE", True),
    ],
)
def test_static_random_addresses_are_told_apart(raw: str, valid: bool) -> None:
    assert static_random(bytes.fromhex(raw.replace(":", ""))) is valid


@dataclass
class Pump:
    hci: str  # what a central opens
    address: str
    name: str
    serial: str


def served(first_line: str, hci: str) -> Pump:
    found = re.search(r"pump (\S+) .* advertising as (\S+) at ([0-9A-F:]{17})", first_line)
    assert found, first_line
    serial, name, address = found.groups()
    return Pump(hci, address, name, serial)


@pytest.fixture(scope="module")
def pump() -> Iterator[Pump]:
    port = free_port()
    with itbemu_serve("--ble", f"tcp-server:127.0.0.1:{port}") as serve:
        yield served(serve.first_line, f"tcp-client:127.0.0.1:{port}")


def test_the_served_pump_is_at_its_serials_address_again_after_a_restart(tmp_path: Path) -> None:
    store, addresses = tmp_path / "pump.db", []
    for _ in range(2):
        with itbemu_serve("--ble", f"tcp-server:127.0.0.1:{free_port()}", "--store", str(store)) as serve:
            addresses.append(served(serve.first_line, "").address)
    assert addresses == [pump_address("EMU-000001")] * 2
    with itbemu_serve(
        "--ble", f"tcp-server:127.0.0.1:{free_port()}", "--ble-address", "c1:02:03:04:05:06"
    ) as serve:
        assert served(serve.first_line, "").address == "C1:02:03:04:05:06"


@pytest.mark.parametrize("address", ["12:34:56:78:9A:BC", "C0:00:00:00:00:00", "C1:02:03:04:05", "pump"])
def test_an_address_that_is_not_static_random_is_refused(address: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "itbemu",
            "serve",
            "--ble",
            "tcp-server:127.0.0.1:1",
            "--ble-address",
            address,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "--ble-address" in done.stderr


@pytest.mark.parametrize("option", [["--ble-address", "C1:02:03:04:05:06"], ["--btsnoop", "pump.btsnoop"]])
def test_the_ble_options_without_ble_are_refused_not_ignored(option: list[str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "itbemu", "serve", "--tcp", "127.0.0.1:0", *option],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (1, "itbemu: --ble-address and --btsnoop go with --ble\n")
    assert not (tmp_path / "pump.btsnoop").exists()


def bumble_scan(hci: str, address: str) -> list[str]:
    """``bumble-scan HCI`` (its defaults) until it has reported ``address`` three times."""
    scan = subprocess.Popen(
        [str(BIN / "bumble-scan"), hci], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert scan.stdout is not None
    lines: list[str] = []
    stuck = threading.Timer(60, scan.kill)  # a pump never seen ends the scan (and its output) all the same
    stuck.start()
    try:
        for line in scan.stdout:
            lines.append(ANSI.sub("", line.rstrip()))
            if sum(seen.startswith(f">>> {address}") for seen in lines) >= 3:
                break
    finally:
        stuck.cancel()
        scan.send_signal(signal.SIGINT)
        scan.communicate(timeout=30)
    return lines


def test_bumble_scan_with_its_defaults_finds_the_pump_as_gatt_md_says_it_advertises(pump: Pump) -> None:
    lines = bumble_scan(pump.hci, pump.address)
    first = lines.index(f">>> {pump.address} [RANDOM](static):")  # the serial's own static random address
    report = lines[first + 1 : lines.index("", first)]
    assert "  [Flags]: LE_GENERAL_DISCOVERABLE_MODE|BR_EDR_NOT_SUPPORTED" in report
    service = re.search(r"ITB programming service \| `([0-9a-f-]{36})`", GATT)
    assert service
    assert f"  [Complete List Of 128-bit Service or Service Class UUIDs]: {service[1].upper()}" in report
    assert f"  [Complete Local Name]: '{pump.name}'" in report
    assert pump.name == "ITB20"  # the model, as gatt.md says (at most 8 characters)
    assert not [line for line in report if "Manufacturer" in line or "Serial" in line]  # nothing else


def gatt_dump(pump: Pump) -> tuple[list[str], dict[str, str]]:
    """``bumble-gatt-dump HCI ADDRESS`` (its defaults): the lines of its Services section, and what it read of
    each attribute (hex, or the ATT error) by the attribute's type (``UUID-16:2A00`` or a 128-bit UUID)."""
    done = subprocess.run(
        [str(BIN / "bumble-gatt-dump"), pump.hci, pump.address], capture_output=True, text=True, timeout=60
    )
    out = ANSI.sub("", done.stdout)
    assert "=== Services ===" in out, out + done.stderr
    services, attributes = out.split("=== Services ===")[1].split("=== All Attributes ===")
    read: dict[str, list[str]] = {}
    for line in attributes.strip().splitlines():
        if kind := re.match(r"Attribute\(handle=0x[0-9A-F]{4}, type=([^ )]+)", line):
            said = read[kind[1]] = []
        else:
            said.append(line.strip())
    return services.strip().splitlines(), {kind: "\n".join(lines) for kind, lines in read.items()}


def table() -> list[tuple[str, str, str, str]]:
    """specs/gatt.md's service table: (item, UUID, properties, carries)."""
    rows = re.findall(r"^\| ([^|`]+) \| `([^`]+)` \| ([^|]+) \|([^|]*)\|$", GATT, re.M)
    return [(item.strip(), uuid, props.strip(), carries.strip()) for item, uuid, props, carries in rows]


def dump_uuid(uuid: str) -> str:
    return f"UUID-16:{uuid[2:].upper()}" if uuid.startswith("0x") else uuid.upper()


def test_bumble_gatt_dump_with_its_defaults_reads_the_layout_of_gatt_md(pump: Pump) -> None:
    services, values = gatt_dump(pump)
    dumped = "\n".join(services)
    rows = table()
    assert len(rows) == 5
    flags = {"write": "WRITE", "write without response": "WRITE_WITHOUT_RESPONSE", "notify": "NOTIFY"}
    for item, uuid, properties, carries in rows:
        if properties == "primary":
            assert re.search(
                rf"^Service\(handle=0x[0-9A-F]{{4}}, uuid={dump_uuid(uuid)}[ )]", dumped, re.M
            ), item
            for inner in re.findall(r"`(0x2A[0-9A-F]{2})`", carries):  # its characteristics, each readable
                assert re.search(rf"Characteristic\(.*uuid={dump_uuid(inner)} .*, READ\)", dumped), inner
        else:
            said = {flags[p.strip()] for p in properties.split(",")}
            found = re.search(
                rf"Characteristic\(handle=0x[0-9A-F]{{4}}, uuid={uuid.upper()}, ([A-Z_|]+)\)", dumped
            )
            assert found, item
            assert set(found[1].split("|")) == said, item
    assert bytes.fromhex(values["UUID-16:2A00"]).decode() == pump.name  # GAP's Device Name: as advertised
    assert int.from_bytes(bytes.fromhex(values["UUID-16:2A01"]), "little") == APPEARANCE
    assert bytes.fromhex(values["UUID-16:2A25"]).decode() == pump.serial
    assert bytes.fromhex(values["UUID-16:2A24"]).decode() == pump.name
    request = next(uuid for item, uuid, _, _ in rows if item == "request characteristic")
    assert "error_code:                READ_NOT_PERMITTED" in values[request.upper()]  # write-only, said so


#: two plain bleak clients of one pump in one process, each with a link of its own: both read the Device
#: Information, and both run a PumpClient session over a BleTransport at once
TWO_CLIENTS = """
import asyncio, sys
from bleak import BleakClient, BleakScanner
from itbproto import PumpClient
from itbproto.io.ble import SERVICE_UUID, BleTransport

SERIAL = "00002a25-0000-1000-8000-00805f9b34fb"

async def main():
    device = await BleakScanner.find_device_by_filter(lambda d, ad: SERVICE_UUID in ad.service_uuids)
    a, b = BleakClient(device), BleakClient(device)
    await asyncio.gather(a.connect(), b.connect())  # at once: each a central of its own, one made at a time
    print("plain", a.is_connected and b.is_connected, a.mtu_size, b.mtu_size)
    print("serials", (await a.read_gatt_char(SERIAL)).decode(), (await b.read_gatt_char(SERIAL)).decode())
    await a.disconnect()
    await b.disconnect()
    one, two = PumpClient.shipped(await BleTransport.connect("ITB20")), None
    async with one:
        two = PumpClient.shipped(await BleTransport.connect("ITB20"))
        async with two:
            first, second = await asyncio.gather(one.status(), two.status())
            print("sessions", first.reservoir_ul == second.reservoir_ul)

asyncio.run(main())
"""


def plain_bleak(pump: Pump, script: str) -> list[str]:
    """A script of plain bleak (and the library) on the pump's radio: the lines it printed."""
    env = {**os.environ, "ITBPROTO_BLE_HCI": pump.hci}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_two_plain_bleak_clients_in_one_process_hold_a_link_each(pump: Pump) -> None:
    assert plain_bleak(pump, TWO_CLIENTS) == [
        "plain True 517 517",
        f"serials {pump.serial} {pump.serial}",
        "sessions True",
    ]


#: every characteristic read as a tool that reads everything would, each answered at once: a value, or the
#: ATT error its properties call for
READ_ALL = """
import asyncio
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakGATTProtocolError
from itbproto.io.ble import SERVICE_UUID

async def main():
    device = await BleakScanner.find_device_by_filter(lambda d, ad: SERVICE_UUID in ad.service_uuids)
    async with BleakClient(device, timeout=5) as client:
        for service in client.services:
            for characteristic in service.characteristics:
                try:
                    value = await asyncio.wait_for(client.read_gatt_char(characteristic), 5)
                    print(characteristic.uuid, "value", len(value))
                except BleakGATTProtocolError as refused:
                    print(characteristic.uuid, "refused", refused.code.name)
                except TimeoutError:
                    print(characteristic.uuid, "no answer")

asyncio.run(main())
"""


def test_reading_the_write_only_request_characteristic_is_refused_at_once(pump: Pump) -> None:
    """The request characteristic is write-only: a read gets ATT's Read Not Permitted, not silence (a tool
    reading every attribute, as bumble-gatt-dump does, waited 30 s for the answer that never came)."""
    said = dict(line.split(" ", 1) for line in plain_bleak(pump, READ_ALL))
    request = re.search(r"request characteristic \| `([0-9a-f-]{36})`", GATT)
    assert request
    assert said[request[1]] == "refused READ_NOT_PERMITTED"
    assert "no answer" not in said.values()
    assert len(said) >= 8  # every characteristic of gatt.md's table, read
