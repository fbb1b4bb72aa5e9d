"""SPAKE2 from specs/ alone: every intermediate value of security.json's pairing recomputed as protocol.md §6
writes the construction out, with an Ed25519 of plain integers (RFC 8032's formulas) and hashlib/hmac.

Nothing here imports ``spake2``, :mod:`itbproto.core.security` or the codec: this is what an implementer in
another language does, and it fails if the text, the constants or the vectors drift from what the library
computes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

SPECS = Path(__file__).resolve().parents[1] / "specs"
V: dict[str, Any] = json.loads((SPECS / "vectors" / "security.json").read_text())
S: dict[str, Any] = V.get("spake2", {})  # (read at collection: a missing part fails the tests, not it)

# --- edwards25519 (RFC 8032 §5.1) ---------------------------------------------------------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
Point = tuple[int, int, int, int]  # extended coordinates: x = X/Z, y = Y/Z, x*y = T/Z
IDENTITY: Point = (0, 1, 1, 0)


def add(p: Point, q: Point) -> Point:
    """RFC 8032 §5.1.4: complete (valid for doubling and the identity too)."""
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def mul(n: int, p: Point) -> Point:
    out = IDENTITY
    while n:
        if n & 1:
            out = add(out, p)
        p, n = add(p, p), n >> 1
    return out


def neg(p: Point) -> Point:
    x, y, z, t = p
    return (-x % P, y, z, -t % P)


def affine(p: Point) -> tuple[int, int]:
    zi = pow(p[2], P - 2, P)
    return p[0] * zi % P, p[1] * zi % P


def same(p: Point, q: Point) -> bool:
    return affine(p) == affine(q)


def encode(p: Point) -> bytes:
    """32 bytes: y little-endian, the top bit of the last byte = x's low bit (RFC 8032 §5.1.2)."""
    x, y = affine(p)
    return (y | (x & 1) << 255).to_bytes(32, "little")


