"""The reference site's CLI page: rendered from both parsers, every subcommand and option on it.

(`make test` builds the whole site with ``mkdocs build --strict``; this checks the hook that a new subcommand
could otherwise slip past.)
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest
from docs.hooks import cli_reference

from conftest import ROOT


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every subcommand's parser, nested ones too, found through argparse itself."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _commands(sub)


@pytest.mark.parametrize("command", sorted(cli_reference.PARSERS))
def test_every_subcommand_and_option_is_in_the_reference(command: str) -> None:
    page = cli_reference.render(command)
    subs = list(_commands(cli_reference.PARSERS[command]()))
    assert len(subs) >= 4
    for sub in subs:
        heading = f"\n{'#' * (2 + sub.prog.count(' '))} `{sub.prog}`\n"
        assert heading in page, sub.prog
        section = page.split(heading, 1)[1].split("\n#", 1)[0]
        assert f"usage: {sub.prog}" in section
        for option in sub._option_string_actions:
            assert option in section, (sub.prog, option)


def test_the_cli_page_asks_for_both_commands() -> None:
    page = (ROOT / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    rendered = cli_reference.DIRECTIVE.sub(lambda match: cli_reference.render(match.group(1)), page)
    for command in cli_reference.PARSERS:
        assert f"<!-- cli: {command} -->" in page
        assert f"## `{command}`" in rendered
    assert "<!-- cli:" not in rendered


def test_help_does_not_depend_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    narrow = cli_reference.render("itbemu")
    monkeypatch.setenv("COLUMNS", "200")
    assert cli_reference.render("itbemu") == narrow
