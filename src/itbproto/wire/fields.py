"""Field types: the one definition behind encode, decode, strategies and the spec tables.

A message is a frozen dataclass whose fields are declared with :func:`field`,
for example ``rate: int = field(U32, unit="µL/day", hi=MAX_RATE)``. Each field
carries its construct subcon (so construct-typing's ``DataclassStruct`` works
on every message) and a :class:`FieldSpec` with the unit, the allowed range and
a short description. From that single declaration the library derives:

- the compiled construct ``Struct`` that encodes and decodes the payload;
- the range checks run on encode and again on decode;
- the hypothesis strategies in :mod:`itbproto.qa.strategies`;
- the field tables in specs/protocol.md and the JSON form of the golden vectors.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

import construct as cs
from construct_typed import Adapter, DataclassStruct

from itbproto.errors import FieldRangeError

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
    "EnumType",
    "FieldSpec",
    "FlagSetType",
    "IntType",
    "Json",
    "RecordType",
    "TextType",
    "WireType",
    "field",
    "field_specs",
]

T = TypeVar("T")
E = TypeVar("E", bound=enum.IntEnum)
Json = None | bool | int | str | list["Json"] | dict[str, "Json"]


class WireType(Generic[T]):
    """How one value of Python type ``T`` is laid out on the wire."""

    subcon: cs.Construct[Any, Any]
    name: str

    def check(self, value: object, path: str) -> None:
        """Raise :class:`FieldRangeError` unless ``value`` is a valid ``T`` for this wire type."""
        raise NotImplementedError

    def from_parsed(self, raw: Any, path: str) -> T:
        """Turn what the compiled parser returned into the field value; validate it."""
        return cast(T, raw)

    def to_build(self, value: T) -> Any:
        """Turn a field value into what the compiled builder takes."""
        return value

    def to_json(self, value: T) -> Json:
        return cast(Json, value)

    def from_json(self, data: Json, path: str) -> T:
        value = cast(T, data)
        self.check(value, path)
        return value

    @property
    def identity(self) -> bool:
        """True when decode needs no conversion or check beyond the subcon itself."""
        return False

    @property
    def dataclass_subcon(self) -> cs.Construct[Any, Any]:
        """The subcon construct-typing's ``DataclassStruct`` sees (records nest as dataclasses)."""
        return self.subcon


class IntType(WireType[int]):
    """Little-endian integer of a fixed width."""

    def __init__(self, name: str, subcon: cs.FormatField[int, int], bits: int, signed: bool) -> None:
        self.name = name
        self.fmt = subcon.fmtstr[-1]
        self.subcon = subcon
        self.bits = bits
        self.signed = signed
        self.lo = -(1 << (bits - 1)) if signed else 0
        self.hi = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not self.lo <= value <= self.hi:
            raise FieldRangeError(path, value, f"{self.name}: {self.lo}..{self.hi}")

    @property
    def identity(self) -> bool:
        return True


class BoolType(WireType[bool]):
    """One byte, 0 or 1; any other byte is refused on decode."""

    name = "bool"

    def __init__(self) -> None:
        self.subcon = cs.Int8ul

    def check(self, value: object, path: str) -> None:
        if type(value) is not bool:
            raise FieldRangeError(path, value, "bool")

    def from_parsed(self, raw: Any, path: str) -> bool:
        if raw not in (0, 1):
            raise FieldRangeError(path, raw, "bool: 0 or 1")
        return bool(raw)

    def to_build(self, value: bool) -> Any:
        return int(value)


class EnumType(WireType[E]):
    """An ``IntEnum`` in one unsigned integer; values outside the enum are refused."""

    def __init__(self, enum_cls: type[E], width: IntType | None = None) -> None:
        width = width or U8
        self.enum_cls = enum_cls
        self.width = width
        self.subcon = width.subcon
        self.name = f"{width.name} enum {enum_cls.__name__}"

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, self.enum_cls):
            raise FieldRangeError(path, value, self._allowed())

    def from_parsed(self, raw: Any, path: str) -> E:
        try:
            return self.enum_cls(raw)
        except ValueError:
            raise FieldRangeError(path, raw, self._allowed()) from None

    def to_json(self, value: E) -> Json:
        return value.name

    def from_json(self, data: Json, path: str) -> E:
        if not isinstance(data, str) or data not in self.enum_cls.__members__:
            raise FieldRangeError(path, data, self._allowed())
        return self.enum_cls[data]

    def _allowed(self) -> str:
        return ", ".join(f"{m.name}={m.value}" for m in self.enum_cls)


