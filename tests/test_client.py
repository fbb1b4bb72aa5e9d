"""PumpClient conformance: every behaviour proven on every transport (in-process and TCP; BLE joins later).

The emulator runs on a virtual clock the test moves; the client is the one integrators use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import pytest
from bumble.link import LocalLink

from conftest import ROOT
from factories import POLICY
from itbemu import DeviceFault, Emulator, LinkFaults, TcpServer, VirtualClock
from itbemu.ble import BlePeripheral, local_device, pump_device
from itbemu.device import START, new_therapy
from itbemu.inprocess import InProcessHub
from itbproto.core.therapy import SCALE
from itbproto.core.wire import (
    Acknowledgement,
    AlarmCode,
    BolusKind,
    ErrorCode,
    EventCode,
    Origin,
    PatientBolusPolicy,
    Procedure,
    Role,
    ScreeningResponse,
    TherapyMode,
)
from itbproto.errors import CommandRefusedError, SafetyViolation, SessionError, WrongDeviceError
from itbproto.io.ble import BleTransport
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_prescription, load_profile
from itbproto.io.transport import TcpTransport, Transport
from itbproto.qa.targets import Tap

CONTINUOUS = load_prescription(ROOT / "examples" / "prescriptions" / "continuous-400ug.toml")
TRANSPORTS = ["inprocess", "tcp", "ble"]


@dataclass
class Target:
    """An emulated pump behind one transport, and the hands to move its time and break its hardware."""

    emulator: Emulator
    clock: VirtualClock
    connect: Callable[[], Awaitable[Transport]]
    catch_up: Callable[[], Awaitable[None]]
    inject: Callable[[DeviceFault], Awaitable[None]]
    drop_replies: Callable[[int], None]

    async def client(self, name: str = "qa", timeout_s: float = 5.0, **options: Any) -> PumpClient:
        """A client on a new link (``async with`` connects it); ``options`` as PumpClient takes them."""
        transport = await self.connect()
        return PumpClient(
            transport, load_profile("itb-20"), load_drug(), POLICY, name=name, timeout_s=timeout_s, **options
        )

    async def advance(self, seconds: int) -> None:
        self.clock.advance_to(self.clock.now() + seconds)
        await self.catch_up()


@asynccontextmanager
async def target(kind: str, profile: str = "itb-20") -> AsyncIterator[Target]:
    therapy = new_therapy(
        load_profile(profile), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
    )
    emulator = Emulator.create(therapy, POLICY, serial="EMU-QA")
    clock = VirtualClock(START)
    if kind == "inprocess":
        hub = InProcessHub(emulator, clock)

        async def connect_inprocess() -> Transport:
            return hub.connect()

        async def catch_up_inprocess() -> None:
            hub.advance(clock.now())

        async def inject_inprocess(fault: DeviceFault) -> None:
            hub.inject(fault)

        def drop(n: int) -> None:
            hub.faults.lose_next = n

        yield Target(emulator, clock, connect_inprocess, catch_up_inprocess, inject_inprocess, drop)
        return
    if kind == "ble":  # the bumble virtual radio: a peripheral and a central per programmer on one link
        radio = LocalLink()  # type: ignore[no-untyped-call]
        peripheral = BlePeripheral(emulator, clock, pump_device(radio, emulator))
        await peripheral.start()
        centrals = iter(range(2, 200))

        async def connect_ble() -> Transport:
            central = local_device(radio, "programmer", f"F0:00:00:00:00:{next(centrals):02X}")
            await central.power_on()
            return await BleTransport.connect(therapy.profile.model, central=central)

        def drop_ble(n: int) -> None:
            peripheral.faults.lose_next = n

        yield Target(emulator, clock, connect_ble, peripheral.advance, peripheral.inject, drop_ble)
        return
    server = TcpServer(emulator, clock)
    host, port = await server.start()

    async def connect_tcp() -> Transport:
        return await TcpTransport.connect(host, port)

    def drop_tcp(n: int) -> None:
        server.faults.lose_next = n

    try:
        yield Target(emulator, clock, connect_tcp, server.catch_up, server.inject, drop_tcp)
    finally:
        server.close()
        await server.wait_closed()


Test = Callable[[Target], Coroutine[Any, Any, None]]


def on_every_transport(test: Test, profile: str = "itb-20") -> Callable[[str], None]:
    def run(kind: str) -> None:
        async def body() -> None:
            async with target(kind, profile) as t:
                await asyncio.wait_for(test(t), 60)

        asyncio.run(body())

    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return pytest.mark.parametrize("kind", TRANSPORTS)(run)


def on_every_transport_with(profile: str) -> Callable[[Test], Callable[[str], None]]:
    """As :func:`on_every_transport`, the pump being a ``profile``."""
    return lambda test: on_every_transport(test, profile)


def confirmed(summary: Any) -> Acknowledgement:
    return Acknowledgement(rules=summary.acknowledge, by="dr qa")


@on_every_transport
async def test_connect_read_status_and_download_the_log_with_progress(t: Target) -> None:
    async with await t.client() as pump:
        status = await pump.status()
        assert status.reservoir_ul == 20_000
        assert status.device_time == START
        seen: list[tuple[int, int]] = []
        log = await pump.events(lambda read, total: seen.append((read, total)))
        assert [e.code for e in log][:2] == [EventCode.BOOT, EventCode.SESSION_STARTED]
        assert seen[-1][0] == len(log) == seen[-1][1]


@on_every_transport_with("itb-40")
async def test_the_client_takes_the_profile_the_pump_reports(t: Target) -> None:
    """Issue 25: a client given no profile checks commands with the one the pump's DeviceInfo names."""
    async with PumpClient.shipped(await t.connect(), name="qa", timeout_s=5.0) as pump:
        assert pump.session.profile == load_profile("itb-40")
        assert (await pump.status()).reservoir_ul == 40_000  # (an itb-40 starts full)
        assert await pump.program(CONTINUOUS, confirmed) == CONTINUOUS


