"""Records, messages and the catalog that maps a message type to its class.

``@record`` and ``@message(...)`` turn a class body of :func:`~itbproto.core.wire.fields.field`
declarations into a frozen, keyword-only dataclass. ``@message`` also compiles
its construct layout (once, at import) and registers it in :data:`CATALOG`.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import ClassVar, TypeVar, cast, dataclass_transform

from itbproto.core.wire.enums import MsgType, Role
from itbproto.core.wire.fields import FieldSpec, Json, RecordType, field
from itbproto.errors import MalformedPayloadError, UnknownMessageError

__all__ = ["CATALOG", "Effect", "Kind", "Message", "Record", "message", "message_class", "record"]

R = TypeVar("R", bound="Record")
M = TypeVar("M", bound="Message")


class Record:
    """Base of every wire record; immutable, compared by value.

    construct, reading the same field declarations, parses and builds the same
    payload bytes as the compiled codec (a test proves it: tests/construct_reference.py).
    """

    __slots__ = ()

    def __str__(self) -> str:
        return repr(self)


class Kind(enum.Enum):
    """Direction and role of a message."""

    REQUEST = "request"
    RESPONSE = "response"
    NOTIFICATION = "notification"


class Effect(enum.Enum):
    """What a request does to the pump; it decides how its transaction id is treated.

    - ``OPEN`` (Hello, pairing): allowed without a session; outside the transaction sequence.
    - ``READ``: changes nothing; outside the transaction sequence (a lost read is sent again
      with a new id).
    - ``COMMAND``: changes the pump; its id must be new, and it is applied at most once: the
      identical request with the same id gets the stored reply.
    """

    OPEN = "open"
    READ = "read"
    COMMAND = "command"


def _dataclass(cls: type[R]) -> type[R]:
    return dataclasses.dataclass(frozen=True, slots=True, kw_only=True)(cls)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
def record(cls: type[R]) -> type[R]:
    """Make ``cls`` a frozen wire record that other messages can nest."""
    return _dataclass(cls)


class Message(Record):
    """A top-level message: one frame carries exactly one."""

    __slots__ = ()

    TYPE: ClassVar[MsgType]
    KIND: ClassVar[Kind]
    #: responses a device may send to this request (Nack is always possible)
    REPLIES: ClassVar[tuple[type[Message], ...]] = ()
    #: what a request does to the pump (None for responses and notifications)
    EFFECT: ClassVar[Effect | None] = None
    #: True when applying this request changes what the pump delivers (a command whose lost reply
    #: leaves the programmer uncertain until the pump says whether it was applied)
    CHANGES_DELIVERY: ClassVar[bool] = False
    #: roles that may send this request (empty for responses and notifications)
    ROLES: ClassVar[frozenset[Role]] = frozenset()
    CODEC: ClassVar[PayloadCodec]

    def to_json(self) -> dict[str, Json]:
        """The fields as JSON-ready values (enums by name, bytes as hex)."""
        data = self.CODEC.layout.to_json(self)
        assert isinstance(data, dict)
        return data

    @classmethod
    def specs(cls) -> tuple[FieldSpec, ...]:
        return cls.CODEC.layout.specs


class PayloadCodec:
    """Encodes and decodes the payload of one message type (code generated from its declaration)."""

    def __init__(self, cls: type[Message]) -> None:
        self.layout: RecordType[Message] = RecordType(cls)
        self.name = cls.__name__
        #: payload size when fixed, None when the message has variable-length fields
        self.size = self.layout.size
        #: the largest payload this message can have
        self.max_size = self.layout.max_size
        self._decode = self.layout.decoder()
        self._encode = self.layout.encoder()

    def encode(self, msg: Message) -> bytes:
        """Check every field against its declared range, then build the payload bytes."""
        return self._encode(msg, "")

    def decode(self, payload: bytes, start: int = 0, end: int | None = None) -> Message:
        """Parse and validate ``payload[start:end]``; raise a :class:`ProtocolError` subclass on any fault.

        The bytes must be exactly one canonical payload: nothing missing, nothing left over.
        """
        end = len(payload) if end is None else end
        if self.size is not None and end - start != self.size:
            raise MalformedPayloadError(self.name, f"{end - start} bytes, expected {self.size}")
        try:
            # decoders read up to the end of their buffer: give them the payload and nothing after it
            msg, pos = self._decode(payload if end == len(payload) else payload[:end], start, "")
        except (struct.error, IndexError):  # ran past the end of the bytes
            pos = len(payload) + 1
        if pos > end:
            raise MalformedPayloadError(self.name, "the payload is shorter than its fields")
        if pos < end:
            raise MalformedPayloadError(self.name, f"{end - pos} bytes left over")
        return cast(Message, msg)

    def from_json(self, data: Json) -> Message:
        return self.layout.from_json(data, "")


_CATALOG: dict[int, type[Message]] = {}
#: every message class by its type byte; read-only
CATALOG: Mapping[int, type[Message]] = MappingProxyType(_CATALOG)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(field,))
def message(
    msg_type: MsgType,
    kind: Kind,
    *,
    replies: tuple[type[Message], ...] = (),
    effect: Effect = Effect.COMMAND,
    changes_delivery: bool = False,
    roles: frozenset[Role] = frozenset({Role.CLINICIAN}),
) -> Callable[[type[M]], type[M]]:
    """Declare a top-level message with its type byte and register it in :data:`CATALOG`."""
    if changes_delivery and effect is not Effect.COMMAND:
        raise ValueError("only a command changes delivery")

    def wrap(cls: type[M]) -> type[M]:
        if msg_type in _CATALOG:
            raise ValueError(f"{msg_type!r} declared twice")
        dc = _dataclass(cls)
        dc.TYPE = msg_type
        dc.KIND = kind
        dc.REPLIES = replies
        dc.EFFECT = effect if kind is Kind.REQUEST else None
        dc.CHANGES_DELIVERY = changes_delivery
        dc.ROLES = roles if kind is Kind.REQUEST else frozenset()
        dc.CODEC = PayloadCodec(dc)
        _CATALOG[msg_type] = dc
        return dc

    return wrap


def message_class(msg_type: int) -> type[Message]:
    """The class for a type byte; :class:`UnknownMessageError` if there is none."""
    try:
        return _CATALOG[msg_type]
    except KeyError:
        raise UnknownMessageError(msg_type) from None