class FlagSetType(WireType[frozenset[E]]):
    """A set of ``IntEnum`` members as a bit mask: member ``m`` is bit ``1 << m.value``."""

    def __init__(self, enum_cls: type[E], width: IntType) -> None:
        self.enum_cls = enum_cls
        self.width = width
        self.subcon = width.subcon
        self.name = f"{width.name} bits of {enum_cls.__name__}"
        self.mask = sum(1 << m.value for m in enum_cls)
        if self.mask > width.hi:
            raise ValueError(f"{enum_cls.__name__} does not fit in {width.name}")
        members = tuple(enum_cls)
        self._sets = {  # every valid mask decodes by one dictionary look-up
            sum(1 << m.value for m in chosen): frozenset(chosen)
            for chosen in (
                [m for i, m in enumerate(members) if combo >> i & 1] for combo in range(1 << len(members))
            )
        }

    @property
    def dataclass_subcon(self) -> cs.Construct[Any, Any]:
        return _FlagSetAdapter(self)

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, frozenset) or not all(isinstance(m, self.enum_cls) for m in value):
            raise FieldRangeError(path, value, f"frozenset of {self.enum_cls.__name__}")

    def from_parsed(self, raw: Any, path: str) -> frozenset[E]:
        try:
            return self._sets[raw]
        except KeyError:
            raise FieldRangeError(
                path, raw, f"bits of {self.enum_cls.__name__} (mask 0x{self.mask:x})"
            ) from None

    def to_build(self, value: frozenset[E]) -> Any:
        return sum(1 << m.value for m in value)

    def to_json(self, value: frozenset[E]) -> Json:
        return [m.name for m in sorted(value)]

    def from_json(self, data: Json, path: str) -> frozenset[E]:
        if not isinstance(data, list) or not all(
            isinstance(x, str) and x in self.enum_cls.__members__ for x in data
        ):
            raise FieldRangeError(path, data, f"list of {self.enum_cls.__name__} names")
        return frozenset(self.enum_cls[cast(str, x)] for x in data)


class _FlagSetAdapter(Adapter[Any, Any, Any, Any]):
    """Lets construct-typing's ``DataclassStruct`` build and parse a flag set."""

    def __init__(self, wire: FlagSetType[Any]) -> None:
        super().__init__(wire.subcon)
        self.wire = wire

    def _decode(self, obj: Any, context: Any, path: Any) -> Any:
        return self.wire.from_parsed(obj, str(path))

    def _encode(self, obj: Any, context: Any, path: Any) -> Any:
        return self.wire.to_build(obj)


class TextType(WireType[str]):
    """Printable ASCII text, length-prefixed by one byte, at most ``max_len`` characters."""

    def __init__(self, max_len: int, min_len: int = 0) -> None:
        self.max_len = max_len
        self.min_len = min_len
        self.subcon = cs.PascalString(cs.Int8ul, "ascii")
        self.name = f"text[{min_len}..{max_len}]"

    def check(self, value: object, path: str) -> None:
        if (
            type(value) is not str
            or not self.min_len <= len(value) <= self.max_len
            or not (value.isascii() and value.isprintable())
        ):
            raise FieldRangeError(path, value, f"printable ASCII, {self.min_len}..{self.max_len} characters")

    def from_parsed(self, raw: Any, path: str) -> str:
        self.check(raw, path)
        return cast(str, raw)


