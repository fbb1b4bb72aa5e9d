"""Therapy model and exact dose math (sans-IO): profiles, drugs, flows, schedules, state."""

from itbproto.core.therapy.commands import apply
from itbproto.core.therapy.flows import (
    SCALE,
    Flow,
    bolus_flows,
    dose_between,
    max_window_dose,
    volume_between,
)
from itbproto.core.therapy.fluid import Path, Segment, push
from itbproto.core.therapy.forecast import Forecast, bridge_bolus, forecast, priming_bolus
from itbproto.core.therapy.profile import DeviceProfile, Drug
from itbproto.core.therapy.schedule import daily_dose_scaled, prescription_flows, rescale
from itbproto.core.therapy.state import Battery, TherapyState, advance, planned_flows, planned_tip_flows

__all__ = [
    "SCALE",
    "Battery",
    "DeviceProfile",
    "Drug",
    "Flow",
    "Forecast",
    "Path",
    "Segment",
    "TherapyState",
    "advance",
    "apply",
    "bolus_flows",
    "bridge_bolus",
    "daily_dose_scaled",
    "dose_between",
    "forecast",
    "max_window_dose",
    "planned_flows",
    "planned_tip_flows",
    "prescription_flows",
    "priming_bolus",
    "push",
    "rescale",
    "volume_between",
]
