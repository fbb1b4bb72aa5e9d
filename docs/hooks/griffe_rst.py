"""Griffe extension: the docstrings' few reStructuredText habits, read as the Markdown the site renders.

The docstrings are written for ``help()`` and Sphinx-style readers. Here
``:class:`~itbproto.core.wire.SetRate``` becomes the code span ``SetRate`` (what Sphinx shows: ``~`` keeps the
last name only), and a paragraph that ends in ``::`` ends in ``:``, the indented literal block after it fenced
as code (``pycon`` for ``>>>`` sessions, ``toml`` or ``python`` for what reads as either, else text). Nothing
else changes; the sources are not touched.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

from griffe import Extension, Object

TOML = re.compile(r"^\s*(\[[^\]]+\]+|[\w.-]+\s*=.*)?\s*(#.*)?$")  # comments, [tables], key = value
ROLE = re.compile(r":(?:py:)?(?:class|mod|func|meth|data|attr|exc|obj):`(~?)([^`]+)`")


def _role(match: re.Match[str]) -> str:
    name = match.group(2)
    return f"`{name.rsplit('.', 1)[-1] if match.group(1) else name}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _language(code: str) -> str:
    if code.lstrip().startswith(">>>"):
        return "pycon"
    if all(TOML.match(line) for line in code.splitlines()):
        return "toml"
    try:
        ast.parse(code)
    except SyntaxError:
        return "text"
    return "python"


def markdown(text: str) -> str:
    """A docstring with its roles as code spans and its literal blocks fenced."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.rstrip().endswith("::"):
            out.append(ROLE.sub(_role, line))
            continue
        if line.strip() != "::":  # "text::" reads "text:"; a "::" alone says nothing
            out.append(ROLE.sub(_role, line.rstrip()[:-1]))
        start = i
        while i < len(lines) and not lines[i].strip():
            i += 1
        block: list[str] = []
        while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > _indent(line)):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():
            block.pop()
            i -= 1
        if not block:
            i = start
            continue
        code = textwrap.dedent("\n".join(block))
        out += ["", f"```{_language(code)}", *code.splitlines(), "```"]
    return "\n".join(out)


class RestructuredRoles(Extension):
    def on_instance(self, *, node: ast.AST | Any, obj: Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
