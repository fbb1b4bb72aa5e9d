"""Field types: the one definition behind encode, decode, strategies and the spec tables.

A message is a frozen dataclass whose fields are declared with :func:`field`,
for example ``rate: int = field(U32, unit="µL/day", hi=MAX_RATE)``. Each field
carries a :class:`FieldSpec` with its wire type, the unit, the allowed range and
a short description; each wire type carries its construct subcon (construct's
reading of the declaration is the reference codec the tests compare against:
tests/construct_reference.py). From that single declaration the library derives:

- the record codecs (:mod:`itbproto.core.wire.codegen`): straight-line ``struct``
  code generated at import, with the range checks run on encode and on decode;
- the hypothesis strategies in :mod:`itbproto.qa.strategies`;
- the field tables in specs/protocol.md and the JSON form of the golden vectors.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import construct as cs

from itbproto.errors import FieldRangeError, MalformedPayloadError

__all__ = [
    "BOOL",
    "I32",
    "U8",
    "U16",
    "U32",
    "U64",
    "ArrayType",
    "BlobType",
    "BoolType",
    "Decoder",
    "EnumType",
    "FieldSpec",
    "FlagSetType",
    "IntType",
    "Json",
    "RecordType",
    "ScalarType",
    "TextType",
    "WireType",
    "field",
    "field_specs",
    "join",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.IntEnum)
Json = None | bool | int | str | list["Json"] | dict[str, "Json"]
#: decodes one value from ``buf`` at ``pos``; returns it and the position after it
Decoder = Callable[[bytes, int, str], tuple[Any, int]]
#: checks one value and returns its bytes
Encoder = Callable[[Any, str], bytes]


def join(path: str, name: str) -> str:
    """The dotted path of a field, for error messages."""
    return f"{path}.{name}" if path else name


class WireType(Generic[T]):
    """How one value of Python type ``T`` is laid out on the wire."""

    subcon: cs.Construct[Any, Any]
    name: str
    #: the most bytes one value takes on the wire
    max_size: int
    #: the bytes every value takes, or None when the size varies
    size: int | None = None

    def check(self, value: object, path: str) -> None:
        """Raise :class:`FieldRangeError` unless ``value`` is a valid ``T`` for this wire type."""
        raise NotImplementedError

    def decoder(self) -> Decoder:
        """A function that reads one value (validated) from a buffer."""
        raise NotImplementedError

    def encoder(self) -> Encoder:
        """A function that checks one value and returns its bytes."""
        raise NotImplementedError

    def to_json(self, value: T) -> Json:
        return cast(Json, value)

    def from_json(self, data: Json, path: str) -> T:
        value = cast(T, data)
        self.check(value, path)
        return value


class ScalarType(WireType[T]):
    """A value stored as one fixed-size little-endian integer: records pack runs of them in one call."""

    fmt: str  # the struct format character

    def decode_lines(self, var: str, where: str, ref: Callable[[object], str]) -> list[str]:
        """Statements that turn the raw integer in ``var`` into the value, or raise."""
        return []

    def guard(self, var: str, ref: Callable[[object], str]) -> str:
        """An expression true when ``var`` is a valid value (the fast path of encode)."""
        return "False"

    def pack_expr(self, var: str, ref: Callable[[object], str]) -> str:
        """What ``struct.pack`` takes for the (valid) value in ``var``."""
        return var

    def decoder(self) -> Decoder:
        one = struct.Struct("<" + self.fmt)
        env: dict[str, Any] = {"unpack": one.unpack_from, "size": one.size}
        lines = [
            "def decode(buf, pos, path):",
            "    (v,) = unpack(buf, pos)",
            *(f"    {line}" for line in self.decode_lines("v", "path", referrer(env))),
            "    return v, pos + size",
        ]
        return cast(Decoder, compile_source(lines, env, f"<itbproto {self.name}>")["decode"])

    def encoder(self) -> Encoder:
        one = struct.Struct("<" + self.fmt)
        env: dict[str, Any] = {"pack": one.pack, "check": self.check}
        ref = referrer(env)
        lines = [
            "def encode(v, path):",
            f"    if not ({self.guard('v', ref)}): check(v, path)",
            f"    return pack({self.pack_expr('v', ref)})",
        ]
        return cast(Encoder, compile_source(lines, env, f"<itbproto {self.name}>")["encode"])


class IntType(ScalarType[int]):
    """Little-endian integer of a fixed width."""

    def __init__(self, name: str, subcon: cs.FormatField[int, int], bits: int, signed: bool) -> None:
        self.name = name
        self.fmt = subcon.fmtstr[-1]
        self.subcon = subcon
        self.bits = bits
        self.signed = signed
        self.max_size = self.size = bits // 8
        self.lo = -(1 << (bits - 1)) if signed else 0
        self.hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not self.lo <= value <= self.hi:
            raise FieldRangeError(path, value, f"{self.name}: {self.lo}..{self.hi}")

    def guard(self, var: str, ref: Callable[[object], str]) -> str:
        return f"{var}.__class__ is int and {self.lo} <= {var} <= {self.hi}"


class BoolType(ScalarType[bool]):
    """One byte, 0 or 1; any other byte is refused on decode."""

    name = "bool"
    fmt = "B"
    max_size = size = 1

    def __init__(self) -> None:
        self.subcon = cs.Int8ul

    def check(self, value: object, path: str) -> None:
        if type(value) is not bool:
            raise FieldRangeError(path, value, "bool")

    def decode_lines(self, var: str, where: str, ref: Callable[[object], str]) -> list[str]:
        error = ref(FieldRangeError)
        return [f"if {var} > 1: raise {error}({where}, {var}, 'bool: 0 or 1')", f"{var} = {var} == 1"]

    def guard(self, var: str, ref: Callable[[object], str]) -> str:
        return f"{var}.__class__ is bool"


class EnumType(ScalarType[E]):
    """An ``IntEnum`` in one unsigned integer; values outside the enum are refused."""

    def __init__(self, enum_cls: type[E], width: IntType | None = None) -> None:
        width = width or U8
        self.enum_cls = enum_cls
        self.width = width
        self.subcon = width.subcon
        self.fmt = width.fmt
        self.max_size = self.size = width.max_size
        self.name = f"{width.name} enum {enum_cls.__name__}"
        self._members = {m.value: m for m in enum_cls}

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, self.enum_cls):
            raise FieldRangeError(path, value, self._allowed())

    def decode_lines(self, var: str, where: str, ref: Callable[[object], str]) -> list[str]:
        return [
            f"{var}_ = {ref(self._members)}.get({var})",
            f"if {var}_ is None: {ref(self._refuse)}({var}, {where})",
            f"{var} = {var}_",
        ]

    def guard(self, var: str, ref: Callable[[object], str]) -> str:
        return f"{var}.__class__ is {ref(self.enum_cls)}"

    def _refuse(self, raw: int, path: str) -> E:
        raise FieldRangeError(path, raw, self._allowed())

    def to_json(self, value: E) -> Json:
        return value.name

    def from_json(self, data: Json, path: str) -> E:
        if not isinstance(data, str) or data not in self.enum_cls.__members__:
            raise FieldRangeError(path, data, self._allowed())
        return self.enum_cls[data]

    def _allowed(self) -> str:
        return ", ".join(f"{m.name}={m.value}" for m in self.enum_cls)


class FlagSetType(ScalarType[frozenset[E]]):
    """A set of ``IntEnum`` members as a bit mask: member ``m`` is bit ``1 << m.value``."""

    def __init__(self, enum_cls: type[E], width: IntType) -> None:
        self.enum_cls = enum_cls
        self.width = width
        self.subcon = width.subcon
        self.fmt = width.fmt
        self.max_size = self.size = width.max_size
        self.name = f"{width.name} bits of {enum_cls.__name__}"
        self.mask = sum(1 << m.value for m in enum_cls)
        if self.mask > width.hi:
            raise ValueError(f"{enum_cls.__name__} does not fit in {width.name}")
        members = tuple(enum_cls)
        self._sets = {  # every valid mask decodes by one dictionary look-up, and back
            sum(1 << m.value for m in chosen): frozenset(chosen)
            for chosen in (
                [m for i, m in enumerate(members) if combo >> i & 1] for combo in range(1 << len(members))
            )
        }
        self._masks = {members: mask for mask, members in self._sets.items()}

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, frozenset) or not all(isinstance(m, self.enum_cls) for m in value):
            raise FieldRangeError(path, value, f"frozenset of {self.enum_cls.__name__}")

    def decode_lines(self, var: str, where: str, ref: Callable[[object], str]) -> list[str]:
        return [
            f"{var}_ = {ref(self._sets)}.get({var})",
            f"if {var}_ is None: {ref(self.from_mask)}({var}, {where})",
            f"{var} = {var}_",
        ]

    def guard(self, var: str, ref: Callable[[object], str]) -> str:
        kind = ref(self.enum_cls)
        return f"{var}.__class__ is frozenset and all(m.__class__ is {kind} for m in {var})"

    def pack_expr(self, var: str, ref: Callable[[object], str]) -> str:
        return f"{ref(self._masks)}[{var}]"

    def from_mask(self, raw: int, path: str) -> frozenset[E]:
        """The set a mask stands for; unknown bits are refused."""
        found = self._sets.get(raw)
        if found is None:
            raise FieldRangeError(path, raw, f"bits of {self.enum_cls.__name__} (mask 0x{self.mask:x})")
        return found

    def to_mask(self, value: frozenset[E]) -> int:
        return self._masks[value]

    def to_json(self, value: frozenset[E]) -> Json:
        return [m.name for m in sorted(value)]

    def from_json(self, data: Json, path: str) -> frozenset[E]:
        if not isinstance(data, list) or not all(
            isinstance(x, str) and x in self.enum_cls.__members__ for x in data
        ):
            raise FieldRangeError(path, data, f"list of {self.enum_cls.__name__} names")
        return frozenset(self.enum_cls[cast(str, x)] for x in data)


class _Prefixed(WireType[T]):
    """A value after a one-byte length (text and blobs)."""

    min_len: int
    max_len: int

    def decoder(self) -> Decoder:
        def decode(buf: bytes, pos: int, path: str) -> tuple[T, int]:
            n = buf[pos]
            end = pos + 1 + n
            raw = buf[pos + 1 : end]
            if len(raw) != n:
                raise MalformedPayloadError(path, f"{n} bytes announced, {len(raw)} present")
            return self.convert(raw, path), end

        return decode

    def encoder(self) -> Encoder:
        def encode(value: T, path: str) -> bytes:
            self.check(value, path)
            raw = self.raw(value)
            return bytes((len(raw),)) + raw

        return encode

    def convert(self, raw: bytes, path: str) -> T:
        raise NotImplementedError

    def raw(self, value: T) -> bytes:
        raise NotImplementedError


class TextType(_Prefixed[str]):
    """Printable ASCII text, length-prefixed by one byte, ``min_len``..``max_len`` characters."""

    def __init__(self, max_len: int, min_len: int = 0) -> None:
        self.max_len = max_len
        self.min_len = min_len
        self.max_size = 1 + max_len
        self.subcon = cs.PascalString(cs.Int8ul, "ascii")
        self.name = f"text[{min_len}..{max_len}]"

    def check(self, value: object, path: str) -> None:
        if (
            type(value) is not str
            or not self.min_len <= len(value) <= self.max_len
            or not (value.isascii() and value.isprintable())
        ):
            raise FieldRangeError(path, value, f"printable ASCII, {self.min_len}..{self.max_len} characters")

    def convert(self, raw: bytes, path: str) -> str:
        if not raw.isascii():
            raise FieldRangeError(path, raw, f"printable ASCII, {self.min_len}..{self.max_len} characters")
        text = raw.decode("ascii")
        self.check(text, path)
        return text

    def raw(self, value: str) -> bytes:
        return value.encode("ascii")


class BlobType(_Prefixed[bytes]):
    """Opaque bytes, length-prefixed by one byte, ``min_len``..``max_len`` long."""

    def __init__(self, max_len: int, min_len: int = 0) -> None:
        self.max_len = max_len
        self.min_len = min_len
        self.max_size = 1 + max_len
        self.subcon = cs.Prefixed(cs.Int8ul, cs.GreedyBytes)
        self.name = f"bytes[{min_len}..{max_len}]"

    def check(self, value: object, path: str) -> None:
        if type(value) is not bytes or not self.min_len <= len(value) <= self.max_len:
            raise FieldRangeError(path, value, f"{self.min_len}..{self.max_len} bytes")

    def convert(self, raw: bytes, path: str) -> bytes:
        value = bytes(raw)
        self.check(value, path)
        return value

    def raw(self, value: bytes) -> bytes:
        return value

    def to_json(self, value: bytes) -> Json:
        return value.hex()

    def from_json(self, data: Json, path: str) -> bytes:
        if not isinstance(data, str):
            raise FieldRangeError(path, data, "hex string")
        try:
            value = bytes.fromhex(data)
        except ValueError:
            raise FieldRangeError(path, data, "hex string") from None
        self.check(value, path)
        return value


class ArrayType(WireType[tuple[T, ...]]):
    """A one-byte count followed by that many items; ``min_len``..``max_len`` items, and at most
    ``max_bytes`` bytes of items if given (a page of variable-size records: as many as fit)."""

    def __init__(
        self, item: WireType[T], max_len: int, min_len: int = 0, *, max_bytes: int | None = None
    ) -> None:
        self.item = item
        self.max_len = max_len
        self.min_len = min_len
        self.max_bytes = max_len * item.max_size if max_bytes is None else max_bytes
        self.max_size = 1 + min(max_len * item.max_size, self.max_bytes)
        self.subcon = cs.PrefixedArray(cs.Int8ul, item.subcon)
        budget = "" if max_bytes is None else f", at most {max_bytes} B"
        self.name = f"array[{min_len}..{max_len}{budget}] of {item.name}"

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, tuple) or not self.min_len <= len(value) <= self.max_len:
            raise FieldRangeError(path, value, f"tuple of {self.min_len}..{self.max_len} items")
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")
        if self.max_bytes < len(value) * self.item.max_size:  # the byte budget may bind
            self.encoder()(value, path)

    def decoder(self) -> Decoder:
        item = self.item.decoder()
        lo, hi, budget = self.min_len, self.max_len, self.max_bytes

        def decode(buf: bytes, pos: int, path: str) -> tuple[tuple[T, ...], int]:
            n = buf[pos]
            if not lo <= n <= hi:
                raise FieldRangeError(path, n, f"{lo}..{hi} items")
            start = pos = pos + 1
            items = []
            for i in range(n):
                value, pos = item(buf, pos, f"{path}[{i}]")
                items.append(value)
            if pos - start > budget:
                raise FieldRangeError(path, pos - start, f"items of at most {budget} B")
            return tuple(items), pos

        return decode

    def encoder(self) -> Encoder:
        item = self.item.encoder()
        lo, hi, budget = self.min_len, self.max_len, self.max_bytes

        def encode(value: tuple[T, ...], path: str) -> bytes:
            if value.__class__ is not tuple or not lo <= len(value) <= hi:
                raise FieldRangeError(path, value, f"tuple of {lo}..{hi} items")
            items = b"".join(item(x, f"{path}[{i}]") for i, x in enumerate(value))
            if len(items) > budget:
                raise FieldRangeError(path, len(items), f"items of at most {budget} B")
            return bytes((len(value),)) + items

        return encode

    def to_json(self, value: tuple[T, ...]) -> Json:
        return [self.item.to_json(x) for x in value]

    def from_json(self, data: Json, path: str) -> tuple[T, ...]:
        if not isinstance(data, list):
            raise FieldRangeError(path, data, "list")
        value = tuple(self.item.from_json(x, f"{path}[{i}]") for i, x in enumerate(data))
        self.check(value, path)
        return value


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """What the protocol says about one field: wire type, unit, range, meaning."""

    name: str
    wire: WireType[Any]
    unit: str = ""
    lo: int | None = None
    hi: int | None = None
    doc: str = ""

    @property
    def narrowed(self) -> bool:
        """True when the declared range is tighter than the wire type's."""
        return self.lo is not None or self.hi is not None

    @property
    def bounds(self) -> tuple[int, int]:
        """The allowed range of an integer field."""
        assert isinstance(self.wire, IntType)
        return (
            self.wire.lo if self.lo is None else self.lo,
            self.wire.hi if self.hi is None else self.hi,
        )

    def range_text(self) -> str:
        if isinstance(self.wire, IntType):
            lo, hi = self.bounds
            return f"{lo}..{hi}"
        if isinstance(self.wire, EnumType):
            return ", ".join(f"{m.value} {m.name}" for m in self.wire.enum_cls)
        if isinstance(self.wire, TextType | BlobType | ArrayType):
            return f"length {self.wire.min_len}..{self.wire.max_len}"
        if isinstance(self.wire, BoolType):
            return "0, 1"
        if isinstance(self.wire, FlagSetType):
            return "any of " + ", ".join(f"bit {m.value} {m.name}" for m in self.wire.enum_cls)
        return ""

    def check(self, value: object, path: str) -> None:
        self.wire.check(value, path)
        self.check_range(value, path)

    def check_range(self, value: Any, path: str) -> None:
        if (self.lo is not None and value < self.lo) or (self.hi is not None and value > self.hi):
            raise FieldRangeError(path, value, self.range_text())


