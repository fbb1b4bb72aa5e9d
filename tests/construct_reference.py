"""construct's reading of the field declarations: the reference codec the generated ones are compared with.

Every wire type carries its construct subcon; here records become construct ``Struct``s of their fields'
subcons that parse to and build from the record class, flag sets parse to and build from sets of their enum
(what construct-typing's ``DataclassStruct`` does, without asking records to derive from its
``DataclassMixin``: that would make construct-typing, with arrow, dateutil and tzdata, a run-time dependency
of itbproto, when only its type stubs are wanted, in the ``typing`` extra).
"""

from __future__ import annotations

from typing import Any

import construct as cs
from construct_typed import Adapter

from itbproto.core.wire.fields import ArrayType, FlagSetType, RecordType, WireType, field_specs

__all__ = ["reference", "subcon"]


class _Record(Adapter[Any, Any, Any, Any]):
    """A record class as the construct ``Struct`` of its fields (nested records as their classes)."""

    def __init__(self, cls: type) -> None:
        self.cls, self.names = cls, [spec.name for spec in field_specs(cls)]
        super().__init__(cs.Struct(*(spec.name / subcon(spec.wire) for spec in field_specs(cls))))

    def _decode(self, obj: Any, context: Any, path: Any) -> Any:
        return self.cls(**{name: obj[name] for name in self.names})

    def _encode(self, obj: Any, context: Any, path: Any) -> Any:
        if type(obj) is not self.cls:
            raise TypeError(f"{obj!r} is not a {self.cls.__name__}")
        return {name: getattr(obj, name) for name in self.names}


class _FlagSet(Adapter[Any, Any, Any, Any]):
    """A flag set as its bit mask."""

    def __init__(self, wire: FlagSetType[Any]) -> None:
        super().__init__(wire.subcon)
        self.wire = wire

    def _decode(self, obj: Any, context: Any, path: Any) -> Any:
        return self.wire.from_mask(obj, str(path))

    def _encode(self, obj: Any, context: Any, path: Any) -> Any:
        return self.wire.to_mask(obj)


def subcon(wire: WireType[Any]) -> cs.Construct[Any, Any]:
    """The construct of one wire type, parsing to (and building from) the library's values."""
    if isinstance(wire, RecordType):
        return _Record(wire.cls)
    if isinstance(wire, ArrayType):
        return cs.PrefixedArray(cs.Int8ul, subcon(wire.item))
    if isinstance(wire, FlagSetType):
        return _FlagSet(wire)
    return wire.subcon


def reference(cls: type) -> cs.Construct[Any, Any]:
    """The construct codec of a record (a message's payload)."""
    return _Record(cls)
