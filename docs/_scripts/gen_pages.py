"""Generate the reference pages at build time, from the code itself (mkdocs-gen-files).

- ``reference/api/``: one page per public name, read from ``wavenb.__all__`` plus the lazily
  loaded names (``wavenb._LAZY``: ``Studio``, ``compare``, ``Comparison``, ``plot_timeline``,
  each with its extra: ``Studio`` cannot load without the notebook extra, while ``compare``
  and ``Comparison`` load without it and need it only to display the comparison's grid, and
  ``plot_timeline`` needs the plot extra only to draw), rendered by mkdocstrings from the
  docstrings; an index with each name's first docstring line.
  A renamed, added or removed public name changes the pages with no edit here.
- ``reference/errors.md``: the exception tree, from ``wavenb.core.errors``' module docstring.
- ``reference/cli.md``: every subcommand and option, from ``wavenb.cli.main._parser()``.
- ``reference/configuration.md``: the environment variables, from ``wavenb.core.config``'s
  module docstring, and the client's arguments, from ``AsyncClient``'s docstring and
  ``ClientOptions`` (names, types, descriptions).
- ``changelog.md``: CHANGELOG.md, as is.
- ``assets/screenshots/``: the screenshots the real-browser tests took (notebooks/assets/).

Names and docstrings are read statically with griffe, as mkdocstrings renders them: the lazy
names' modules (ipywidgets, matplotlib) are never imported, so the build needs only wavenb's
lean install (the CLI page imports ``wavenb.cli.main``, which is lean). tests/test_docs.py checks
the pages against the imported package's ``__all__``.
"""

from __future__ import annotations

import argparse
import ast
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import griffe
import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
API = Path("reference/api")

EXTRA_FOR = {
    "compare": "displaying its grid",
    "Comparison": "displaying its grid",
    "plot_timeline": "drawing",
}
"""Lazily loaded names that load without their extra, and what the extra is for; the others
cannot load without it. tests/test_docs.py imports every lazy name with its extra missing and
checks each page's note against what happened."""

KINDS = {
    "classes": "Classes",
    "functions": "Functions",
    "errors": "Exceptions",
    "constants": "Constants and types",
}
"""Folders of the API reference, in the index's order (folders keep ``history`` and ``History``
apart on case-insensitive file systems)."""


@dataclass(frozen=True, slots=True)
class PublicName:
    """One public name of the ``wavenb`` package and where its docs come from."""

    name: str
    target: str  # the dotted path where it is defined, which mkdocstrings renders
    kind: str  # a key of KINDS
    summary: str
    lazy_module: str | None
    extra: str | None  # the extra a lazily loaded name needs

    @property
    def page(self) -> Path:
        """The page's path under the docs folder."""
        return API / self.kind / f"{self.name}.md"


def public_names() -> list[PublicName]:
    """Every name in ``wavenb.__all__`` and every lazily loaded name, sorted by kind and name."""
    package = griffe.load("wavenb", search_paths=[str(ROOT)])
    lazy = _lazy(package)
    found = []
    for name in sorted(set(package.exports or ()) | set(lazy)):
        module, extra = lazy.get(name, (None, None))
        if module is None:
            obj = package[name]
        else:
            obj = griffe.load(module, search_paths=[str(ROOT)])[name]
        target = obj.target_path if obj.is_alias else obj.path
        found.append(PublicName(name, target, _kind(obj), _summary(obj), module, extra))
    order = list(KINDS)
    return sorted(found, key=lambda item: (order.index(item.kind), item.name.lower()))


def _lazy(package: griffe.Module) -> dict[str, tuple[str, str | None]]:
    """``wavenb._LAZY``: name -> (module, extra), or name -> module in older versions."""
    if "_LAZY" not in package.members:
        return {}
    table = ast.literal_eval(str(package.members["_LAZY"].value))
    return {
        name: (entry, None) if isinstance(entry, str) else (entry[0], entry[1])
        for name, entry in table.items()
    }


