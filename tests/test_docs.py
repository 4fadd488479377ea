"""The documentation site: it builds strictly and offline, and the generated parts are complete.

The site is built once per run, in this process, so pytest's ``--block-network`` (in addopts)
turns any fetch during the build into a failure. The checks then compare the built pages with
the imported package, so a public name, a CLI option or a notebook cannot go missing from the
docs unnoticed. The executed notebook copies in docs/notebooks/ and the README's links are
checked without a build, as is every public constant's docstring (read statically, as
mkdocstrings reads it).
"""

from __future__ import annotations

import functools
import html
import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import griffe
import nbformat
import pytest

import wavenb
from tests.conftest import ROOT
from wavenb.cli import main as cli

SOURCE_NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DOCS_NOTEBOOKS = ROOT / "docs" / "notebooks"
WIDGET = "application/vnd.jupyter.widget-view+json"


def public_names() -> set[str]:
    """``wavenb.__all__`` and the names the package loads on first use (listed by ``dir``)."""
    lazy = set(dir(wavenb)) - set(vars(wavenb))
    return set(wavenb.__all__) | {name for name in lazy if not name.startswith("_")}


def public_constants() -> list[str]:
    """The public names that are neither classes, functions nor modules (values and aliases)."""
    return sorted(
        name
        for name in wavenb.__all__
        if not any(is_(getattr(wavenb, name)) for is_ in (inspect.isclass, inspect.isroutine))
    )


@functools.cache
def static_package() -> griffe.Module:
    """The package as griffe reads it: attribute docstrings exist only in the source."""
    return griffe.load("wavenb", search_paths=[str(ROOT)])


def attribute_docstring(name: str) -> str:
    """The docstring written under a public constant's assignment, or ``""``."""
    docstring = static_package()[name].docstring
    return docstring.value.strip() if docstring else ""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built by ``mkdocs build --strict`` into a temporary folder."""
    from mkdocs.commands.build import build
    from mkdocs.config import load_config

    folder = tmp_path_factory.mktemp("site")
    quiet = {"NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    saved = {key: os.environ.get(key) for key in quiet}
    os.environ.update(quiet)
    try:
        config = load_config(str(ROOT / "mkdocs.yml"), site_dir=str(folder), strict=True)
        build(config)  # raises mkdocs.exceptions.Abort on any warning
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return folder


class _Text(HTMLParser):
    """The visible text of a page's article, and every URL a tag would load."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.loads: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        if tag in ("script", "img", "iframe", "video", "source") and found.get("src"):
            self.loads.append(found["src"] or "")
        if tag == "link" and found.get("rel") in ("stylesheet", "preload", "icon"):
            self.loads.append(found.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.parts).split())


def read(page: Path) -> _Text:
    parser = _Text()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def squash(text: str) -> str:
    """Text without whitespace: markup splits words differently than the docstring does."""
    return re.sub(r"\s+", "", text)


def plain(docstring: str) -> str:
    """A docstring's first paragraph as the page shows it: no backticks, no whitespace."""
    return squash(docstring.strip().split("\n\n")[0].replace("`", ""))


def api_page(site: Path, name: str) -> Path:
    pages = list((site / "reference" / "api").glob(f"*/{name}.html"))
    assert len(pages) == 1, f"{name}: expected one page, found {pages}"
    return pages[0]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(public_names()))
def test_every_public_name_has_a_page_with_its_docstring(site: Path, name: str) -> None:
    page = read(api_page(site, name))
    assert name in page.text
    obj = getattr(wavenb, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        doc = inspect.getdoc(obj)
        assert doc, f"wavenb.{name} has no docstring"
        assert plain(doc) in squash(page.text)
    elif name in public_constants():  # the page says what the value is for, not only its name
        doc = attribute_docstring(name)
        assert doc, f"wavenb.{name} has no attribute docstring"
        assert plain(doc) in squash(page.text)
    index = read(site / "reference" / "api" / "index.html").text
    assert name in index


@pytest.mark.slow
def test_the_api_reference_has_no_page_for_a_name_that_is_gone(site: Path) -> None:
    pages = {page.stem for page in (site / "reference" / "api").glob("*/*.html")}
    assert pages == public_names()


@pytest.mark.slow
def test_the_cli_page_shows_every_subcommand_and_option(site: Path) -> None:
    text = read(site / "reference" / "cli.html").text
    for name, sub in _subcommands():
        assert f"wavenb {name}" in text
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text, f"wavenb {name} {flag}"
            if action.help and action.help != "==SUPPRESS==":
                assert squash(html.unescape(action.help)) in squash(text)


@pytest.mark.slow
def test_the_errors_page_draws_the_tree_and_links_each_error(site: Path) -> None:
    from wavenb.core import errors

    page = site / "reference" / "errors.html"
    text = read(page).text
    assert "WavenbError" in text
    assert "├── APIError" in text
    source = page.read_text(encoding="utf-8")
    for name in sorted(set(errors.__all__) & set(wavenb.__all__)):
        assert re.search(rf'href="api/errors/{name}\.html"', source), name


@pytest.mark.slow
@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_is_rendered(site: Path, path: Path) -> None:
    """The page shows the notebook with the outputs of its docs copy, pictures included."""
    page = site / "notebooks" / f"{path.stem}.html"
    text = read(page).text
    first = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0].lstrip("# ")
    assert first in text
    outputs = [
        output
        for cell in nbformat.read(DOCS_NOTEBOOKS / path.name, as_version=4).cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]
    source = page.read_text(encoding="utf-8")
    shown = re.findall(r'class="[^"]*\bjp-OutputArea-output\b', source)
    assert shown, "the page shows no outputs"
    assert len(shown) == len(outputs), "every output of the docs copy is on the page"
    pictures = [
        out for out in outputs if any(key.startswith("image/") for key in out.get("data", {}))
    ]
    inline = re.findall(r'<img\b[^>]*\bsrc="data:image/', source)
    assert len(inline) >= len(pictures), "every plotted picture is on the page"


