"""itbproto: intrathecal baclofen pump programming protocol (research software, not a medical device).

The most used names are here; everything else is in its module. The package reads as three layers:

- :mod:`itbproto.core`, the sans-IO core: the messages (``from itbproto.core.wire import SetRate``), one side
  of a link (:class:`Connection`), the pump (:class:`PumpMachine`, :class:`Firmware`) and the programmer
  (:class:`ProgrammingSession`), the rules (:mod:`itbproto.core.safety`) and the dose math
  (:mod:`itbproto.core.therapy`); bytes and time in, bytes and events out;
- :mod:`itbproto.io`: transports (TCP, in-process, BLE on bleak), :class:`PumpClient`, the spec files and keys
  on disk;
- :mod:`itbproto.tools`: the CLIs' commands, the demo, what writes specs/; :mod:`itbproto.qa`: the packaged
  safety suite;
- :mod:`itbproto.errors` and :mod:`itbproto.units`: the one exception hierarchy and the exact units.

::

    >>> import itbproto
    >>> from itbproto.core.wire import SetRate
    >>> frame = itbproto.encode(SetRate(rate_ul_day=880), txn=7)
    >>> itbproto.decode(frame).message
    SetRate(rate_ul_day=880)
"""

import importlib
from types import ModuleType

from itbproto import _moved
from itbproto.core.connection import BadRequest, Connection, Dropped, Notification, Reply, Request, Side
from itbproto.core.firmware import Firmware
from itbproto.core.link import InMemoryLink
from itbproto.core.machines import DeviceState, ProgrammingSession, PumpMachine
from itbproto.core.safety import SafetyPolicy, Verdict, evaluate
from itbproto.core.therapy import DeviceProfile, Drug, TherapyState, advance, apply
from itbproto.core.wire import Frame, Message, decode, encode
from itbproto.errors import (
    CaptureError,
    CommandRefusedError,
    ItbError,
    LinkClosedError,
    LocalProtocolError,
    NotAppliedError,
    PairingError,
    ProtocolError,
    RemoteProtocolError,
    SafetyViolation,
    SessionError,
    SpecError,
    TherapyStateError,
    WrongDeviceError,
)
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_profile, load_rules
from itbproto.io.transport import TcpTransport, Transport, open_target

__version__ = "0.2.0"

__all__ = [
    "BadRequest",
    "CaptureError",
    "CommandRefusedError",
    "Connection",
    "DeviceProfile",
    "DeviceState",
    "Dropped",
    "Drug",
    "Firmware",
    "Frame",
    "InMemoryLink",
    "ItbError",
    "LinkClosedError",
    "LocalProtocolError",
    "Message",
    "NotAppliedError",
    "Notification",
    "PairingError",
    "ProgrammingSession",
    "ProtocolError",
    "PumpClient",
    "PumpMachine",
    "RemoteProtocolError",
    "Reply",
    "Request",
    "SafetyPolicy",
    "SafetyViolation",
    "SessionError",
    "Side",
    "SpecError",
    "TcpTransport",
    "TherapyState",
    "TherapyStateError",
    "Transport",
    "Verdict",
    "WrongDeviceError",
    "__version__",
    "advance",
    "apply",
    "decode",
    "encode",
    "evaluate",
    "load_drug",
    "load_profile",
    "load_rules",
    "open_target",
]


_moved.install()


def __getattr__(name: str) -> ModuleType:
    """``itbproto.wire`` and the other modules of 0.2 that moved: the module, with a DeprecationWarning."""
    new = _moved.moved(f"itbproto.{name}", stacklevel=2)
    if new is not None:
        module = globals()[name] = importlib.import_module(new)  # (warned once)
        return module
    raise AttributeError(f"module 'itbproto' has no attribute {name!r}")
