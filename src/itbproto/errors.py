"""The one exception hierarchy of itbproto.

Every error the library raises on purpose derives from :class:`ItbError` and
carries, as attributes, what was wrong::

    ItbError
     ├── ProtocolError (ValueError)          bytes or values that break specs/protocol.md
     │    ├── FrameError                     the envelope is wrong
     │    │    ├── TruncatedFrameError       fewer bytes than the header promises
     │    │    ├── FrameLengthError          more bytes than the header promises, or over the maximum
     │    │    ├── BadCrcError               CRC-16/CCITT-FALSE mismatch
     │    │    ├── UnsupportedVersionError   protocol version this library does not speak
     │    │    ├── ReservedFlagsError        a reserved header flag is set
     │    │    ├── SealedFrameError          an AEAD frame where a plain one was expected
     │    │    ├── AuthenticationError       a sealed frame whose tag does not verify
     │    │    ├── UnsealedFrameError        a plain frame on a sealed link
     │    │    └── StaleFrameError           a sequence number not newer than the last one received
     │    ├── UnknownMessageError            message type not in the catalog
     │    ├── MalformedPayloadError          payload does not parse as its message type
     │    ├── FieldRangeError                a field outside its declared range (encode or decode)
     │    ├── FragmentError                  BLE fragment reassembly failed
     │    │    ├── FragmentGapError          a fragment is missing
     │    │    ├── DuplicateFragmentError    a fragment arrived twice
     │    │    ├── IncompleteMessageError    a message was abandoned for a newer one before it was whole
     │    │    └── MessageTooLongError       a reassembled message would exceed the maximum
     │    └── RemoteProtocolError            the peer's well-formed message breaks the protocol here
     ├── LocalProtocolError                  this side was asked to break the protocol; nothing was sent
     │    └── SessionError                   a session step not allowed in the session's current state
     ├── CommandRefusedError                 the pump refused a request (its Nack: code, rules, reason)
     ├── NotAppliedError                     a command did not take effect (lost, not taken, or declined)
     ├── PairingError                        a wrong PIN, an altered pairing message, a step out of order
     ├── LinkClosedError (ConnectionError)  the link went down before the answer came
     ├── SpecError                           a file in specs/ is malformed
     ├── CaptureError                        a BLE capture that is not btsnoop, or is cut short
     ├── QaReportError                       a QA report or shard (I/N) that cannot be used or merged
     ├── TherapyStateError                   a command that cannot apply in the current therapy state
     │    ├── UnknownIdError                 it names a bolus, refill, alarm or stage that is not there
     │    └── StaleStageError                its stage id or digest is not the staged one
     └── SafetyViolation                     a command breaks safety rules (rule_ids, reasons)
          ├── AcknowledgementRequired        it meets hazards the user must acknowledge first
          └── PolicyError                    a policy that would loosen a limit (POLICY-001)

As in h11, the two sides of a link keep their faults apart: what *this* side
asked for and the protocol forbids raises :class:`LocalProtocolError` (a bug in
the caller); what the *peer* sent that breaks the protocol is a
:class:`ProtocolError` (codec errors or :class:`RemoteProtocolError`), which a
:class:`~itbproto.core.connection.Connection` reports as an event instead of raising.
Bad input raises one of these and changes nothing: a decoder never returns a
half-parsed message, and a reassembler never returns a partial one.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AcknowledgementRequired",
    "AuthenticationError",
    "BadCrcError",
    "CaptureError",
    "CommandRefusedError",
    "DuplicateFragmentError",
    "FieldRangeError",
    "FragmentError",
    "FragmentGapError",
    "FrameError",
    "FrameLengthError",
    "IncompleteMessageError",
    "ItbError",
    "LinkClosedError",
    "LocalProtocolError",
    "MalformedPayloadError",
    "MessageTooLongError",
    "NotAppliedError",
    "NotPairedError",
    "PairingError",
    "PolicyError",
    "ProtocolError",
    "QaReportError",
    "RemoteProtocolError",
    "ReservedFlagsError",
    "SafetyViolation",
    "SealedFrameError",
    "SessionError",
    "SpecError",
    "StaleFrameError",
    "StaleStageError",
    "TherapyStateError",
    "TruncatedFrameError",
    "UnknownIdError",
    "UnknownMessageError",
    "UnsealedFrameError",
    "UnsupportedVersionError",
    "WrongDeviceError",
]


class ItbError(Exception):
    """Root of every error itbproto raises on purpose."""


class ProtocolError(ItbError, ValueError):
    """Bytes or values that do not follow specs/protocol.md."""


class FrameError(ProtocolError):
    """The frame envelope (header, length, integrity trailer) is wrong."""


class TruncatedFrameError(FrameError):
    """Fewer bytes than a frame needs."""

    def __init__(self, needed: int, got: int, why: str = "its header says") -> None:
        super().__init__(f"truncated frame: {why} {needed} bytes; {got} bytes given")
        self.needed = needed
        self.got = got


class FrameLengthError(FrameError):
    """The frame is longer than its header says, or longer than the protocol allows."""

    def __init__(self, expected: int, got: int, reason: str = "") -> None:
        super().__init__(
            reason or f"frame length mismatch: its header says {expected} bytes; {got} bytes given"
        )
        self.expected = expected
        self.got = got


class BadCrcError(FrameError):
    """The CRC-16/CCITT-FALSE trailer does not match the header and payload."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"bad CRC: computed 0x{expected:04x}, frame carries 0x{got:04x}")
        self.expected = expected
        self.got = got


