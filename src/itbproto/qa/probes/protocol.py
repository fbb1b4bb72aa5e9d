"""The protocol's own checks: TXN, DIGEST, ROLE, LOCK, REPLAY, PAIR."""

from __future__ import annotations

from dataclasses import replace

from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    BolusKind,
    ErrorCode,
    EventCode,
    Procedure,
    Role,
    ScreeningResponse,
)
from itbproto.core.wire.message import Message
from itbproto.qa.bench import Bench, Op, continuous, refused
from itbproto.qa.probes.common import (
    PATIENT,
    PATIENT_BOLUS_MAX,
    bolus,
    start,
)
from itbproto.qa.probes.registry import FIRST_LOCK_S, FREE_PINS, Hands, probe
from itbproto.qa.wire import Probe


@probe("TXN", "REFILL-001", needs=("fresh", "clock", "restart"))
async def a_restart_keeps_everything(b: Bench, hands: Hands) -> None:
    """Switched off and on, a pump keeps its therapy, its records, its transaction ids and the outcomes of
    its last commands (specs/protocol.md §5): everything read before reads the same after, the log goes on
    where it was, and the last command retried gets its stored answer."""
    await start(b, patient=PATIENT, max_bolus=PATIENT_BOLUS_MAX)
    await b.ok("BOL-001", b.command(bolus(BolusKind.CLINICIAN, 1, 3_600)), "a bolus over an hour")
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    change = m.SetThresholds(thresholds=replace(th, low_reservoir_days=th.low_reservoir_days + 1))
    first = await b.ok("TXN", b.command(change), "new thresholds")
    txn = b.link.last_command
    reads = (
        m.StatusRequest(),
        m.ReadPrescription(),
        m.ReadThresholds(),
        m.ReadPatientRecord(),
        m.ReadHistory(),
    )
    before = [await b.ask(r) for r in reads]
    alarms = await b.ask(m.AlarmListRequest())
    log = await b.events_from(0)
    await hands.restart()
    after = [await b.ask(r) for r in reads]
    for r, was, now in zip(reads, before, after, strict=True):
        b.expect("TXN", was == now, f"{type(r).__name__} before a restart {was}, after {now}")
    b.expect("TXN", await b.ask(m.AlarmListRequest()) == alarms, "the alarms after a restart")
    again = await b.events_from(0)
    b.expect(
        "TXN", again[: len(log)] == log, f"the log after a restart: {len(again)} entries, {len(log)} before"
    )
    b.expect(
        "TXN", b.info.last_txn >= txn, f"DeviceInfo.last_txn {b.info.last_txn} after a restart, {txn} before"
    )
    retried = await b.ask(change, txn)
    b.expect("TXN", retried == first, f"the last command retried after a restart: {retried}, first {first}")


#: how many command outcomes a pump remembers, at least (specs/protocol.md §5)
TXN_MEMORY = 16


@probe("TXN", needs=())
async def transactions(b: Bench, hands: Hands) -> None:
    """A retry gets the stored answer (applied once); an id used again with another body, an old id, an id
    too far ahead are refused and change nothing; a refused command uses its id."""
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    change = m.SetThresholds(thresholds=replace(th, low_reservoir_days=th.low_reservoir_days + 1))
    logged = await b.log_size()
    first = await b.ok("TXN", b.command(change), "new thresholds")
    txn = b.link.last_command
    again = await b.ask(change, txn)
    b.expect("TXN", again == first, f"the retry of transaction {txn} answered {again}, first {first}")
    applied = [
        e for e in await b.events_from(logged) if e.code is EventCode.THRESHOLDS_CHANGED and e.txn == txn
    ]
    b.expect("TXN", len(applied) == 1, f"transaction {txn} retried: {len(applied)} THRESHOLDS_CHANGED logged")
    other = m.SetThresholds(thresholds=th)

    def with_txn(n: int) -> Op:
        async def op(ack: m.Acknowledgement) -> Message:
            return await b.ask(other, n)

        return op

    reads = b.link.connection.last_txn
    await b.refuses("TXN", with_txn(txn), f"transaction {txn} again, other thresholds", ErrorCode.TXN_REUSED)
    await b.refuses("TXN", with_txn(txn - 1), "an older id (a read's)", ErrorCode.REPLAY)
    await b.refuses("TXN", with_txn(txn + 65_537), "an id 65,537 ahead", ErrorCode.BAD_TXN)
    b.link.connection.last_txn = reads
    s = await b.status()
    b.expect("TXN", s.last_txn == txn, f"refusals at steps 5-7 used ids: last_txn {s.last_txn}, not {txn}")
    first, first_txn = await b.ask(change), b.link.last_command  # then 15 other commands: all remembered
    for n in range(TXN_MEMORY - 1):
        await b.ask(
            m.SetThresholds(
                thresholds=th if n % 2 else replace(th, low_reservoir_days=th.low_reservoir_days + 1)
            )
        )
    again = await b.ask(change, first_txn)
    b.expect(
        "TXN", again == first, f"{TXN_MEMORY} commands on, transaction {first_txn} again answered {again}"
    )
    low = b.param("RES-001", "min_low_reservoir_ul") - 1
    nack = await b.ask(m.SetThresholds(thresholds=replace(th, low_reservoir_ul=low)))
    used = b.link.last_command
    s = await b.status()
    b.expect(
        "TXN", refused(nack) and s.last_txn == used, f"a refused command ({used}) left last_txn {s.last_txn}"
    )
    await b.ok("TXN", b.command(other), "the thresholds as they were")


