"""The pump among hostile peers, sans-IO: what strangers send costs no memory and cannot flush the records a
clinician and an auditor need; every link's totals are written when it goes or the pump stops; an answer
served again from transaction memory leaves a trace (specs/protocol.md §5, §8)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from pathlib import Path

from factories import POLICY
from itbemu import Emulator, VirtualClock
from itbemu.device import START, new_therapy
from itbemu.inprocess import InProcessHub
from itbemu.store import Store
from itbproto.core.firmware import Output
from itbproto.core.machines.pump import EventLog
from itbproto.core.wire import MAX_FRAME, EventCode, Role
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import ErrorCode
from itbproto.core.wire.frame import CRC_SIZE
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_prescription, load_profile
from peers import Peer

PIN = "493817"
CONTINUOUS = load_prescription(
    Path(__file__).parents[1] / "examples" / "prescriptions" / "continuous-400ug.toml"
)
PROFILE, DRUG = load_profile("itb-20"), load_drug()


def emulator(store: Store | None = None) -> Emulator:
    therapy = new_therapy(PROFILE, DRUG, concentration_ug_ml=500, screening_dose_ng=300_000)
    pump = Emulator.create(therapy, POLICY, serial="EMU-H", store=store)
    pump.firmware.pin = PIN
    return pump


def hello(client: str) -> m.Hello:
    return m.Hello(
        protocol_version=m.PROTOCOL_VERSION, role=Role.CLINICIAN, max_frame=MAX_FRAME, client=client
    )


def events(pump: Emulator, code: EventCode) -> list[m.EventRecord]:
    return [e for e in pump.pump.log.page(0, pump.pump.log.total) if e.code is code]


def garbage(peer: Peer) -> bytes:
    """A whole frame of the right length whose CRC is wrong."""
    frame = bytearray(b"".join(peer.connection.send(m.StatusRequest())))
    peer.connection.forget()
    frame[-CRC_SIZE] ^= 0xFF
    return bytes(frame)


def test_a_flood_of_bad_frames_costs_no_memory() -> None:
    """Dropped frames are counted, not kept: 20,000 more bad frames leave the pump's memory where it was."""
    pump = emulator()
    peer = Peer(pump)
    frame = garbage(peer)
    for _ in range(2_000):
        peer.send(frame)
    tracemalloc.start()
    try:
        gc.collect()  # what is garbage is not kept: only what survives a collection counts
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            peer.send(frame)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept for 20,000 dropped frames"
    assert sum(pump.firmware.dropped.values()) == 22_000
    assert len(events(pump, EventCode.FRAME_DROPPED)) == 1  # the first; the total when the link goes


def test_strangers_cannot_flush_what_the_pump_must_keep() -> None:
    """11,000 requests refused to links without a session, many from one link and one each from thousands of
    links, leave every PAIRED and PRESCRIPTION_COMMITTED entry readable over the wire."""

    async def body() -> None:
        pump = emulator()
        hub = InProcessHub(pump, VirtualClock(START))
        pairer = PumpClient(hub.connect(), PROFILE, DRUG, POLICY, role=Role.CLINICIAN)
        key = await pairer.pair(PIN, "EMU-H")
        await pairer.close()
        async with PumpClient(
            hub.connect(), PROFILE, DRUG, POLICY, role=Role.CLINICIAN, key=key
        ) as clinician:
            await clinician.program(
                CONTINUOUS, lambda summary: m.Acknowledgement(rules=summary.acknowledge, by="dr")
            )
            one = Peer(pump)
            for _ in range(5_500):
                assert one.request(m.StatusRequest())[0] == m.Nack.refusing(
                    m.StatusRequest.TYPE, ErrorCode.NOT_AUTHENTICATED, "no session: send Hello first"
                )
            for _ in range(5_500):
                stranger = Peer(pump)
                stranger.request(m.StatusRequest())
                pump.detach(stranger.link)
            logged = await clinician.events()
        codes = {e.code for e in logged}
        assert {EventCode.PAIRED, EventCode.PRESCRIPTION_COMMITTED} <= codes, codes
        assert len([e for e in logged if e.code is EventCode.COMMAND_REFUSED]) <= pump.pump.log.stranger_limit

    asyncio.run(body())


def test_a_link_without_a_session_logs_its_first_refusal_and_then_a_total() -> None:
    pump = emulator()
    peer = Peer(pump)
    for _ in range(3):
        peer.request(m.StatusRequest())
    assert len(events(pump, EventCode.COMMAND_REFUSED)) == 1
    pump.detach(peer.link)
    assert [e.value for e in events(pump, EventCode.REFUSALS_COUNTED)] == [3]


def test_one_dropped_frame_gets_its_total_too() -> None:
    pump = emulator()
    peer = Peer(pump)
    peer.send(garbage(peer))
    pump.detach(peer.link)
    assert [e.value for e in events(pump, EventCode.FRAME_DROPPED)] == [1, 1]


