"""The teaching notebook says what its outputs show.

``notebooks/teaching_async_api.ipynb`` explains each output in the text around it. These tests
run it once (headless, on the sandbox, as ``tests/test_notebooks.py`` does) and check every
claim the text makes about an output: the numbers the text names are the numbers the code uses
and prints, and what the text says happens (a 429 and its ``Retry-After``, backoff, a 5004, a
webhook delivery and its retries...) is what the run printed. Times in the notebook are lesson
seconds on a clock that runs ``SPEEDUP`` times fast; work the machine does itself (requests,
renders) is stretched by it, so bounds on times here are loose on purpose.
"""

from __future__ import annotations

import itertools
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import ROOT
from wavenb.core.polling import REAL_API
from wavenb.jobs.gate import LONGEST_SUBMIT_WAIT, MAX_RATE_LIMITED

NOTEBOOK = ROOT / "notebooks" / "teaching_async_api.ipynb"
UNSET = ("WAVESPEED_API_KEY", "WAVENB_BASE_URL", "WAVESPEED_BASE_URL", "WAVENB_MAX_SPEND")
PNG = "image/png"
TIMES = "\N{MULTIPLICATION SIGN}"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> nbformat.NotebookNode:
    """The notebook, run once for this module in a kernel with no key and no user profile.

    matplotlib's inline backend (not "agg"), so the plots the text describes are in the outputs.
    """
    scratch = tmp_path_factory.mktemp("teaching")
    env = {name: value for name, value in os.environ.items() if name not in UNSET}
    for name in ("IPYTHONDIR", "JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR"):
        folder = scratch / name.lower()
        folder.mkdir()
        env[name] = str(folder)
    env |= {
        "WAVENB_HOME": str(scratch / "wavenb-home"),
        "WAVENB_SANDBOX_SPEED": "instant",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute(env=env)  # raises CellExecutionError on the first error
    return notebook


def source() -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK, as_version=4)


def cell(notebook: nbformat.NotebookNode, snippet: str) -> nbformat.NotebookNode:
    """The one code cell whose source contains ``snippet``."""
    found = [c for c in notebook.cells if c.cell_type == "code" and snippet in c.source]
    assert len(found) == 1, f"{len(found)} code cells contain {snippet!r}"
    return found[0]


def markdown(notebook: nbformat.NotebookNode, snippet: str) -> str:
    """The one markdown cell containing ``snippet``, with its lines joined."""
    found = [c for c in notebook.cells if c.cell_type == "markdown" and snippet in c.source]
    assert len(found) == 1, f"{len(found)} markdown cells contain {snippet!r}"
    return " ".join(found[0].source.split())


def printed(notebook: nbformat.NotebookNode, snippet: str) -> str:
    """Everything the cell containing ``snippet`` printed or returned, as text."""
    parts = []
    for output in cell(notebook, snippet).outputs:
        if output.output_type == "stream":
            parts.append(output.text)
        elif "text/plain" in output.get("data", {}):
            parts.append(output.data["text/plain"] + "\n")
    return "".join(parts)


def numbers(pattern: str, text: str) -> list[float]:
    return [float(value) for value in re.findall(pattern, text)]


def plotted(notebook: nbformat.NotebookNode, snippet: str) -> bool:
    return any(PNG in output.get("data", {}) for output in cell(notebook, snippet).outputs)


# -- what holds without running it ----------------------------------------------------------


def test_the_time_scale_is_stated_once_as_the_code_sets_it() -> None:
    notebook = source()
    intro = markdown(notebook, "**Time.**")
    assert f"**50{TIMES} fast**" in intro
    assert "SPEEDUP = 50" in cell(notebook, "def clock()").source
    assert "scale=1 / SPEEDUP" in cell(notebook, "def clock()").source
    said = [int(n) for c in notebook.cells if c.cell_type == "markdown"
            for n in re.findall(rf"(\d+){TIMES}", c.source)]  # fmt: skip
    assert said and set(said) == {50}, "every mention of the speed-up says what the code does"


def test_every_exercise_has_a_collapsed_answer() -> None:
    cells = source().cells
    exercises = [i for i, c in enumerate(cells) if "### ✏️ Exercise" in c.source]
    assert len(exercises) == 7
    for index in exercises:
        exercise, answer = cells[index + 1], cells[index + 2]
        assert exercise.metadata.get("tags") == ["exercise"]
        assert "# TODO" in exercise.source
        assert answer.metadata.get("tags") == ["answer"]
        assert answer.metadata["jupyter"]["source_hidden"] is True
        assert answer.source.startswith("# Answer")


def test_the_schedule_the_text_describes_is_the_real_apis() -> None:
    text = markdown(source(), "runs this loop for you, politely")
    assert (REAL_API.first_delay, REAL_API.min_interval, REAL_API.growth) == (10.0, 5.0, 0.25)
    assert (REAL_API.max_interval, REAL_API.jitter) == (30.0, 0.1)
    for claim in ("about 10 s before the first check", "at least 5 s between checks",
                  "a quarter of the time waited, at most 30 s", "±10 %"):  # fmt: skip
        assert claim in text


