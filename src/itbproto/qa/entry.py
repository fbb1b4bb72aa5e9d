"""The pytest plugin's entry point (``pytest11``): it needs nothing but pytest.

pytest loads it in every project where itbproto is installed. It adds the QA suite's ``--itb-*`` options and
the ``rule`` marker, and registers the suite itself (:mod:`itbproto.qa.plugin`) only where the ``qa`` extra
(hypothesis) is installed. Without the extra, a run that asks for the suite ends with one line saying what to
install, and any other test run is left alone.
"""

from __future__ import annotations

import importlib

import pytest

__all__ = ["INSTALL", "pytest_addoption", "pytest_configure"]

#: what a run of the suite without its extra is told
INSTALL = "the itbproto QA suite needs its extra: pip install 'itbproto[qa]'"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("itbproto", "itbproto QA safety suite")
    group.addoption("--itb-target", default="inproc", help="inproc, tcp://HOST:PORT or ble://NAME")
    group.addoption("--itb-profile", choices=("quick", "thorough"), default="quick", help="how much to run")
    group.addoption("--itb-pin", default=None, help="the PIN the pump shows, to pair (sealed sessions)")
    group.addoption("--itb-device", default="itb-20", help="the pump's device profile (specs/profiles/)")
    group.addoption("--itb-report", default=None, help="write the per-rule report as JSON to this file")
    group.addoption(
        "--itb-db",
        default=None,
        help="hypothesis' example database shared by QA machines (a failure found on one replays on the "
        "others): a directory, or a redis server redis://HOST:PORT/DB (the redis extra); "
        "default ./.hypothesis",
    )
    group.addoption(
        "--itb-shard",
        default="1/1",
        metavar="I/N",
        help="run shard I of N (1 <= I <= N; one job each, on any runner): the stateful searches get "
        "seeds of their own, the boundary probes run on shard 1 (itbproto qa-report merge adds reports up)",
    )
    group.addoption(
        "--itb-policy",
        default=None,
        help="the pump's safety policy, a TOML file of tightened parameters (RULE-ID.param = value); "
        "in-process the probes run under the catalog's defaults and under every parameter a notch tighter",
    )
    group.addoption(
        "--itb-shards",
        type=int,
        default=1,
        help="run the stateful suite as this many independent tests (spread them with pytest-xdist: -n auto)",
    )
    group.addoption(
        "--itb-defect",
        default=None,
        help="inproc only: a seeded defect the suite must catch (test builds: ITBEMU_ALLOW_DEFECTS=1)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "rule(*ids): the test proves the safety rules with these IDs (specs/safety-rules.toml)"
    )
    if not _importable("hypothesis"):
        if _asks_for_the_suite(config):
            raise pytest.UsageError(INSTALL)
        return
    from itbproto.qa import plugin

    config.pluginmanager.register(plugin, "itbproto.qa.plugin")


def _importable(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def _asks_for_the_suite(config: pytest.Config) -> bool:
    """The run names the suite's package or sets one of its options."""
    args = [str(arg) for arg in config.invocation_params.args]
    return any(arg.startswith("--itb-") or "itbproto.qa" in arg or "itbproto/qa" in arg for arg in args)