@probe("DIGEST", needs=())
async def digests(b: Bench, hands: Hands) -> None:
    """A commit must name the staged prescription by stage id and digest; what is in force is exactly it."""
    s = await b.status()
    if not s.prescription_id:
        await b.ok(
            "SCREEN-001",
            b.program(
                continuous(
                    b.info.min_rate_ul_day,
                    s.concentration_ug_ml,
                    b.info.min_rate_ul_day * s.concentration_ug_ml,
                )
            ),
            "a first prescription",
        )
    current = (await b.read(m.ReadPrescription(), m.PrescriptionReport)).prescription
    staged = await b.stage(current)
    if not isinstance(staged, m.PrescriptionStaged):
        if b.advance_by is not None:  # a new pump: its first prescription staged again must be taken
            b.fail("DIGEST", f"staging the prescription in force again: {staged}")
        b.tally.unreachable.setdefault(
            "DIGEST", f"the pump refused to stage its prescription again: {staged}"
        )
        return
    assert isinstance(staged, m.PrescriptionStaged)
    codes = (ErrorCode.STALE_STAGE, ErrorCode.UNKNOWN_ID, ErrorCode.WRONG_STATE)
    for what, commit in (
        (
            "another digest",
            m.CommitPrescription(stage_id=staged.stage_id, digest=staged.digest ^ 1, ack=m.NO_ACK),
        ),
        (
            "another stage id",
            m.CommitPrescription(stage_id=staged.stage_id + 1, digest=staged.digest, ack=m.NO_ACK),
        ),
    ):
        await b.refuses("DIGEST", b.command(commit), f"a commit with {what}", *codes)
    import zlib

    payload = m.StagePrescription(prescription=current).CODEC.encode(
        m.StagePrescription(prescription=current)
    )
    b.expect(
        "DIGEST",
        staged.digest == zlib.crc32(payload),
        f"digest {staged.digest:#x}, CRC-32 of the staged payload {zlib.crc32(payload):#x}",
    )
    await b.ok(
        "DIGEST",
        b.command(m.CommitPrescription(stage_id=staged.stage_id, digest=staged.digest, ack=m.NO_ACK)),
        "the commit",
    )
    report = await b.read(m.ReadPrescription(), m.PrescriptionReport)
    b.expect(
        "DIGEST",
        report.prescription == current and report.prescription_id == staged.stage_id,
        f"in force: {report}",
    )
    await b.refuses(
        "DIGEST",
        b.command(m.CommitPrescription(stage_id=staged.stage_id, digest=staged.digest, ack=m.NO_ACK)),
        "the same stage committed twice",
        *codes,
    )


def clinicians_only(s: m.StatusReport, th: m.AlarmThresholds, record: m.PatientRecord) -> list[Message]:
    """A request of each command only a clinician may send (specs/protocol.md, the message table's roles
    column), with plausible fields: the role is checked before anything else about it."""
    rate = s.rate_ul_day or 100
    p = continuous(rate, s.concentration_ug_ml or 500, rate * (s.concentration_ug_ml or 500))
    return [
        m.StagePrescription(prescription=p),
        m.CommitPrescription(stage_id=1, digest=0, ack=m.NO_ACK),
        m.SetRate(rate_ul_day=rate, ack=m.NO_ACK),
        bolus(BolusKind.CLINICIAN, 1, 3_600),
        bolus(BolusKind.BRIDGE, 1, 3_600),
        bolus(BolusKind.PRIMING, 1, 3_600),
        m.BolusCancel(bolus_id=1),
        m.Suspend(duration_s=60, ack=m.NO_ACK),
        m.Resume(ack=m.NO_ACK),
        m.RefillBegin(),
        m.RefillResidual(refill_id=1, measured_ul=0),
        m.RefillStageDrug(refill_id=1, volume_ul=1, concentration_ug_ml=500),
        m.RefillConfirm(
            refill_id=1, volume_ul=1, concentration_ug_ml=500, digest=0, bridge=False, ack=m.NO_ACK
        ),
        m.RefillAbort(refill_id=1),
        m.SetPatientRecord(group=record.group, origin=record.origin, risks=record.risks, phase=record.phase),
        m.RecordScreeningResponse(response=ScreeningResponse.NONE, effect_s=0),
        m.MriBegin(emptied_ul=0, ack=m.NO_ACK),
        m.MriEnd(),
        m.SetThresholds(thresholds=th),
    ]