def test_the_sandboxes_are_set_up_as_the_text_says() -> None:
    notebook = source()
    assert "submit_rate=(2, 60.0)" in cell(notebook, "bronze_rate = ").source
    assert "2 videos a minute" in markdown(notebook, "### Too many requests: 429")
    assert "retry_after=600" in cell(notebook, "always_429 = FaultPlan(").source
    assert "asking for 10 minutes" in markdown(notebook, "wavenb does not wait forever")
    sync = cell(notebook, "enable_sync_mode").source
    assert "[(1.0, 15.0), (1.0, 100.0)]" in sync
    assert "sync_wait=60.0" in sync
    text = markdown(notebook, "### Sync mode")
    for claim in ("at most 60 s", "first video in about 15 s", "second in about 100 s"):
        assert claim in text
    assert "webhook_backoff=5 / SPEEDUP" in cell(notebook, "async def receive(").source
    assert "(5, 10, 20 lesson s" in cell(notebook, "# Answer: a failed delivery").source


# -- what the run shows ---------------------------------------------------------------------


@pytest.mark.slow
def test_the_lesson_runs_clean_and_draws_its_plots(executed: nbformat.NotebookNode) -> None:
    for code in (c for c in executed.cells if c.cell_type == "code"):
        for output in code.outputs:
            assert output.output_type != "error", output
            assert "Traceback" not in output.get("text", "")
    for snippet in ("wavenb.plot_timeline(video)", 'title="three tasks at once"',
                    'title="a task that failed"', 'title="a class batch, one refused"',
                    'title="asyncio.gather"', 'title="six tasks, two slots"'):  # fmt: skip
        assert plotted(executed, snippet), snippet


@pytest.mark.slow
def test_a_submit_answers_a_task_not_a_video(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, '"/api/v3/media/upload/binary", files=image_file)\nimage_url')
    assert text.startswith("HTTP 200")
    for field in ('"status": "created"', '"outputs": []', '"sandbox": true', '"get": "https://'):
        assert field in text
    assert printed(executed, "my_task.status.label").startswith("created -> queued")


@pytest.mark.slow
def test_polling_by_hand_waits_5_s_between_answers(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, "await sleep(5)  # wait before asking again")
    statuses = re.findall(r"s  (\w+)\n", text)
    assert statuses[0] == "created" and statuses[-1] == "completed"
    assert set(statuses[1:-1]) <= {"created", "processing"}
    times = numbers(r"([\d.]+) s  \w+\n", text)
    # Printed to a tenth of a second: two roundings may take 0.1 s off a 5 s gap.
    assert all(b - a >= 5.0 - 0.1 - 1e-9 for a, b in itertools.pairwise(times))


@pytest.mark.slow
def test_short_intervals_cost_requests_long_ones_lateness(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, "poll_every(1), poll_every(20)")
    (short_requests, short_late), (long_requests, long_late) = (
        (int(n), float(late)) for n, late in re.findall(r"(\d+) requests, noticed\s+([\d.]+)", text)
    )
    assert short_requests > 3 * long_requests
    assert short_late < long_late <= 20.0 + 5.0  # up to one interval late (plus the request)


@pytest.mark.slow
def test_wait_keeps_the_real_apis_distance(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, "done = await client.wait(fresh, on_update=show)")
    phases = re.findall(r" s  (\w+) +checks", text)
    assert phases[0] == "queued" and phases[-1] == "completed"
    pauses = numbers(r"next check in +([\d.]+) s", text)
    assert 9.0 <= pauses[0] <= 11.0  # about 10 s, with 10 % jitter
    assert all(pause >= REAL_API.min_interval for pause in pauses)


@pytest.mark.slow
def test_the_first_timeline_shows_backoff(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, 'print("gap before:"')
    gaps = numbers(r"([\d.]+)", text.split("gap before:")[1])
    assert 9.0 <= gaps[0] <= 12.0, "the first check about 10 s after the submit"
    assert 5.0 <= gaps[1] <= 8.0, "the next 5 s or a little more later"
    assert gaps[-1] > 1.8 * gaps[1], "then the gaps grow"
    assert all(later >= earlier * 0.8 for earlier, later in itertools.pairwise(gaps[1:]))


@pytest.mark.slow
def test_the_errors_the_text_names(executed: nbformat.NotebookNode) -> None:
    assert "HTTP 401" in printed(executed, '"Bearer a-wrong-key"')
    wrong = printed(executed, "except wavenb.AuthenticationError as error:")
    assert wrong.startswith("AuthenticationError (HTTP 401)")
    assert "a-wrong-key" not in wrong, "the message never contains the key"
    failed = printed(executed, 'await client.generate(IMAGE, "Zoom in on the gore")')
    assert "failed: Content policy violation" in failed
    assert "moderation: True" in failed


