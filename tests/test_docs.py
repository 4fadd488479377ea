"""The documentation site: it builds strictly and offline, and the generated parts are complete.

The site is built once per run, in this process, so pytest's ``--block-network`` (in addopts)
turns any fetch during the build into a failure. The checks then compare the built pages with
the imported package, so a public name, a CLI option or a notebook cannot go missing from the
docs unnoticed. The executed notebook copies in docs/notebooks/ are checked without a build.
"""

from __future__ import annotations

import html
import inspect
import os
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

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
    page = site / "notebooks" / f"{path.stem}.html"
    text = read(page).text
    first = nbformat.read(path, as_version=4).cells[0].source.splitlines()[0].lstrip("# ")
    assert first in text


@pytest.mark.slow
def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    """Offline and private: no CDN scripts, stylesheets, fonts or images, on any page."""
    for page in site.rglob("*.html"):
        remote = [url for url in read(page).loads if re.match(r"(https?:)?//", url)]
        assert remote == [], f"{page.relative_to(site)} loads {remote}"


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
