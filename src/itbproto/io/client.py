"""PumpClient: the typed async API integrators use, on any transport.

::

    async with PumpClient(await TcpTransport.connect("127.0.0.1", 7878), profile, drug, policy) as pump:
        status = await pump.status()
        await pump.program(prescription, confirm=lambda summary: Acknowledgement(summary.acknowledge, "dr"))
        async for alarm in pump.alarms():
            await pump.acknowledge_alarm(alarm.alarm_id)

It drives the library's :class:`~itbproto.core.machines.ProgrammingSession` (every check the programmer makes,
the two-step programming with read-back, refills, uncertainty) over a
:class:`~itbproto.io.transport.Transport`. One request at a time; a reader task takes everything the pump
sends, answers go to the request that waits, alarms to :meth:`alarms`. A reply that does not come in time is
never re-sent blindly: a delivery change is resolved by its transaction id (the status says whether the pump
took it, the pump's memory gives its answer), anything else is sent again with the same id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from types import TracebackType
from typing import Any, TypeVar

from itbproto.core.connection import Connection, Side
from itbproto.core.machines.session import (
    AlarmAnnounced,
    Mismatch,
    ProgrammingSession,
    Refused,
    Replied,
    Resolved,
    SessionEvent,
    Summary,
    Verified,
    WrongDevice,
)
from itbproto.core.safety import SafetyPolicy
from itbproto.core.security.pairing import PairedKey, ProgrammerPairing
from itbproto.core.therapy import DeviceProfile, Drug
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import (
    BolusKind,
    ErrorCode,
    Origin,
    PatientGroup,
    Phase,
    Procedure,
    Role,
    ScreeningResponse,
    WithdrawalRisk,
)
from itbproto.core.wire.fields import U32
from itbproto.core.wire.message import Message
from itbproto.errors import (
    CommandRefusedError,
    LinkClosedError,
    NotAppliedError,
    NotPairedError,
    SafetyViolation,
    SessionError,
    WrongDeviceError,
)
from itbproto.io.transport import Transport

__all__ = ["PumpClient"]

T = TypeVar("T", bound=Message)
_ANSWERS = (Replied, Refused, Verified, Mismatch, Resolved, WrongDevice)
_CLOSED = object()

#: seconds a client waiting only for alarms lets pass before it reads the status (a pump closes a session
#: that sends nothing for its idle time-out; specs/protocol.md §3)
KEEPALIVE_S = 300.0


class PumpClient:
    """A programmer's connection to one pump (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        profile: DeviceProfile | None,
        drug: Drug,
        policy: SafetyPolicy,
        *,
        profiles: Mapping[str, DeviceProfile] | None = None,
        role: Role = Role.CLINICIAN,
        name: str = "itbproto",
        timeout_s: float = 10.0,
        retries: int = 2,
        key: PairedKey | None = None,
        entropy: Callable[[int], bytes] = os.urandom,
        checks: bool = True,
    ) -> None:
        self.transport, self.name, self.timeout_s, self.retries = transport, name, timeout_s, retries
        self.key, self.entropy = key, entropy
        connection = Connection(Side.PROGRAMMER, mtu=transport.mtu, stream=transport.stream)
        self.session = ProgrammingSession(
            role=role,
            profile=profile,
            drug=drug,
            policy=policy,
            connection=connection,
            checks=checks,
            profiles=profiles,
        )
        self._answers: asyncio.Queue[SessionEvent | object] = asyncio.Queue()
        self._alarms: asyncio.Queue[m.AlarmRecord | object] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._waiting: asyncio.Timeout | None = None  # the time-out of the answer awaited now

    @classmethod
    def shipped(cls, transport: Transport, profile: str | None = None, **options: Any) -> PumpClient:
        """A client with the specs this package ships: the drug table, the rule catalogue and the device
        profile the pump reports (or only a pump of ``profile``; another is refused with
        :class:`~itbproto.errors.WrongDeviceError`); ``options``: as for the constructor."""
        from itbproto.io.specfiles import load_drug, load_profile, load_rules, profile_ids  # (read once)

        drug, policy = load_drug(), SafetyPolicy(load_rules())
        if profile is not None:
            return cls(transport, load_profile(profile), drug, policy, **options)
        profiles = {pid: load_profile(pid) for pid in profile_ids()}
        return cls(transport, None, drug, policy, profiles=profiles, **options)

    # --- the link ----------------------------------------------------------------------------------------

    async def __aenter__(self) -> PumpClient:
        try:
            await self.connect(self.key)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def pair(self, pin: str, serial: str | None = None) -> PairedKey:
        """Pair with the PIN the pump shows (SPAKE2, :mod:`itbproto.core.security.pairing`): the key to keep
        (see :mod:`itbproto.io.keystore`) and to connect with from then on; the role is this client's. The
        pump's ``serial`` binds the exchange; without it the pump is asked first (:meth:`identify`)."""
        self._start_reading()
        if serial is None:
            serial = (await self.identify()).serial
        pairing = ProgrammerPairing(pin, serial, self.session.role, entropy=self.entropy)
        reply = await self._reply(self.session.connection.send(pairing.start()), m.PairReply)
        result = await self._reply(self.session.connection.send(pairing.confirm(reply)), m.PairResult)
        return pairing.finish(result)

    async def identify(self) -> m.DeviceInfo:
        """Who the pump is (its serial, which pairing needs): its DeviceInfo for a Hello without a key. A pump
        that requires pairing answers it and opens no session (``paired`` set, specs/protocol.md §6); any
        other opens a plain session, which :meth:`connect` opens again."""
        self._start_reading()
        return await self._reply(self.session.identify(self.name), m.DeviceInfo)

    async def connect(self, key: PairedKey | None = None) -> m.DeviceInfo:
        """Open the session (with a paired ``key``: sealed, in the key's role) and read what the programmer's
        checks need. Without a key, a pump that requires pairing opens none:
        :class:`~itbproto.errors.NotPairedError` (pair first; its ``info`` says who the pump is)."""
        self._start_reading()
        nonce = self.entropy(16) if key is not None else bytes(16)
        info = await self._reply(self.session.open(self.name, key, nonce), m.DeviceInfo)
        if key is None and info.paired:
            detail = f"pair first: pump {info.serial} takes paired programmers only"
            raise NotPairedError(info, m.Nack.refusing(m.Hello.TYPE, ErrorCode.NOT_AUTHENTICATED, detail))
        await self._request(self.session.authenticated())
        await self.refresh()
        return info

    async def refresh(self) -> None:
        """Read again what the checks need: status, patient record, prescription (if any), history."""
        await self._request(self.session.read_status())
        await self._request(self.session.read_patient_record())
        status = self.session.pump.status
        if status is not None and status.prescription_id:
            await self._request(self.session.read_prescription())
        await self._request(self.session.read_history())

    def _start_reading(self) -> None:
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())

    async def close(self) -> None:
        """Close the link (end the session first with :meth:`end` to have the pump log it)."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, LinkClosedError):
                await self._reader
        await self.transport.close()

    # --- reads ----------------------------------------------------------------------------------------------

    async def status(self) -> m.StatusReport:
        return await self._reply(self.session.read_status(), m.StatusReport)

    async def alarm_list(self) -> tuple[m.AlarmRecord, ...]:
        """The active alarms."""
        return (await self._reply(self.session.read_alarms(), m.AlarmList)).alarms

    async def thresholds(self) -> m.AlarmThresholds:
        return (await self._reply(self.session.read_thresholds(), m.ThresholdsReport)).thresholds

    async def prescription_report(self) -> m.PrescriptionReport:
        """The prescription in force (the pump's copy), its id and when it was committed."""
        return await self._reply(self.session.read_prescription(), m.PrescriptionReport)

    async def patient_record(self) -> m.PatientRecordReport:
        """The patient record in force and its changes of the last 7 days."""
        return await self._reply(self.session.read_patient_record(), m.PatientRecordReport)

    async def history(self) -> m.TherapyHistory:
        """The last 24 h as the rules see them: delivery at the catheter tip, dose changes, boluses."""
        return await self._reply(self.session.read_history(), m.TherapyHistory)

    async def log_size(self) -> int:
        """How many entries the pump has logged since it was made (the next entry's index)."""
        return (await self._reply(self.session.read_events(U32.hi, 1), m.EventLogPage)).total

    async def events(
        self, progress: Callable[[int, int], None] | None = None, first: int = 0
    ) -> list[m.EventRecord]:
        """The event log from entry ``first`` (as far back as the pump keeps it) up to the entries it held
        when reading began (however fast it grows meanwhile), a page at a time; ``progress(read, total)``
        after each page."""
        entries: list[m.EventRecord] = []
        end: int | None = None
        while True:
            first = entries[-1].index + 1 if entries else first
            page = await self._reply(self.session.read_events(first), m.EventLogPage)
            end = page.total if end is None else end
            entries += [e for e in page.events if e.index < end]
            if progress is not None and entries:
                progress(len(entries), end - entries[0].index)
            if not page.events or page.events[-1].index + 1 >= end:
                return entries

    # --- programming ----------------------------------------------------------------------------------------

    async def program(
        self, prescription: m.Prescription, confirm: Callable[[Summary], m.Acknowledgement | None]
    ) -> m.Prescription:
        """Check, stage, show the summary to ``confirm`` (None: the user declined), commit, read back. A
        commit not made (refused, or not acknowledging what the summary named) discards the draft."""
        await self._reread()
        self.session.draft(prescription)
        self.session.check()
        await self._request(self.session.send_stage())
        summary = self.session.summary
        assert summary is not None  # staged: the pump computed it
        ack = confirm(summary)
        if ack is None:
            self.session.cancel_draft()
            raise NotAppliedError("the user did not confirm the summary")
        try:
            await self._request(self.session.confirm_summary(summary.digest, ack))
        except (CommandRefusedError, SessionError):  # not committed: the draft goes, the session is ready
            if self.session.state == "awaiting_confirmation":
                self.session.cancel_draft()
            raise
        for event in await self._request(self.session.verify()):
            if isinstance(event, Mismatch):
                raise NotAppliedError(f"the pump holds another prescription than confirmed: {event.found}")
        return prescription

    async def set_rate(self, rate_ul_day: int, ack: m.Acknowledgement = m.NO_ACK) -> m.Ack:
        return await self._command(lambda: self.session.set_rate(rate_ul_day, ack), m.Ack)

    async def bolus(
        self, kind: BolusKind, volume_ul: int, duration_s: int, ack: m.Acknowledgement = m.NO_ACK
    ) -> m.BolusStarted:
        return await self._command(
            lambda: self.session.start_bolus(kind, volume_ul, duration_s, ack), m.BolusStarted
        )

    async def cancel_bolus(self, bolus_id: int) -> m.BolusCancelled:
        """Stop a running bolus: what it delivered and what it did not."""
        return await self._command(lambda: self.session.cancel_bolus(bolus_id), m.BolusCancelled)

    async def suspend(self, duration_s: int, ack: m.Acknowledgement = m.NO_ACK) -> m.Ack:
        return await self._command(lambda: self.session.suspend(duration_s, ack), m.Ack)

    async def resume(self, ack: m.Acknowledgement = m.NO_ACK) -> m.Ack:
        return await self._command(lambda: self.session.resume(ack), m.Ack)

    async def refill(
        self,
        withdrawn_ul: int,
        volume_ul: int,
        concentration_ug_ml: int,
        *,
        bridge: bool = False,
        ack: m.Acknowledgement = m.NO_ACK,
    ) -> m.Ack:
        """Begin, record what was withdrawn, stage the new drug, confirm it again (two-step confirmation).
        A step refused (or an error) after the refill began aborts it, on both sides, before raising."""
        await self._reread()
        await self._request(self.session.start_refill())
        try:
            await self._request(self.session.record_residual(withdrawn_ul))
            await self._reread()
            await self._request(self.session.stage_drug(volume_ul, concentration_ug_ml))
            confirm = self.session.confirm_refill_drug
            return await self._command(
                lambda: confirm(volume_ul, concentration_ug_ml, bridge=bridge, ack=ack), m.Ack
            )
        except (CommandRefusedError, SafetyViolation, SessionError):
            if self.session.pump.refill is not None and self.session.pending is None:
                await self._request(self.session.abort_refill())
            raise

    async def set_patient_record(
        self,
        group: PatientGroup,
        origin: Origin,
        phase: Phase,
        risks: frozenset[WithdrawalRisk] = frozenset(),
    ) -> m.Ack:
        """The category the limits read, the withdrawal risks and the phase (PHASE-001)."""
        return await self._command(
            partial(self.session.set_patient_record, group, origin, phase, risks), m.Ack
        )

    async def record_screening_response(self, response: ScreeningResponse, effect_s: int = 0) -> m.Ack:
        """What the last screening dose did (BOL-002, SCREEN-001)."""
        return await self._command(partial(self.session.record_screening_response, response, effect_s), m.Ack)

    async def record_procedure(self, procedure: Procedure, catheter_volume_ul: int = 0) -> m.Ack:
        """Surgery on the pump or catheter: the new path holds saline until primed (never refused)."""
        return await self._command(
            partial(self.session.record_procedure, procedure, catheter_volume_ul), m.Ack
        )

    async def begin_mri(self, emptied_ul: int, ack: m.Acknowledgement = m.NO_ACK) -> m.Ack:
        """Before a scan: delivery stops (a valve-gated pump emptied first: MRI-001, MRI-002)."""
        return await self._command(lambda: self.session.begin_mri(emptied_ul, ack), m.Ack)

    async def end_mri(self) -> m.Ack:
        """After the scan: the pump stays stopped until resumed (RESTART-001)."""
        return await self._command(self.session.end_mri, m.Ack)

    async def set_thresholds(self, thresholds: m.AlarmThresholds) -> m.Ack:
        return await self._command(lambda: self.session.set_thresholds(thresholds), m.Ack)

    async def set_clock(self, device_time: int) -> m.Ack:
        return await self._command(lambda: self.session.set_clock(device_time), m.Ack)

    async def end(self, ack: m.Acknowledgement = m.NO_ACK) -> None:
        """End the session (the pump refuses to while nothing flows, unless STOP-001 is acknowledged)."""
        await self._reread()
        await self._request(self.session.end(ack))

    # --- alarms ---------------------------------------------------------------------------------------------

    async def alarms(self, keepalive_s: float = KEEPALIVE_S) -> AsyncIterator[m.AlarmRecord]:
        """Alarms as the pump announces them (and again, for critical ones, until acknowledged); while none
        comes, the status is read every ``keepalive_s`` so that the session stays open."""
        while True:
            try:
                async with asyncio.timeout(keepalive_s):
                    alarm = await self._alarms.get()
            except TimeoutError:
                await self.status()
                continue
            if alarm is _CLOSED:
                return
            assert isinstance(alarm, m.AlarmRecord)
            yield alarm

    async def acknowledge_alarm(self, alarm_id: int) -> m.Ack:
        return await self._reply(self.session.acknowledge_alarm(alarm_id), m.Ack)

    async def silence_alarm(self, alarm_id: int, duration_s: int) -> m.Ack:
        return await self._reply(self.session.silence_alarm(alarm_id, duration_s), m.Ack)

    # --- internals ------------------------------------------------------------------------------------------

    async def _command(self, send: Callable[[], list[bytes]], kind: type[T]) -> T:
        """A command the programmer checks: what a change made out of date is read again first."""
        await self._reread()
        return await self._reply(send(), kind)

    async def _reread(self) -> None:
        if self.session.checks and self.session.pump.to_reread():
            await self.refresh()

    async def _reply(self, chunks: list[bytes], kind: type[T]) -> T:
        for event in await self._request(chunks):
            if isinstance(event, Replied | Resolved) and isinstance(event.reply, kind):
                return event.reply
        raise SessionError("client", "reply", self.session.state, f"no {kind.__name__} came back")

    async def _request(self, chunks: list[bytes]) -> list[SessionEvent]:
        """Send a request; what came back until its answer. A lost reply is resolved as the module says."""
        async with self._lock:
            for attempt in range(self.retries + 1):
                for chunk in chunks:
                    await self.transport.send(chunk)
                try:
                    events = await self._answer()
                except TimeoutError:
                    if self.session.pending is None and not self._answers.empty():
                        events = await self._answer()  # it came as the wait ended: taken meanwhile
                        return await self._settle(events)
                    if attempt == self.retries:
                        raise LinkClosedError(f"no answer after {self.retries + 1} tries") from None
                    chunks = self.session.response_lost()
                    continue
                return await self._settle(events)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _settle(self, events: list[SessionEvent]) -> list[SessionEvent]:
        """Resolve an uncertain command the status showed taken; raise for a refusal."""
        u = self.session.uncertain
        if u is not None and u.answered and self.session.pending is None:
            for chunk in self.session.resolve():
                await self.transport.send(chunk)
            events += await self._answer()
        for event in events:
            if isinstance(event, Refused):
                raise CommandRefusedError(event.nack)
            if isinstance(event, WrongDevice):
                raise WrongDeviceError(event.reason)
            if isinstance(event, Resolved) and event.applied is not True:
                if isinstance(event.reply, m.Nack) and event.applied is False:
                    raise CommandRefusedError(event.reply)
                raise NotAppliedError(
                    f"{type(event.request).__name__} was "
                    + (
                        "not applied"
                        if event.applied is False
                        else "forgotten by the pump: read its event log"
                    )
                )
        return events

    def expire(self) -> None:
        """The answer being waited for will not come (the link knows it lost it): stop waiting now, as when
        the time-out ends, so that the request is resolved at once. Nothing when nothing is awaited."""
        if self._waiting is not None:
            self._waiting.reschedule(asyncio.get_running_loop().time())

    async def _answer(self) -> list[SessionEvent]:
        events: list[SessionEvent] = []
        try:
            async with asyncio.timeout(self.timeout_s) as self._waiting:
                while not any(isinstance(e, _ANSWERS) for e in events):
                    event = await self._answers.get()
                    if event is _CLOSED:
                        raise LinkClosedError("the link to the pump is gone")
                    assert isinstance(event, SessionEvent)
                    events.append(event)
        finally:
            self._waiting = None
        while not self._answers.empty():  # what the same reply also said (Verified after its Replied)
            event = self._answers.get_nowait()
            if event is _CLOSED:
                self._answers.put_nowait(event)
                break
            assert isinstance(event, SessionEvent)
            events.append(event)
        return events

    async def _read(self) -> None:
        try:
            while True:
                for event in self.session.receive(await self.transport.receive()):
                    if isinstance(event, AlarmAnnounced):
                        self._alarms.put_nowait(event.alarm)
                    else:
                        self._answers.put_nowait(event)
        except LinkClosedError:
            self.session.disconnected()
        finally:
            self._answers.put_nowait(_CLOSED)
            self._alarms.put_nowait(_CLOSED)
