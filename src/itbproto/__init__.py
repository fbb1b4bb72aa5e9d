"""itbproto: intrathecal baclofen pump programming protocol (research software, not a medical device).

The sans-IO core: exact units (:mod:`itbproto.units`), one error hierarchy
(:mod:`itbproto.errors`) and the wire codec (:mod:`itbproto.wire`)::

    >>> import itbproto
    >>> frame = itbproto.encode(itbproto.SetRate(rate_ul_day=880), txn=7)
    >>> itbproto.decode(frame).message
    SetRate(rate_ul_day=880)
"""

from itbproto.errors import *  # noqa: F403
from itbproto.errors import __all__ as _errors_all
from itbproto.units import *  # noqa: F403
from itbproto.units import __all__ as _units_all
from itbproto.wire import *  # noqa: F403
from itbproto.wire import __all__ as _wire_all

__version__ = "0.1.0"

__all__ = ["__version__", *_errors_all, *_units_all, *_wire_all]