@pytest.mark.slow
def test_the_third_submit_in_a_minute_gets_a_429(executed: nbformat.NotebookNode) -> None:
    lines = printed(executed, "bronze_rate = ").splitlines()
    assert [line.split("  ")[0] for line in lines] == [
        "submit 1: HTTP 200", "submit 2: HTTP 200", "submit 3: HTTP 429",
    ]  # fmt: skip
    retry_after = int(re.search(r"Retry-After: (\d+)", lines[2]).group(1))
    assert 55 <= retry_after <= 60, "come back when the first submit is a minute old"


@pytest.mark.slow
def test_wavenb_waits_the_429_out_and_says_so(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, "logged = lesson_sandbox(")
    (pause,) = numbers(r"waiting: pacing submits: next in (\d+) s", text)
    assert 0 < pause <= 60
    log = re.findall(r"the server's log: +([\d.]+) s  POST submit -> HTTP (\d+)", text)
    assert [status for _, status in log] == ["200", "200", "429", "200"]
    assert 59.0 <= float(log[-1][0]) <= 66.0, "accepted a minute after the first"
    assert "stamina" not in markdown(executed, "one **submit gate**")


@pytest.mark.slow
def test_wavenb_gives_up_on_a_long_retry_after(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, "always_429 = FaultPlan(")
    assert text.startswith(
        f"gives up past {LONGEST_SUBMIT_WAIT:.0f} s asked, or after {MAX_RATE_LIMITED} 429s"
    )
    assert "RateLimitError (HTTP 429, retry after 600 s)" in text
    assert text.rstrip().endswith("phase: refused")


@pytest.mark.slow
def test_gather_waits_together_and_the_schedule_has_learned(
    executed: nbformat.NotebookNode,
) -> None:
    text = printed(executed, "one_by_one = [await client.generate")
    one_by_one, together = numbers(r":\s+([\d.]+) s", text)
    assert together < one_by_one / 2
    firsts = numbers(r"first check at +([\d.]+) s", printed(executed, "first check at"))
    assert len(firsts) == 6
    assert min(firsts) > 1.5 * REAL_API.first_delay, "quiet for the first part of a task"


@pytest.mark.slow
def test_two_slots_queue_the_rest(executed: nbformat.NotebookNode) -> None:
    waits = sorted(numbers(r"queued +([\d.]+) s", printed(executed, "# Answer: two tasks")))
    assert len(waits) == 6
    assert waits[-1] > 2 * waits[0], "the last tasks wait for a slot"


@pytest.mark.slow
def test_sync_mode_answers_the_video_or_5004(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, "enable_sync_mode")
    assert text.startswith("held at most 60.0 s")
    quick, slow = re.findall(r"answered after +([\d.]+) s: (.*)", text)
    assert quick[1] == "HTTP 200, status completed, code -, outputs 1"
    assert float(quick[0]) < 60.0
    assert slow[1] == "HTTP 200, status processing, code 5004, outputs 0"
    assert float(slow[0]) >= 60.0
    assert "Sync mode timed out" in text
    assert " completed http" in printed(executed, "await follower.wait(data[")


@pytest.mark.slow
def test_a_webhook_is_delivered_without_a_single_check(executed: nbformat.NotebookNode) -> None:
    assert "receiver at http://127.0.0.1:" in printed(executed, "async def receive(")
    text = printed(executed, "arrived, envelope = await")
    assert text.startswith("submitted: created")
    assert re.search(r"the webhook came [\d.]+ s later:", text)
    assert '"status": "completed"' in text and '"outputs": [\n      "http://127.0.0.1:' in text
    record = printed(executed, "result checks answered:")
    assert record.startswith("result checks answered: 0\n")
    (late,) = numbers(r"delivery 1: HTTP 200, ([\d.]+) s after the task ended", record)
    assert late < 15.0, "a few lesson seconds after the end"


@pytest.mark.slow
def test_a_failing_receiver_gets_retries_with_doubling_pauses(
    executed: nbformat.NotebookNode,
) -> None:
    text = printed(executed, "refuse_next = 2  # TODO")
    attempts = re.findall(r"attempt (\d) at \+ *([\d.]+) s: HTTP (\d+), (\w+)", text)
    assert [(n, status, outcome) for n, _, status, outcome in attempts] == [
        ("1", "500", "failed"), ("2", "500", "failed"), ("3", "200", "taken"),
    ]  # fmt: skip
    first, second, third = (float(at) for _, at, _, _ in attempts)
    assert second - first >= 5.0 and third - second >= 10.0, "pauses of 5, then 10 lesson s"
    answer = printed(executed, "refuse_next = 5")
    assert answer.startswith("tries in all: 4\n")
    assert re.findall(r"attempt (\d): HTTP (\d+), (\w+)", answer) == [
        (str(n), "500", "failed") for n in range(1, 5)
    ], "with 5 failures all 4 tries fail: the event is lost"


@pytest.mark.slow
def test_the_real_api_client_is_only_built(executed: nbformat.NotebookNode) -> None:
    text = printed(executed, "wsk-a-placeholder-not-a-key")
    assert "WAVESPEED_API_KEY is not set" in text
    assert re.search(r"lesson client +sandbox .* \$0\.00 a video", text)
    assert re.search(r"real API client +api .* \$0\.50 a video", text)
