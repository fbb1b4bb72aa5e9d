"""What the probes share: the catalog's numbers computed here (never by the rule engine), and a pump set up
in a known therapy."""

from __future__ import annotations

from dataclasses import dataclass

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import BolusKind, Origin, PatientGroup
from itbproto.qa.bench import DAY, Bench, continuous


@dataclass
class Therapy:
    """What a probe set up: the rate, the concentration, the daily dose and the device's numbers."""

    rate: int
    conc: int
    info: m.DeviceInfo

    @property
    def daily(self) -> int:
        return self.rate * self.conc

    def rate_for(self, ng_day: int) -> int:
        """The highest rate, in whole rate steps, whose dose is at most ``ng_day``."""
        step = self.info.rate_step_ul_day
        return ng_day // self.conc // step * step


def first_dose_limit(b: Bench, record: m.PatientRecord) -> int:
    """SCREEN-001: twice the effective screening dose a day, or the dose itself after a long effect."""
    if record.screening_effect_s >= b.param("SCREEN-001", "long_effect_s"):
        return record.screening_dose_ng
    return record.screening_dose_ng * b.param("SCREEN-001", "factor_pct") // 100


def titration_pct(b: Bench, record: m.PatientRecord) -> int:
    """TITR-001: the record's category's percentage (the strictest that applies)."""
    pcts = [b.param("TITR-001", "spinal_pct" if record.origin is Origin.SPINAL else "cerebral_pct")]
    if record.group is PatientGroup.CHILD:
        pcts.append(b.param("TITR-001", "child_pct"))
    return min(pcts)


def ceiling(b: Bench, group: PatientGroup) -> int:
    return b.param(
        "DOSE-003", "child_ceiling_ng_day" if group is PatientGroup.CHILD else "adult_ceiling_ng_day"
    )


PATIENT = m.PatientBolusPolicy(volume_ul=10, duration_s=600, lockout_s=4 * 3600, max_per_day=3)
#: a bolus maximum with room for the patient's bolus (at any listed strength up to 2000 µg/mL)
PATIENT_BOLUS_MAX = PATIENT.volume_ul * 2_000


async def start(
    b: Bench,
    *,
    daily: int | None = None,
    max_daily: int | None = None,
    patient: m.PatientBolusPolicy | None = None,
    max_bolus: int = 0,
    settle: bool = True,
) -> Therapy:
    """A first prescription on a new pump (at the SCREEN-001 limit unless ``daily``), its maximum daily dose
    the ceiling (unless ``max_daily``); then a day and a minute pass, so the last 24 h hold only it."""
    status, record = await b.status(), await b.record()
    t = Therapy(0, status.concentration_ug_ml, b.info)
    t.rate = t.rate_for(first_dose_limit(b, record) if daily is None else daily)
    top = ceiling(b, record.group) if max_daily is None else max_daily
    p = continuous(t.rate, t.conc, top, patient=patient, max_bolus_ng=max_bolus)
    await b.ok("SCREEN-001", b.program(p), f"first prescription {t.rate} uL/day at {t.conc} ug/mL")
    if settle:
        await b.settle()
    return t


def rx(
    t: Therapy,
    rate: int,
    b: Bench,
    *,
    max_daily: int | None = None,
    max_bolus_ng: int = 0,
    steps: tuple[m.FlexStep, ...] = (),
    boluses: tuple[m.PeriodicBolus, ...] = (),
    patient: m.PatientBolusPolicy | None = None,
) -> m.Prescription:
    """A prescription at ``rate`` (or ``steps``), its maximum the adult ceiling unless ``max_daily``."""
    top = ceiling(b, PatientGroup.ADULT) if max_daily is None else max_daily
    return continuous(
        rate, t.conc, top, max_bolus_ng=max_bolus_ng, steps=steps, boluses=boluses, patient=patient
    )


async def maintenance_upper(b: Bench, record: m.PatientRecord) -> int:
    """The top of the usual maintenance range for the record's group (the drug table, as shipped)."""
    from itbproto.io.specfiles import load_drug

    drug = load_drug()
    return (
        drug.maintenance_child_ng_day if record.group is PatientGroup.CHILD else drug.maintenance_adult_ng_day
    )[-1]


def fastest(b: Bench, volume: int) -> int:
    """BOL-003: the shortest duration (s) for ``volume`` µL at the profile's maximum bolus rate."""
    return -(-volume * DAY // b.profile.max_bolus_rate_ul_day)


def bolus(kind: BolusKind, volume: int, duration: int) -> m.BolusStart:
    return m.BolusStart(kind=kind, volume_ul=volume, duration_s=duration, ack=m.NO_ACK)


def flex(t: Therapy, rates: list[int]) -> tuple[m.FlexStep, ...]:
    """Steps at ``rates`` spread evenly over the day."""
    return tuple(m.FlexStep(start_s=i * DAY // len(rates), rate_ul_day=r) for i, r in enumerate(rates))


def drug_table() -> list[int]:
    from itbproto.io.specfiles import load_drug

    return list(load_drug().concentrations_ug_ml)