def _kind(obj: griffe.Object | griffe.Alias) -> str:
    if obj.is_class:
        chain = [obj.path, *(base.path for base in obj.mro())]
        return "errors" if any(path.endswith(".WavenbError") for path in chain) else "classes"
    if obj.is_function:
        return "functions"
    return "constants"


def _summary(obj: griffe.Object | griffe.Alias) -> str:
    if obj.docstring is None:
        return ""
    return obj.docstring.value.strip().split("\n\n")[0].replace("\n", " ")


def api_page(item: PublicName) -> str:
    """The Markdown of one name's page: how to import it, then mkdocstrings' rendering."""
    lines = [f"::: {item.target}"]
    if item.kind == "constants":  # a constant's value is the point (hidden for attributes)
        lines += ["    options:", "      show_attribute_values: true"]
    if item.lazy_module is None:
        note = f"`from wavenb import {item.name}`"
    else:
        install = f"`pip install 'wavenb[{item.extra}]'`"
        if not item.extra:
            needs = ""
        elif item.name in EXTRA_FOR:
            needs = (
                f"; it loads without the {item.extra} extra, which only"
                f" {EXTRA_FOR[item.name]} needs ({install})"
            )
        else:
            needs = f": it needs {install}"
        note = f"`wavenb.{item.name}`, loaded on first use from `{item.lazy_module}`{needs}."
    return "\n".join([*lines, "", f"<small>{note}</small>", ""])


def api_index(names: list[PublicName]) -> str:
    """The reference's front page: one table per kind, each name with its first line."""
    out = [
        "# API reference",
        "",
        "Every public name of the `wavenb` package: `wavenb.__all__`, plus the names loaded on",
        "first use because they need an optional extra. Generated from the docstrings at build",
        "time.",
        "",
    ]
    for kind, title in KINDS.items():
        rows = [item for item in names if item.kind == kind]
        if not rows:
            continue
        out += [f"## {title}", "", "| name | what it is |", "|---|---|"]
        for item in rows:
            link = item.page.relative_to(API).as_posix()
            summary = item.summary.replace("|", "\\|")
            out.append(f"| [`{item.name}`]({link}) | {summary} |")
        out.append("")
    return "\n".join(out)


def api_nav(names: list[PublicName]) -> str:
    """literate-nav's SUMMARY.md for the API section."""
    out = ["* [Overview](index.md)"]
    for kind, title in KINDS.items():
        rows = [item for item in names if item.kind == kind]
        if rows:
            out.append(f"* {title}")
            for item in rows:
                out.append(f"    * [{item.name}]({item.page.relative_to(API).as_posix()})")
    return "\n".join(out) + "\n"


def errors_page(names: list[PublicName]) -> str:
    """The exception tree, from the errors module's docstring, each class linked to its page."""
    module = griffe.load("wavenb.core.errors", search_paths=[str(ROOT)])
    tree = module.docstring.value if module.docstring else ""
    out = ["# Errors", "", tree.strip(), "", "## Each error", ""]
    source_order = list(module.members)
    errors = [item for item in names if item.target.startswith("wavenb.core.errors.")]
    errors.sort(key=lambda item: source_order.index(item.target.rpartition(".")[2]))
    for item in errors:
        link = "api/" + item.page.relative_to(API).as_posix()
        out.append(f"- [`{item.name}`]({link}): {item.summary}")
    return "\n".join(out) + "\n"


