"""The notebooks under notebooks/: committed clean, and every one runs headless on the sandbox."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT

NOTEBOOKS = ROOT / "notebooks"
PROMPT_AB_PROBE = """
# A probe for this test only: the comparisons were measured, judged and ranked.
for comparison in (lookbook, camera):
    assert comparison.metrics_note is None, comparison.metrics_note
    table = comparison.to_pandas()
    for column in ("camera_move", "motion_dx", "first_frame_ssim", "flicker", "sharpness"):
        assert table[column].notna().all(), (column, table[column].tolist())
# The sandbox does what these prompts ask: every camera move asked for is measured back.
assert camera.to_pandas()["motion_match"].tolist() == [True] * 4
orbits = lookbook.to_pandas().query("prompt_id == 'orbit'")
assert orbits["camera_move"].tolist() == ["orbit", "orbit"], orbits["camera_move"].tolist()
assert orbits["motion_match"].tolist() == [True, True]
ranking = lookbook.rank()
assert not ranking.empty
assert {"score", "ci_low", "ci_high", "p_best"} <= set(ranking.columns)
assert ranking.index[0] == "walk" and abs(ranking["p_best"].sum() - 1) < 1e-9, ranking
assert lookbook.summary().ranking is not None
assert (folder / "contact-sheet.png").read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
print("probe ok")
"""
ALL = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS / "quickstart.ipynb" in ALL


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a cell has an execution count"
    assert "widgets" not in notebook.metadata, f"{path.name}: saved widget state"


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The kernel inherits this environment: no user profile, no key, the instant sandbox."""
    for name in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        folder = tmp_path / name.lower()
        folder.mkdir()
        monkeypatch.setenv(name, str(folder))
    monkeypatch.setenv("MPLBACKEND", "agg")
    monkeypatch.setenv("WAVENB_SANDBOX_SPEED", "instant")


@pytest.mark.slow
@pytest.mark.usefixtures("kernel_env")
@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_notebook_runs_headless(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    if path.name == "quickstart.ipynb":
        # A probe for this test only: where did the one-liner put its video?
        notebook.cells.append(nbformat.v4.new_code_cell("print(video.path)"))
    if path.name == "prompt_ab.ipynb":
        notebook.cells.append(nbformat.v4.new_code_cell(PROMPT_AB_PROBE))
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()  # raises CellExecutionError on the first error
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", output
    if path.name == "quickstart.ipynb":
        check_quickstart(notebook)
    if path.name == "prompt_ab.ipynb":
        probe = notebook.cells[-1].outputs
        assert [out.get("text") for out in probe] == ["probe ok\n"], probe


def check_quickstart(notebook: nbformat.NotebookNode) -> None:
    """The Studio cell displayed a widget; the one-liner returned a video saved to a file."""
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    studio = next(cell for cell in code if "Studio(" in cell.source)
    assert any(
        "application/vnd.jupyter.widget-view+json" in output.get("data", {})
        for output in studio.outputs
    )
    generate = next(cell for cell in code if "generate(" in cell.source)
    assert [out for out in generate.outputs if out.output_type == "execute_result"]
    assert "Exception" not in "".join(out.get("text", "") for out in generate.outputs)
    probe = code[-1].outputs[0]["text"].strip()
    path = Path(probe)
    assert path.suffix == ".mp4"
    assert path.read_bytes()[4:8] == b"ftyp"
