"""Issue 26, behaviour: a session ended by its link going down is logged (specs/protocol.md §8):
SESSION_ENDED, txn 0, detail ``link closed``, before the link's totals; a link without a session, or whose
session was ended, logs none. An unpaired Hello's nonce; ReadPrescription with none in force."""

from __future__ import annotations

from factories import POLICY
from itbemu import Emulator
from itbemu.device import new_therapy
from itbproto.core.wire import MAX_FRAME, EventCode, Role
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import ErrorCode
from itbproto.io.specfiles import load_drug, load_profile
from peers import Peer

PROFILE, DRUG = load_profile("itb-20"), load_drug()
ENDS = (EventCode.SESSION_ENDED, EventCode.SESSION_ENDED_STOPPED)


def emulator() -> Emulator:
    therapy = new_therapy(PROFILE, DRUG, concentration_ug_ml=500, screening_dose_ng=300_000)
    return Emulator.create(therapy, POLICY, serial="EMU-L")


def hello(role: Role = Role.CLINICIAN) -> m.Hello:
    return m.Hello(protocol_version=1, role=role, max_frame=MAX_FRAME, client="link")


def ends(pump: Emulator) -> list[m.EventRecord]:
    return [e for e in pump.pump.log.page(0, pump.pump.log.total) if e.code in ENDS]


def test_a_session_ended_by_the_link_going_down_is_logged() -> None:
    pump = emulator()
    peer = Peer(pump)
    (info,) = peer.request(hello(Role.PATIENT))
    assert isinstance(info, m.DeviceInfo)
    peer.request(m.StatusRequest())  # something counted or not: the end comes first either way
    pump.detach(peer.link)
    (end,) = ends(pump)
    assert (end.code, end.txn, end.value, end.detail) == (
        EventCode.SESSION_ENDED,
        0,
        int(Role.PATIENT),
        "link closed",
    )
    assert end.index == pump.pump.log.total - 1 or all(
        e.detail == "in all, on a link" for e in pump.pump.log.page(end.index + 1, pump.pump.log.total)
    )


def test_no_session_no_end_logged() -> None:
    pump = emulator()
    stranger = Peer(pump)
    stranger.request(m.StatusRequest())  # refused: no session
    pump.detach(stranger.link)
    ended = Peer(pump)
    ended.request(hello())
    ended.request(m.SessionEnd(ack=m.Acknowledgement(rules=("STOP-001",), by="link")))
    logged = len(ends(pump))
    pump.detach(ended.link)
    assert len(ends(pump)) == logged  # the SessionEnd was logged; the link going adds nothing


def test_a_clean_stop_logs_every_open_session_ending() -> None:
    pump = emulator()
    peers = [Peer(pump) for _ in range(3)]
    for peer in peers[:2]:
        peer.request(hello())
    pump.close()
    assert [e.detail for e in ends(pump)] == ["link closed", "link closed"]


def test_an_unpaired_hello_nonce_is_ignored_and_answered_with_zeros() -> None:
    """§6/Hello table: with key_id 0 the programmer's nonce means nothing; DeviceInfo's is 16 zero bytes."""
    for nonce in (bytes(16), bytes(range(16))):
        peer = Peer(emulator())
        (info,) = peer.request(
            m.Hello(protocol_version=1, role=Role.CLINICIAN, max_frame=MAX_FRAME, client="z", nonce=nonce)
        )
        assert isinstance(info, m.DeviceInfo)
        assert (info.nonce, info.paired) == (bytes(16), False)


def test_read_prescription_with_none_in_force_is_wrong_state() -> None:
    """§7: no prescription in force: Nack WRONG_STATE, logged as a refusal."""
    pump = emulator()
    peer = Peer(pump)
    peer.request(hello())
    (nack,) = peer.request(m.ReadPrescription())
    assert isinstance(nack, m.Nack)
    assert nack.code is ErrorCode.WRONG_STATE
    last = pump.pump.log.page(pump.pump.log.total - 1, 1)[0]
    assert (last.code, last.value) == (EventCode.COMMAND_REFUSED, int(ErrorCode.WRONG_STATE))