@probe("ROLE", needs=("links",))
async def roles(b: Bench, hands: Hands) -> None:
    """A patient sends only the patient bolus (and ends its session, quiets alarms); service keeps the device
    (the clock, procedures) and changes no therapy; a Hello again on an open link takes its new role. The
    role is checked before the programming lock (a BUSY where the spec says ROLE_FORBIDDEN is a finding)."""
    s = await b.status()
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    await b.ask(m.SetThresholds(thresholds=th))  # the clinician holds the programming lock
    record = await b.record()
    staff_only = [
        m.SetClock(device_time=s.device_time),
        m.RecordProcedure(procedure=Procedure.CATHETER_REVISION, catheter_volume_ul=0),
    ]
    forbidden = {
        Role.PATIENT: [*clinicians_only(s, th, record), *staff_only],
        Role.SERVICE: [*clinicians_only(s, th, record), bolus(BolusKind.PATIENT, 1, 3_600)],
    }
    for role, requests in forbidden.items():
        link = await hands.link(role)
        other = b.on(link)
        for request in requests:
            what = f"{role.name.lower()}: {type(request).__name__}"
            await other.refuses("ROLE", other.command(request), what, ErrorCode.ROLE_FORBIDDEN)
        read = await link.ask(m.StatusRequest())
        b.expect("ROLE", isinstance(read, m.StatusReport), f"a {role.name.lower()} reads the status: {read}")
        await link.close()
    # the same link, a Hello again in the patient's role: the patient's rights, not the clinician's
    await hands.hand_over()
    link = await hands.link(Role.CLINICIAN)
    link.role, link.key = Role.PATIENT, await hands.key_of(Role.PATIENT)
    again = await link.hello(bytes(range(16, 32)))
    b.expect("ROLE", isinstance(again, m.DeviceInfo), f"a Hello again as a patient: {again}")
    other = b.on(link)
    change = m.SetRate(rate_ul_day=s.rate_ul_day or 100, ack=m.NO_ACK)
    await other.refuses(
        "ROLE", other.command(change), "a link turned patient: SetRate", ErrorCode.ROLE_FORBIDDEN
    )
    await link.close()


@probe("LOCK", needs=("links",))
async def programming_lock(b: Bench, hands: Hands) -> None:
    """One programs at a time: another clinician reads and quiets alarms, its commands meet BUSY until the
    first one's session ends."""
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    await b.ok("LOCK", b.command(m.SetThresholds(thresholds=th)), "the first clinician commands")
    second = await hands.link(Role.CLINICIAN)
    other = b.on(second)
    await other.refuses(
        "LOCK", other.command(m.SetThresholds(thresholds=th)), "a second clinician commands", ErrorCode.BUSY
    )
    read = await second.ask(m.StatusRequest())
    b.expect("LOCK", isinstance(read, m.StatusReport), f"the second reads: {read}")
    await hands.hand_over()
    await other.ok(
        "LOCK", other.command(m.SetThresholds(thresholds=th)), "the second commands once the first ended"
    )
    await b.refuses(
        "LOCK", b.command(m.SetThresholds(thresholds=th)), "the first commands again", ErrorCode.BUSY
    )
    await second.close()


@probe("REPLY", needs=("fresh", "clock"))
async def small_frames(b: Bench, hands: Hands) -> None:
    """A programmer that takes only the smallest frames (Hello.max_frame 272) still reads the whole log and
    history: the pump cuts its pages to fit, never sends a larger frame (specs/protocol.md §6)."""
    await start(b)
    for _ in range(8):  # a log of some length, with details: acknowledged hazards
        await b.ok(
            "STOP-002", b.command(m.Suspend(duration_s=60, ack=m.NO_ACK)), "a minute off", ack=("STOP-002",)
        )
        await b.advance(120)
    whole = await b.events_from(0)
    small = Probe(await hands.transport(), key=await hands.key_of(Role.CLINICIAN), max_frame=272)
    opened = await small.hello(bytes(range(32, 48)))
    b.expect("REPLY", isinstance(opened, m.DeviceInfo), f"a Hello with max_frame 272: {opened}")
    got: list[m.EventRecord] = []
    while len(got) < len(whole):
        page = await small.ask(m.EventLogRead(first=len(got), count=m.MAX_EVENTS_PER_PAGE))
        b.expect(
            "REPLY", isinstance(page, m.EventLogPage) and bool(page.events), f"a page for 272 bytes: {page}"
        )
        assert isinstance(page, m.EventLogPage)
        got += page.events
    b.expect("REPLY", got[: len(whole)] == whole, "the log read 272 bytes at a time differs")
    history = await small.ask(m.ReadHistory())
    b.expect("REPLY", isinstance(history, m.TherapyHistory), f"the history for 272 bytes: {history}")
    b.expect(
        "REPLY", small.largest <= 272, f"a frame of {small.largest} bytes to a programmer that takes 272"
    )
    await small.close()