@pytest.mark.slow
def test_each_lazy_name_page_says_what_its_extra_is_for(site: Path) -> None:
    """Loaded with its extra missing, a name either fails (its page: "it needs") or works."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    lazy: dict[str, tuple[str, str]] = wavenb._LAZY
    for name, (_, extra) in lazy.items():
        blocked = [re.split(r"[<>=\[ ]", spec)[0].replace("-", "_") for spec in extras[extra]]
        loads = _loads_without(name, blocked)
        found = re.search(r"<p><small>(.*?)</small></p>", api_page(site, name).read_text("utf-8"))
        assert found, f"{name}: the page has no note on how to import it"
        note = html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))
        install = f"pip install 'wavenb[{extra}]'"
        assert install in note, name
        assert ("it needs" in note) is not loads, f"{name} loads without {extra}: {loads}"


@pytest.mark.slow
def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    """Offline and private: no CDN scripts, stylesheets, fonts or images, on any page."""
    for page in site.rglob("*.html"):
        remote = [url for url in read(page).loads if re.match(r"(https?:)?//", url)]
        assert remote == [], f"{page.relative_to(site)} loads {remote}"


def _loads_without(name: str, modules: list[str]) -> bool:
    """Whether ``wavenb.NAME`` loads in a fresh interpreter where ``modules`` cannot be imported."""
    script = f"""
import importlib.abc, sys
class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in {json.dumps(modules)}:
            raise ImportError(f"blocked: {{fullname}}", name=fullname)
sys.meta_path.insert(0, Missing())
import wavenb
try:
    wavenb.{name}
except ImportError:
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True)
    assert done.returncode in (0, 3), done.stderr.decode()
    return done.returncode == 0


def _subcommands() -> Iterator[tuple[str, object]]:
    parser = cli._parser()
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict):
            yield from choices.items()


# The executed copies in docs/notebooks/ (made by `make docs-notebooks`), checked without a build.


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_the_docs_copy_has_the_same_cells_as_the_notebook(path: Path) -> None:
    copy = DOCS_NOTEBOOKS / path.name
    assert copy.exists(), f"run `make docs-notebooks`: {copy.name} is missing"
    source = [(cell.cell_type, cell.source) for cell in nbformat.read(path, 4).cells]
    shown = [(cell.cell_type, cell.source) for cell in nbformat.read(copy, 4).cells]
    assert shown == source, f"notebooks/{path.name} changed: run `make docs-notebooks`"


@pytest.mark.parametrize("path", SOURCE_NOTEBOOKS, ids=lambda p: p.name)
def test_the_docs_copy_was_run_and_kept_small(path: Path) -> None:
    copy = DOCS_NOTEBOOKS / path.name
    notebook = nbformat.read(copy, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(cell.execution_count for cell in code), "every code cell ran"
    assert any(cell.outputs for cell in code)
    for cell in code:
        for output in cell.outputs:
            assert output.output_type != "error", output
            assert WIDGET not in output.get("data", {}), "widget views need state: replaced"
    assert "widgets" not in notebook.metadata
    assert copy.stat().st_size < 200_000


# Cheap checks, no build.


def test_every_public_constant_has_an_attribute_docstring() -> None:
    """A constant's reference page shows its docstring: without one it is a name and an import."""
    constants = public_constants()
    assert "ASPECT_RATIOS" in constants
    for name in constants:
        doc = attribute_docstring(name)
        assert len(doc.split()) >= 4, f"wavenb.{name}: write a docstring under its assignment"


LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)|\bsrc=\"([^\"]+)\"")


def slug(heading: str) -> str:
    """A heading's anchor, as GitHub and the site's toc extension write it."""
    words = re.sub(r"[^\w\s-]", "", heading.strip().lower())
    return re.sub(r"[\s-]+", "-", words).strip("-")


def test_readme_links_resolve() -> None:
    """Every relative link and image of the README exists in the repository (headings too)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [link or src for link, src in LINK.findall(readme)]
    assert len(targets) > 10, "the README's links were not found: is the pattern stale?"
    for target in targets:
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (ROOT / path).resolve() if path else ROOT / "README.md"
        assert file.is_relative_to(ROOT), f"{target} leaves the repository"
        assert file.exists(), f"README links to {target}, which is not in the repository"
        if anchor and file.suffix == ".md":
            headings = re.findall(r"^#+\s+(.+?)\s*$", file.read_text(encoding="utf-8"), re.M)
            assert anchor in {slug(heading) for heading in headings}, f"{target}: no such heading"
