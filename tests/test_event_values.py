"""Issue 26: specs/protocol.md §8's table of what each event entry holds agrees with what the pump logs for
every request it applies (the handler's event code and the request field ``event_value`` takes)."""

from __future__ import annotations

import re

from conftest import ROOT
from itbproto.core.machines.pump.handlers import HANDLERS, event_value
from itbproto.core.wire import messages as m
from itbproto.core.wire.enums import EventCode, Role
from itbproto.core.wire.fields import field_specs
from itbproto.core.wire.message import Message
from itbproto.tools.samples import SAMPLES

ROW = re.compile(r"^\s*\| `([A-Z_]+)` \| (.*?) \| (.*?) \| (.*?) \| (.*?) \|$")


def _rows() -> list[tuple[str, str, str, str, str]]:
    text = (ROOT / "specs" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("**What each entry holds**") :]
    section = section[: section.index("\n- ")]
    rows = []
    for line in section.splitlines():
        if match := ROW.match(line):
            code, when, txn, value, detail = match.groups()
            rows.append((code, when, txn, value, detail))
    return rows


def _codes(handler_event: object, request: type[Message]) -> list[EventCode]:
    if isinstance(handler_event, EventCode):
        return [handler_event]
    assert request is m.SessionEnd
    return [EventCode.SESSION_ENDED, EventCode.SESSION_ENDED_STOPPED]


def test_every_event_code_has_a_row() -> None:
    assert {code for code, *_ in _rows()} == {code.name for code in EventCode}


def test_every_applied_request_logs_what_the_table_says() -> None:
    rows = _rows()
    for request, handler in HANDLERS.items():
        if handler.event is None:
            continue
        fields = [spec.name for spec in field_specs(request)]
        for code in _codes(handler.event, request):
            (row,) = [r for r in rows if r[0] == code.name and f"`{request.__name__}` accepted" in r[1]]
            _, _, txn, value, _ = row
            assert txn == "the request's"
            sample = SAMPLES.get(request.TYPE)
            picked = [
                name for name in fields if sample is not None and getattr(sample, name, None) is not None
            ]
            if value == "0":
                assert sample is None or event_value(sample) == 0, (code, value)
            else:
                name = value.split("`")[1]
                assert name in picked, (code, value)
                assert sample is None or event_value(sample) == int(getattr(sample, name)), (code, value)


def test_the_role_values_in_the_table() -> None:
    (row,) = [r for r in _rows() if r[0] == "SESSION_STARTED"]
    assert all(f"{int(role)} {role.name.lower()}" in row[3] for role in Role)