class UnsupportedVersionError(FrameError):
    """The frame's protocol version is not one this library speaks."""

    def __init__(self, version: int, supported: int) -> None:
        super().__init__(f"unsupported protocol version {version} (this library speaks {supported})")
        self.version = version
        self.supported = supported


class ReservedFlagsError(FrameError):
    """A header flag bit that the protocol reserves is set."""

    def __init__(self, flags: int, reserved_mask: int) -> None:
        super().__init__(f"reserved flag bits set: 0x{flags & reserved_mask:02x}")
        self.flags = flags
        self.reserved_mask = reserved_mask


class SealedFrameError(FrameError):
    """An AEAD-sealed frame arrived where a plain one was expected; open it with the session channel."""

    def __init__(self) -> None:
        super().__init__("sealed (AEAD) frame: open it with the session's secure channel")


class AuthenticationError(FrameError):
    """A sealed frame whose tag does not verify: altered, forged, or sealed with another key or for the
    other direction."""

    def __init__(self, seq: int) -> None:
        super().__init__(f"sealed frame {seq} does not verify: altered, forged or not for this session")
        self.seq = seq


class UnsealedFrameError(FrameError):
    """A plain frame on a sealed link: after pairing every frame is sealed."""

    def __init__(self) -> None:
        super().__init__("plain frame on a sealed link: every frame of this session must be sealed")


class StaleFrameError(FrameError):
    """A frame's sequence number is not newer than the last one received: a duplicate or a replay."""

    def __init__(self, seq: int, last: int) -> None:
        super().__init__(f"frame sequence {seq} is not newer than {last}: duplicate or replay")
        self.seq = seq
        self.last = last


class UnknownMessageError(ProtocolError):
    """The message type is not in the catalog."""

    def __init__(self, msg_type: int) -> None:
        super().__init__(f"unknown message type 0x{msg_type:02x}")
        self.msg_type = msg_type


class MalformedPayloadError(ProtocolError):
    """The payload does not parse as its message type (short, long, or inconsistent)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(f"malformed {message} payload: {reason}")
        self.message = message
        self.reason = reason


class FieldRangeError(ProtocolError):
    """A field holds a value outside its declared range, length or enumeration."""

    def __init__(self, field: str, value: object, allowed: str) -> None:
        super().__init__(f"{field} = {value!r} is out of range (allowed: {allowed})")
        self.field = field
        self.value = value
        self.allowed = allowed


class FragmentError(ProtocolError):
    """BLE fragment reassembly failed; the partial message is dropped."""


class FragmentGapError(FragmentError):
    """A fragment is missing: the index that arrived is not the one expected."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"fragment gap: expected index {expected}, got {got}")
        self.expected = expected
        self.got = got


class DuplicateFragmentError(FragmentError):
    """A fragment arrived twice."""

    def __init__(self, counter: int, index: int) -> None:
        super().__init__(f"duplicate fragment {index} of message {counter}")
        self.counter = counter
        self.index = index


class IncompleteMessageError(FragmentError):
    """A first fragment of a new message arrived before the previous message was whole; it was dropped."""

    def __init__(self, counter: int, received: int, total: int, new_counter: int) -> None:
        super().__init__(
            f"message {counter} dropped after {received} of {total} bytes: message {new_counter} began"
        )
        self.counter = counter
        self.received = received
        self.total = total
        self.new_counter = new_counter


