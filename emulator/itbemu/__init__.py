"""itbemu: an ITB pump in software, for developers and QA (not a medical device).

The library's pump (:mod:`itbproto.core.machines`) and firmware loop with what a real device adds: hardware
(reservoir, motor, battery) on a device clock, fault injection, a crash-safe store, and servers
(in-process and TCP). It re-implements none of the library: every byte, rule and dose goes through it.
"""

from itbemu.clock import Clock, RealClock, VirtualClock
from itbemu.device import Emulator, Hardware
from itbemu.faults import DeviceFault, FaultPlan, LinkFaults
from itbemu.inprocess import InProcessLink
from itbemu.server import TcpServer
from itbemu.simulate import Simulation, simulate
from itbemu.store import Store

__all__ = [
    "Clock",
    "DeviceFault",
    "Emulator",
    "FaultPlan",
    "Hardware",
    "InProcessLink",
    "LinkFaults",
    "RealClock",
    "Simulation",
    "Store",
    "TcpServer",
    "VirtualClock",
    "simulate",
]
