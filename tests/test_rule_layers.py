"""Each layer that enforces a rule does so on its own: take any one guard away and a test here fails.

The layers, as the code has them:

- ``engine``: :func:`itbproto.core.safety.evaluate` and the checks it runs (``CHECKS``), called directly;
- ``therapy``: the therapy model (:func:`itbproto.core.therapy.apply` refusing with ``TherapyStateError``,
  ``advance``/``planned_flows``, the alarm records of :mod:`itbproto.core.therapy.alarms`), with no engine;
- ``modes``: the pump's mode table (``PUMP``) as :class:`~itbproto.core.machines.PumpMachine` applies it, here
  behind an engine that accepts everything and a therapy that would apply anything;
- ``roles``: each request's ``ROLES`` and :func:`~itbproto.core.wire.messages.role_refusal`, as the pump
  checks them (``ROLE_FORBIDDEN``);
- ``programmer``: :class:`~itbproto.core.machines.ProgrammingSession` refusing before it produces a byte (its
  role check, its engine on its mirror of the pump, its own steps), and its connection taking as an
  answer only a reply to the outstanding transaction;
- ``alarms``: when the pump raises alarms (:func:`itbproto.core.machines.pump.alarms.conditions`).

:data:`LAYERS` says which layers enforce what; a test proves the table has a test for each pair, and one
test per pair exercises that layer with the others bypassed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, cast

import pytest

import itbproto.core.machines.pump.machine as pump_machine
from factories import (
    DAY,
    POLICY,
    T0,
    ack,
    before_a_second_surgery,
    commit,
    confirm,
    empty_pump,
    patient,
    prescription,
    programmed,
)
from factories import refill_staged as staged_refill
from itbproto.core.connection import Connection, Reply, Side
from itbproto.core.firmware import Firmware
from itbproto.core.machines import PUMP, Ignored, ProgrammingSession, PumpMachine, Refused, Replied, mode_of
from itbproto.core.machines.pump.alarms import conditions, update
from itbproto.core.safety import SafetyPolicy, Verdict, enforcement_points, evaluate
from itbproto.core.therapy import SCALE, Battery, TherapyState, advance, apply, planned_flows
from itbproto.core.therapy.state import RefillProgress
from itbproto.core.therapy.window import worst_window_scaled
from itbproto.core.wire import (
    CATALOG,
    Ack,
    Acknowledgement,
    AlarmAcknowledge,
    AlarmCode,
    AlarmThresholds,
    BolusKind,
    BolusStart,
    BolusStarted,
    ErrorCode,
    FlexStep,
    Kind,
    Message,
    MriBegin,
    Nack,
    PeriodicBolus,
    Phase,
    Prescription,
    PrescriptionMode,
    Procedure,
    RecordProcedure,
    RefillBegin,
    RefillConfirm,
    RefillResidual,
    RefillStageDrug,
    Resume,
    Role,
    SessionEnd,
    SetClock,
    SetRate,
    SetThresholds,
    Severity,
    StagePrescription,
    Suspend,
    TherapyMode,
    decode,
    encode,
)
from itbproto.errors import (
    AcknowledgementRequired,
    PolicyError,
    RemoteProtocolError,
    SafetyViolation,
    SessionError,
    StaleStageError,
    TherapyStateError,
)
from itbproto.io.specfiles import load_profile, load_rules
from itbproto.tools.samples import SAMPLES
from machines_link import Link, answer, new_pump

rule = pytest.mark.rule
HOUR = 3600
CATALOG_RULES = load_rules()
RULE_IDS = frozenset(r.id for r in CATALOG_RULES)
ACKNOWLEDGEABLE = frozenset(r.id for r in CATALOG_RULES if r.acknowledgeable)

# the guards that are not rules of the catalog (keys of LAYERS beside the rule IDs)
BOLUS_SUSPENDED = "no bolus while suspended"
BOLUS_MRI = "no bolus in MRI"
BOLUS_REFILL = "no bolus during a refill"
ROLE = "a patient sends only what a patient may"
REPLY_TXN = "a reply answers only its own transaction"
RESERVOIR_ALARMS = "reservoir alarms sound in every mode"
MIDNIGHT = "a periodic bolus over midnight is planned whole"
SURGERY_HOLD = "surgery that brings drug too soon makes the pump hold delivery"

#: the programmer runs the same engine as the pump, on its mirror of the pump, before it sends
ENGINE = ("engine", "programmer")

#: what enforces each rule and guard, read from the code (the layers: see the module docstring)
LAYERS: dict[str, tuple[str, ...]] = {
    "DOSE-001": ENGINE,
    "DOSE-002": ENGINE,
    "DOSE-003": ENGINE,
    "BOL-001": ENGINE,
    "BOL-002": ENGINE,
    "BOL-003": ENGINE,
    # apply: no bolus while one runs; the table: no start_bolus from "bolus"
    "BOL-004": (*ENGINE, "therapy", "modes"),
    "TITR-001": ENGINE,
    "TITR-002": ENGINE,
    "TITR-003": ENGINE,
    "DECR-001": ENGINE,
    "PBOL-001": ENGINE,
    "PBOL-002": ENGINE,
    "PBOL-003": ENGINE,
    "RATE-001": ENGINE,
    "RATE-002": ENGINE,
    "FLEX-001": ENGINE,
    "FLEX-002": ENGINE,
    "FLEX-003": ENGINE,
    "DRUG-001": ENGINE,
    "DRUG-002": ENGINE,
    "REFILL-001": ENGINE,
    # apply: the residual first, then the drug, then its digest; the table: begun -> measured -> staged;
    # the programmer also refuses a confirmation that differs from the staging (its own check)
    "REFILL-002": (*ENGINE, "therapy", "modes"),
    "REFILL-003": ENGINE,
    "REFILL-004": ENGINE,
    "RES-003": ENGINE,
    "RES-001": ENGINE,
    # advance never delivers more than the reservoir holds
    "RES-002": (*ENGINE, "therapy"),
    "BRIDGE-001": ENGINE,
    "PRIME-001": ENGINE,
    # acknowledging a critical alarm (no engine check) silences it only for the re-annunciation period
    "ALARM-001": (*ENGINE, "therapy"),
    "STOP-001": ENGINE,
    "STOP-002": ENGINE,
    "FLOW-001": ENGINE,
    "RESTART-001": ENGINE,
    # nothing flows at EOS (planned_flows); at end_of_service the pump takes no command (HARDWARE_FAULT)
    "BATT-001": (*ENGINE, "therapy", "modes"),
    "BATT-002": ENGINE,
    "PHASE-001": ENGINE,
    "SCREEN-001": ENGINE,
    # apply and the table: no refill begins during an MRI (a valve-gated pump was emptied for it)
    "MRI-001": (*ENGINE, "therapy", "modes"),
    "MRI-002": ENGINE,
    "CLOCK-001": ENGINE,
    # no command carries a policy: SafetyPolicy refuses a looser one
    "POLICY-001": ("engine",),
    # apply: no bolus while SUSPENDED, MRI or REFILL; the table: no start_bolus from those modes; the
    # programmer runs the therapy model on its mirror (no rule: the engine only passes apply's refusal on)
    BOLUS_SUSPENDED: ("therapy", "modes", "programmer"),
    BOLUS_MRI: ("therapy", "modes", "programmer"),
    BOLUS_REFILL: ("therapy", "modes", "programmer"),
    # the pump's step 4 (ROLE_FORBIDDEN) and the programmer's _may_send, both on role_refusal
    ROLE: ("roles", "programmer"),
    # the programmer's Connection takes a reply only for the outstanding transaction
    REPLY_TXN: ("programmer",),
    # machines/pump/alarms.conditions
    RESERVOIR_ALARMS: ("alarms",),
    # therapy.planned_flows (what DOSE-001 counts) and advance
    MIDNIGHT: ("therapy",),
    # apply: surgery is never refused; the pump holds delivery until every window is within the limit
    SURGERY_HOLD: ("therapy",),
}


# --- scenarios ------------------------------------------------------------------------------------------


def bolus(volume: int, duration: int = HOUR, kind: BolusKind = BolusKind.CLINICIAN) -> BolusStart:
    return BolusStart(kind=kind, volume_ul=volume, duration_s=duration)


PATIENT_BOLUS = bolus(10, 600, BolusKind.PATIENT)  # the one factories.prescription() prescribes
SCREENING = patient(phase=Phase.SCREENING, screening_dose_ng=0, screening_effect_s=0)
THRESHOLDS = AlarmThresholds(
    low_reservoir_ul=2_000, low_reservoir_days=7, eri_lead_days=90, reannunciate_s=600
)


def flex(*steps: tuple[int, int], **changes: Any) -> Prescription:
    return prescription(
        mode=PrescriptionMode.FLEX,
        steps=tuple(FlexStep(start_s=s, rate_ul_day=r) for s, r in steps),
        **changes,
    )


def thresholds(**changes: int) -> SetThresholds:
    return SetThresholds(thresholds=replace(THRESHOLDS, **changes))


def acknowledging(message: Message, *rules: str) -> Message:
    """``message`` also acknowledging ``rules``, if it is a command that carries an acknowledgement."""
    carried = getattr(message, "ack", None)
    if not isinstance(carried, Acknowledgement):
        return message
    acknowledged: Message = replace(cast(Any, message), ack=ack(*carried.rules, *rules))
    return acknowledged


def after_patient_boluses(*hours: int, now: int) -> TherapyState:
    state = programmed()
    for hour in hours:
        state, _ = advance(state, T0 + hour * HOUR)
        state = apply(state, PATIENT_BOLUS)
    state, _ = advance(state, now)
    return state


def raised_twelve_hours_ago() -> TherapyState:
    state = apply(programmed(prescription(max_daily_dose_ng=900_000)), SetRate(rate_ul_day=850))
    return advance(state, T0 + 12 * HOUR)[0]


def interrupted() -> TherapyState:
    """400 µg/day for days, then suspended: no drug at the tip for more than two days."""
    state = apply(programmed(history_days=5), Suspend(duration_s=0))
    return advance(state, T0 + 2 * DAY + 1)[0]


def valve() -> TherapyState:
    """A valve-gated pump holding 10 mL: an MRI needs at least 8 mL taken out first."""
    return replace(programmed(profile=load_profile("itbv-20")), reservoir_scaled=10_000 * SCALE)


# --- the programmer, the pump and a link between them -----------------------------------------------------


def link_for(state: TherapyState, role: Role = Role.CLINICIAN) -> Link:
    """A pump in ``state`` and a programmer for its profile, joined in memory."""
    session = ProgrammingSession(
        role=role,
        profile=state.profile,
        drug=state.drug,
        policy=POLICY,
        connection=Connection(Side.PROGRAMMER),
    )
    return Link(Firmware(new_pump(state)), session, now=state.now)


def informed(link: Link) -> ProgrammingSession:
    """The session ready, having read all the programmer's checks use: its mirror is the pump's state."""
    s = link.ready()
    assert s.state == "ready"
    reads = [s.read_history, s.read_thresholds, s.read_alarms]
    if link.pump.therapy.prescription is not None:
        reads.append(s.read_prescription)
    for read in reads:
        link.exchange(read())
    assert s.pump.to_reread() == []
    return s


def settled_pump(state: TherapyState) -> PumpMachine:
    """A pump in ``state`` that has raised the alarms it raises on its own (so a refusal changes nothing)."""
    pump = new_pump(state)
    pump.tick(state.now)
    return pump


def past_programmer(link: Link, request: Message) -> Message:
    """The pump's reply to ``request`` sent past the programmer's checks: the session's own connection
    carries it, as bytes, and takes the reply (the session's machine is not involved)."""
    connection, chunks = link.session.connection, []
    for chunk in connection.send(request):
        chunks += link.firmware.receive(link.link, chunk, link.now).get(link.link, [])
    (reply,) = [e.message for chunk in chunks for e in connection.receive(chunk) if isinstance(e, Reply)]
    return reply


def refused_before_sending(link: Link, send: Callable[[], object], error: type[Exception]) -> Exception:
    """``send`` raises ``error`` (exactly that type) and no request leaves the programmer."""
    connection = link.session.connection
    txn, log = connection.last_txn, link.pump.log.total
    with pytest.raises(error) as info:
        send()
    assert type(info.value) is error
    assert connection.outstanding is None
    assert connection.last_txn == txn  # no transaction id was used: nothing was encoded
    assert link.pump.log.total == log
    return info.value


def send_with(s: ProgrammingSession, request: Message) -> list[bytes]:
    """The session's method that sends ``request`` (its checks first)."""
    match request:
        case SetRate(rate_ul_day=rate, ack=a):
            return s.set_rate(rate, a)
        case BolusStart(kind=kind, volume_ul=volume, duration_s=duration, ack=a):
            return s.start_bolus(kind, volume, duration, a)
        case Suspend(duration_s=duration, ack=a):
            return s.suspend(duration, a)
        case Resume(ack=a):
            return s.resume(a)
        case MriBegin(emptied_ul=emptied, ack=a):
            return s.begin_mri(emptied, a)
        case SessionEnd(ack=a):
            return s.end(a)
        case SetThresholds(thresholds=t):
            return s.set_thresholds(t)
        case SetClock(device_time=t):
            return s.set_clock(t)
        case StagePrescription(prescription=p):
            s.draft(p)
            s.check()
            return s.send_stage()
    raise AssertionError(f"no session method sends {request}")


#: drives a session (its reads done) up to the command: the call that must refuse, and what it sends
Recipe = Callable[[Link], tuple[Callable[[], object], Message]]


@dataclass(frozen=True)
class Case:
    """One rule broken (or one hazard met) by one command."""

    rule: str
    #: the pump's state when the command arrives, and the command
    build: Callable[[], tuple[TherapyState, Message]]
    #: the pump the programmer starts from, and how it gets to the command (default: the same state and
    #: command, sent with the session's method for it)
    base: Callable[[], TherapyState] | None = None
    recipe: Recipe | None = None
    role: Role = Role.CLINICIAN
    #: what the programmer raises
    refuses_as: type[Exception] = SafetyViolation
    #: what the pump answers (with the rule in ``Nack.rules`` for SAFETY_RULE and NEEDS_ACKNOWLEDGEMENT)
    pump_code: ErrorCode = ErrorCode.SAFETY_RULE

    def param(self) -> Any:
        return pytest.param(self, marks=rule(self.rule), id=self.rule)

    def programmer(self) -> tuple[Link, Callable[[], object], Message]:
        """A link on the case's pump, the session informed and driven to the command."""
        if self.base is not None:
            link = link_for(self.base(), self.role)
        else:
            state, _ = self.build()
            link = link_for(state, self.role)
        s = informed(link)
        if self.recipe is not None:
            send, request = self.recipe(link)
            return link, send, request
        _, request = self.build()
        return link, lambda: send_with(s, request), request


def plain(rule_id: str, state: Callable[[], TherapyState], command: Message, **changes: Any) -> Case:
    return Case(rule_id, lambda: (state(), command), **changes)


def committed(rule_id: str, state: Callable[[], TherapyState], p: Prescription) -> Case:
    """``p`` staged on the pump (past any check) and committed; the programmer checks its draft of ``p``."""

    def build() -> tuple[TherapyState, Message]:
        staged = apply(state(), StagePrescription(prescription=p))
        return staged, commit(staged)

    def recipe(link: Link) -> tuple[Callable[[], object], Message]:
        stage = StagePrescription(prescription=p)
        return lambda: send_with(link.session, stage), stage

    return Case(rule_id, build, base=state, recipe=recipe)


def refilled(
    rule_id: str,
    state: Callable[[], TherapyState],
    volume: int,
    *,
    measured: int | None = None,
    confirmed: int | None = None,
    conc: int = 500,
    at_staging: bool = False,
    **changes: Any,
) -> Case:
    """A refill of ``volume`` µL of ``conc`` µg/mL after ``measured`` µL withdrawn (None: as expected),
    confirmed as ``confirmed`` µL (None: as staged), without a bridge. The programmer refuses the staging
    (``at_staging``) or the confirmation."""
    confirmed = volume if confirmed is None else confirmed

    def build() -> tuple[TherapyState, Message]:
        staged = staged_refill(state(), volume=volume, conc=conc, measured=measured)
        return staged, confirm(staged, volume=confirmed, conc=conc)

    def recipe(link: Link) -> tuple[Callable[[], object], Message]:
        s = link.session
        link.exchange(s.start_refill())
        assert s.pump.refill is not None
        link.exchange(s.record_residual(s.pump.refill.expected_residual_ul if measured is None else measured))
        stage = RefillStageDrug(refill_id=s.pump.refill.refill_id, volume_ul=volume, concentration_ug_ml=conc)
        if at_staging:
            return lambda: s.stage_drug(volume, conc), stage
        link.exchange(s.stage_drug(volume, conc))
        staged = s.pump.refill_stage
        assert staged is not None
        request = RefillConfirm(
            refill_id=staged.refill_id,
            volume_ul=confirmed,
            concentration_ug_ml=conc,
            digest=staged.digest,
            bridge=False,
        )
        return lambda: s.confirm_refill_drug(confirmed, conc), request

    return Case(rule_id, build, base=state, recipe=recipe, **changes)


#: one command per hard limit of the catalog (a command of the kind that carries an acknowledgement where
#: the rule is checked on one)
HARD: tuple[Case, ...] = (
    plain("DOSE-001", lambda: programmed(prescription(rate=900, max_bolus_ng=200_000)), bolus(302)),
    committed(
        "DOSE-002",
        programmed,
        flex(
            (0, 800),
            (12 * HOUR, 880),
            boluses=(PeriodicBolus(start_s=8 * HOUR, volume_ul=100, duration_s=HOUR),),
            max_daily_dose_ng=469_999,
        ),
    ),
    committed("DOSE-003", programmed, prescription(max_daily_dose_ng=2_000_001)),
    plain("BOL-001", programmed, bolus(101)),
    plain("BOL-002", lambda: empty_pump(SCREENING, concentration_ug_ml=50), bolus(1200)),  # 60 µg
    plain("BOL-003", programmed, bolus(100, 60)),
    plain("BOL-004", lambda: apply(programmed(), bolus(50)), bolus(20)),
    plain(
        "PBOL-001", lambda: after_patient_boluses(0, now=T0 + 4 * HOUR - 1), PATIENT_BOLUS, role=Role.PATIENT
    ),
    plain(
        "PBOL-002",
        lambda: after_patient_boluses(0, 5, 10, now=T0 + 15 * HOUR),
        PATIENT_BOLUS,
        role=Role.PATIENT,
    ),
    plain("PBOL-003", programmed, bolus(20, 600, BolusKind.PATIENT), role=Role.PATIENT),
    plain("TITR-001", lambda: programmed(prescription(max_daily_dose_ng=900_000)), SetRate(rate_ul_day=1041)),
    plain("TITR-002", raised_twelve_hours_ago, SetRate(rate_ul_day=900)),
    plain("RATE-001", programmed, SetRate(rate_ul_day=47)),
    plain(
        "RATE-002",
        lambda: programmed(profile=replace(load_profile("itb-20"), rate_step_ul_day=5)),
        SetRate(rate_ul_day=802),
    ),
    committed("FLEX-001", programmed, prescription(steps=(FlexStep(start_s=0, rate_ul_day=800),) * 2)),
    committed("FLEX-002", programmed, flex((60, 800), (HOUR, 800))),
    committed("FLEX-003", programmed, flex((0, 400), (DAY // 2, 1200))),  # the same day, a 50 % higher peak
    committed("DRUG-001", programmed, prescription(concentration_ug_ml=600)),
    committed("DRUG-002", programmed, prescription(concentration_ug_ml=1000, rate=400)),
    # 1 mL withdrawn of 2 mL expected: 1 mL may still be in, and 20 mL more overfill it
    refilled(
        "REFILL-001",
        lambda: replace(programmed(), reservoir_scaled=2_000 * SCALE),
        20_000,
        measured=1_000,
        at_staging=True,
    ),
    refilled("REFILL-002", programmed, 18_000, confirmed=20_000, refuses_as=SessionError),
    plain("RES-001", programmed, thresholds(low_reservoir_ul=1_999)),
    plain("RES-002", lambda: replace(programmed(), reservoir_scaled=50 * SCALE), bolus(51)),
    plain("BRIDGE-001", programmed, bolus(50, 3 * HOUR, BolusKind.BRIDGE)),  # no concentration change
    plain(
        "PRIME-001",
        lambda: programmed(prescription(max_bolus_ng=200_000)),
        bolus(120, 600, BolusKind.PRIMING),
    ),
    plain("ALARM-001", programmed, thresholds(reannunciate_s=3_601)),
    # the pump at end of service refuses every command before its engine runs (protocol.md §5 step 8)
    plain(
        "BATT-001",
        lambda: replace(programmed(), battery=Battery.EOS),
        SetRate(rate_ul_day=810),
        pump_code=ErrorCode.HARDWARE_FAULT,
    ),
    plain("BATT-002", programmed, thresholds(eri_lead_days=89)),
    # implanted: a priming bolus, but no therapy bolus yet
    plain("PHASE-001", lambda: empty_pump(patient(phase=Phase.IMPLANTED)), bolus(100)),
    committed("SCREEN-001", empty_pump, prescription(rate=1201, max_daily_dose_ng=900_000)),
    plain("MRI-001", valve, MriBegin(emptied_ul=7_999, ack=ack("MRI-002"))),
    plain("CLOCK-001", programmed, SetClock(device_time=T0 + 301)),
)

#: one command per acknowledgeable rule, meeting that hazard alone
ACK: tuple[Case, ...] = (
    plain(
        "TITR-003",
        lambda: programmed(prescription(rate=1600, max_daily_dose_ng=2_000_000)),
        SetRate(rate_ul_day=1921),
    ),
    plain("DECR-001", programmed, SetRate(rate_ul_day=400)),
    refilled("REFILL-003", programmed, 11_000, measured=10_000),  # about 18.4 mL expected
    refilled("REFILL-004", lambda: programmed(prescription(rate=200)), 15_401),  # 77 days' stability: 15.4 mL
    plain("RES-003", lambda: programmed(filled_at=T0 - 77 * DAY), SetRate(rate_ul_day=810)),
    plain("STOP-001", lambda: apply(programmed(), Suspend(duration_s=0)), SessionEnd()),
    plain("STOP-002", programmed, Suspend(duration_s=0)),
    # four times the concentration without a bridge: a quarter of the dose at the tip for over a day
    refilled("FLOW-001", programmed, 5_000, conc=2000),
    plain("RESTART-001", interrupted, Resume()),
    plain("MRI-002", lambda: programmed(history_days=5), MriBegin(emptied_ul=0)),
)


# --- the table is the code's, and each of its pairs has its test ------------------------------------------


#: the guards each therapy-, mode- and programmer-only test covers (filled below, next to the tests)
THERAPY: dict[str, Callable[[], None]] = {}
#: what a command produces, made up past the therapy model's own guards
Forge = Callable[[TherapyState, Message], TherapyState]
MODES: dict[str, tuple[Callable[[], TherapyState], Message, Forge]] = {}
PROGRAMMER_ONLY = (BOLUS_SUSPENDED, BOLUS_MRI, BOLUS_REFILL, ROLE, REPLY_TXN)
#: the rule a guard serves (the plan over midnight is what DOSE-001 counts as planned)
SERVES = {MIDNIGHT: "DOSE-001", SURGERY_HOLD: "DOSE-001"}


def keyed(keys: Iterable[str]) -> list[Any]:
    """``keys`` as parameters, each marked with its rule if it is one (or serves one)."""
    return [
        pytest.param(k, marks=rule(SERVES.get(k, k)), id=k) if SERVES.get(k, k) in RULE_IDS else k
        for k in keys
    ]


def test_the_table_names_every_rule_and_what_the_engine_runs() -> None:
    rules = {r.id for r in CATALOG_RULES}
    assert rules <= LAYERS.keys()
    engine = {key for key, layers in LAYERS.items() if "engine" in layers}
    assert engine == set(enforcement_points())  # every rule with a check, and POLICY-001 on policies
    assert {c.rule for c in HARD} == rules - ACKNOWLEDGEABLE - {"POLICY-001"}
    assert {c.rule for c in ACK} == ACKNOWLEDGEABLE
    assert all(c.pump_code is ErrorCode.SAFETY_RULE for c in ACK)


def test_every_pair_of_the_table_has_its_test() -> None:
    covered: dict[str, set[str]] = {}
    for key in {c.rule for c in (*HARD, *ACK)}:
        covered.setdefault(key, set()).update(("engine", "programmer"))
    covered.setdefault("POLICY-001", set()).add("engine")
    for key in THERAPY:
        covered.setdefault(key, set()).add("therapy")
    for key in MODES:
        covered.setdefault(key, set()).add("modes")
    for key in PROGRAMMER_ONLY:
        covered.setdefault(key, set()).add("programmer")
    covered[ROLE].add("roles")
    covered.setdefault(RESERVOIR_ALARMS, set()).add("alarms")
    assert {key: set(layers) for key, layers in LAYERS.items()} == covered


# --- engine -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c.param() for c in HARD])
def test_the_engine_refuses_a_hard_limit_even_acknowledged(case: Case) -> None:
    state, command = case.build()
    v = evaluate(acknowledging(command, case.rule), state, POLICY)
    assert case.rule in {x.rule_id for x in v.violations}
    assert not v.accepted


@pytest.mark.parametrize("case", [c.param() for c in ACK])
def test_the_engine_waits_for_the_acknowledgement(case: Case) -> None:
    state, command = case.build()
    plain_verdict = evaluate(command, state, POLICY)
    assert plain_verdict.violations == ()
    assert plain_verdict.rule_ids == (case.rule,)
    assert evaluate(acknowledging(command, case.rule), state, POLICY).accepted


@rule("POLICY-001")
def test_a_policy_cannot_loosen_a_limit() -> None:
    with pytest.raises(PolicyError) as info:
        SafetyPolicy(load_rules(), {"BOL-001.absolute_max_bolus_ng": 200_001})
    assert info.value.rule_ids == ("POLICY-001",)


# --- the pump (the engine on its side, past the programmer) -------------------------------------------------


@pytest.mark.parametrize("case", [c.param() for c in HARD])
def test_the_pump_refuses_a_hard_limit_even_acknowledged(case: Case) -> None:
    state, command = case.build()
    pump = settled_pump(state)
    before = pump.therapy
    reply = answer(pump, acknowledging(command, case.rule), 1, role=case.role)
    assert isinstance(reply, Nack)
    assert reply.code is case.pump_code
    if case.pump_code is ErrorCode.SAFETY_RULE:
        assert case.rule in reply.rules
    assert pump.therapy == before


# --- the programmer -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", [c.param() for c in HARD])
def test_the_programmer_refuses_a_hard_limit_before_sending(case: Case) -> None:
    link, send, request = case.programmer()
    error = refused_before_sending(link, send, case.refuses_as)
    if isinstance(error, SafetyViolation):
        assert case.rule in error.rule_ids
    # the same request past the programmer: the pump refuses it too, acknowledged or not
    reply = past_programmer(link, acknowledging(request, case.rule))
    assert isinstance(reply, Nack)
    assert reply.code is case.pump_code
    if case.pump_code is ErrorCode.SAFETY_RULE:
        assert case.rule in reply.rules


@pytest.mark.parametrize("case", [c.param() for c in ACK])
def test_without_the_acknowledgement_neither_side_takes_the_command(case: Case) -> None:
    link, send, request = case.programmer()
    error = refused_before_sending(link, send, AcknowledgementRequired)
    assert isinstance(error, AcknowledgementRequired)
    assert error.rule_ids == (case.rule,)
    before = link.pump.therapy
    refused = past_programmer(link, request)
    assert isinstance(refused, Nack)
    assert (refused.code, refused.rules) == (ErrorCode.NEEDS_ACKNOWLEDGEMENT, (case.rule,))
    assert link.pump.therapy == before
    # what the pump waited for was the acknowledgement, and nothing else
    assert not isinstance(past_programmer(link, acknowledging(request, case.rule)), Nack)


@rule("BOL-002")
def test_the_programmer_does_not_send_a_screening_dose_it_cannot_check() -> None:
    # found by this suite: without the history its mirror had no boluses, and a second screening dose 2 h
    # after the first was sent (only the pump refused it); now the programmer refuses to guess
    state = apply(empty_pump(SCREENING, concentration_ug_ml=50), bolus(1000))  # 50 µg, response pending
    link = link_for(advance(state, T0 + 2 * HOUR)[0])
    s = link.ready()  # the status and the patient record read; not the history
    connection = s.connection
    with pytest.raises((SafetyViolation, SessionError)):
        s.start_bolus(BolusKind.CLINICIAN, 1000, HOUR)
    assert connection.outstanding is None


# --- a bolus while a mode stops delivery: the therapy model, the mode table, the whole path -----------------


def suspended() -> TherapyState:
    return apply(programmed(), Suspend(duration_s=0))


def in_mri() -> TherapyState:
    return apply(programmed(), MriBegin(emptied_ul=0))


def refilling() -> TherapyState:
    return apply(programmed(), RefillBegin())


STOPPED_BY_MODE = {BOLUS_SUSPENDED: suspended, BOLUS_MRI: in_mri, BOLUS_REFILL: refilling}
SMALL_BOLUS = bolus(20)  # 10 µg: inside every limit while infusing


def test_a_small_bolus_is_fine_while_infusing() -> None:
    """The control for the tests below: only the mode refuses their bolus."""
    assert evaluate(SMALL_BOLUS, programmed(), POLICY).accepted
    assert isinstance(answer(new_pump(programmed()), SMALL_BOLUS, 1), BolusStarted)


@pytest.mark.parametrize("key", list(STOPPED_BY_MODE))
def test_a_bolus_while_stopped_by_a_mode_is_refused_by_the_engine_path_as_a_whole(key: str) -> None:
    state = STOPPED_BY_MODE[key]()
    with pytest.raises(TherapyStateError):
        evaluate(SMALL_BOLUS, state, POLICY)  # no rule decides it: the command cannot apply
    pump = settled_pump(state)
    before = pump.therapy
    reply = answer(pump, SMALL_BOLUS, 1)
    assert isinstance(reply, Nack)
    assert (reply.code, reply.rules) == (ErrorCode.WRONG_STATE, ())
    assert pump.therapy == before


@pytest.mark.parametrize("key", list(STOPPED_BY_MODE))
def test_the_programmer_refuses_a_bolus_while_stopped_by_a_mode(key: str) -> None:
    link = link_for(STOPPED_BY_MODE[key]())
    s = informed(link)
    error = refused_before_sending(link, lambda: s.start_bolus(BolusKind.CLINICIAN, 20, HOUR), SessionError)
    assert "as far as known here" in str(error)


# --- the therapy model alone ------------------------------------------------------------------------------


def therapy(key: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a therapy-only check for ``key`` (run by test_the_therapy_model_alone)."""

    def register(fn: Callable[[], None]) -> Callable[[], None]:
        THERAPY[key] = fn
        return fn

    return register


def refuses(state: TherapyState, command: Message, error: type[Exception] = TherapyStateError) -> None:
    """The therapy model cannot apply ``command`` in ``state``: exactly ``error`` (no unknown id, say)."""
    with pytest.raises(error) as info:
        apply(state, command)
    assert type(info.value) is error


def _bolus_refused(state: Callable[[], TherapyState]) -> Callable[[], None]:
    return lambda: refuses(state(), SMALL_BOLUS)


THERAPY.update({key: _bolus_refused(state) for key, state in STOPPED_BY_MODE.items()})


@therapy("BOL-004")
def _a_second_bolus_cannot_start() -> None:
    refuses(apply(programmed(), bolus(50)), bolus(20))


@therapy("REFILL-002")
def _a_refill_goes_step_by_step() -> None:
    begun = apply(programmed(), RefillBegin())
    assert begun.refill is not None
    refill_id = begun.refill.refill_id
    refuses(begun, RefillStageDrug(refill_id=refill_id, volume_ul=1_000, concentration_ug_ml=500))
    measured = apply(begun, RefillResidual(refill_id=refill_id, measured_ul=18_000))
    refuses(measured, confirm(measured, volume=1_000))  # nothing staged
    staged = apply(measured, RefillStageDrug(refill_id=refill_id, volume_ul=1_000, concentration_ug_ml=500))
    confirmed = confirm(staged, volume=1_000)
    refuses(staged, replace(confirmed, digest=confirmed.digest ^ 1), StaleStageError)


@therapy("BATT-001")
def _nothing_flows_at_end_of_service() -> None:
    running = apply(programmed(prescription(max_bolus_ng=200_000)), bolus(100))
    eos = replace(running, battery=Battery.EOS)
    assert planned_flows(eos, T0, T0 + DAY) == ()
    after, tip = advance(eos, T0 + DAY)
    assert (tip, after.reservoir_scaled) == ((), eos.reservoir_scaled)


@therapy("RES-002")
def _no_more_is_delivered_than_the_reservoir_holds() -> None:
    running = apply(programmed(prescription(max_bolus_ng=200_000)), bolus(100))  # 100 µL wanted
    low = replace(running, reservoir_scaled=10 * SCALE + 5)
    after, tip = advance(low, T0 + DAY)
    assert after.reservoir_scaled == 0
    assert sum(f.volume_scaled for f in tip) == 10 * SCALE + 5
    _, more = advance(after, T0 + 2 * DAY)
    assert more == ()


@therapy("MRI-001")
def _no_refill_begins_during_an_mri() -> None:
    refuses(apply(programmed(), MriBegin(emptied_ul=0)), RefillBegin())


@therapy(SURGERY_HOLD)
def _a_shorter_path_is_held_back_until_the_windows_allow() -> None:
    before, _ = before_a_second_surgery()
    limit = 20_000 * SCALE  # the prescription's maximum daily dose
    after = apply(before, RecordProcedure(procedure=Procedure.PUMP_IMPLANT, catheter_volume_ul=60))
    assert after.held
    assert worst_window_scaled(after) <= limit
    unheld = replace(after, mode=TherapyMode.INFUSING, suspended_until=0, held_until=0)
    assert worst_window_scaled(unheld) > limit


@therapy("ALARM-001")
def _an_acknowledged_critical_alarm_sounds_again() -> None:
    stalled, raised, _ = update(programmed(motor_stalled=True))
    (alarm,) = raised
    assert alarm.severity is Severity.CRITICAL
    quiet = apply(stalled, AlarmAcknowledge(alarm_id=alarm.alarm_id))  # no engine check on an acknowledge
    (record,) = quiet.alarms
    assert record.silenced_until == T0 + quiet.thresholds.reannunciate_s  # not quiet for good
    later, _ = advance(quiet, record.silenced_until)
    _, again, _ = update(later)
    assert [a.alarm_id for a in again] == [alarm.alarm_id]


@therapy(MIDNIGHT)
def _a_periodic_bolus_over_midnight_is_planned_whole() -> None:
    # 60 µL over 7000 s starting 3500 s before midnight: half of it the next day
    periodic = PeriodicBolus(start_s=DAY - 3_500, volume_ul=60, duration_s=7_000)
    state = programmed(prescription(rate=800, boluses=(periodic,)))
    midnight, start, end = T0 + DAY, T0 + DAY - 2 * HOUR, T0 + DAY + 2 * HOUR

    def volume(a: int, b: int) -> int:
        return sum(f.volume_scaled for f in planned_flows(state, a, b))

    basal = 800 * (end - start)  # µL/day × s: scaled µL
    whole = basal + periodic.volume_ul * SCALE
    assert volume(start, end) == whole
    assert volume(start, midnight) + volume(midnight, end) == whole  # the next day plans the rest
    assert volume(midnight, end) > 800 * (end - midnight)  # (the rest is there after midnight)
    before, _ = advance(state, start)
    after, _ = advance(before, end)
    assert before.reservoir_scaled - after.reservoir_scaled == whole  # and the pump delivers it all


@pytest.mark.parametrize("key", keyed(THERAPY))
def test_the_therapy_model_alone(key: str) -> None:
    THERAPY[key]()


# --- the mode table alone ---------------------------------------------------------------------------------


def _with_bolus(state: TherapyState, command: Message) -> TherapyState:
    """The bolus started whatever the mode (the therapy model's own guard bypassed)."""
    running = apply(replace(state, mode=TherapyMode.INFUSING, refill=None, bolus=None), command)
    return replace(running, mode=state.mode, refill=state.refill)


MODES.update({key: (state, SMALL_BOLUS, _with_bolus) for key, state in STOPPED_BY_MODE.items()})
MODES["BOL-004"] = (lambda: apply(programmed(), bolus(50)), SMALL_BOLUS, _with_bolus)
MODES["REFILL-002"] = (
    lambda: apply(programmed(), RefillBegin()),
    RefillConfirm(refill_id=1, volume_ul=1_000, concentration_ug_ml=500, digest=0, bridge=False),
    # as if confirmed at once: the residual and the staged drug skipped
    lambda state, _: replace(state, refill=None, mode=TherapyMode.INFUSING),
)
MODES["MRI-001"] = (
    lambda: apply(programmed(), MriBegin(emptied_ul=0)),
    RefillBegin(),
    # as if the refill began past the therapy model's guard
    lambda state, _: replace(
        state,
        refill=RefillProgress(state.next_id, state.reservoir_ul, state.mode, state.now),
        mode=TherapyMode.REFILL,
        next_id=state.next_id + 1,
    ),
)
MODES["BATT-001"] = (
    lambda: replace(programmed(), battery=Battery.EOS),
    SetRate(rate_ul_day=810),
    lambda state, command: apply(state, command),
)


def permissive(forge: Forge) -> Any:
    """An engine that accepts every command and says it produces ``forge``'s state."""

    def accept(command: Message, state: TherapyState, policy: SafetyPolicy) -> Verdict:
        return Verdict(command, after=forge(state, command))

    return accept


@pytest.mark.parametrize("key", keyed(MODES))
def test_the_mode_table_alone(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    make, command, forge = MODES[key]
    state = make()
    monkeypatch.setattr(pump_machine, "evaluate", permissive(forge))
    pump = settled_pump(state)
    before = pump.therapy
    reply = answer(pump, command, 1)
    assert isinstance(reply, Nack)
    if key == "BATT-001":  # at end_of_service the pump takes no command at all
        assert reply.code is ErrorCode.HARDWARE_FAULT
        assert PUMP.triggers("end_of_service") == {"record_procedure"}
    else:
        assert reply.code is ErrorCode.WRONG_STATE
        trigger = "confirm_refill" if isinstance(command, RefillConfirm) else "start_bolus"
        assert trigger not in PUMP.triggers(mode_of(state))  # from this mode, to any
    assert pump.therapy == before


def test_the_permissive_engine_lets_the_table_allow_what_it_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: behind the same engine, a move the table has is made."""
    monkeypatch.setattr(pump_machine, "evaluate", permissive(_with_bolus))
    pump = new_pump(programmed())
    assert isinstance(answer(pump, SMALL_BOLUS, 1), BolusStarted)
    assert pump.mode == "bolus"


# --- roles --------------------------------------------------------------------------------------------------


CLINICIAN_ONLY = sorted(
    (cls for cls in CATALOG.values() if cls.KIND is Kind.REQUEST and Role.PATIENT not in cls.ROLES),
    key=lambda cls: cls.TYPE,
)
NOT_FOR_PATIENTS = [SAMPLES[cls.TYPE] for cls in CLINICIAN_ONLY] + [
    bolus(10, 600, kind) for kind in BolusKind if kind is not BolusKind.PATIENT
]


def _name(request: Message) -> str:
    return (
        f"{type(request).__name__}-{request.kind.name}"
        if isinstance(request, BolusStart)
        else type(request).__name__
    )


def test_a_patient_may_start_the_prescribed_patient_bolus() -> None:
    """The control for the role tests: the role table leaves the patient their bolus, on both sides."""
    assert {SetRate, StagePrescription, RefillBegin, SetClock} <= set(CLINICIAN_ONLY)
    link = link_for(programmed(), Role.PATIENT)
    s = informed(link)
    events = link.exchange(s.start_bolus(BolusKind.PATIENT, 10, 600))
    assert [type(e.reply) for e in events if isinstance(e, Replied)] == [BolusStarted]


@pytest.mark.parametrize("request_", NOT_FOR_PATIENTS, ids=_name)
def test_the_pump_refuses_a_patient_what_is_not_the_patients(request_: Message) -> None:
    pump = new_pump(programmed())
    before = pump.state
    reply = answer(pump, request_, 1, role=Role.PATIENT)  # the only link: nobody holds the programming lock
    assert isinstance(reply, Nack)
    assert (reply.code, reply.rules) == (ErrorCode.ROLE_FORBIDDEN, ())  # not BUSY, not a safety rule
    assert pump.state == before  # refused before the transaction id was used
    # the same request from a clinician is not refused for the role
    clinician = answer(new_pump(programmed()), request_, 1, role=Role.CLINICIAN)
    assert not (isinstance(clinician, Nack) and clinician.code is ErrorCode.ROLE_FORBIDDEN)


@pytest.mark.parametrize("request_", NOT_FOR_PATIENTS, ids=_name)
def test_a_patients_programmer_refuses_to_send_what_is_not_the_patients(request_: Message) -> None:
    link = link_for(programmed(), Role.PATIENT)
    s = link.ready()
    assert s.state == "ready"
    # every sending method ends in _send, whose first step is the role check
    error = refused_before_sending(link, lambda: s._send(request_), SessionError)
    assert "may not send" in str(error) or "only the patient bolus" in str(error)


# --- the reply to the outstanding transaction --------------------------------------------------------------


@pytest.mark.parametrize("offset", [-1, 1])
@pytest.mark.parametrize("reply_kind", ["ack", "nack"])
def test_a_reply_to_another_transaction_is_not_taken_as_the_answer(offset: int, reply_kind: str) -> None:
    link = link_for(programmed())
    s = informed(link)
    sent = s.suspend(0, ack("STOP-002"))
    request = decode(sent[0])
    (genuine,) = [decode(c) for c in link.firmware.receive(link.link, sent[0], link.now)[link.link]]
    assert genuine.txn == request.txn
    assert isinstance(genuine.message, Ack)
    other: Message = (
        genuine.message
        if reply_kind == "ack"
        else Nack.refusing(request.message.TYPE, ErrorCode.SAFETY_RULE, "not this one", ("DOSE-001",))
    )
    # the same frame counter: only the transaction differs
    (ignored,) = s.receive(encode(other, txn=request.txn + offset, seq=genuine.seq))
    assert isinstance(ignored, Ignored)
    assert isinstance(ignored.error, RemoteProtocolError)
    assert "not outstanding" in str(ignored.error)
    assert (s.pending, s.state, s.pump.to_reread()) == (request.message, "commanding", [])
    # the answer to its own transaction is taken
    events = s.receive(encode(genuine.message, txn=genuine.txn, seq=genuine.seq + 1))
    assert [type(e) for e in events] == [Replied]
    assert (s.pending, s.state) == (None, "ready")
    assert not [e for e in events if isinstance(e, Refused)]


# --- reservoir alarms --------------------------------------------------------------------------------------


IN_MODE = {"infusing": programmed, "suspended": suspended, "mri": in_mri}


@pytest.mark.parametrize(
    ("reservoir_ul", "code"), [(1_500, AlarmCode.LOW_RESERVOIR), (0, AlarmCode.EMPTY_RESERVOIR)]
)
@pytest.mark.parametrize("mode", list(IN_MODE))
def test_reservoir_alarms_sound_whatever_the_mode(mode: str, reservoir_ul: int, code: AlarmCode) -> None:
    state = replace(IN_MODE[mode](), reservoir_scaled=reservoir_ul * SCALE)
    assert mode_of(state) == mode
    active = conditions(state)
    assert code in active
    assert len(active & {AlarmCode.LOW_RESERVOIR, AlarmCode.EMPTY_RESERVOIR}) == 1
    pump = new_pump(state)
    announced = pump.tick(state.now)
    assert code in [n.alarm.code for n in announced]
    assert code in pump.status().alarms
