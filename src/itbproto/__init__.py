"""itbproto: intrathecal baclofen pump programming protocol (research software, not a medical device).

The sans-IO core, most used names here; everything else in its module:

- :mod:`itbproto.wire`: the messages (``from itbproto.wire import SetRate``), enums, frames, fragments;
- :mod:`itbproto.connection`: one side of a link, bytes in -> events out (:class:`Connection`);
- :mod:`itbproto.machines`: the pump (:class:`PumpMachine`) and the programmer (:class:`ProgrammingSession`);
- :mod:`itbproto.firmware` and :mod:`itbproto.link`: the pump behind its links; a link in memory;
- :mod:`itbproto.safety`, :mod:`itbproto.therapy`, :mod:`itbproto.units`: rules, dose math, exact units;
- :mod:`itbproto.errors`: the one exception hierarchy.

::

    >>> import itbproto
    >>> from itbproto.wire import SetRate
    >>> frame = itbproto.encode(SetRate(rate_ul_day=880), txn=7)
    >>> itbproto.decode(frame).message
    SetRate(rate_ul_day=880)
"""

from itbproto.client import PumpClient
from itbproto.connection import BadRequest, Connection, Dropped, Notification, Reply, Request, Side
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
from itbproto.firmware import Firmware
from itbproto.link import InMemoryLink
from itbproto.machines import DeviceState, ProgrammingSession, PumpMachine
from itbproto.safety import SafetyPolicy, Verdict, evaluate
from itbproto.specfiles import load_drug, load_profile, load_rules
from itbproto.therapy import DeviceProfile, Drug, TherapyState, advance, apply
from itbproto.transport import TcpTransport, Transport, open_target
from itbproto.wire import Frame, Message, decode, encode

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
