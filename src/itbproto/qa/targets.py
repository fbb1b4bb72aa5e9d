"""What the QA suite runs against: the emulator in this process, or a pump behind a ``tcp://`` or ``ble://``
target (``itbemu serve``, or a device). The suite reaches a target only through the protocol over a transport.

What a target can give the suite is in :attr:`Target.can` (see :data:`itbproto.qa.probes.NEEDS`): in-process,
a new pump for every example (``fresh``, ``screening``), device time (``clock``), hardware faults
(``faults``), pairing with the PIN it shows (``pairing``, by default) and several links (``links``). A remote
pump goes on as it is, on its own clock.
:class:`Tap` sits between a client and its transport: it keeps what the client sent (to replay it, as an
attacker would) and can lose what comes back (so that the client retries, as over a bad radio).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from itbproto.core.security import PairedKey
from itbproto.core.wire.enums import Role
from itbproto.core.wire.fragment import first_part
from itbproto.core.wire.frame import peek_header
from itbproto.core.wire.stream import StreamSplitter
from itbproto.errors import ItbError
from itbproto.io.transport import Transport, open_target

if TYPE_CHECKING:  # the emulator is imported when a pump is made, not with the plugin
    from itbemu import VirtualClock
    from itbemu.inprocess import InProcessHub
    from itbemu.store import Store

__all__ = ["DEFAULT_PIN", "InprocTarget", "RemoteTarget", "Tap", "Target", "target_from"]

#: the PIN the in-process pump shows unless told otherwise (``--itb-pin=`` empty: it does not pair)
DEFAULT_PIN = "482916"


async def pair(target: Target, role: Role) -> PairedKey | None:
    """Pair with the PIN the pump shows, in ``role``; None when it took no key (a wrong PIN, locked)."""
    from itbproto.io.client import PumpClient

    assert target.pin is not None
    if target.serial is None:  # the pump says its serial to a Hello without a key (specs/protocol.md §6)
        asking = PumpClient.shipped(await target.transport())
        try:
            target.serial = (await asking.identify()).serial
        finally:
            await asking.close()
    return await pair_with(target, target.pin, role)


async def pair_with(target: Target, pin: str, role: Role) -> PairedKey | None:
    from itbproto.io.client import PumpClient

    assert target.serial is not None
    client = PumpClient.shipped(await target.transport(), role=role, timeout_s=2.0, retries=0)
    try:
        return await client.pair(pin, target.serial)
    except ItbError:
        return None
    finally:
        await client.close()


class Target(Protocol):
    """A pump the suite can reach."""

    name: str
    #: True when the suite moves device time (:meth:`advance`)
    virtual_clock: bool
    #: the PIN the pump shows: the suite pairs and runs sealed sessions (None: plain sessions)
    pin: str | None
    #: False when a second link to the pump cannot be opened beside the first (one bumble hub host)
    parallel_links: bool
    #: the pump's serial, which pairing binds (None: asked of the pump)
    serial: str | None
    #: what the target can give the suite (itbproto.qa.probes.NEEDS)
    can: frozenset[str]
    #: the pump refuses a Hello without a paired key
    requires_pairing: bool
    #: the keys paired with this pump, by role
    keys: dict[Role, PairedKey]
    #: the pump's tightened safety parameters (in-process: the next pump is built with them)
    policy: dict[str, int]

    async def transport(self) -> Transport:
        """A new link to the pump."""
        ...

    async def fresh(self, screening: bool = False, profile: str | None = None, stored: bool = False) -> None:
        """A new pump where the target can make one (in-process; a new patient in screening if
        ``screening``; of the device ``profile`` if given; with a store it can restart from if ``stored``);
        otherwise the same pump goes on."""
        ...

    async def fault(self, kind: str, value: int = 0) -> None:
        """A hardware event (itbemu's fault kinds, or ``restart``; in-process only)."""
        ...

    def close(self) -> None:
        """Done with the target: what it holds is let go."""
        ...

    async def advance(self, seconds: int) -> None:
        """Let ``seconds`` of device time pass (virtual-clock targets only)."""
        ...


class InprocTarget:
    """The emulator in this process, on a virtual clock; a new pump for every :meth:`fresh`, which knows
    the keys of the programmers paired before (each role pairs once per target)."""

    name = "inproc"
    virtual_clock = True
    parallel_links = True
    serial: str | None = "QA-INPROC"

    def __init__(self, profile: str = "itb-20", pin: str | None = None, defect: str | None = None) -> None:
        self.profile, self.pin = profile, pin
        self.requires_pairing = pin is not None
        self.can = frozenset(
            {"fresh", "clock", "faults", "links", "screening", "restart", *(["pairing"] if pin else [])}
        )
        self.keys: dict[Role, PairedKey] = {}
        self.policy: dict[str, int] = {}
        self._hub: InProcessHub | None = None
        self._store: Store | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.clock: VirtualClock | None = None
        if defect is not None:  # itbemu's seeded defects (test builds only), in this process
            from itbemu.defects import seed

            seed(defect)

    async def fresh(self, screening: bool = False, profile: str | None = None, stored: bool = False) -> None:
        from itbemu import Emulator, VirtualClock
        from itbemu.device import START, new_therapy
        from itbemu.inprocess import InProcessHub
        from itbemu.store import Store
        from itbproto.core.safety import SafetyPolicy
        from itbproto.core.therapy import TherapyState
        from itbproto.io.specfiles import load_drug, load_profile, load_rules

        device, drug = load_profile(profile or self.profile), load_drug()
        if screening:  # a new pump for a new patient: nothing on record yet
            full = device.reservoir_capacity_ul
            therapy = TherapyState.new(
                now=START, profile=device, drug=drug, concentration_ug_ml=500, reservoir_ul=full
            )
        else:
            therapy = new_therapy(device, drug, concentration_ug_ml=500, screening_dose_ng=300_000)
        policy = SafetyPolicy(load_rules(), self.policy)
        self._close_store()
        if stored:  # its crash-safe store, in a directory of its own, so that it can be restarted
            self._dir = tempfile.TemporaryDirectory(prefix="itbproto-qa-")
            self._store = Store(Path(self._dir.name) / "pump.sqlite")
        emulator = Emulator.create(therapy, policy, serial=self.serial or "QA-INPROC", store=self._store)
        emulator.firmware.pin = self.pin
        emulator.firmware.require_pairing = self.requires_pairing
        for key in sorted(self.keys.values(), key=lambda k: k.key_id):  # paired with the pumps before: the
            emulator.pump.add_key(key, START)  # suite's programmers pair once (the PAIR probe pairs anew)
        emulator.advance_to(START)  # saved
        self.clock = VirtualClock(START)
        self._hub = InProcessHub(emulator, self.clock)

    async def fault(self, kind: str, value: int = 0) -> None:
        from itbemu.faults import DeviceFault

        assert self._hub is not None, "no pump yet: fresh() makes one"
        if kind == "restart":  # the pump switched off and on: what its store holds, on a new hub (links gone)
            from itbemu import Emulator
            from itbemu.inprocess import InProcessHub
            from itbproto.core.safety import SafetyPolicy
            from itbproto.io.specfiles import load_rules

            assert self._store is not None, "a restart needs fresh(stored=True)"
            assert self.clock is not None
            self._hub.emulator.store = None  # switched off: what its links do afterwards reaches no store
            emulator = Emulator.open(self._store, SafetyPolicy(load_rules(), self.policy))
            emulator.firmware.pin, emulator.firmware.require_pairing = self.pin, self.requires_pairing
            self._hub = InProcessHub(emulator, self.clock)
            return
        self._hub.inject(DeviceFault(kind, value))  # type: ignore[arg-type]

    def close(self) -> None:
        self._close_store()

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    async def transport(self) -> Transport:
        if self._hub is None:
            await self.fresh()
        assert self._hub is not None
        return self._hub.connect()

    async def advance(self, seconds: int) -> None:
        assert self._hub is not None, "no pump yet: fresh() makes one"
        assert self.clock is not None
        self.clock.advance_to(self.clock.now() + seconds)
        self._hub.advance(self.clock.now())


@dataclass
class RemoteTarget:
    """A pump behind ``tcp://HOST:PORT`` or ``ble://NAME``, on its own clock."""

    name: str
    pin: str | None = None
    serial: str | None = None
    virtual_clock: bool = False
    requires_pairing: bool = False  # not known: a pump that pairs may also take unpaired programmers
    keys: dict[Role, PairedKey] = field(default_factory=dict)
    policy: dict[str, int] = field(default_factory=dict)
    parallel_links: bool = field(init=False)
    can: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.parallel_links = not self.name.startswith("ble://")
        self.can = frozenset(
            [*(["links"] if self.parallel_links else []), *(["pairing"] if self.pin else [])]
        )

    async def transport(self) -> Transport:
        return await open_target(self.name)

    async def fresh(self, screening: bool = False, profile: str | None = None, stored: bool = False) -> None:
        return None

    async def fault(self, kind: str, value: int = 0) -> None:
        raise NotImplementedError(f"{self.name}: faults are injected in-process only")

    def close(self) -> None:
        return None

    async def advance(self, seconds: int) -> None:
        raise NotImplementedError(f"{self.name} runs on its own clock")


def target_from(
    spec: str, profile: str = "itb-20", pin: str | None = None, defect: str | None = None
) -> Target:
    """``inproc`` (with a seeded ``defect``, for testing the suite), ``tcp://HOST:PORT`` or ``ble://NAME``."""
    if spec == "inproc":  # it pairs unless told not to (an empty PIN)
        return InprocTarget(profile, DEFAULT_PIN if pin is None else (pin or None), defect)
    if defect is not None:
        raise ValueError(
            "--itb-defect seeds the in-process emulator; serve a remote one with itbemu --defect"
        )
    if spec.startswith(("tcp://", "ble://")):
        return RemoteTarget(spec, pin)
    raise ValueError(f"--itb-target: expected inproc, tcp://HOST:PORT or ble://NAME, got {spec!r}")


def _answers_a_request(chunk: bytes, fragmented: bool) -> bool:
    """A whole frame, or the first fragment of one, whose header carries a transaction id (an alarm's has
    none)."""
    frame = first_part(chunk) if fragmented else chunk
    header = None if frame is None else peek_header(frame)
    return header is not None and header.txn != 0


@dataclass
class Tap:
    """A transport that keeps what is sent and loses the next ``lose`` frames (or fragments) received.
    ``on_lost`` is told when a frame answering a request (its txn not 0), or its first fragment, was lost: the
    client need not sit out its time-out (:meth:`~itbproto.io.client.PumpClient.expire`)."""

    inner: Transport
    sent: list[bytes] = field(default_factory=list)
    lose: int = 0
    received: int = 0
    on_lost: Callable[[], None] | None = None
    stream: bool = field(init=False)
    mtu: int | None = field(init=False)
    _splitter: StreamSplitter = field(default_factory=StreamSplitter)
    _ready: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stream, self.mtu = self.inner.stream, self.inner.mtu

    async def send(self, data: bytes) -> None:
        self.sent.append(data)
        await self.inner.send(data)

    async def receive(self) -> bytes:
        while True:
            while not self._ready:
                data = await self.inner.receive()
                if not self.stream:
                    self._ready.append(data)
                    continue
                self._ready += [f for f in self._splitter.feed(data) if isinstance(f, bytes)]
            data = self._ready.pop(0)
            self.received += 1
            if self.lose:
                self.lose -= 1
                if self.on_lost is not None and _answers_a_request(data, self.mtu is not None):
                    self.on_lost()
                continue
            return data

    async def close(self) -> None:
        await self.inner.close()
