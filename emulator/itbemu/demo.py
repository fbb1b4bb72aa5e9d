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
from itbproto.core.machines import Summary
from itbproto.core.safety import SafetyPolicy
from itbproto.core.therapy import SCALE
from itbproto.core.wire import Acknowledgement, StatusReport
from itbproto.core.wire.message import Message
from itbproto.errors import SafetyViolation
from itbproto.io.client import PumpClient
from itbproto.io.specfiles import load_drug, load_prescription, load_profile, load_rules
from itbproto.io.transport import TcpTransport
from itbproto.tools.display import describe
from itbproto.tools.extras import install_hint

__all__ = ["run_demo"]

HERE = Path(__file__).resolve().parent
#: the example prescriptions in an installed package (the wheel copies examples/prescriptions here)
PACKAGED = HERE / "_prescriptions"
#: ... and in a source checkout
CHECKOUT = HERE.parent.parent / "examples" / "prescriptions"


def prescription(name: str) -> Path:
    """An example prescription: the installed package's copy, or a source checkout's examples/."""
    for folder in (PACKAGED, CHECKOUT):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"examples/prescriptions/{name} (neither in the package nor in a checkout)")


def _new_pump(store: Store, policy: SafetyPolicy) -> Emulator:
    therapy = new_therapy(
        load_profile("itb-20"), load_drug(), concentration_ug_ml=500, screening_dose_ng=300_000
    )
    return Emulator.create(therapy, policy, serial="EMU-DEMO", store=store)


def _said(reply: Message) -> str:
    return ", ".join(f"{k} {v}" for k, v in describe(reply)) or type(reply).__name__


def _status(status: StatusReport) -> str:
    rows = dict(describe(status))
    keys = ("mode", "reservoir_ul", "rate_ul_day", "delivered_24h_ng", "battery_days", "alarms")
    return ", ".join(f"{key} {rows[key]}" for key in keys)


async def _session(server: TcpServer, clock: VirtualClock, say: Callable[[str], None]) -> None:
    transport = await TcpTransport.connect(server.host, server.port)
    policy, profile, drug = server.emulator.pump.policy, load_profile("itb-20"), load_drug()
    async with PumpClient(transport, profile, drug, policy, name="itbemu demo") as pump:
        await _script(server, clock, pump, say)


async def _script(
    server: TcpServer, clock: VirtualClock, pump: PumpClient, say: Callable[[str], None]
) -> None:
    def line(label: str, text: str) -> None:
        say(f"{label:<28}{text}")

    async def acknowledge_next_alarm() -> None:
        alarm = await anext(aiter(pump.alarms()))
        day = (alarm.raised_at - START) / SCALE
        line("alarm", f"{alarm.code.name} ({alarm.severity.name.lower()}) raised on day {day:.3f}")
        line("  acknowledged", _said(await pump.acknowledge_alarm(alarm.alarm_id)))

    def confirm(summary: Summary) -> Acknowledgement:
        line("prescription staged", f"{summary.daily_dose_ng // 1000} µg/day: the clinician confirms it")
        return Acknowledgement(rules=summary.acknowledge, by="dr")

    line("status", _status(await pump.status()))
    await pump.program(load_prescription(prescription("continuous-400ug.toml")), confirm)
    line("  committed", "read back and verified: the pump holds what was confirmed")

    clock.advance_to(clock.now() + SCALE)  # a day later: the titration step
    await server.catch_up()
    line("titration +10 %", _said(await pump.set_rate(880)))
    try:
        await pump.set_rate(968)
    except SafetyViolation as refused:
        line("again the same day", f"the programmer refuses ({', '.join(refused.rule_ids)}), nothing is sent")

    clock.advance_to(clock.now() + 18 * SCALE)  # the reservoir runs low on its own day
    await server.catch_up()
    await acknowledge_next_alarm()

    left = (await pump.status()).reservoir_ul
    line("refill", f"{left} µL withdrawn, 20 mL of 500 µg/mL staged and confirmed again")
    line("  confirmed", _said(await pump.refill(left, 20_000, 500)))

    await server.inject(DeviceFault("motor-stall"))
    await acknowledge_next_alarm()
    await server.inject(DeviceFault("motor-recover"))
    line("status", _status(await pump.status()))

    say("event log (read over the protocol, a page at a time)")
    for entry in await pump.events():
        day, detail = (entry.at - START) / SCALE, f" {entry.detail}" if entry.detail else ""
        what = f"{entry.code.name:<22} txn {entry.txn:<3} {entry.value}{detail}"
        say(f"  #{entry.index:<3} day {day:7.3f}  {what}")
    await pump.end()


def run_demo(out: Path, days: int = 3_650, say: Callable[[str], None] = print) -> Path | None:
    """Run the demo; the plot is written to ``out``/simulation.png, which is returned (None: matplotlib,
    the ``emulator`` extra, is not installed; the demo says so in one line)."""
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
        prescription=load_prescription(prescription("flex-4-step.toml")),
        refill_every=60,
    )
    for key, value in sim.summary().items():
        if value is not None:
            say(f"  {key:>22}: {value}")
    title = f"{days} days, profile itb-20, flex 4 steps, refills every 60 days"
    try:
        path = plot(sim, out / "simulation.png", title)
    except ModuleNotFoundError as exc:
        if (hint := install_hint(exc)) is None:
            raise
        say(f"no plot: {hint}")
        return None
    say(f"the plot is at {path.resolve()}")
    return path
