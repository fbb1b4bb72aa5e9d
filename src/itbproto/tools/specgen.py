"""Generates the parts of specs/ that the code defines: protocol tables, golden vectors, rule matrix,
diagrams.

``itbproto specs --write`` regenerates them; ``itbproto specs`` (and a test)
fails when the committed files differ from what the code says.
"""

from __future__ import annotations

import enum
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from itbproto.core.machines import DEFINITIONS
from itbproto.core.safety.engine import enforcement_points
from itbproto.core.wire import enums
from itbproto.core.wire.fields import ArrayType, FieldSpec, RecordType
from itbproto.core.wire.frame import HEADER
from itbproto.core.wire.message import CATALOG
from itbproto.io.specfiles import load_rules
from itbproto.tools import vectors
from itbproto.tools.samples import SAMPLES

__all__ = [
    "BEGIN",
    "END",
    "check",
    "generated_files",
    "protocol_tables",
    "rule_matrix",
    "rule_tests",
    "write",
]

BEGIN = "<!-- BEGIN GENERATED: itbproto specs --write -->"
END = "<!-- END GENERATED -->"


def _doc(obj: object) -> str:
    return (obj.__doc__ or "").strip().splitlines()[0] if obj.__doc__ else ""


def _table(specs: tuple[FieldSpec, ...]) -> list[str]:
    if not specs:
        return ["(empty payload)", ""]
    rows = ["| field | type | unit | range | meaning |", "|---|---|---|---|---|"]
    for spec in specs:
        wire = spec.wire.name.replace("|", "\\|")
        rows.append(f"| `{spec.name}` | {wire} | {spec.unit} | {spec.range_text()} | {spec.doc} |")
    return [*rows, ""]


def _records() -> list[RecordType[object]]:
    """Nested record types, in order of first use."""
    found: dict[str, RecordType[object]] = {}

    def visit(specs: tuple[FieldSpec, ...]) -> None:
        for spec in specs:
            wire = spec.wire.item if isinstance(spec.wire, ArrayType) else spec.wire
            if isinstance(wire, RecordType) and wire.name not in found:
                found[wire.name] = wire
                visit(wire.specs)

    for cls in sorted(CATALOG.values(), key=lambda c: c.TYPE):
        visit(cls.specs())
    return list(found.values())


def _enum_table(cls: type[enum.IntEnum]) -> list[str]:
    rows = [f"#### {cls.__name__}", "", _doc(cls), "", "| value | name |", "|---|---|"]
    rows += [f"| {m.value} (0x{m.value:02x}) | `{m.name}` |" for m in cls]
    return [*rows, ""]


