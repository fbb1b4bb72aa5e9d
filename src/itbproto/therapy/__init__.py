"""Therapy model and exact dose math (sans-IO): profiles, drugs, flows, schedules, state."""

from itbproto.therapy.flows import SCALE, Flow, bolus_flows, dose_between, max_window_dose, volume_between
from itbproto.therapy.profile import DeviceProfile, Drug
from itbproto.therapy.schedule import daily_dose_scaled, prescription_flows, rescale
from itbproto.therapy.state import Battery, TherapyState, advance, apply, planned_flows

__all__ = [
    "SCALE",
    "Battery",
    "DeviceProfile",
    "Drug",
    "Flow",
    "TherapyState",
    "advance",
    "apply",
    "bolus_flows",
    "daily_dose_scaled",
    "dose_between",
    "max_window_dose",
    "planned_flows",
    "prescription_flows",
    "rescale",
    "volume_between",
]