def cli_page() -> str:
    """Every subcommand of ``wavenb`` with its usage and options, from the real parser."""
    from wavenb.cli import main  # noqa: PLC0415

    os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal: pin it
    parser = main._parser()
    out = [
        "# Command line",
        "",
        "`wavenb` is installed with the package (`pip install wavenb`; `wavenb sandbox` needs",
        "`wavenb[sandbox]`). This page is generated from its argument parser.",
        "",
        (main.__doc__ or "").strip(),
        "",
        "```text",
        parser.format_help().rstrip(),
        "```",
        "",
    ]
    for name, sub in _subcommands(parser):
        out += [f"## `wavenb {name}`", "", sub.description or _help_of(parser, name), ""]
        out += ["```text", sub.format_help().rstrip(), "```", ""]
        out += ["| argument | default | what it does |", "|---|---|---|"]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            flags = ", ".join(f"`{flag}`" for flag in action.option_strings) or f"`{action.dest}`"
            if action.choices:
                flags += " " + " \\| ".join(f"`{choice}`" for choice in action.choices)
            default = "" if action.default in (None, False) else f"`{action.default}`"
            text = (action.help or "").replace("|", "\\|")
            out.append(f"| {flags} | {default} | {text} |")
        out.append("")
    return "\n".join(out)


def configuration_page() -> str:
    """The environment variables and the client's arguments, read from the code."""
    config = griffe.load("wavenb.core.config", search_paths=[str(ROOT)])
    module = griffe.load("wavenb.client.async_client", search_paths=[str(ROOT)])
    client, options = module["AsyncClient"], module["ClientOptions"]
    intro = config.docstring.value.strip() if config.docstring else ""
    title, _, body = intro.partition("\n\n")
    out = ["# Configuration", "", title, "", "## Environment variables", "", body, ""]
    out += [
        "## Client arguments",
        "",
        "`AsyncClient(api_key=None, base_url=None, **options)` and `Client(...)` take the same",
        "arguments; the environment fills in what is not given. See",
        "[`AsyncClient`](api/classes/AsyncClient.md) for each method.",
        "",
        "| argument | type | what it does |",
        "|---|---|---|",
    ]
    parameters = _docstring_parameters(client)
    for name in ("api_key", "base_url"):
        out.append(f"| `{name}` | `str | None` | {_cell(parameters.get(name, ''))} |")
    for name, member in options.members.items():
        kind = str(member.annotation)  # a pipe in a code span does not split the cell
        text = member.docstring.value if member.docstring else ""
        out.append(f"| `{name}` | `{kind}` | {_cell(text)} |")
    return "\n".join([*out, ""])


def _docstring_parameters(obj: griffe.Object | griffe.Alias) -> dict[str, str]:
    """The ``Args:`` section of a docstring: name -> description."""
    if obj.docstring is None:
        return {}
    found: dict[str, str] = {}
    for section in obj.docstring.parse("google"):
        if section.kind is griffe.DocstringSectionKind.parameters:
            found |= {item.name: item.description for item in section.value}
    return found


def _cell(text: str) -> str:
    """Docstring text as one Markdown table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _help_of(parser: argparse.ArgumentParser, name: str) -> str:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                if choice.dest == name:
                    return (choice.help or "").capitalize() + "."
    return ""


def main() -> None:
    """Write every generated page into the build (nothing is written to docs/ on disk)."""
    names = public_names()
    for item in names:
        with mkdocs_gen_files.open(item.page, "w") as page:
            page.write(api_page(item))
    with mkdocs_gen_files.open(API / "index.md", "w") as page:
        page.write(api_index(names))
    with mkdocs_gen_files.open(API / "SUMMARY.md", "w") as page:
        page.write(api_nav(names))
    with mkdocs_gen_files.open("reference/errors.md", "w") as page:
        page.write(errors_page(names))
    with mkdocs_gen_files.open("reference/cli.md", "w") as page:
        page.write(cli_page())
    with mkdocs_gen_files.open("reference/configuration.md", "w") as page:
        page.write(configuration_page())
    with mkdocs_gen_files.open("changelog.md", "w") as page:
        page.write((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    for shot in sorted((ROOT / "notebooks" / "assets" / "screenshots").glob("*.jpg")):
        with mkdocs_gen_files.open(f"assets/screenshots/{shot.name}", "wb") as image:
            image.write(shot.read_bytes())


main()