class BlobType(WireType[bytes]):
    """Opaque bytes, length-prefixed by one byte, ``min_len``..``max_len`` long."""

    def __init__(self, max_len: int, min_len: int = 0) -> None:
        self.max_len = max_len
        self.min_len = min_len
        self.subcon = cs.Prefixed(cs.Int8ul, cs.GreedyBytes)
        self.name = f"bytes[{min_len}..{max_len}]"

    def check(self, value: object, path: str) -> None:
        if type(value) is not bytes or not self.min_len <= len(value) <= self.max_len:
            raise FieldRangeError(path, value, f"{self.min_len}..{self.max_len} bytes")

    def from_parsed(self, raw: Any, path: str) -> bytes:
        self.check(raw, path)
        return cast(bytes, raw)

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
    """A one-byte count followed by that many items; ``min_len``..``max_len`` items."""

    def __init__(self, item: WireType[T], max_len: int, min_len: int = 0) -> None:
        self.item = item
        self.max_len = max_len
        self.min_len = min_len
        self.subcon = cs.PrefixedArray(cs.Int8ul, item.subcon)
        self.name = f"array[{min_len}..{max_len}] of {item.name}"

    def check(self, value: object, path: str) -> None:
        if not isinstance(value, tuple) or not self.min_len <= len(value) <= self.max_len:
            raise FieldRangeError(path, value, f"tuple of {self.min_len}..{self.max_len} items")
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")

    def from_parsed(self, raw: Any, path: str) -> tuple[T, ...]:
        if not self.min_len <= len(raw) <= self.max_len:
            raise FieldRangeError(path, len(raw), f"{self.min_len}..{self.max_len} items")
        return tuple(self.item.from_parsed(x, f"{path}[{i}]") for i, x in enumerate(raw))

    @property
    def dataclass_subcon(self) -> cs.Construct[Any, Any]:
        return cs.PrefixedArray(cs.Int8ul, self.item.dataclass_subcon)

    def to_build(self, value: tuple[T, ...]) -> Any:
        return [self.item.to_build(x) for x in value]

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

    def range_text(self) -> str:
        if isinstance(self.wire, IntType):
            lo = self.wire.lo if self.lo is None else self.lo
            hi = self.wire.hi if self.hi is None else self.hi
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
) -> T:
    """Declare a message field. ``lo``/``hi`` narrow an integer field's range (inclusive)."""
    if (lo is not None or hi is not None) and not isinstance(wire, IntType):
        raise TypeError("lo/hi narrow integer fields only; lengths belong to the wire type")
    spec = FieldSpec(name="", wire=wire, unit=unit, lo=lo, hi=hi, doc=doc)
    return cast(T, dataclasses.field(metadata={"subcon": wire.dataclass_subcon, "spec": spec}))


def field_specs(cls: type) -> tuple[FieldSpec, ...]:
    """The :class:`FieldSpec` of every field of a record class, in wire order, named."""
    return tuple(
        dataclasses.replace(f.metadata["spec"], name=f.name) for f in dataclasses.fields(cls) if f.init
    )


class RecordType(WireType[T]):
    """A record (a dataclass declared with :func:`field`) laid out field after field.

    Messages are records too; nested records are laid out inline. Decode,
    check and build are specialised per record into straight-line Python at
    import (as ``dataclasses`` and construct's compiler do): the Status frame
    is the protocol's hot path.
    """

    def __init__(self, cls: type[T]) -> None:
        self.cls = cls
        self.specs = field_specs(cls)
        self.name = cls.__name__
        self.subcon = cs.Struct(*(spec.name / spec.wire.subcon for spec in self.specs))
        self._from_parsed, self._check, self._to_build = _specialise(self)

    @property
    def dataclass_subcon(self) -> cs.Construct[Any, Any]:
        return DataclassStruct(cast(Any, self.cls))

    def struct_format(self) -> str:
        """A ``struct`` format for a record of plain integers (the frame header's fast path)."""
        if not all(isinstance(spec.wire, IntType) for spec in self.specs):
            raise TypeError(f"{self.name} is not a record of plain integers")
        return "<" + "".join(cast(IntType, spec.wire).fmt for spec in self.specs)

    def check(self, value: object, path: str) -> None:
        self._check(value, path)

    def from_parsed(self, raw: Any, path: str) -> T:
        return cast(T, self._from_parsed(raw, path))

    def to_build(self, value: T) -> Any:
        return self._to_build(value)

    def to_json(self, value: T) -> Json:
        return {spec.name: spec.wire.to_json(getattr(value, spec.name)) for spec in self.specs}

    def from_json(self, data: Json, path: str) -> T:
        names = [spec.name for spec in self.specs]
        if not isinstance(data, dict) or sorted(data) != sorted(names):
            raise FieldRangeError(path or self.name, data, f"object with fields {names}")
        kwargs: dict[str, Any] = {}
        for spec in self.specs:
            where = _join(path, spec.name)
            kwargs[spec.name] = spec.wire.from_json(data[spec.name], where)
            spec.check_range(kwargs[spec.name], where)
        return self.cls(**kwargs)


