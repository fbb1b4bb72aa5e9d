"""Record codecs generated from the field declarations, as construct's compiler does, but tighter.

For each record the generator writes two straight-line Python functions at
import: ``decode(buf, pos, path) -> (record, pos)`` and ``encode(record, path)
-> bytes``. Runs of fixed-size fields become one ``struct`` call; every value is
checked against its declared range in both directions (the error path names the
field); a decoded record's slots are filled directly, since its values are
already valid (as attrs does). The construct subcons of the same declaration
remain the reference: a test proves that construct builds and parses exactly
the same bytes for every message (tests/construct_reference.py).
"""

from __future__ import annotations

import struct
from typing import Any, cast

from itbproto.core.wire.fields import (
    Decoder,
    Encoder,
    FieldSpec,
    IntType,
    RecordType,
    ScalarType,
    compile_source,
    join,
    referrer,
)
from itbproto.errors import FieldRangeError

__all__ = ["record_codec"]


def _runs(specs: tuple[FieldSpec, ...]) -> list[list[tuple[int, FieldSpec]]]:
    """Consecutive fixed-size fields grouped together; every other field alone."""
    runs: list[list[tuple[int, FieldSpec]]] = []
    for i, spec in enumerate(specs):
        scalar = isinstance(spec.wire, ScalarType)
        if scalar and runs and isinstance(runs[-1][0][1].wire, ScalarType):
            runs[-1].append((i, spec))
        else:
            runs.append([(i, spec)])
    return runs


def _guard(spec: FieldSpec, var: str, ref: Any) -> str:
    """An expression true when ``var`` is a valid value of the field (the fast path)."""
    wire = spec.wire
    if isinstance(wire, IntType):
        lo, hi = spec.bounds
        return f"{var}.__class__ is int and {lo} <= {var} <= {hi}"
    if isinstance(wire, ScalarType):
        return wire.guard(var, ref)
    return "True"  # variable fields are checked by their own encoder


def record_codec(record: RecordType[Any]) -> tuple[Decoder, Encoder]:
    """The generated decode and encode functions of one record type."""
    env: dict[str, Any] = {"cls": record.cls, "join": join, "FieldRangeError": FieldRangeError}
    ref = referrer(env)
    name = record.name
    decode = ["def decode(buf, pos, path):"]
    encode = [
        "def encode(value, path):",
        f"    if value.__class__ is not cls: raise FieldRangeError(path or {name!r}, value, {name!r})",
    ]
    parts: list[str] = []
    for run in _runs(record.specs):
        first = run[0][1]
        if isinstance(first.wire, ScalarType):
            layout = struct.Struct("<" + "".join(cast(ScalarType[Any], s.wire).fmt for _, s in run))
            targets = ", ".join(f"f{i}" for i, _ in run)
            decode += [f"    {targets}, = {ref(layout.unpack_from)}(buf, pos)", f"    pos += {layout.size}"]
            packed = []
            for i, spec in run:
                where = f"join(path, {spec.name!r})"
                wire = cast(ScalarType[Any], spec.wire)
                if isinstance(wire, IntType) and spec.narrowed:
                    lo, hi = spec.bounds
                    decode.append(f"    if not {lo} <= f{i} <= {hi}: {ref(spec.check_range)}(f{i}, {where})")
                decode += [f"    {line}" for line in wire.decode_lines(f"f{i}", where, ref)]
                packed.append(wire.pack_expr(f"v{i}", ref))
            parts.append(f"{ref(layout.pack)}({', '.join(packed)})")
        else:
            i, spec = run[0]
            where = f"join(path, {spec.name!r})"
            decode.append(f"    f{i}, pos = {ref(spec.wire.decoder())}(buf, pos, {where})")
            parts.append(f"{ref(spec.wire.encoder())}(v{i}, {where})")
        for i, spec in run:
            where = f"join(path, {spec.name!r})"
            encode += [
                f"    v{i} = value.{spec.name}",
                f"    if not ({_guard(spec, f'v{i}', ref)}): {ref(spec.check)}(v{i}, {where})",
            ]
    encode.append(f"    return {' + '.join(parts) if parts else 'b' + repr('')}")
    decode += _construct(record, ref)
    source = compile_source([*decode, *encode], env, f"<itbproto record {name}>")
    return source["decode"], source["encode"]


def _construct(record: RecordType[Any], ref: Any) -> list[str]:
    """The lines that build the record from the decoded ``f{i}`` values and return it."""
    slots = [record.cls.__dict__.get(spec.name) for spec in record.specs]
    if all(type(slot).__name__ == "member_descriptor" for slot in slots):
        # a frozen dataclass's __init__ pays object.__setattr__ per field; the values are valid
        lines = [f"    obj = {ref(object.__new__)}(cls)"]
        lines += [f"    {ref(cast(Any, slot).__set__)}(obj, f{i})" for i, slot in enumerate(slots)]
        return [*lines, "    return obj, pos"]
    kwargs = ", ".join(f"{spec.name}=f{i}" for i, spec in enumerate(record.specs))
    return [f"    return cls({kwargs}), pos"]