@on_every_transport_with("itb-40")
async def test_a_client_for_another_profile_is_refused_clearly_not_left_waiting(t: Target) -> None:
    """Issue 25: a pump of another profile than the one asked for ends the connect with WrongDeviceError
    naming both (before, the client waited for a reply the session had ignored, then failed cryptically)."""
    pump = await t.client(timeout_s=120.0)  # (a client left waiting would hit the test's own time-out)
    with pytest.raises(WrongDeviceError, match=r"itb-40.*itb-20"):
        async with pump:
            pass
    assert t.emulator.therapy.prescription is None


@on_every_transport
async def test_program_with_confirmation_and_read_back_then_titrate(t: Target) -> None:
    async with await t.client() as pump:
        assert await pump.program(CONTINUOUS, confirmed) == CONTINUOUS
        assert t.emulator.therapy.prescription == CONTINUOUS
        await t.advance(SCALE)
        await pump.set_rate(880)
        assert (await pump.status()).rate_ul_day == 880
        with pytest.raises(SafetyViolation) as refused:  # the programmer refuses: nothing is sent
            await pump.set_rate(968)
        assert refused.value.rule_ids == ("TITR-002",)
        assert t.emulator.therapy.prescription is not None
        assert t.emulator.therapy.prescription.steps[0].rate_ul_day == 880
        declined = await pump.status()
        with pytest.raises(Exception, match="did not confirm"):
            await pump.program(CONTINUOUS, lambda summary: None)
        assert (await pump.status()).prescription_id == declined.prescription_id


@on_every_transport
async def test_one_programs_another_gets_busy(t: Target) -> None:
    async with await t.client("a") as a, await t.client("b") as b:
        await a.program(CONTINUOUS, confirmed)
        with pytest.raises(CommandRefusedError) as busy:
            await b.program(CONTINUOUS, confirmed)
        assert busy.value.code is ErrorCode.BUSY
        assert (await b.status()).prescription_id == (await a.status()).prescription_id  # reads are free


@on_every_transport
async def test_a_commit_not_made_leaves_the_session_ready_for_the_next_command(t: Target) -> None:
    """A confirmation that leaves out a hazard the summary named is not sent; the draft is discarded."""
    async with await t.client() as pump:
        await pump.program(CONTINUOUS, confirmed)
        await t.advance(SCALE)
        halved = replace(CONTINUOUS, steps=(replace(CONTINUOUS.steps[0], rate_ul_day=400),))
        with pytest.raises(SessionError, match="acknowledge DECR-001"):
            await pump.program(halved, lambda summary: Acknowledgement(rules=(), by="dr qa"))
        await pump.set_rate(790)  # the session is ready again
        assert (await pump.status()).rate_ul_day == 790


@on_every_transport
async def test_the_record_surgery_and_mri_through_the_client(t: Target) -> None:
    async with await t.client() as pump:
        await pump.program(CONTINUOUS, confirmed)
        record = (await pump.patient_record()).records[-1].record
        await pump.set_patient_record(record.group, Origin.CEREBRAL, record.phase)
        assert (await pump.patient_record()).records[-1].record.origin is Origin.CEREBRAL
        await pump.record_procedure(Procedure.CATHETER_REVISION, 100)
        assert (await pump.history()).needs_priming
        with pytest.raises(SafetyViolation, match="PHASE-001"):  # screening is over: refused before sending
            await pump.record_screening_response(ScreeningResponse.NONE)
        everything = Acknowledgement(rules=("MRI-002", "FLOW-001", "STOP-001"), by="dr qa")
        await pump.begin_mri((await pump.status()).reservoir_ul, everything)
        assert (await pump.status()).mode is TherapyMode.MRI
        await pump.end_mri()
        assert (await pump.status()).mode is TherapyMode.STOPPED