class MessageTooLongError(FragmentError):
    """A message declares or reaches more bytes than allowed."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"message of {length} bytes exceeds the {limit}-byte limit")
        self.length = length
        self.limit = limit


class RemoteProtocolError(ProtocolError):
    """The peer sent a well-formed message that breaks the protocol here (a reply that answers nothing,
    a reply type its request does not allow, a request sent to a programmer); it changed nothing."""


class LocalProtocolError(ItbError):
    """This side was asked to do what the protocol forbids (a second request in flight, a reply that
    answers no request, a frame larger than the peer accepts); nothing was sent, nothing changed."""


class CommandRefusedError(ItbError):
    """The pump refused a request: its ``Nack`` (code, rule IDs, reason). Nothing changed on the pump."""

    def __init__(self, nack: Any) -> None:
        rules = f" ({', '.join(nack.rules)})" if nack.rules else ""
        super().__init__(f"refused: {nack.code.name}{rules}: {nack.detail}")
        self.nack = nack
        self.code = nack.code
        self.rules: tuple[str, ...] = tuple(nack.rules)


class NotPairedError(CommandRefusedError):
    """A pump that requires pairing answered a Hello without a key with who it is and opened no session: pair
    first (specs/protocol.md §6). ``info`` is its DeviceInfo (the serial to pair with); ``nack`` refuses the
    Hello with ``NOT_AUTHENTICATED``, as every request on that link would be refused."""

    def __init__(self, info: Any, nack: Any) -> None:
        self.info = info
        super().__init__(nack)


class NotAppliedError(ItbError):
    """A command did not take effect (its reply was lost and the pump never took it, or the user declined);
    send it again if it is still wanted."""


class WrongDeviceError(ItbError):
    """The pump is not one this programmer can check commands for: another device profile than the one
    asked for, or one it does not know. Nothing was sent after its DeviceInfo."""


class PairingError(ItbError):
    """Pairing failed: a wrong PIN, an altered message, or a step out of order; no key was kept."""


class LinkClosedError(ItbError, ConnectionError):
    """The link to the peer went down (closed, reset or timed out) before the answer came."""


class SpecError(ItbError):
    """A file in specs/ (profile, drug table, rule catalog) is malformed."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class CaptureError(ItbError):
    """A BLE capture (:mod:`itbproto.core.capture`) that is not a btsnoop file, or is cut short."""


class TherapyStateError(ItbError):
    """A command cannot apply in the therapy's current state (no staged prescription, no refill, ...)."""


class UnknownIdError(TherapyStateError):
    """The command names a bolus, refill or alarm that the pump does not have."""


class StaleStageError(TherapyStateError):
    """The command's stage id or digest is not the one staged: the user confirmed something else."""


class SafetyViolation(ItbError):  # noqa: N818  (the name DESIGN.md gives it)
    """A command breaks one or more safety rules; ``rule_ids`` names them (once each, as a ``Nack`` does),
    ``reasons`` says why, one per violation. Nothing was applied."""

    def __init__(self, rule_ids: tuple[str, ...], reasons: tuple[str, ...]) -> None:
        super().__init__("; ".join(f"{r}: {why}" for r, why in zip(rule_ids, reasons, strict=True)))
        self.rule_ids = tuple(dict.fromkeys(rule_ids))
        self.reasons = reasons


class AcknowledgementRequired(SafetyViolation):
    """The command meets hazards the user must acknowledge (``rule_ids``): send it again, acknowledging."""


class PolicyError(SafetyViolation):
    """A safety policy tried to loosen a limit or name an unknown parameter (rule POLICY-001)."""


class QaReportError(ItbError):
    """A QA suite report (``--itb-report``) or shard (``--itb-shard I/N``) that cannot be used: not a report,
    shards of different counts, a shard given twice, a malformed ``I/N``."""


class SessionError(LocalProtocolError):
    """A session step that the state machine does not allow in its current state; nothing changed."""

    def __init__(self, machine: str, trigger: str, state: str, reason: str = "") -> None:
        why = f": {reason}" if reason else ""
        super().__init__(f"{machine}: cannot {trigger} in state {state}{why}")
        self.machine = machine
        self.trigger = trigger
        self.state = state
        self.reason = reason
