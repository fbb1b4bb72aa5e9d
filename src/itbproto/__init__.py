"""itbproto: intrathecal baclofen pump programming protocol (research software, not a medical device).

The sans-IO core: exact units (:mod:`itbproto.units`), one error hierarchy
(:mod:`itbproto.errors`), the wire codec (:mod:`itbproto.wire`), the therapy
model and dose math (:mod:`itbproto.therapy`), the safety rules
(:mod:`itbproto.safety`) and the state machines (:mod:`itbproto.machines`)::

    >>> import itbproto
    >>> frame = itbproto.encode(itbproto.SetRate(rate_ul_day=880), txn=7)
    >>> itbproto.decode(frame).message
    SetRate(rate_ul_day=880)
"""

from itbproto.errors import *  # noqa: F403
from itbproto.errors import __all__ as _errors_all
from itbproto.machines import ProgrammingSession, PumpMachine
from itbproto.safety import RuleCatalog, SafetyPolicy, Verdict, Violation, evaluate
from itbproto.specfiles import load_drug, load_profile, load_rules
from itbproto.therapy import DeviceProfile, Drug, Forecast, TherapyState, advance, apply, forecast
from itbproto.units import *  # noqa: F403
from itbproto.units import __all__ as _units_all
from itbproto.wire import *  # noqa: F403
from itbproto.wire import __all__ as _wire_all

__version__ = "0.1.0"

__all__ = [
    "DeviceProfile",
    "Drug",
    "Forecast",
    "ProgrammingSession",
    "PumpMachine",
    "RuleCatalog",
    "SafetyPolicy",
    "TherapyState",
    "Verdict",
    "Violation",
    "__version__",
    "advance",
    "apply",
    "evaluate",
    "forecast",
    "load_drug",
    "load_profile",
    "load_rules",
    *_errors_all,
    *_units_all,
    *_wire_all,
]
