"""Pairing and sealed sessions against the emulator, on every transport: the PIN the pump shows gives a key
bound to a role; a session under that key is sealed both ways and runs in the key's role; wrong PINs are
counted and lock pairing; unknown keys, wrong roles and unpaired programmers (when pairing is required) are
refused and logged; a plain frame on a sealed link changes nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from factories import POLICY
from itbproto.core.security import PairedKey, SealedChannel
from itbproto.core.wire import ErrorCode, EventCode, Role, StatusRequest, encode
from itbproto.errors import CommandRefusedError, NotPairedError, SessionError, SpecError
from itbproto.io.client import PumpClient
from itbproto.io.keystore import load_key, save_key
from itbproto.io.specfiles import load_drug, load_profile
from test_client import Target, on_every_transport

PIN = "493817"


async def paired(t: Target, role: Role = Role.CLINICIAN, pin: str = PIN) -> PumpClient:
    """A client paired with ``pin`` (on a link of its own), ready to connect sealed on a new link."""
    profile, drug = load_profile("itb-20"), load_drug()
    pairing = PumpClient(await t.connect(), profile, drug, POLICY, role=role, timeout_s=5)
    try:
        key = await pairing.pair(pin, "EMU-QA")
    finally:
        await pairing.close()
    return PumpClient(await t.connect(), profile, drug, POLICY, role=role, key=key, timeout_s=5)


@on_every_transport
async def test_a_paired_programmer_works_sealed_in_its_keys_role(t: Target) -> None:
    t.emulator.firmware.pin = PIN
    t.emulator.firmware.require_pairing = True
    async with await paired(t) as pump:
        assert (await pump.status()).device_time == t.clock.now()
        assert isinstance(pump.session.connection.channel, SealedChannel)
        links = t.emulator.firmware._links.values()
        assert all(isinstance(link.connection.channel, SealedChannel) for link in links)
    assert [k.role for k in t.emulator.pump.state.keys] == [Role.CLINICIAN]
    paired_log = [e for e in t.emulator.pump.log.since(0) if e.code is EventCode.PAIRED]
    assert [(e.value, e.detail) for e in paired_log] == [(1, "clinician")]


@on_every_transport
async def test_wrong_pins_are_refused_counted_and_lock_pairing(t: Target) -> None:
    t.emulator.firmware.pin = PIN
    for _ in range(4):
        with pytest.raises(CommandRefusedError) as refused:
            await paired(t, pin="000000")
        assert refused.value.code is ErrorCode.NOT_AUTHENTICATED
    with pytest.raises(CommandRefusedError, match="locked"):  # even the right PIN, until the lock ends
        await paired(t)
    assert t.emulator.pump.state.pin_failures == 4
    assert t.emulator.pump.state.keys == ()
    await t.advance(31)
    async with await paired(t) as pump:
        await pump.status()
    assert t.emulator.pump.state.pin_failures == 0


@on_every_transport
async def test_no_pin_shown_no_pairing_and_unpaired_programmers_refused_when_required(t: Target) -> None:
    with pytest.raises(CommandRefusedError, match="pairing is closed"):
        await paired(t)
    t.emulator.firmware.require_pairing = True
    with pytest.raises(NotPairedError, match="pair first") as refused:
        async with await t.client():
            pass
    assert refused.value.code is ErrorCode.NOT_AUTHENTICATED
    assert refused.value.info.serial == "EMU-QA"  # who the pump is: the serial pairing needs
    assert refused.value.info.paired
    refusals = [e for e in t.emulator.pump.log.since(0) if e.code is EventCode.COMMAND_REFUSED]
    assert len(refusals) == 1  # every refusal logged; the Hello without a key was answered, not refused
    assert all(link.session.role is None for link in t.emulator.firmware._links.values())


@on_every_transport
async def test_a_programmer_learns_the_serial_from_a_pump_that_requires_pairing(t: Target) -> None:
    """specs/protocol.md §6: a Hello without a key gets the pump's DeviceInfo (paired set) and no session;
    every other request on that link is still refused; pair() without a serial asks it so, over TCP too."""
    t.emulator.firmware.pin, t.emulator.firmware.require_pairing = PIN, True
    before = t.emulator.pump.state
    profile, drug = load_profile("itb-20"), load_drug()
    asking = PumpClient(await t.connect(), profile, drug, POLICY, timeout_s=5)
    try:
        info = await asking.identify()
        assert (info.serial, info.paired, info.nonce) == ("EMU-QA", True, bytes(16))
        with pytest.raises(CommandRefusedError) as refused:
            await asking._request(asking.session.connection.send(StatusRequest()))
        assert refused.value.code is ErrorCode.NOT_AUTHENTICATED
        key = await asking.pair(PIN)  # no serial: asked on the same link
    finally:
        await asking.close()
    assert t.emulator.pump.state.keys[0].key_id == key.key_id
    assert before.last_txn == t.emulator.pump.state.last_txn
    async with PumpClient(await t.connect(), profile, drug, POLICY, key=key, timeout_s=5) as pump:
        assert (await pump.status()).device_time == t.clock.now()


@on_every_transport
async def test_a_patient_key_opens_no_clinician_session_and_an_unknown_key_none(t: Target) -> None:
    t.emulator.firmware.pin = PIN
    patient = await paired(t, Role.PATIENT)
    assert patient.key is not None
    assert patient.key.role is Role.PATIENT
    await patient.close()
    clinician = PumpClient(await t.connect(), load_profile("itb-20"), load_drug(), POLICY, key=patient.key)
    with pytest.raises(SessionError, match="PATIENT role"):  # the programmer will not even ask
        async with clinician:
            pass
    unknown = PairedKey(9, Role.PATIENT, bytes(32))
    forged = PumpClient(
        await t.connect(), load_profile("itb-20"), load_drug(), POLICY, role=Role.PATIENT, key=unknown
    )
    with pytest.raises(CommandRefusedError, match="no key 9"):
        async with forged:
            pass


@on_every_transport
async def test_a_plain_frame_on_a_sealed_link_changes_nothing(t: Target) -> None:
    t.emulator.firmware.pin = PIN
    async with await paired(t) as pump:
        before = t.emulator.firmware.dropped.total()
        await pump.transport.send(encode(StatusRequest(), txn=1, seq=10_000))  # not sealed
        assert (await pump.status()).device_time == t.clock.now()  # the session goes on
        assert t.emulator.firmware.dropped.total() == before + 1


def test_the_keystore_is_its_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    key = PairedKey(3, Role.CLINICIAN, bytes(range(32)))
    save_key(path, "EMU-QA", key)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_key(path, "EMU-QA") == key
    with pytest.raises(SpecError, match="no key for pump X"):
        load_key(path, "X")
    os.chmod(path, 0o644)
    with pytest.raises(SpecError, match="owner only"):
        load_key(path, "EMU-QA")
