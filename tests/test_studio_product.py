"""The Studio as a product: what a user sees first, what it settles by itself, code that runs.

Headless, like ``test_studio.py`` (whose helpers it uses): the page's actions go through the
widget's real message handling; servers are the sandbox, a scripted ``MockTransport`` or the
hostile provider stub (``tests.hostile.Provider``).
"""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, png_bytes
from tests.frontend import Page, recorded_comms
from tests.hostile import Provider, Reply, Seen
from tests.test_reconcile import PROMPT, client_for, lost_while_history_is_down
from tests.test_studio import LIMIT, api_client, upload
from wavenb import AsyncClient, SubmissionUncertain
from wavenb.api.embedded import NOTICE
from wavenb.studio import widget
from wavenb.studio.widget import Studio

pytestmark = pytest.mark.usefixtures("recorded_comms")
__all__ = ["recorded_comms"]


@pytest.fixture
async def studio(sandbox_client: AsyncClient, tmp_path: Path) -> Studio:
    studio = Studio(client=sandbox_client, save_dir=tmp_path / "saved")
    await studio.wait_idle(LIMIT)
    return studio


# -- the "no key" notice: a warning in a script, not an error box in a notebook ---------------

NOTICE_TWICE = """
import sys
from wavenb.api.embedded import embedded_transport
from wavenb.core.runtime import Runtime

embedded_transport("instant", Runtime())  # a script: Python prints the warning on stderr
sys.stderr.write("--- now as a Jupyter kernel ---\\n")
import ipykernel  # what every Jupyter kernel (Lab, Notebook 7, Voila, VS Code) has loaded
embedded_transport("instant", Runtime())  # a fresh runtime gives its notice again
"""


def test_the_sandbox_notice_reaches_stderr_in_scripts_only_not_under_a_kernel() -> None:
    """Jupyter front ends draw stderr as a red error box: under a kernel the notice is an INFO
    record (the SANDBOX badge and labels say it), in a script it stays a printed warning."""
    pytest.importorskip("ipykernel")
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(NOTICE_TWICE)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    script, kernel = done.stderr.split("--- now as a Jupyter kernel ---")
    assert NOTICE in script
    assert kernel.strip() == ""


# -- what the first render claims ----------------------------------------------------------


async def test_no_price_is_claimed_while_the_server_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Generate waits for the server's answer a short while, then shows the list price."""
    monkeypatch.setattr(widget, "DETECT_PATIENCE", 0.05)
    answer = asyncio.Event()

    async def slow_price(request: httpx.Request) -> httpx.Response:
        if "/model/" in request.url.path:
            await answer.wait()
        return httpx.Response(404, json={"code": 404, "message": "no route", "data": None})

    studio = Studio(client=api_client(slow_price, tmp_path))
    upload(studio, png_bytes((320, 180)))
    Page(studio).type(prompt_text=PROMPT)
    assert studio.generate_label == "Generate · checking price…"
    priced = asyncio.Event()
    studio.observe(lambda _change: priced.set(), names=["generate_label"])
    await asyncio.wait_for(priced.wait(), LIMIT)
    assert studio.generate_label == "Generate · $0.50"  # the list price, not a quote
    assert studio.generate_ready  # a silent server does not keep Generate off
    answer.set()
    await studio.wait_idle(LIMIT)
    assert not studio.sandbox


# -- uncertain submissions settle by themselves --------------------------------------------


async def test_a_studio_settles_uncertain_submissions_from_the_history_when_it_starts(
    tmp_path: Path,
) -> None:
    """A lost answer the history could not settle then: the next Studio settles it, its warning
    goes, and the task found is offered to Resume (never submitted again)."""
    with Provider() as provider:
        history = lost_while_history_is_down(provider)
        async with client_for(provider, tmp_path) as client:
            with pytest.raises(SubmissionUncertain):
                await client.generate(png_bytes(), PROMPT)
        history["down"] = False

        async with client_for(provider, tmp_path) as client:  # a later session
            studio = Studio(client=client, save_dir=tmp_path / "saved")
            assert studio.warning.startswith("1 submission got no answer")  # as the journal says
            assert studio.resume_text == ""
            await studio.wait_idle(LIMIT)
            assert studio.warning == ""  # settled: the provider's history has the task
            assert studio.resume_text.startswith("1 unfinished run from earlier")
            [row] = client.journal.rows()
            assert row.prediction_id == provider.ids[0]
        assert len(provider.submits()) == 1


# -- copy as code for an image that came from the browser ----------------------------------


async def test_copy_as_code_for_a_dropped_image_runs_as_it_is(
    studio: Studio, tmp_path: Path
) -> None:
    data = png_bytes((320, 180), "teal")
    upload(studio, data, name="pasted image")  # what a paste sends when the file has no name
    Page(studio).type(prompt_text=PROMPT)
    await studio.wait_idle(LIMIT)
    await studio.generate()
    code = studio.runs[0]["code"]
    call = ast.parse(code).body[1].value  # video = wavenb.generate(...)
    kept = Path(ast.literal_eval(call.args[0]))
    assert kept.parent == tmp_path / "saved" / "uploads"
    assert kept.suffix == ".png" and kept.read_bytes() == data

    namespace: dict[str, Any] = {}
    await asyncio.to_thread(exec, code, namespace)  # what the user does with the copied code
    assert namespace["video"].path.read_bytes()[4:8] == b"ftyp"


async def test_the_same_image_dropped_twice_is_kept_once(studio: Studio, tmp_path: Path) -> None:
    data = png_bytes((64, 64), "navy")
    for name in ("a.png", "b.png"):
        upload(studio, data, name=name)
        await studio.wait_idle(LIMIT)
    assert len(list((tmp_path / "saved" / "uploads").iterdir())) == 1


async def test_a_dropped_image_that_cannot_be_kept_says_where_to_keep_it(
    sandbox_client: AsyncClient, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    studio = Studio(client=sandbox_client, save_dir=blocker)
    upload(studio, png_bytes())
    await studio.wait_idle(LIMIT)
    assert studio.image is None
    assert "could not be kept on the kernel's machine" in studio.image_message["text"]
    assert str(blocker) in studio.image_message["text"]


async def test_the_price_shown_and_journaled_is_the_servers_quote(tmp_path: Path) -> None:
    """A model priced $0.75 (not the $0.50 fallback): the button, the spend and the journal."""
    with Provider() as provider:
        def priced(seen: Seen) -> Reply | None:
            if "/model/" in seen.path:
                return Reply.json({"code": 200, "message": "success",
                                   "data": {"model_id": "runwayml/gen4-turbo", "price": 0.75}})
            return None

        provider.override = priced
        client = AsyncClient("wsk-canary-0123456789abcdef", provider.url, output_dir=tmp_path)
        studio = Studio(client=client, save_dir=tmp_path / "saved")
        await studio.set_image(png_bytes())
        studio.prompt = PROMPT
        for _ in range(200):
            if studio.generate_label != "Generate · checking price…":
                break
            await asyncio.sleep(0.01)
        assert studio.generate_label == "Generate · $0.75"
        await asyncio.wait_for(studio.generate(), LIMIT)
        [row] = client.journal.rows()
        await client.aclose()
    assert (row.cost, row.phase.value) == (0.75, "downloaded")
    assert client.spent() == 0.75 and "0.75" in studio.spent_text
