"""MkDocs hook: the command-line reference, rendered from the CLIs' own argparse parsers at build time.

A page line ``<!-- cli: itbproto -->`` (or ``itbemu``) becomes that command's reference: its ``--help``, then
every subcommand's (nested ones too), each under its own heading. Nothing about an option is written by hand,
so a new subcommand or option is in the reference as soon as its parser has it (tests/test_docs.py checks).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

import itbemu.cli
import itbproto.cli

#: the commands a page can ask for, and the function that builds each one's parser
PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "itbproto": itbproto.cli.build_parser,
    "itbemu": itbemu.cli.build_parser,
}
WIDTH = 80  # the help's line width (what a code block of the site shows), whatever terminal builds it
DIRECTIVE = re.compile(r"^<!--\s*cli:\s*(\S+)\s*-->[ \t]*$", re.M)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[argparse.ArgumentParser, str]]:
    """A parser's subcommands in the order they were added: name -> (parser, one-line help)."""
    found: dict[str, tuple[argparse.ArgumentParser, str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            seen: set[int] = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # an alias names a parser already listed
                    seen.add(id(sub))
                    found[name] = (sub, str(helps.get(name, "")))
    return found


def _help(parser: argparse.ArgumentParser) -> str:
    """The parser's ``--help``, at a fixed width and without colour."""
    formatter = parser.formatter_class

    def fixed_width(prog: str) -> argparse.HelpFormatter:
        made: Any = formatter(prog, width=WIDTH)  # type: ignore[call-arg]
        return made  # type: ignore[no-any-return]

    parser.formatter_class = fixed_width
    if hasattr(parser, "color"):  # Python 3.14 colours help on a terminal
        parser.color = False
    return parser.format_help().rstrip()


def _sections(parser: argparse.ArgumentParser, level: int, summary: str) -> Iterator[str]:
    yield f"{'#' * level} `{parser.prog}`"
    yield ""
    if summary:
        yield summary[0].upper() + summary[1:] + "."
        yield ""
    yield "```text"
    yield _help(parser)
    yield "```"
    yield ""
    for sub, text in subcommands(parser).values():
        yield from _sections(sub, min(level + 1, 6), text)


def render(command: str, level: int = 2) -> str:
    """The Markdown reference of ``command`` (a key of :data:`PARSERS`), its heading at ``level``."""
    if command not in PARSERS:
        raise PluginError(f"<!-- cli: {command} -->: no such command (known: {', '.join(PARSERS)})")
    return "\n".join(_sections(PARSERS[command](), level, ""))


def on_page_markdown(markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    return DIRECTIVE.sub(lambda match: render(match.group(1)), markdown)