@on_every_transport
async def test_a_role_that_may_not_program_is_refused_for_its_role_not_busy(t: Target) -> None:
    """protocol.md §5: the role (step 4) is checked before the programming lock (4a)."""
    async with await t.client("a") as a, await t.client("p", role=Role.PATIENT, checks=False) as patient:
        await a.program(CONTINUOUS, confirmed)
        with pytest.raises(CommandRefusedError) as forbidden:
            await patient.set_rate(800)
        assert forbidden.value.code is ErrorCode.ROLE_FORBIDDEN


@on_every_transport
async def test_a_refused_command_or_a_patient_takes_no_programming_lock(t: Target) -> None:
    """The lock goes to a clinician whose command the pump accepts (issue 24): a patient's refused SetRate, a
    patient's accepted bolus and a clinician's refused command leave another clinician free to program."""
    async with await t.client("a") as a:
        await a.program(
            replace(
                CONTINUOUS,
                patient=PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=3_600, max_per_day=3),
            ),
            confirmed,
        )
    async with await t.client("p", role=Role.PATIENT, checks=False) as patient:
        with pytest.raises(CommandRefusedError):
            await patient.set_rate(800)
        await patient.bolus(BolusKind.PATIENT, 10, 600)
        async with await t.client("b", checks=False) as b, await t.client("c") as c:
            with pytest.raises(CommandRefusedError) as wrong:
                await b.resume()  # not suspended: WRONG_STATE
            assert wrong.value.code is ErrorCode.WRONG_STATE
            await c.set_thresholds(await c.thresholds())  # neither the patient nor b holds the lock


@on_every_transport
async def test_alarms_arrive_as_an_async_iterator_and_are_acknowledged(t: Target) -> None:
    async with await t.client() as pump:
        await t.inject(DeviceFault("motor-stall"))
        async for alarm in pump.alarms():
            assert alarm.code is AlarmCode.MOTOR_STALL
            await pump.acknowledge_alarm(alarm.alarm_id)
            break
        assert t.emulator.therapy.alarms[0].acknowledged


@on_every_transport
async def test_acknowledging_an_alarm_again_is_accepted_and_changes_nothing(t: Target) -> None:
    """Issue 25: users retry; a second acknowledgement was refused (WRONG_STATE)."""
    async with await t.client() as pump:
        await t.inject(DeviceFault("battery-drop", 99))  # ERI: a non-critical alarm
        async for alarm in pump.alarms():
            assert alarm.code is AlarmCode.BATTERY_ERI
            await pump.acknowledge_alarm(alarm.alarm_id)
            before = t.emulator.therapy.alarms
            await pump.acknowledge_alarm(alarm.alarm_id)
            assert t.emulator.therapy.alarms == before
            assert before[0].acknowledged
            break
        with pytest.raises(SessionError, match="no active alarm 99"):  # (the programmer knows it)
            await pump.acknowledge_alarm(99)


@on_every_transport
async def test_the_refill_flow_with_two_confirmations(t: Target) -> None:
    async with await t.client() as pump:
        await pump.program(CONTINUOUS, confirmed)
        await t.advance(10 * SCALE)
        left = (await pump.status()).reservoir_ul
        await pump.refill(left, 20_000, 500)
        assert (await pump.status()).reservoir_ul == 20_000


@on_every_transport
async def test_a_refill_refused_half_way_is_aborted_and_the_session_goes_on(t: Target) -> None:
    """An overfill refused at staging (by the pump: the client's checks are off) ends the refill on both
    sides; the next command is not stuck in the refill's state."""
    async with await t.client() as pump:
        pump.session.checks = False
        with pytest.raises(CommandRefusedError) as refused:
            await pump.refill(0, 25_000, 500)
        assert "REFILL-001" in refused.value.nack.rules
        assert (await pump.status()).reservoir_ul == 20_000
        assert EventCode.REFILL_ABORTED in [e.code for e in t.emulator.pump.log.since(0)]
        await pump.refill(20_000, 20_000, 500)  # a new refill can begin


@on_every_transport
async def test_a_lost_reply_is_resolved_by_its_transaction_never_sent_twice(t: Target) -> None:
    async with await t.client(timeout_s=0.3) as pump:
        await pump.program(CONTINUOUS, confirmed)
        await t.advance(SCALE)
        await pump.refresh()
        t.drop_replies(1)  # the SetRate's Ack is lost
        ack = await pump.set_rate(880)
        assert ack.request.name == "SET_RATE"
        changes = [e for e in t.emulator.pump.log.since(0) if e.code is EventCode.RATE_CHANGED]
        assert len(changes) == 1  # applied once