@probe("REPLAY", needs=())
async def replay(b: Bench, hands: Hands) -> None:
    """A command's frames sent again as captured are dropped unanswered and applied once."""
    th = (await b.read(m.ReadThresholds(), m.ThresholdsReport)).thresholds
    logged = await b.log_size()
    await b.ok("REPLAY", b.command(m.SetThresholds(thresholds=th)), "a command")
    txn, chunks = b.link.last_command, list(b.link.last_chunks)
    answered = await b.link.silent(chunks, b.link.timeout_s / 4)
    b.expect("REPLAY", not answered, f"the pump answered {answered} replayed frame(s)")
    dropped = [e for e in await b.events_from(logged) if e.code is EventCode.FRAME_DROPPED]
    b.expect("REPLAY", bool(dropped), "replayed frames dropped, and no FRAME_DROPPED logged")
    applied = [
        e for e in await b.events_from(logged) if e.code is EventCode.THRESHOLDS_CHANGED and e.txn == txn
    ]
    b.expect("REPLAY", len(applied) == 1, f"a replayed command logged {len(applied)} times")


@probe("PAIR", needs=("pairing",))
async def pairing(b: Bench, hands: Hands) -> None:
    """A wrong PIN pairs nothing and is logged; wrong PINs past the free ones lock pairing; an unknown key and
    a role its key does not carry open no session."""
    from itbproto.core.security import PairedKey

    assert hands.pin is not None
    wrong = "".join("1" if c != "1" else "2" for c in hands.pin)
    logged = await b.log_size()
    took = await hands.pair(wrong, Role.CLINICIAN)
    b.expect("PAIR", not took, "a wrong PIN paired")
    failed = [e for e in await b.events_from(logged) if e.code is EventCode.PAIRING_FAILED]
    b.expect("PAIR", [e.value for e in failed] == [1], f"a wrong PIN: {failed} logged, not the first failure")
    stranger = Probe(
        await hands.transport(), key=PairedKey(key_id=0xFFFF, role=Role.CLINICIAN, long_term=bytes(32))
    )
    answer = await stranger.hello()
    b.expect("PAIR", refused(answer, ErrorCode.NOT_AUTHENTICATED), f"a Hello with an unknown key: {answer}")
    await stranger.close()
    logged = await b.log_size()
    took = await hands.pair(hands.pin, Role.PATIENT)  # a new key, whatever was paired before
    paired = [e for e in await b.events_from(logged) if e.code is EventCode.PAIRED]
    b.expect("PAIR", took and [e.detail for e in paired] == ["patient"], f"a patient paired: {paired}")
    b.expect("PAIR", all(e.value > 0 for e in paired), f"a key id logged: {paired}")
    patient = await hands.link(Role.PATIENT)
    key = patient.key
    await patient.close()
    if key is not None:
        posing = Probe(await hands.transport(), role=Role.CLINICIAN, key=key)
        answer = await posing.hello()
        b.expect(
            "PAIR",
            refused(answer, ErrorCode.ROLE_FORBIDDEN),
            f"a patient's key opening a clinician session: {answer}",
        )
        await posing.close()
    if hands.requires_pairing:
        plain = Probe(await hands.transport())  # §6: who the pump is (its serial), and no session
        answer = await plain.hello()
        b.expect(
            "PAIR",
            isinstance(answer, m.DeviceInfo) and answer.paired,
            f"a Hello without a key, pairing required: {answer}, not DeviceInfo with paired set",
        )
        answer = await plain.ask(m.StatusRequest())
        b.expect(
            "PAIR",
            refused(answer, ErrorCode.NOT_AUTHENTICATED),
            f"a request after a Hello without a key, pairing required: {answer}",
        )
        await plain.close()
    if b.advance_by is None:
        return
    for _ in range(FREE_PINS + 1):  # specs/protocol.md §6: three free wrong PINs, then 30 s locked, doubling
        await hands.pair(wrong, Role.CLINICIAN)
    took = await hands.pair(hands.pin, Role.CLINICIAN)
    b.expect(
        "PAIR", not took, f"the right PIN taken while pairing is locked after {FREE_PINS + 1} wrong ones"
    )
    await b.advance(FIRST_LOCK_S)
    took = await hands.pair(hands.pin, Role.CLINICIAN)
    b.expect("PAIR", took, "the right PIN refused a minute after the lock began")
