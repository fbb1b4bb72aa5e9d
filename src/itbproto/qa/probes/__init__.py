"""Boundary probes: for each rule of the catalog (and the protocol's own checks), steps that bring the pump
to the rule's boundary and go just inside it and just outside, with every number derived from the pump's
policy, the drug table, the device profile and the pump's own records, never hand-picked.

A probe needs what its target can give (``needs``): ``fresh`` a new pump in a known state (in-process),
``clock`` device time moved, ``faults`` hardware events (battery, motor), ``pairing`` the PIN the pump shows,
``links`` a second link beside the first. Where the target cannot, the report names the probe and why.
"""

from itbproto.qa.probes import boluses, device, dose, path, protocol, refills, schedules  # noqa: F401 (they register)
from itbproto.qa.probes.registry import NEEDS, PROBES, Hands, ProbeSpec

__all__ = ["NEEDS", "PROBES", "Hands", "ProbeSpec"]