def field(
    wire: WireType[T],
    *,
    unit: str = "",
    lo: int | None = None,
    hi: int | None = None,
    doc: str = "",
    default: T | None = None,
) -> T:
    """Declare a message field. ``lo``/``hi`` narrow an integer field's range (inclusive); a
    ``default`` (immutable) lets a constructor leave the field out (it is always on the wire)."""
    if (lo is not None or hi is not None) and not isinstance(wire, IntType):
        raise TypeError("lo/hi narrow integer fields only; lengths belong to the wire type")
    spec = FieldSpec(name="", wire=wire, unit=unit, lo=lo, hi=hi, doc=doc)
    metadata = {"spec": spec}
    if default is None:
        return cast(T, dataclasses.field(metadata=metadata))
    return dataclasses.field(default=default, metadata=metadata)


def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """The :class:`FieldSpec` of every field of a record class, in wire order, named."""
    return tuple(
        dataclasses.replace(f.metadata["spec"], name=f.name) for f in dataclasses.fields(cls) if f.init
    )


class RecordType(WireType[T]):
    """A record (a dataclass declared with :func:`field`) laid out field after field.

    Messages are records too; nested records are laid out inline. Its codec is
    generated at import by :mod:`itbproto.core.wire.codegen`.
    """

    def __init__(self, cls: type[T]) -> None:
        from itbproto.core.wire.codegen import record_codec

        self.cls = cls
        self.specs = field_specs(cls)
        self.name = cls.__name__
        self.max_size = sum(spec.wire.max_size for spec in self.specs)
        self.subcon = cs.Struct(*(spec.name / spec.wire.subcon for spec in self.specs))
        fixed = all(spec.wire.size is not None for spec in self.specs)
        self.size = self.max_size if fixed else None
        self._decode, self._encode = record_codec(self)

    def struct_format(self) -> str:
        """A ``struct`` format for a record of plain integers (the frame header)."""
        if not all(isinstance(spec.wire, IntType) for spec in self.specs):
            raise TypeError(f"{self.name} is not a record of plain integers")
        return "<" + "".join(cast(IntType, spec.wire).fmt for spec in self.specs)

    def check(self, value: object, path: str) -> None:
        if type(value) is not self.cls:
            raise FieldRangeError(path or self.name, value, self.name)
        for spec in self.specs:
            spec.check(getattr(value, spec.name), join(path, spec.name))

    def decoder(self) -> Decoder:
        return self._decode

    def encoder(self) -> Encoder:
        return self._encode

    def to_json(self, value: T) -> Json:
        return {spec.name: spec.wire.to_json(getattr(value, spec.name)) for spec in self.specs}

    def from_json(self, data: Json, path: str) -> T:
        names = [spec.name for spec in self.specs]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            raise FieldRangeError(path or self.name, data, f"object with fields {names}")
        kwargs: dict[str, Any] = {}
        for spec in self.specs:
            where = join(path, spec.name)
            kwargs[spec.name] = spec.wire.from_json(data[spec.name], where)
            spec.check_range(kwargs[spec.name], where)
        return self.cls(**kwargs)


def referrer(env: dict[str, Any]) -> Callable[[object], str]:
    """A function that puts an object into generated code's namespace and returns its name."""
    names: dict[int, str] = {}

    def ref(obj: object) -> str:
        key = id(obj)
        if key not in names:
            names[key] = f"_o{len(names)}"
            env[names[key]] = obj
        return names[key]

    return ref


def compile_source(lines: list[str], env: dict[str, Any], filename: str) -> dict[str, Any]:
    exec(compile("\n".join([*lines, ""]), filename, "exec"), env)
    return env


U8 = IntType("u8", cs.Int8ul, 8, signed=False)
U16 = IntType("u16", cs.Int16ul, 16, signed=False)
U32 = IntType("u32", cs.Int32ul, 32, signed=False)
I32 = IntType("i32", cs.Int32sl, 32, signed=True)
U64 = IntType("u64", cs.Int64ul, 64, signed=False)
BOOL = BoolType()
