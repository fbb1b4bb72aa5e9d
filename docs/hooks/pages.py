"""MkDocs hook: the site's pages come from the repository's own files, included at build time, never copied.

- ``<!-- README: Heading -->`` on a page under docs/ becomes that section of README.md with its subsections,
  its heading at level 2 (the README's title keeps level 1, and only its own text comes with it). A key that
  ends in ``:`` takes every section whose heading starts with it (``QA:``). Every section of the README with
  text of its own must be on some page: one that is not is a warning, so ``mkdocs build --strict`` fails.
- ``<!-- include: CHANGELOG.md -->`` includes a whole file of the repository.
- specs/ is in the site at its own path, every file of it: its Markdown as pages, the rest (vectors, TOML,
  diagrams) as they are; pages are rendered for the rule catalog (specs/safety-rules.md, from
  safety-rules.toml), the drug table, the device profiles and the state diagrams.
- Links in what is included are relative to the file they come from (``specs/protocol.md`` in the README):
  they are rewritten to point from the page they land on. A link to a folder goes to its README.md or
  index.md, and one to a TOML or diagram file to the page that renders it. A repository file a link names
  that is not otherwise in the site is added to it as it is.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from markdown.extensions.toc import slugify  # type: ignore[import-untyped]
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.plugins import get_plugin_logger
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from itbproto.core.safety.engine import enforcement_points
from itbproto.io.specfiles import load_rules

log = get_plugin_logger(__name__)

README_KEY = re.compile(r"^<!--\s*README:\s*(.+?)\s*-->[ \t]*$", re.M)
INCLUDE = re.compile(r"^<!--\s*include:\s*(\S+)\s*-->[ \t]*$", re.M)
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
LINK = re.compile(r"(\]\()([^)\s]+)(\))")
CODE_SPAN = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
EXTERNAL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*:|#|/)")


# --- Markdown by lines: headings outside code blocks, sections, links -------------------------------------


def _outside_code(lines: list[str]) -> Iterator[int]:
    """The indices of the lines that are not inside a fenced code block (nor its fences)."""
    fence = ""
    for i, line in enumerate(lines):
        match = FENCE.match(line)
        if fence:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = ""
        elif match:
            fence = match.group(1)
        else:
            yield i


@dataclass(frozen=True)
class Section:
    """A heading of a Markdown file and the lines it spans (indices into the file's lines)."""

    level: int
    title: str
    start: int
    own_end: int  # up to the next heading of any level
    end: int  # up to the next heading of its level or higher; its own text only for a level-1 title

    def own_text(self, lines: list[str]) -> bool:
        return any(line.strip() for line in lines[self.start + 1 : self.own_end])


def sections(lines: list[str]) -> list[Section]:
    found: list[tuple[int, int, str]] = []
    for i in _outside_code(lines):
        if match := HEADING.match(lines[i]):
            found.append((i, len(match.group(1)), match.group(2)))
    result = []
    for n, (start, level, title) in enumerate(found):
        own_end = found[n + 1][0] if n + 1 < len(found) else len(lines)
        end = next((s for s, lv, _ in found[n + 1 :] if lv <= level), len(lines))
        result.append(Section(level, title, start, own_end, own_end if level == 1 else end))
    return result


def matches(key: str, title: str) -> bool:
    return title.startswith(key) if key.endswith(":") else title == key


def excerpt(lines: list[str], section: Section) -> list[str]:
    """A section's lines with its headings moved so that its own is at level 2 (a title stays at 1)."""
    part = lines[section.start : section.end]
    shift = 0 if section.level == 1 else 2 - section.level
    for i in _outside_code(part):
        if shift and (match := HEADING.match(part[i])):
            level = min(max(len(match.group(1)) + shift, 1), 6)
            part[i] = "#" * level + part[i][len(match.group(1)) :]
    return part


def rewrite_links(lines: list[str], resolve: dict[str, str], source: str, page: str) -> list[str]:
    """Links outside code blocks, from a repository file ``source``, made relative to the site page ``page``.

    ``resolve`` maps a repository path (a folder without its slash) to its path in the site; a link to
    anything else is left for MkDocs to check.
    """
    out = list(lines)

    def one(match: re.Match[str]) -> str:
        target = match.group(2)
        if EXTERNAL.match(target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        site_path = resolve.get(repo_path)
        if site_path is None:
            return match.group(0)
        site_path, _, own_anchor = site_path.partition("#")
        anchor = anchor or own_anchor
        relative = posixpath.relpath(site_path, posixpath.dirname(page) or ".")
        return f"{match.group(1)}{relative}{'#' + anchor if anchor else ''}{match.group(3)}"

    for i in _outside_code(out):
        out[i] = LINK.sub(one, out[i])
    return out


def table_pipes(lines: list[str]) -> list[str]:
    """GitHub's reading of ``\\|`` in a table's code span (a pipe, as Python-Markdown leaves it escaped)."""
    out = list(lines)
    for i in _outside_code(out):
        if out[i].lstrip().startswith("|"):
            out[i] = CODE_SPAN.sub(lambda match: match.group(0).replace("\\|", "|"), out[i])
    return out


def link_targets(text: str, source: str) -> Iterator[str]:
    """The repository paths the relative links of ``text`` (from the file ``source``) point at."""
    lines = text.splitlines()
    for i in _outside_code(lines):
        for match in LINK.finditer(lines[i]):
            target = match.group(2)
            if not EXTERNAL.match(target):
                path = target.partition("#")[0]
                yield posixpath.normpath(posixpath.join(posixpath.dirname(source), path))


# --- the pages rendered from spec data files ---------------------------------------------------------------


def _text(value: str) -> str:
    """Catalog prose as Markdown text: nothing in it is markup but its code spans."""
    parts = re.split(r"(`[^`]*`)", value)  # (the odd ones are the code spans)
    plain = [re.sub(r"([*_\[\]])", r"\\\1", html.escape(part, quote=False)) for part in parts[::2]]
    return "".join(plain[i // 2] if i % 2 == 0 else part for i, part in enumerate(parts))


def rule_catalog(path: Path) -> str:
    """specs/safety-rules.md: the rule catalog, rendered from the TOML file."""
    catalog = load_rules(path)
    points = enforcement_points()
    comment = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comment.append(line.lstrip("#").strip())
    lines = [
        "# Safety rule catalog",
        "",
        "Rendered from [safety-rules.toml](safety-rules.toml), the source of truth, when this site was "
        f"built: {len(catalog.rules)} rules, "
        f"{sum(not r.acknowledgeable for r in catalog)} hard limits and "
        f"{sum(r.acknowledgeable for r in catalog)} hazards to acknowledge. Each rule links to its row of "
        "the [traceability matrix](rule-matrix.md) and to its [table](rule-tables.md) (what the tests pin).",
        "",
        _text(" ".join(comment)),
        "",
        "| rule | hazard | level | checked on |",
        "|---|---|---|---|",
    ]
    for rule in catalog:
        checked = ", ".join(points.get(rule.id, ())) or "–"
        lines.append(
            f"| [{rule.id}](#{rule.id.lower()}) {_text(rule.title)} | {rule.hazard} | {rule.level} "
            f"| {checked} |"
        )
    for rule in catalog:
        level = "a hazard the command must acknowledge" if rule.acknowledgeable else "a hard limit"
        lines += [
            "",
            f"## {rule.id} {_text(rule.title)} {{#{rule.id.lower()}}}",
            "",
            f"**{rule.hazard}**, {level}. {_text(rule.statement)}",
            "",
        ]
        if rule.params:
            lines += ["| parameter | default | a policy may | as far as |", "|---|---|---|---|"]
            lines += [
                f"| `{rule.id}.{p.name}` | {p.default:,} | {p.tighten} it | "
                f"{'–' if p.limit is None else f'{p.limit:,}'} |"
                for p in rule.params
            ]
            lines.append("")
        table = slugify(f"{rule.id} {rule.title}", "-")
        lines += [
            f"Source: {_text(rule.source)}. Tests: [matrix](rule-matrix.md#{rule.id.lower()}), "
            f"[table](rule-tables.md#{table}).",
        ]
    return "\n".join(lines) + "\n"


def toml_page(title: str, intro: str, paths: list[Path]) -> str:
    """A page showing TOML files as they are, one section each when there are several."""
    lines = [f"# {title}", "", intro, ""]
    for path in paths:
        if len(paths) > 1:
            lines += [f"## {path.stem} {{#{path.stem}}}", "", f"[{path.name}]({path.name})", ""]
        lines += ["```toml", path.read_text(encoding="utf-8").rstrip(), "```", ""]
    return "\n".join(lines)


def diagrams_page(paths: list[Path]) -> str:
    lines = [
        "# State diagrams",
        "",
        "Generated from the machines' tables (`itbproto specs --write`) as Mermaid; drawn here from the "
        "files in specs/diagrams/.",
        "",
    ]
    for path in paths:
        body = path.read_text(encoding="utf-8")
        body = re.sub(r"\A---\n.*?\n---\n", "", body, flags=re.S)  # its title, which is the heading here
        lines += [f"## {path.stem} {{#{path.stem}}}", "", f"[{path.name}]({path.name})", ""]
        lines += ["```mermaid", body.rstrip(), "```", ""]
    return "\n".join(lines)


# --- the hook ----------------------------------------------------------------------------------------------


@dataclass
class Site:
    root: Path = Path()
    readme: list[str] = field(default_factory=list)
    readme_sections: list[Section] = field(default_factory=list)
    resolve: dict[str, str] = field(default_factory=dict)  # repository path -> site path
    mirrored: set[str] = field(default_factory=set)  # the Markdown pages that are repository files


SITE = Site()


def _readme_keys(docs_dir: Path) -> dict[str, list[str]]:
    """Each page of docs/ (its path there) -> the README keys it includes."""
    return {
        path.relative_to(docs_dir).as_posix(): README_KEY.findall(path.read_text(encoding="utf-8"))
        for path in sorted(docs_dir.rglob("*.md"))
    }


def uncovered(readme: list[str], keys: list[str]) -> list[str]:
    """The README's sections with text of their own that no key includes."""
    secs = sections(readme)
    covered: set[int] = set()
    for sec in secs:
        if any(matches(key, sec.title) for key in keys):
            covered.update(range(sec.start, sec.end))
    return [sec.title for sec in secs if sec.own_text(readme) and sec.start not in covered]


def _add(
    files: Files, config: MkDocsConfig, src_uri: str, *, path: Path | None = None, text: str = ""
) -> None:
    if files.get_file_from_path(src_uri) is None:
        if path is not None:
            files.append(File.generated(config, src_uri, abs_src_path=str(path)))
        else:
            files.append(File.generated(config, src_uri, content=text))


def on_files(files: Files, /, *, config: MkDocsConfig) -> Files:
    root = Path(config.config_file_path).resolve().parent
    docs_dir = Path(config.docs_dir)
    readme = (root / "README.md").read_text(encoding="utf-8").splitlines()
    site = Site(root, readme, sections(readme))

    specs = root / "specs"
    for path in sorted(p for p in specs.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        src_uri = path.relative_to(root).as_posix()
        _add(files, config, src_uri, path=path)
        if path.suffix == ".md":
            site.mirrored.add(src_uri)
        site.resolve[src_uri] = src_uri
    _add(files, config, "specs/safety-rules.md", text=rule_catalog(specs / "safety-rules.toml"))
    drug = "The drugs the pump may be filled with and the label numbers the safety rules use."
    _add(files, config, "specs/drugs.md", text=toml_page("Drug table", drug, [specs / "drugs.toml"]))
    profiles = sorted((specs / "profiles").glob("*.toml"))
    intro = "The device profiles (illustrative, not any vendor's), as the files in specs/profiles/ say."
    _add(files, config, "specs/profiles/index.md", text=toml_page("Device profiles", intro, profiles))
    diagrams = sorted((specs / "diagrams").glob("*.mmd"))
    _add(files, config, "specs/diagrams/index.md", text=diagrams_page(diagrams))
    site.resolve |= {"specs/safety-rules.toml": "specs/safety-rules.md", "specs/drugs.toml": "specs/drugs.md"}
    for path in (*profiles, *diagrams):
        src_uri = path.relative_to(root).as_posix()
        site.resolve[src_uri] = f"{posixpath.dirname(src_uri)}/index.md#{path.stem}"

    keys = _readme_keys(docs_dir)
    for page, page_keys in keys.items():
        if any(matches(key, site.readme_sections[0].title) for key in page_keys):
            site.resolve["README.md"] = page
    for path in sorted(docs_dir.rglob("*.md")):
        for name in INCLUDE.findall(path.read_text(encoding="utf-8")):
            site.resolve[name] = path.relative_to(docs_dir).as_posix()
    # folders: their README.md or index.md
    for src_uri in [f.src_uri for f in files]:
        folder, name = posixpath.split(src_uri)
        if name in ("README.md", "index.md") and folder:
            site.resolve.setdefault(folder, src_uri)
    # a repository file the included text links to, and nothing else brings into the site
    sources = {"README.md": "\n".join(readme)} | {
        name: (root / name).read_text(encoding="utf-8")
        for name in site.resolve
        if not name.startswith("specs/") and name.endswith(".md") and (root / name).is_file()
    }
    for source, text in sources.items():
        for target in link_targets(text, source):
            if target not in site.resolve and (root / target).is_file() and not target.startswith(".."):
                _add(files, config, target, path=root / target)
                site.resolve[target] = target

    all_keys = [key for page_keys in keys.values() for key in page_keys]
    for title in uncovered(readme, all_keys):
        log.warning(f"README.md: section '{title}' is on no page; add <!-- README: {title} --> to a page")
    global SITE
    SITE = site
    return files


def _readme_part(key: str, page: str) -> str:
    chosen = [sec for sec in SITE.readme_sections if matches(key, sec.title)]
    if not chosen:
        raise PluginError(f"{page}: README.md has no section '{key}' (<!-- README: {key} -->)")
    lines = [line for sec in chosen for line in [*excerpt(SITE.readme, sec), ""]]
    return "\n".join(table_pipes(rewrite_links(lines, SITE.resolve, "README.md", page)))


def _include(name: str, page: str) -> str:
    path = SITE.root / name
    if not path.is_file():
        raise PluginError(f"{page}: <!-- include: {name} -->: no such file in the repository")
    lines = path.read_text(encoding="utf-8").splitlines()
    return "\n".join(table_pipes(rewrite_links(lines, SITE.resolve, name, page)))


def on_page_markdown(markdown: str, /, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    src_uri = page.file.src_uri
    if src_uri in SITE.mirrored:
        return "\n".join(rewrite_links(markdown.splitlines(), SITE.resolve, src_uri, src_uri)) + "\n"
    markdown = README_KEY.sub(lambda match: _readme_part(match.group(1), src_uri), markdown)
    return INCLUDE.sub(lambda match: _include(match.group(1), src_uri), markdown)