_Fn = Callable[..., Any]


def _specialise(record: RecordType[Any]) -> tuple[_Fn, _Fn, _Fn]:
    """Generate the record's decode, check and build functions as straight-line code."""
    env: dict[str, Any] = {"cls": record.cls, "join": _join, "FieldRangeError": FieldRangeError}
    parse = ["def from_parsed(raw, path):"]
    check = [
        "def check(value, path):",
        "    if type(value) is not cls:",
        f"        raise FieldRangeError(path or {record.name!r}, value, {record.name!r})",
    ]
    build = []
    for i, spec in enumerate(record.specs):
        env[f"spec{i}"] = spec
        env[f"conv{i}"] = spec.wire.from_parsed
        env[f"build{i}"] = spec.wire.to_build
        name = spec.name
        where = f"join(path, {name!r})"
        got = f"raw[{name!r}]" if spec.wire.identity else f"conv{i}(raw[{name!r}], {where})"
        parse.append(f"    f{i} = {got}")
        wire = spec.wire
        if isinstance(wire, IntType):
            lo = wire.lo if spec.lo is None else spec.lo
            hi = wire.hi if spec.hi is None else spec.hi
            if spec.narrowed:
                parse.append(f"    if not {lo} <= f{i} <= {hi}: spec{i}.check_range(f{i}, {where})")
            guard = f"v.__class__ is int and {lo} <= v <= {hi}"
        elif isinstance(wire, EnumType | BoolType):
            env[f"type{i}"] = wire.enum_cls if isinstance(wire, EnumType) else bool
            guard = f"v.__class__ is type{i}"
        else:
            guard = "False"
        check += [f"    v = value.{name}", f"    if not ({guard}): spec{i}.check(v, {where})"]
        plain = isinstance(wire, IntType | EnumType | BoolType | TextType | BlobType)
        build.append(f"{name!r}: value.{name}" if plain else f"{name!r}: build{i}(value.{name})")
    slots = [record.cls.__dict__.get(spec.name) for spec in record.specs]
    if all(type(slot).__name__ == "member_descriptor" for slot in slots):
        # A frozen dataclass's __init__ pays object.__setattr__ per field; the values
        # are already validated, so fill the slots directly (as attrs does).
        env["new"] = object.__new__
        parse.append("    obj = new(cls)")
        for i, slot in enumerate(slots):
            env[f"set{i}"] = cast(Any, slot).__set__
            parse.append(f"    set{i}(obj, f{i})")
        parse.append("    return obj")
    else:
        kwargs = ", ".join(f"{spec.name}=f{i}" for i, spec in enumerate(record.specs))
        parse.append(f"    return cls({kwargs})")
    source = "\n".join([*parse, *check, "def to_build(value):", f"    return {{{', '.join(build)}}}", ""])
    exec(compile(source, f"<itbproto record {record.name}>", "exec"), env)
    return env["from_parsed"], env["check"], env["to_build"]


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


U8 = IntType("u8", cs.Int8ul, 8, signed=False)
U16 = IntType("u16", cs.Int16ul, 16, signed=False)
U32 = IntType("u32", cs.Int32ul, 32, signed=False)
I32 = IntType("i32", cs.Int32sl, 32, signed=True)
U64 = IntType("u64", cs.Int64ul, 64, signed=False)
BOOL = BoolType()
