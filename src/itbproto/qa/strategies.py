"""Hypothesis strategies derived from the message definitions (no hand-written generators).

``messages()`` draws any valid message of the catalog; ``message_of(cls)`` draws
one type; ``out_of_range(cls)`` draws a message with exactly one field pushed
outside its declared range (built without validation, to test that encode
refuses it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar, cast

from hypothesis import strategies as st

from itbproto.core.wire.fields import (
    ArrayType,
    BlobType,
    BoolType,
    EnumType,
    FieldSpec,
    FlagSetType,
    IntType,
    RecordType,
    TextType,
    WireType,
)
from itbproto.core.wire.message import CATALOG, Message

__all__ = ["for_spec", "for_wire", "message_of", "messages", "out_of_range"]

M = TypeVar("M", bound=Message)
_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)


def for_wire(wire: WireType[Any], lo: int | None = None, hi: int | None = None) -> st.SearchStrategy[Any]:
    """Valid values of one wire type, within ``lo``..``hi`` for integers."""
    if isinstance(wire, IntType):
        return st.integers(wire.lo if lo is None else lo, wire.hi if hi is None else hi)
    if isinstance(wire, BoolType):
        return st.booleans()
    if isinstance(wire, EnumType):
        return st.sampled_from(tuple(wire.enum_cls.__members__.values()))
    if isinstance(wire, FlagSetType):
        return st.frozensets(st.sampled_from(tuple(wire.enum_cls.__members__.values())))
    if isinstance(wire, TextType):
        return st.text(_PRINTABLE, min_size=wire.min_len, max_size=wire.max_len)
    if isinstance(wire, BlobType):
        return st.binary(min_size=wire.min_len, max_size=wire.max_len)
    if isinstance(wire, ArrayType):
        items = st.lists(for_wire(wire.item), min_size=wire.min_len, max_size=wire.max_len).map(tuple)
        return items.map(_within(wire)).filter(lambda kept: len(kept) >= wire.min_len)
    if isinstance(wire, RecordType):
        return st.builds(wire.cls, **{spec.name: for_spec(spec) for spec in wire.specs})
    raise TypeError(f"no strategy for {wire!r}")


def _within(wire: ArrayType[Any]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """Cut a tuple of items to the array's byte budget (as a sender fills a page)."""
    size = wire.item.encoder()

    def cut(items: tuple[Any, ...]) -> tuple[Any, ...]:
        room = wire.max_bytes
        for n, item in enumerate(items):
            room -= len(size(item, ""))
            if room < 0:
                return items[:n]
        return items

    return cut


def for_spec(spec: FieldSpec) -> st.SearchStrategy[Any]:
    """Valid values of one declared field."""
    return for_wire(spec.wire, spec.lo, spec.hi)


def message_of(cls: type[M]) -> st.SearchStrategy[M]:
    """Any valid message of one type."""
    return st.builds(cls, **{spec.name: for_spec(spec) for spec in cls.specs()})


def messages() -> st.SearchStrategy[Message]:
    """Any valid message of any type in the catalog."""
    return st.one_of([message_of(cls) for cls in sorted(CATALOG.values(), key=lambda c: c.TYPE)])


def _bad_ints(spec: FieldSpec, wire: IntType) -> st.SearchStrategy[int]:
    options = [st.integers(max_value=(wire.lo if spec.lo is None else spec.lo) - 1)]
    options.append(st.integers(min_value=(wire.hi if spec.hi is None else spec.hi) + 1))
    return st.one_of(options)


def out_of_range(cls: type[M]) -> st.SearchStrategy[tuple[str, M]]:
    """A (field name, message) pair whose named top-level integer field is out of range."""
    ints = [spec for spec in cls.specs() if isinstance(spec.wire, IntType)]
    if not ints:
        raise ValueError(f"{cls.__name__} has no integer field")

    @st.composite
    def draw(data: st.DrawFn) -> tuple[str, M]:
        valid = data(message_of(cls))
        spec = data(st.sampled_from(ints))
        assert isinstance(spec.wire, IntType)
        bad = data(_bad_ints(spec, spec.wire))
        # frozen dataclasses refuse nothing at construction; encode must
        broken: M = dataclasses.replace(cast(Any, valid), **{spec.name: bad})
        return spec.name, broken

    return draw()