def protocol_tables() -> str:
    """The generated part of specs/protocol.md."""
    out = ["## Frame header", "", *_table(HEADER.specs), "## Messages", ""]
    out += [
        "| type | message | kind | effect | replies | changes delivery | roles | payload bytes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cls in sorted(CATALOG.values(), key=lambda c: c.TYPE):
        replies = ", ".join(r.__name__ for r in cls.REPLIES) or "-"
        size = cls.CODEC.size if cls.CODEC.size is not None else f"at most {cls.CODEC.max_size}"
        roles = ", ".join(r.name.lower() for r in sorted(cls.ROLES)) or "-"
        effect = cls.EFFECT.value if cls.EFFECT is not None else "-"
        delivery = "yes" if cls.CHANGES_DELIVERY else "no"
        out.append(
            f"| 0x{cls.TYPE:02x} | [{cls.__name__}](#0x{cls.TYPE:02x}-{cls.__name__.lower()}) "
            f"| {cls.KIND.value} | {effect} | {replies} | {delivery} | {roles} | {size} |"
        )
    out.append("")
    for cls in sorted(CATALOG.values(), key=lambda c: c.TYPE):
        out += [f"### 0x{cls.TYPE:02x} {cls.__name__}", "", _doc(cls), ""]
        out += _table(cls.specs())
    out += ["## Records", "", "Records are laid out inline wherever a message uses them.", ""]
    for rec in _records():
        out += [f"### {rec.name}", "", _doc(rec.cls), "", *_table(rec.specs)]
    out += ["## Enumerations", ""]
    for name in enums.__all__:
        out += _enum_table(getattr(enums, name))
    return "\n".join(out).rstrip() + "\n"


def rule_tests(tests: Path) -> dict[str, list[str]]:
    """Rule ID -> the tests marked with it (``file::name``, parametrizations folded), as pytest collects
    ``tests`` with the itbproto.qa plugin: the markers pytest sees, wherever they were set."""
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "collected.json"
        collect = ["--collect-only", "-q", "-p", "no:cacheprovider", f"--itb-report={report}", str(tests)]
        subprocess.run(
            [sys.executable, "-m", "pytest", *collect],
            cwd=tests.parent,
            capture_output=True,
            check=True,
            timeout=600,
        )
        rules = json.loads(report.read_text())["rules"]
    return {
        rule_id: list(dict.fromkeys(re.sub(r"\[.*\]$", "", test) for test in row["tests"]))
        for rule_id, row in rules.items()
        if row["tests"]
    }


def rule_matrix(tests: Path | None) -> str:
    """specs/rule-matrix.md: rule -> hazard -> statement -> enforcement points -> tests.

    With no tests folder (an installed package), the tests column says where to find them.
    """
    catalog, points = load_rules(), enforcement_points()
    traced = rule_tests(tests) if tests is not None else {}
    missing = (
        "**none**" if tests is not None else "(run in a source checkout: itbproto rules --matrix --root DIR)"
    )
    out = [
        "# Safety rule traceability matrix",
        "",
        "Generated by `itbproto specs --write` from specs/safety-rules.toml, the engine's registered checks",
        "and the tests marked `@pytest.mark.rule(ID)`; a test fails when it is out of date or when a rule",
        "has no test. Every check runs in the same engine on both sides: in the programmer before a command",
        "is sent, and in the pump before it is applied.",
        "",
        "| rule | hazard | enforced on | tests |",
        "|---|---|---|---|",
    ]
    for r in catalog:
        where = ", ".join(points.get(r.id, ())) or "-"
        tests_for = "<br>".join(f"`{t}`" for t in traced.get(r.id, [])) or missing
        out.append(f"| [{r.id}](#{r.id.lower()}) {r.title} | {r.hazard} | {where} | {tests_for} |")
    out += ["", "## Rules", ""]
    for r in catalog:
        out += [f"### {r.id}", "", f"**{r.title}** ({r.hazard}). {r.statement}", "", f"Source: {r.source}."]
        if r.params:
            out += ["", "| parameter | default | may only go |", "|---|---|---|"]
            out += [f"| `{p.name}` | {p.default} | {p.tighten} |" for p in r.params]
        out.append("")
    return "\n".join(out)


def generated_files(root: Path) -> dict[Path, str]:
    """Every generated file under ``root`` (the repository) with its expected content."""
    files: dict[Path, str] = {}
    protocol = root / "specs" / "protocol.md"
    text = protocol.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise ValueError(f"{protocol} lacks the generated-section markers")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    files[protocol] = f"{head}{BEGIN}\n\n{protocol_tables()}\n{END}{tail}"
    files[root / "specs" / "rule-matrix.md"] = rule_matrix(root / "tests")
    for definition in DEFINITIONS:
        files[root / "specs" / "diagrams" / f"{definition.name}.mmd"] = definition.mermaid()
    folder = root / "specs" / "vectors"
    for msg in SAMPLES.values():
        files[folder / vectors.message_vector_name(msg)] = _json(vectors.message_vector(msg))
    files[folder / "fragments.json"] = _json(vectors.fragment_vectors())
    files[folder / "refusals.json"] = _json(vectors.refusal_vectors())
    files[folder / "precedence.json"] = _json(vectors.precedence_vectors())
    files[folder / "transactions.json"] = _json(vectors.transaction_vectors())
    files[folder / "security.json"] = _json(vectors.security_vectors())
    return files


def _json(data: object) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write(root: Path) -> list[Path]:
    """Regenerate the files; return the ones that changed."""
    changed = []
    for path, content in generated_files(root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(path)
    return changed


def check(root: Path) -> list[Path]:
    """The generated files that are missing, out of date, or left over."""
    expected = generated_files(root)
    stale = [
        p for p, content in expected.items() if not p.exists() or p.read_text(encoding="utf-8") != content
    ]
    generated = [*(root / "specs" / "vectors").glob("*.json"), *(root / "specs" / "diagrams").glob("*.mmd")]
    leftover = sorted(set(generated) - set(expected))
    return stale + leftover
