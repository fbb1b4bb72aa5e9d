"""The checks behind specs/safety-rules.toml, one function per rule and command family.

Each check yields a human-readable reason for every violation it finds; whether
a violation refuses the command or needs acknowledging is the rule's level in
the catalog. Numbers in reasons are shown in display units; comparisons are exact
integers (doses over time scaled by 86 400, see :mod:`itbproto.core.therapy.flows`),
and every dose is counted at the catheter tip. :data:`CHECKS` is the explicit
table the engine runs; :class:`~itbproto.core.safety.policy.SafetyPolicy` verifies it
names exactly the catalog's rules.
"""

from __future__ import annotations

from typing import Any

from itbproto.core.safety.rules import bolus, device, dose, program, refill
from itbproto.core.safety.rules.common import PRESCRIBING, REFILL_DRUG, STARTS_DELIVERY, RefillDrug
from itbproto.core.safety.rules.refill import residual_needs_acknowledgement
from itbproto.core.safety.verdict import Check
from itbproto.core.wire import messages as m

__all__ = ["CHECKS", "residual_needs_acknowledgement"]

_BOLUS = (m.BolusStart,)
_PROGRAM = (m.StagePrescription, m.CommitPrescription, m.SetRate)
_PHASED = (*_PROGRAM, m.BolusStart, m.SetPatientRecord, m.RecordScreeningResponse)

#: every rule check, in the order they run
CHECKS: tuple[Check[Any], ...] = (
    Check("PHASE-001", _PHASED, device.phase_order),
    # (cancelling a bridge pushes the old drug still in the path at the new, faster rate)
    Check("DOSE-001", (*STARTS_DELIVERY, m.BolusCancel), dose.rolling_dose, consequence=True),
    Check("DOSE-002", PRESCRIBING, dose.programmed_daily_dose, consequence=True),
    Check("DOSE-003", (*PRESCRIBING, m.SetPatientRecord), dose.daily_ceiling, consequence=True),
    Check("SCREEN-001", _PROGRAM, dose.first_daily_dose, consequence=True),
    Check("BOL-001", _BOLUS, bolus.bolus_maximum),
    Check("BOL-001", PRESCRIBING, bolus.periodic_bolus_maximum, consequence=True),
    Check("BOL-002", _BOLUS, bolus.screening_doses),
    Check("BOL-003", _BOLUS, bolus.bolus_rate),
    Check("BOL-003", PRESCRIBING, bolus.periodic_bolus_rate, consequence=True),
    Check("BOL-004", _BOLUS, bolus.one_bolus),
    Check("PBOL-001", _BOLUS, bolus.patient_lockout),
    Check("PBOL-002", _BOLUS, bolus.patient_count),
    Check("PBOL-003", _BOLUS, bolus.patient_as_prescribed),
    Check("BRIDGE-001", _BOLUS, bolus.bridge_bolus),
    Check("PRIME-001", _BOLUS, bolus.priming_bolus),
    Check("TITR-001", PRESCRIBING, dose.titration_step, consequence=True),
    Check("TITR-002", PRESCRIBING, dose.one_increase_per_day, consequence=True),
    Check("TITR-003", PRESCRIBING, dose.large_step_at_high_dose, consequence=True),
    Check("DECR-001", PRESCRIBING, dose.large_decrease, consequence=True),
    Check("FLEX-003", PRESCRIBING, dose.peak_rate, consequence=True),
    Check("RESTART-001", STARTS_DELIVERY, dose.restart_after_interruption, consequence=True),
    Check("RATE-001", PRESCRIBING, program.rate_range, consequence=True),
    Check("RATE-002", PRESCRIBING, program.rate_resolution, consequence=True),
    Check("FLEX-001", PRESCRIBING, program.step_count, consequence=True),
    Check("FLEX-002", PRESCRIBING, program.steps_cover_the_day, consequence=True),
    Check("DRUG-001", PRESCRIBING, program.prescription_drug, consequence=True),
    Check[RefillDrug]("DRUG-001", REFILL_DRUG, program.refill_drug),
    Check("DRUG-002", _PROGRAM, program.matches_reservoir, consequence=True),
    Check[RefillDrug]("REFILL-001", REFILL_DRUG, refill.no_overfill),
    Check[RefillDrug]("REFILL-002", REFILL_DRUG, refill.two_step_refill),
    Check("REFILL-003", (m.RefillConfirm,), refill.residual_discrepancy),
    Check("REFILL-004", (m.RefillConfirm,), refill.stability, consequence=True),
    Check("RES-002", (m.BolusStart, m.Resume, m.SetRate, m.CommitPrescription), refill.not_from_empty),
    Check("RES-003", STARTS_DELIVERY, refill.expired_drug, consequence=True),
    Check("FLOW-001", (*STARTS_DELIVERY, m.SessionEnd), device.tip_gap, consequence=True),
    Check("BATT-001", (*_PROGRAM, m.BolusStart, m.Resume), device.end_of_service),
    Check("RES-001", (m.SetThresholds,), device.low_reservoir_lead),
    Check("BATT-002", (m.SetThresholds,), device.eri_lead),
    Check("ALARM-001", (m.SetThresholds,), device.reannunciation_period),
    Check("ALARM-001", (m.AlarmSilence,), device.critical_silence),
    Check("STOP-001", (m.SessionEnd,), device.no_silent_stop),
    Check("STOP-002", (m.Suspend,), device.suspend_acknowledged),
    Check("MRI-001", (m.MriBegin,), device.mri_prepared),
    Check("MRI-002", (m.MriBegin,), device.mri_interruption),
    Check("CLOCK-001", (m.SetClock,), device.small_clock_step),
)
