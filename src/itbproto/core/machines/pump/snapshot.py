"""The device state as JSON and back, exactly: what the emulator writes to its store.

The conversion follows the type hints of the state's dataclasses, so a field
added to the state is saved without touching this module: integers stay
integers (no float anywhere), enums go by name, tuples as lists, wire records
by their own JSON form (the golden vectors' form), and a message by its type
byte and fields. ``load(dump(state)) == state`` is a tested property.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, cast

from itbproto.core.machines.pump.state import DeviceState
from itbproto.core.wire.fields import Json, RecordType
from itbproto.core.wire.message import Message, Record, message_class
from itbproto.errors import SpecError

__all__ = ["FORMAT", "Dumper", "dump", "load"]

#: the snapshot format; a change that old snapshots cannot be read with changes it
FORMAT = 5  # 2: patient record, fluid path, peaks; 3: battery charge; 4: paired keys; 5: held_until


def dump(state: DeviceState) -> dict[str, Json]:
    """The state as JSON-ready data."""
    return {"format": FORMAT, "state": _dump(state, DeviceState)}


class Dumper:
    """:func:`dump` for a state saved again and again: the parts that are the very objects of the last dump
    (the state is immutable: a change makes new objects) are not converted again."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[object, Json]] = {}

    def __call__(self, state: DeviceState) -> dict[str, Json]:
        used: dict[int, tuple[object, Json]] = {}
        data = {"format": FORMAT, "state": _dump(state, DeviceState, (self._last, used))}
        self._last = used
        return data


def load(data: Json) -> DeviceState:
    """The state a :func:`dump` wrote; :class:`~itbproto.errors.SpecError` if it is not one."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpecError("device state snapshot", f"not a format-{FORMAT} snapshot")
    try:
        return cast(DeviceState, _load(data["state"], DeviceState))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SpecError("device state snapshot", f"{type(exc).__name__}: {exc}") from None


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_RECORDS: dict[type[Record], RecordType[Record]] = {}


def _record(cls: type[Record]) -> RecordType[Record]:
    if cls not in _RECORDS:
        _RECORDS[cls] = RecordType(cls)
    return _RECORDS[cls]


def _fields(cls: type) -> list[tuple[str, Any]]:
    hints = _hints(cls)
    return [(f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


#: (the last dump's parts, this dump's parts), by id: the object and what it became
_Memo = tuple[dict[int, tuple[object, Json]], dict[int, tuple[object, Json]]]


def _dump(value: Any, hint: Any, memo: _Memo | None = None) -> Json:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return None if value is None else _dump(value, inner, memo)
    if origin is tuple:
        items = args[:1] * len(value) if args[-1] is Ellipsis else args
        return [_dump(v, h, memo) for v, h in zip(value, items, strict=True)]
    if memo is not None and (hint is Message or dataclasses.is_dataclass(hint)):
        last, used = memo
        hit = last.get(id(value))
        if hit is None or hit[0] is not value:
            hit = (value, _convert(value, hint, memo))
        used[id(value)] = hit
        return hit[1]
    return _convert(value, hint, memo)


def _convert(value: Any, hint: Any, memo: _Memo | None) -> Json:
    if hint is Message:
        return {"type": int(value.TYPE), "fields": value.to_json()}
    if isinstance(hint, type) and issubclass(hint, Record):
        return _record(hint).to_json(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return cast(str, value.name)
    if dataclasses.is_dataclass(hint):
        return {name: _dump(getattr(value, name), h, memo) for name, h in _fields(cast(type, hint))}
    if hint in (int, str, bool):
        return cast(Json, value)
    if hint is bytes:
        return cast(bytes, value).hex()
    raise TypeError(f"no snapshot form for {hint!r}")


def _load(data: Json, hint: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        (inner,) = [a for a in args if a is not type(None)]
        return None if data is None else _load(data, inner)
    if origin is tuple:
        if not isinstance(data, list):
            raise TypeError(f"{data!r} is not a list")
        items = args[:1] * len(data) if args[-1] is Ellipsis else args
        return tuple(_load(v, h) for v, h in zip(data, items, strict=True))
    if hint is Message:
        if not isinstance(data, dict) or type(data.get("type")) is not int:
            raise TypeError(f"{data!r} is not a message")
        assert isinstance(data["type"], int)
        return message_class(data["type"]).CODEC.from_json(data["fields"])
    if isinstance(hint, type) and issubclass(hint, Record):
        return _record(hint).from_json(data, hint.__name__)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint[cast(str, data)]
    if dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise TypeError(f"{data!r} is not a {hint!r}")
        return cast(type, hint)(**{name: _load(data[name], h) for name, h in _fields(cast(type, hint))})
    if hint in (int, str, bool) and type(data) is hint:
        return data
    if hint is bytes and isinstance(data, str):
        return bytes.fromhex(data)
    raise TypeError(f"{data!r} is not a {hint!r}")
