"""Records, messages and the catalog that maps a message type to its class.

``@record`` and ``@message(...)`` turn a class body of :func:`~itbproto.wire.fields.field`
declarations into a frozen, keyword-only dataclass. ``@message`` also compiles
its construct layout (once, at import) and registers it in :data:`CATALOG`.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from io import BytesIO
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, dataclass_transform

import construct as cs
from construct_typed import DataclassMixin

from itbproto.errors import MalformedPayloadError, UnknownMessageError
from itbproto.wire.enums import MsgType, Role
from itbproto.wire.fields import FieldSpec, Json, RecordType, field

__all__ = ["CATALOG", "Kind", "Message", "Record", "message", "message_class", "record"]

R = TypeVar("R", bound="Record")
M = TypeVar("M", bound="Message")


if TYPE_CHECKING:  # mypy would take DataclassMixin's dataclass_transform for a non-frozen base
    _RecordBase = object
else:  # at run time, records work with construct-typing's DataclassStruct
    _RecordBase = DataclassMixin


class Record(_RecordBase):
    """Base of every wire record; immutable, compared by value.

    ``construct_typed.DataclassStruct(StatusReport)`` parses and builds the same
    payload bytes as the compiled codec (a test proves it).
    """

    __slots__ = ()

    def __str__(self) -> str:
        return repr(self)


class Kind(enum.Enum):
    """Direction and role of a message."""

    REQUEST = "request"
    RESPONSE = "response"
    NOTIFICATION = "notification"


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
    #: True when applying this request changes what the pump delivers (at-most-once)
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
    """Encodes and decodes the payload of one message type with compiled construct."""

    def __init__(self, cls: type[Message]) -> None:
        self.layout: RecordType[Message] = RecordType(cls)
        self.name = cls.__name__
        try:
            self.size: int | None = self.layout.subcon.sizeof()
        except cs.SizeofError:
            self.size = None
        # Terminated refuses trailing bytes; a fixed size is checked before parsing instead.
        fields = (s.name / s.wire.subcon for s in self.layout.specs)
        struct = cs.Struct(*fields) if self.size is not None else cs.Struct(*fields, cs.Terminated)
        compiled: Any = struct.compile()
        # Call the generated functions directly: Construct.parse/build only wrap them
        # in a stream and a context, which costs a third of the time for small frames.
        self._parsefunc: Callable[[BytesIO, cs.Container[Any]], Any] = compiled.parsefunc
        self._buildfunc: Callable[[Any, BytesIO, cs.Container[Any]], Any] = compiled.buildfunc

    def _parse(self, payload: bytes) -> Any:
        return self._parsefunc(BytesIO(payload), cs.Container(_params={}))

    def _build(self, obj: Any) -> bytes:
        stream = BytesIO()
        self._buildfunc(obj, stream, cs.Container(_params={}))
        return stream.getvalue()

    def encode(self, msg: Message) -> bytes:
        """Check every field against its declared range, then build the payload bytes."""
        self.layout.check(msg, self.name)
        return self._build(self.layout.to_build(msg))

    def decode(self, payload: bytes) -> Message:
        """Parse and validate a payload; raise a :class:`ProtocolError` subclass on any fault."""
        if self.size is not None and len(payload) != self.size:
            raise MalformedPayloadError(self.name, f"{len(payload)} bytes, expected {self.size}")
        try:
            raw = self._parse(payload)
        except Exception as exc:  # untrusted bytes: any parse failure is a malformed payload
            raise MalformedPayloadError(self.name, str(exc) or type(exc).__name__) from exc
        msg = self.layout.from_parsed(raw, "")
        # Compiled construct reads a length-prefixed field short without complaint, so a
        # variable-size payload must re-encode to the very same bytes (one canonical form).
        if self.size is None and self._build(self.layout.to_build(msg)) != payload:
            raise MalformedPayloadError(self.name, "length prefix disagrees with the bytes present")
        return msg

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
    changes_delivery: bool = False,
    roles: frozenset[Role] = frozenset({Role.CLINICIAN}),
) -> Callable[[type[M]], type[M]]:
    """Declare a top-level message with its type byte and register it in :data:`CATALOG`."""

    def wrap(cls: type[M]) -> type[M]:
        if msg_type in _CATALOG:
            raise ValueError(f"{msg_type!r} declared twice")
        dc = _dataclass(cls)
        dc.TYPE = msg_type
        dc.KIND = kind
        dc.REPLIES = replies
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