def recover_x(y: int, sign: int) -> int | None:
    """The x with y on the curve and x's low bit ``sign``; None if there is none (RFC 8032 §5.1.3)."""
    xx = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(xx, (P + 3) // 8, P)
    if (x * x - xx) % P:
        x = x * SQRT_M1 % P
    if (x * x - xx) % P:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def decode(data: bytes) -> Point:
    n = int.from_bytes(data, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    x = recover_x(y, sign)
    assert x is not None, "not a point"
    assert y < P, "not canonical"
    return (x, y, 1, x * y % P)


BASE: Point = decode(bytes.fromhex("58" + "66" * 31))


# --- the hashes --------------------------------------------------------------------------------------------


def hkdf(ikm: bytes, salt: bytes, info: bytes, size: int) -> bytes:
    """RFC 5869 with SHA-256 (an empty salt is HashLen zero bytes, which HMAC makes the same key)."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < size:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + block, i + 1
    return out[:size]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def scalar(value: int) -> str:
    """A scalar as the vectors write it: 32 bytes little-endian, hex."""
    return value.to_bytes(32, "little").hex()


def arbitrary_element(seed: bytes) -> Point:
    """§6: M and N, from their seeds."""
    y0 = int.from_bytes(hkdf(seed, b"", b"SPAKE2 arbitrary element", 48), "big") % P
    plus = 0
    while True:
        y = (y0 + plus) % P
        plus += 1
        x = recover_x(y, 0)
        if x is None:
            continue
        point = mul(8, (x, y, 1, x * y % P))
        if not same(point, IDENTITY):
            return point


def counting(start: int, size: int) -> bytes:
    return bytes((start + i) % 256 for i in range(size))


# --- the pairing, step by step ----------------------------------------------------------------------------


def test_m_and_n_come_from_their_seeds_and_the_spec_states_them() -> None:
    protocol = (SPECS / "protocol.md").read_text()
    for name in ("M", "N"):
        point = arbitrary_element(S[f"{name}_seed"].encode())
        assert encode(point).hex() == S[name]
        assert S[name] in protocol, f"protocol.md §6 does not state {name}"
        assert same(mul(L, point), IDENTITY)
    assert encode(BASE).hex() == S["base"]


def test_every_intermediate_of_the_pairing_is_what_section_6_computes() -> None:
    pin, serial, identity = V["pin"].encode(), V["serial"].encode(), V["programmer_identity"].encode()
    m_point, n_point = decode(bytes.fromhex(S["M"])), decode(bytes.fromhex(S["N"]))
    assert S["password"] == pin.hex()

    w = int.from_bytes(hkdf(pin, b"", b"SPAKE2 pw", 48), "big") % L
    assert scalar(w) == S["password_scalar"]

    assert S["programmer_entropy"] == counting(0x11, 64).hex()
    assert S["pump_entropy"] == counting(0x77, 64).hex()
    x = int.from_bytes(bytes.fromhex(S["programmer_entropy"]), "big") % L
    y = int.from_bytes(bytes.fromhex(S["pump_entropy"]), "big") % L
    assert scalar(x) == S["programmer_scalar"]
    assert scalar(y) == S["pump_scalar"]
    assert encode(mul(x, BASE)).hex() == S["programmer_element"]
    assert encode(mul(y, BASE)).hex() == S["pump_element"]

    big_x = add(mul(x, BASE), mul(w, m_point))
    big_y = add(mul(y, BASE), mul(w, n_point))
    msg_a, msg_b = b"A" + encode(big_x), b"B" + encode(big_y)
    assert msg_a.hex() == S["programmer_message"]
    assert msg_b.hex() == S["pump_message"]

    # each side checks the other's element (a point of order L, not the identity), then computes K
    received_b, received_a = decode(msg_b[1:]), decode(msg_a[1:])
    for point in (received_a, received_b):
        assert same(mul(L, point), IDENTITY)
        assert not same(point, IDENTITY)
    k_a = mul(x, add(received_b, neg(mul(w, n_point))))
    k_b = mul(y, add(received_a, neg(mul(w, m_point))))
    assert encode(k_a) == encode(k_b)
    assert encode(k_a).hex() == S["K"]

    # the elements without their side byte here; SHA-256 of the password and identities
    key = sha256(sha256(pin) + sha256(identity) + sha256(serial) + msg_a[1:] + msg_b[1:] + encode(k_a))
    assert key.hex() == S["spake2_key"]

    salt = bytes.fromhex(V["salt"])
    assert V["salt"] == counting(0x77 + 64, 16).hex()  # the pump's entropy goes on after its scalar
    confirm_programmer = hkdf(key, salt, b"itbproto v1 confirm programmer", 32)
    confirm_pump = hkdf(key, salt, b"itbproto v1 confirm pump", 32)
    long_term = hkdf(key, salt, b"itbproto v1 long-term key", 32)
    assert confirm_programmer.hex() == V["confirm_key_programmer"]
    assert confirm_pump.hex() == V["confirm_key_pump"]
    assert long_term.hex() == V["long_term_key"]

    # the transcript has the whole 33-byte messages, side byte included
    role = bytes([1])  # CLINICIAN
    parts = (identity, serial, role, msg_a, msg_b, salt)
    transcript = b"itbproto pairing v1" + b"".join(len(p).to_bytes(2, "big") + p for p in parts)
    assert transcript.hex() == V["transcript"]
    mac_programmer = hmac.new(confirm_programmer, transcript, hashlib.sha256).digest()
    mac_pump = hmac.new(confirm_pump, transcript, hashlib.sha256).digest()
    assert mac_programmer.hex() == V["programmer_confirm"]
    assert mac_pump.hex() == V["pump_confirm"]

    # the four frames carry them (header 13 bytes, payload, CRC 2 bytes)
    frames = {f["message"]: bytes.fromhex(f["frame"])[13:-2] for f in V["pairing"]}
    assert frames["PairStart"] == role + bytes([len(msg_a)]) + msg_a
    assert frames["PairReply"] == bytes([len(msg_b)]) + msg_b + bytes([16]) + salt
    assert frames["PairConfirm"] == bytes([32]) + mac_programmer
    assert frames["PairResult"] == bytes([32]) + mac_pump + V["key_id"].to_bytes(4, "little")

    # and the session keys follow from the long-term key
    nonces = bytes.fromhex(V["programmer_nonce"]) + bytes.fromhex(V["pump_nonce"])
    assert hkdf(long_term, nonces, b"itbproto v1 session to pump", 16).hex() == V["key_to_pump"]
    assert hkdf(long_term, nonces, b"itbproto v1 session to programmer", 16).hex() == V["key_to_programmer"]


def test_wrong_pins_and_the_lock_out_answer_as_section_6_says() -> None:
    """Three free wrong PINs, the fourth locks pairing for 30 s of device time; meanwhile PairStart is refused
    NOT_AUTHENTICATED; at the lock's end it is answered again."""
    cases = V["pin_refusals"]
    locked_at = None
    for case in cases:
        answers = case["answers"]
        assert len(answers) == 1
        answer = answers[0]
        if case["case"].startswith("PairConfirm"):
            assert answer["message"] == "Nack"
            assert answer["fields"] == {"request": 0x12, "code": "NOT_AUTHENTICATED", "rules": []}
            if case["failures"] > 3:
                locked_at = case["device_time"]
                assert case["locked_until"] == locked_at + 30 * 2 ** (case["failures"] - 4)
            else:
                assert case["locked_until"] == 0
        elif locked_at is not None and case["device_time"] < case["locked_until"]:
            assert answer["fields"] == {"request": 0x10, "code": "NOT_AUTHENTICATED", "rules": []}
        else:
            assert answer["message"] == "PairReply"
    assert locked_at is not None
    assert cases[-1]["device_time"] == cases[-1]["locked_until"]  # the lock ends at that second


def test_one_link_from_the_first_hello_to_the_first_sealed_frame() -> None:
    """A pump that requires pairing: a Hello without a key gets DeviceInfo (paired, zero nonce) and no
    session; the pairing's payloads are those above; the keyed Hello's DeviceInfo is plain and carries the
    pump's nonce; the next frames both ways are sealed with the keys derived from the two nonces."""
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    link = V["link"]
    replies = ["DeviceInfo", "Nack", "PairReply", "PairResult", "DeviceInfo", "StatusReport"]
    assert [s["reply"] for s in link] == replies
    assert link[0]["fields"]["paired"] is True
    assert link[0]["fields"]["serial"] == V["serial"]
    assert link[0]["fields"]["nonce"] == "00" * 16
    assert link[1]["fields"]["code"] == "NOT_AUTHENTICATED"
    payloads = {f["message"]: bytes.fromhex(f["frame"])[13:-2] for f in V["pairing"]}
    assert bytes.fromhex(link[2]["input"])[13:-2] == payloads["PairStart"]
    assert bytes.fromhex(link[2]["frame"])[13:-2] == payloads["PairReply"]
    assert bytes.fromhex(link[3]["input"])[13:-2] == payloads["PairConfirm"]
    assert bytes.fromhex(link[3]["frame"])[13:-2] == payloads["PairResult"]
    hello, info = bytes.fromhex(link[4]["input"]), bytes.fromhex(link[4]["frame"])
    assert hello[1] == 0  # plain
    assert info[1] == 0
    assert hello[-2 - 16 : -2].hex() == V["programmer_nonce"]  # Hello's nonce is its last field
    assert link[4]["fields"]["nonce"] == V["pump_nonce"]
    assert link[4]["fields"]["paired"] is True
    keys = {1: bytes.fromhex(V["key_to_pump"]), 2: bytes.fromhex(V["key_to_programmer"])}
    for direction, frame in ((1, bytes.fromhex(link[5]["input"])), (2, bytes.fromhex(link[5]["frame"]))):
        header, body = frame[:13], frame[13:]
        assert header[1] & 1  # sealed
        nonce = bytes([direction]) + bytes(8) + header[2:6]
        AESCCM(keys[direction], tag_length=8).decrypt(nonce, body, header)  # raises if it does not open
