"""Security pieces on their own and through a Connection: PIN pairing (SPAKE2 with key confirmation), the
PIN guard, per-connection keys, and the sealed channel refusing altered, forged, reflected, replayed and
plain frames."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from itbproto.core.connection import BadRequest, Connection, Dropped, Reply, Request, Side
from itbproto.core.security import (
    PairedKey,
    PinGuard,
    ProgrammerPairing,
    PumpPairing,
    SealedChannel,
    session_keys,
)
from itbproto.core.security.channel import TO_PUMP, nonce
from itbproto.core.wire import Ack, MsgType, Role, SetRate, StatusRequest
from itbproto.core.wire.message import Kind, Message
from itbproto.errors import (
    AuthenticationError,
    FieldRangeError,
    PairingError,
    StaleFrameError,
    UnsealedFrameError,
)
from itbproto.qa.strategies import messages

SERIAL = "ITB-000042"


def fixed(seed: int) -> Callable[[int], bytes]:
    """Entropy from a seed: pairing runs repeat exactly (the vectors' way)."""
    rng = random.Random(seed)
    return lambda n: bytes(rng.randrange(256) for _ in range(n))


def pair(
    pin_programmer: str, pin_pump: str, role: Role = Role.CLINICIAN, seed: int = 1
) -> tuple[PairedKey, PairedKey]:
    programmer = ProgrammerPairing(pin_programmer, SERIAL, role, entropy=fixed(seed))
    pump = PumpPairing(pin_pump, SERIAL, entropy=fixed(seed + 1))
    reply = pump.reply(programmer.start())
    confirm = programmer.confirm(reply)
    result, kept = pump.result(confirm, key_id=7)
    return programmer.finish(result), kept


def test_pairing_with_the_shown_pin_leaves_one_key_on_both_sides_with_the_role() -> None:
    programmer_key, pump_key = pair("493817", "493817", Role.PATIENT)
    assert programmer_key == pump_key
    assert (pump_key.key_id, pump_key.role, len(pump_key.long_term)) == (7, Role.PATIENT, 32)
    assert pair("493817", "493817", seed=1) == pair("493817", "493817", seed=1)  # fixed entropy: a vector
    assert pair("493817", "493817", seed=1)[0].long_term != pair("493817", "493817", seed=3)[0].long_term


def test_a_wrong_pin_is_caught_by_the_pump_and_no_key_is_kept() -> None:
    with pytest.raises(PairingError, match="wrong PIN"):
        pair("000000", "493817")


def test_an_altered_pairing_message_is_caught() -> None:
    programmer = ProgrammerPairing("493817", SERIAL, Role.CLINICIAN, entropy=fixed(1))
    pump = PumpPairing("493817", SERIAL, entropy=fixed(2))
    reply = pump.reply(programmer.start())
    tampered = replace(reply, salt=bytes(16))  # a man in the middle changes the salt
    confirm = programmer.confirm(tampered)
    with pytest.raises(PairingError):
        pump.result(confirm, key_id=1)
    programmer = ProgrammerPairing("493817", SERIAL, Role.CLINICIAN, entropy=fixed(1))
    pump = PumpPairing("493817", SERIAL, entropy=fixed(2))
    result, _ = pump.result(programmer.confirm(pump.reply(programmer.start())), 1)
    with pytest.raises(PairingError, match="confirmation does not verify"):  # not the pump that showed it
        programmer.finish(replace(result, confirm=bytes(32)))


def test_the_pin_guard_slows_guessing_and_forgets_after_success() -> None:
    guard = PinGuard(free=3, base_s=30, max_s=3_600)
    now = 1_000
    for _ in range(3):
        guard.failed(now)
        assert guard.allowed(now)
    locks = []
    for _ in range(9):
        guard.failed(now)
        locks.append(guard.locked_until - now)
        assert not guard.allowed(now)
    assert locks == [30, 60, 120, 240, 480, 960, 1_920, 3_600, 3_600]
    assert guard.allowed(now + 3_600)
    guard.succeeded()
    assert guard.allowed(now)
    assert guard.failures == 0


def sealed_pair(seed: int = 1) -> tuple[Connection, Connection]:
    key, _ = pair("493817", "493817", seed=seed)
    keys = session_keys(key.long_term, bytes(range(16)), bytes(range(16, 32)))
    return Connection(Side.PROGRAMMER, channel=keys.programmer()), Connection(Side.PUMP, channel=keys.pump())


def test_sealed_frames_carry_requests_and_replies() -> None:
    programmer, pump = sealed_pair()
    (frame,) = programmer.send(SetRate(rate_ul_day=800), txn=5)
    assert frame[1] & 1  # the SEALED flag
    (request,) = pump.receive(frame)
    assert isinstance(request, Request)
    assert request.message == SetRate(rate_ul_day=800)
    (reply_frame,) = pump.send(Ack(request=MsgType.SET_RATE, applied_at=1), 5)
    (reply,) = programmer.receive(reply_frame)
    assert isinstance(reply, Reply)


@given(data=st.data())
def test_any_bit_flipped_anywhere_is_refused_and_changes_nothing(data: st.DataObject) -> None:
    programmer, pump = sealed_pair()
    (frame,) = programmer.send(SetRate(rate_ul_day=800), txn=5)
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    altered = bytearray(frame)
    altered[bit // 8] ^= 1 << (bit % 8)
    (event,) = pump.receive(bytes(altered))
    assert isinstance(event, Dropped)
    (request,) = pump.receive(frame)  # the genuine frame still arrives: the altered one changed nothing
    assert isinstance(request, Request)


def test_replays_reflections_other_sessions_and_plain_frames_are_refused() -> None:
    programmer, pump = sealed_pair()
    (frame,) = programmer.send(SetRate(rate_ul_day=800), txn=5)
    assert isinstance(pump.receive(frame)[0], Request)
    (replayed,) = pump.receive(frame)
    assert isinstance(replayed, Dropped)
    assert isinstance(replayed.error, StaleFrameError)
    (reflected,) = programmer.receive(frame)  # sealed towards the pump: it never opens on the programmer
    assert isinstance(reflected, Dropped)
    assert isinstance(reflected.error, AuthenticationError)
    _, other_pump = sealed_pair(seed=5)  # another pairing: another key
    (elsewhere,) = other_pump.receive(frame)
    assert isinstance(elsewhere, Dropped)
    assert isinstance(elsewhere.error, AuthenticationError)
    (plain,) = Connection(Side.PROGRAMMER).send(StatusRequest(), txn=1)
    fresh_pump = sealed_pair()[1]
    (refused,) = fresh_pump.receive(plain)
    assert isinstance(refused, Dropped)
    assert isinstance(refused.error, UnsealedFrameError)


def test_nonces_never_repeat_within_a_direction_and_differ_across() -> None:
    assert nonce(TO_PUMP, 1) != nonce(TO_PUMP, 2)
    assert nonce(TO_PUMP, 1) != nonce(2, 1)
    assert len(nonce(TO_PUMP, 2**32 - 1)) == 13
    with pytest.raises(ValueError, match="16 bytes"):
        SealedChannel(bytes(15), bytes(16), TO_PUMP)
    with pytest.raises(ValueError, match="16 bytes"):
        session_keys(bytes(32), bytes(15), bytes(16))


@given(messages())
def test_every_request_survives_sealing_and_fragmenting(message: Message) -> None:
    assume(message.KIND is Kind.REQUEST)
    key, _ = pair("493817", "493817")
    keys = session_keys(key.long_term, bytes(16), bytes(range(16)))
    programmer = Connection(Side.PROGRAMMER, mtu=23, channel=keys.programmer())
    pump = Connection(Side.PUMP, mtu=23, channel=keys.pump())
    events = [e for chunk in programmer.send(message, txn=9) for e in pump.receive(chunk)]
    assert [type(e) for e in events] in ([Request], [BadRequest])  # opened; a BadRequest is the codec's say
    if isinstance(events[0], Request):
        assert events[0].message == message


def test_the_sequence_counter_never_wraps_so_no_nonce_repeats() -> None:
    programmer, pump = sealed_pair()
    (first,) = programmer.send(StatusRequest(), txn=1)
    assert isinstance(pump.receive(first)[0], Request)
    programmer._send_seq = 2**32  # one past the last: sending must stop, not wrap to 0
    programmer.forget()
    with pytest.raises(FieldRangeError):
        programmer.send(StatusRequest(), txn=2)
    wrapped = bytearray(first)  # and a frame that claims seq 0 again is stale at the pump
    (stale,) = pump.receive(bytes(wrapped))
    assert isinstance(stale, Dropped)
    assert isinstance(stale.error, StaleFrameError)