def test_stopping_the_pump_writes_every_open_link_total_to_the_store(tmp_path: object) -> None:
    path = f"{tmp_path}/pump.db"
    with Store(path) as store:
        pump = emulator(store)
        peer = Peer(pump)
        for _ in range(2):
            peer.send(garbage(peer))
        pump.close()
    with Store(path) as store:
        saved = [e for e in store.log() if e.code is EventCode.FRAME_DROPPED]
    assert [e.value for e in saved] == [1, 2]


def test_a_programmers_link_total_is_saved_when_the_link_goes(tmp_path: object) -> None:
    path = f"{tmp_path}/pump.db"
    with Store(path) as store:
        pump = emulator(store)
        peer = Peer(pump)
        peer.request(hello("one"))
        peer.send(garbage(peer))
        pump.detach(peer.link)
        with Store(path) as reader:
            assert [e.value for e in reader.log() if e.code is EventCode.FRAME_DROPPED] == [1, 1]


def test_what_only_strangers_caused_waits_for_the_next_save(tmp_path: object) -> None:
    """No disk write per stranger's frame: their entries are saved with the next save (a server's, within a
    second), and nothing a programmer did ever waits."""
    path = f"{tmp_path}/pump.db"
    with Store(path) as store:
        pump = emulator(store)
        peer = Peer(pump)
        peer.send(garbage(peer))
        pump.detach(peer.link)
        assert pump.unsaved
        with Store(path) as reader:
            assert not [e for e in reader.log() if e.code is EventCode.FRAME_DROPPED]
        pump.save()
        assert not pump.unsaved
        with Store(path) as reader:
            assert [e.value for e in reader.log() if e.code is EventCode.FRAME_DROPPED] == [1, 1]


def test_an_answer_from_transaction_memory_leaves_a_trace() -> None:
    """A captured command replayed on a new link gets its stored answer (nothing applied twice) and the log
    says so: the first on each link with its transaction, then the link's total when it goes."""
    pump = emulator()
    first = Peer(pump)
    first.request(hello("one"))
    command = b"".join(first.connection.send(m.Suspend(duration_s=600), 7))
    answer = first.send(command)
    pump.detach(first.link)
    replayer = Peer(pump)
    replayer.request(hello("two"))
    before = pump.pump.state
    for _ in range(3):
        again = replayer.request(m.Suspend(duration_s=600), 7)
        assert again == answer
    assert pump.pump.state == before
    pump.detach(replayer.link)
    repeated = events(pump, EventCode.ANSWER_REPEATED)
    assert [(e.txn, e.value) for e in repeated] == [(7, 1), (0, 3)]


def test_the_strangers_ring_survives_a_restart(tmp_path: object) -> None:
    """What a store holds comes back with the same retention: strangers' entries in their own ring."""
    path = f"{tmp_path}/pump.db"
    with Store(path) as store:
        pump = emulator(store)
        for _ in range(3):
            peer = Peer(pump)
            peer.request(m.StatusRequest())
            pump.detach(peer.link)
        total = pump.pump.log.total
        strangers = pump.pump.log.strangers
        pump.close()
    with Store(path) as store:
        again = Emulator.open(store, POLICY)
    assert again.pump.log.total == total
    assert again.pump.log.strangers == strangers
    assert strangers


def test_strangers_fill_only_their_own_ring() -> None:
    log = EventLog(limit=4, stranger_limit=2)
    log.append(1, EventCode.BOOT)
    for i in range(10):
        log.append(2 + i, EventCode.COMMAND_REFUSED, 0, 4, stranger=True)
    log.append(20, EventCode.PAIRED, 0, 1)
    kept = log.page(0, 100)
    assert [e.code for e in kept] == [
        EventCode.BOOT,
        EventCode.COMMAND_REFUSED,
        EventCode.COMMAND_REFUSED,
        EventCode.PAIRED,
    ]
    assert [e.index for e in kept] == [0, 9, 10, 11]
    assert log.page(10, 1)[0].index == 10
    assert log.total == 12


def test_reading_the_log_ends_while_strangers_add_to_it() -> None:
    """The log as it was when reading began: strangers adding entries faster than pages are read (a flood)
    cannot keep `itbproto log` reading for ever."""

    async def body() -> None:
        pump = emulator()
        hub = InProcessHub(pump, VirtualClock(START))
        receive = pump.receive

        def flooded(link: int, data: bytes, now: int) -> Output:
            for _ in range(100):  # more than a page, between every two requests
                pump.pump.log.append(now, EventCode.FRAME_DROPPED, 0, 1, "flood", stranger=True)
            return receive(link, data, now)

        pump.receive = flooded  # type: ignore[method-assign]
        async with PumpClient(hub.connect(), PROFILE, DRUG, POLICY) as clinician:
            started = pump.pump.log.total
            logged = await asyncio.wait_for(clinician.events(), 30)
        assert logged[-1].index < started + 200
        assert logged[0].code is EventCode.BOOT

    asyncio.run(body())
