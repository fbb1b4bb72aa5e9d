"""``itbemu demo``: the emulator served over TCP, a scripted clinical session against it through the bytes,
the pump's event log read back over the protocol, and years of therapy simulated into a plot.

The server runs on a virtual clock that the script moves (a day, three weeks), so alarms come when they
would and the run takes seconds. Everything the session does goes through the library's programmer, the
stream framing of specs/protocol.md §3 and a real socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from itbemu.clock import VirtualClock
from itbemu.device import START, Emulator, new_therapy
from itbemu.faults import DeviceFault
from itbemu.plot import plot
from itbemu.server import TcpServer
from itbemu.simulate import simulate
from itbemu.store import Store
from itbemu.tcpsession import TcpSession
from itbproto.display import describe
from itbproto.errors import SafetyViolation
from itbproto.machines import AlarmAnnounced, Refused, Replied, SessionEvent, Verified
from itbproto.safety import SafetyPolicy
from itbproto.specfiles import load_drug, load_prescription, load_profile, load_rules, specs_dir
from itbproto.therapy import SCALE
from itbproto.wire import Acknowledgement, EventLogPage

__all__ = ["run_demo"]

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "examples" / "prescriptions"


def _prescription(name: str) -> Path:
    """An example prescription (from a source checkout; an installed package has its own copy)."""
    for folder in (EXAMPLES, specs_dir().parent / "examples" / "prescriptions"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"examples/prescriptions/{name}")


def _new_pump(store: Store, policy: SafetyPolicy) -> Emulator:
    therapy = new_therapy(
        load_profile("itb-20"), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
    )
    return Emulator.create(therapy, policy, serial="EMU-DEMO", store=store)


def _said(events: list[SessionEvent]) -> str:
    if any(isinstance(event, Verified) for event in events):
        return "read back and verified: the pump holds what was confirmed"
    for event in events:
        if isinstance(event, Refused):
            return f"refused: {event.nack.code.name} {', '.join(event.nack.rules)} {event.nack.detail}"
        if isinstance(event, Replied):
            return ", ".join(f"{k} {v}" for k, v in describe(event.reply)) or type(event.reply).__name__
    return "(no answer)"


async def _session(server: TcpServer, clock: VirtualClock, say: Callable[[str], None]) -> None:
    policy, profile, drug = server.emulator.pump.policy, load_profile("itb-20"), load_drug()
    c = await TcpSession.connect((server.host, server.port), profile, drug, policy, client="itbemu demo")
    try:
        await _script(server, clock, c, say)
    finally:
        await c.close()


def _status(c: TcpSession) -> str:
    status = c.session.pump.status
    if status is None:
        return "?"
    rows = dict(describe(status))
    keys = ("mode", "reservoir_ul", "rate_ul_day", "delivered_24h_ng", "battery_days", "alarms")
    return ", ".join(f"{key} {rows[key]}" for key in keys)


async def _script(server: TcpServer, clock: VirtualClock, c: TcpSession, say: Callable[[str], None]) -> None:
    s = c.session

    async def tell(label: str, chunks: list[bytes]) -> None:
        say(f"{label:<28}{_said(await c.exchange(chunks))}")

    async def acknowledge(events: list[SessionEvent]) -> None:
        for event in events:
            if isinstance(event, AlarmAnnounced):
                alarm = event.alarm
                day = (alarm.raised_at - START) / SCALE
                say(f"{'alarm':<28}{alarm.code.name} ({alarm.severity.name.lower()}) raised on day {day:.3f}")
                await tell("  acknowledged", s.acknowledge_alarm(alarm.alarm_id))

    await c.refresh()
    say(f"{'status':<28}{_status(c)}")
    s.draft(load_prescription(_prescription("continuous-400ug.toml")))
    s.check()
    await c.exchange(s.send_stage())
    assert s.summary is not None
    say(f"{'prescription staged':<28}{s.summary.daily_dose_ng // 1000} µg/day: the clinician confirms it")
    await c.exchange(
        s.confirm_summary(s.summary.digest, Acknowledgement(rules=s.summary.acknowledge, by="dr"))
    )
    await tell("  committed", s.verify())

    clock.advance_to(clock.now() + SCALE)  # a day later: the titration step
    await server.catch_up()
    await c.refresh()
    await tell("titration +10 %", s.set_rate(880))
    await c.refresh()
    try:
        s.set_rate(968)
    except SafetyViolation as refused:
        rules = ", ".join(refused.rule_ids)
        say(f"{'again the same day':<28}the programmer refuses ({rules}), nothing is sent")

    clock.advance_to(clock.now() + 18 * SCALE)  # the reservoir runs low on its own day
    await server.catch_up()
    await acknowledge(await c.unasked())

    await c.refresh()
    assert s.pump.status is not None
    left = s.pump.status.reservoir_ul
    await tell("refill", s.start_refill())
    await tell(f"  {left} µL withdrawn", s.record_residual(left))
    await tell("  20 mL of 500 µg/mL staged", s.stage_drug(20_000, 500))
    await tell("  confirmed again", s.confirm_refill_drug(20_000, 500))

    await server.inject(DeviceFault("motor-stall"))
    await acknowledge(await c.unasked())
    await server.inject(DeviceFault("motor-recover"))
    await c.refresh()
    say(f"{'status':<28}{_status(c)}")

    say("event log (read over the protocol, a page at a time)")
    first, total = 0, 1
    while first < total:
        (page,) = [e.reply for e in await c.exchange(s.read_events(first)) if isinstance(e, Replied)]
        assert isinstance(page, EventLogPage)
        total = page.total
        for entry in page.events:
            day, detail = (entry.at - START) / SCALE, f" {entry.detail}" if entry.detail else ""
            what = f"{entry.code.name:<22} txn {entry.txn:<3} {entry.value}{detail}"
            say(f"  #{entry.index:<3} day {day:7.3f}  {what}")
        first += max(len(page.events), 1)
    await c.exchange(s.end())


def run_demo(out: Path, days: int = 3_650, say: Callable[[str], None] = print) -> Path:
    """Run the demo; the plot is written to ``out``/simulation.png, which is returned."""
    out.mkdir(parents=True, exist_ok=True)
    store_path = out / "pump.db"
    for stale in out.glob("pump.db*"):
        stale.unlink()
    policy = SafetyPolicy(load_rules())
    clock = VirtualClock(START)

    async def serve() -> None:
        with Store(store_path) as store:
            server = TcpServer(_new_pump(store, policy), clock)
            host, port = await server.start()
            say(f"itbemu: pump EMU-DEMO (itb-20) on tcp://{host}:{port}, store {store_path}")
            try:
                await _session(server, clock, say)
            finally:
                server.close()
                await server.wait_closed()

    asyncio.run(serve())
    say("")
    say(f"simulation: {days} days of a 4-step flex schedule, refilled every 60 days (virtual clock)")
    sim = simulate(
        days=days,
        profile=load_profile("itb-20"),
        drug=load_drug(),
        policy=policy,
        prescription=load_prescription(_prescription("flex-4-step.toml")),
        refill_every=60,
    )
    for key, value in sim.summary().items():
        if value is not None:
            say(f"  {key:>22}: {value}")
    title = f"{days} days, profile itb-20, flex 4 steps, refills every 60 days"
    path = plot(sim, out / "simulation.png", title)
    say(f"the plot is at {path.resolve()}")
    return path