@on_every_transport
async def test_a_reply_the_link_knows_it_lost_is_not_waited_for(t: Target) -> None:
    """``expire()`` ends the wait at once (the QA suite's tap calls it for a reply it dropped): with an hour's
    time-out the command still resolves, by its transaction, applied once."""
    tap = Tap(await t.connect())  # (over BLE it loses the Ack's first fragment)
    pump = PumpClient(tap, load_profile("itb-20"), load_drug(), POLICY, timeout_s=3_600)
    tap.on_lost = pump.expire
    async with pump:
        await pump.program(CONTINUOUS, confirmed)
        lost = tap.received
        tap.lose = 1
        await pump.set_rate(880)
        assert tap.received > lost + 1  # the lost Ack, then the answers to the status read and the retry
        changes = [e for e in t.emulator.pump.log.since(0) if e.code is EventCode.RATE_CHANGED]
        assert len(changes) == 1
    pump.expire()  # nothing awaited: nothing happens


@on_every_transport
async def test_weeks_later_a_refill_is_checked_against_a_fresh_history(t: Target) -> None:
    # found by the demo: a status read weeks after the history made the programmer count the last day twice
    async with await t.client() as pump:
        await pump.program(CONTINUOUS, confirmed)
        await t.advance(SCALE)
        await pump.set_rate(880)
        with pytest.raises(SafetyViolation):
            await pump.set_rate(968)
        await t.advance(18 * SCALE)
        alarm = await anext(aiter(pump.alarms()))
        assert alarm.code is AlarmCode.LOW_RESERVOIR
        await pump.acknowledge_alarm(alarm.alarm_id)
        left = (await pump.status()).reservoir_ul
        await pump.refill(left, 20_000, 500)
        assert (await pump.status()).reservoir_ul == 20_000


def test_through_a_lossy_tcp_link_each_command_applies_once() -> None:
    """The server's seeded link faults lose and repeat frames both ways; the client times out, asks again
    with the same transaction id, and the pump answers each command once."""

    async def body() -> None:
        profile, drug = load_profile("itb-20"), load_drug()
        therapy = new_therapy(profile, drug, concentration_ug_ml=500, screening_dose_ng=300_000)
        emulator = Emulator.create(therapy, POLICY, serial="EMU-LOSSY")
        server = TcpServer(
            emulator, VirtualClock(START), faults=LinkFaults(drop=0.15, duplicate=0.15, seed=4)
        )
        host, port = await server.start()
        try:
            transport = await TcpTransport.connect(host, port)
            async with PumpClient(transport, profile, drug, POLICY, timeout_s=0.4, retries=10) as pump:
                for i in range(10):
                    await pump.set_thresholds(replace(profile.thresholds, low_reservoir_ul=2_000 + i))
        finally:
            server.close()
            await server.wait_closed()
        applied = [e.txn for e in emulator.pump.log.since(0) if e.code is EventCode.THRESHOLDS_CHANGED]
        assert len(applied) == len(set(applied)) == 10  # never twice
        assert emulator.therapy.thresholds.low_reservoir_ul == 2_009

    asyncio.run(asyncio.wait_for(body(), 120))


@on_every_transport
async def test_a_reply_that_comes_as_the_wait_times_out_is_taken_not_lost(t: Target) -> None:
    """The time-out fires, and the reply is read in the same moment: the client takes it (found by the QA
    suite over TCP, where it raised SessionError 'no request is waiting for a reply')."""

    class JustLate(PumpClient):
        late = False

        async def _answer(self) -> list[Any]:
            if self.late:
                self.late = False
                await asyncio.sleep(0.05)  # meanwhile the reader takes the reply
                raise TimeoutError
            return await super()._answer()

    transport = await t.connect()
    pump = JustLate(transport, load_profile("itb-20"), load_drug(), POLICY, name="qa")
    async with pump:
        pump.late = True
        assert (await pump.status()).reservoir_ul == 20_000
        pump.late = True
        await pump.program(CONTINUOUS, confirmed)  # a command too: applied once
        assert (await pump.status()).prescription_id == 1


@on_every_transport
async def test_a_bolus_started_and_cancelled(t: Target) -> None:
    async with await t.client() as pump:
        await pump.program(CONTINUOUS, confirmed)
        started = await pump.bolus(BolusKind.CLINICIAN, 20, 3_600)
        await t.advance(600)
        cancelled = await pump.cancel_bolus(started.bolus_id)
        assert cancelled.bolus_id == started.bolus_id
        assert 0 < cancelled.delivered_ul < 20
        assert cancelled.delivered_ul + cancelled.not_delivered_ul == 20
        assert (await pump.status()).bolus_remaining_ul == 0
