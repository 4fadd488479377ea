"""Uncertain charges are settled from the account's history, never by paying again.

The provider stub (``tests.hostile.Provider``) takes a submit and loses the answer; its history
(``POST /api/v3/predictions``) is the evidence.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import wavenb
from tests.conftest import CANARY_KEY, MP4, png_bytes
from tests.hostile import Provider, Reply, Seen
from wavenb.jobs.reconcile import SETTLE_AFTER

PROMPT = "Camera slowly zooms in"


def lose_answers(provider: Provider, *, create: bool, times: int = 1):  # type: ignore[no-untyped-def]
    """The next ``times`` submits lose their answer; with ``create`` the task exists anyway."""
    left = {"n": times}

    def override(seen: Seen) -> Reply | None:
        if seen.path.endswith("/gen4-turbo") and left["n"]:
            left["n"] -= 1
            if create:
                provider.answer(seen)  # the provider takes it (and charges)...
                return Reply(mode="drop")  # ...and the answer never arrives
            return Reply(502, b"<html>Bad gateway</html>", {"content-type": "text/html"})
        return None

    return override


def lost_while_history_is_down(provider: Provider) -> dict[str, bool]:
    """The next submit loses its answer (the task exists) while the account's history answers
    503, so it ends uncertain; ``state["down"] = False`` brings the history back."""
    state = {"down": True}
    lose = lose_answers(provider, create=True)

    def override(seen: Seen) -> Reply | None:
        if seen.path == "/api/v3/predictions" and state["down"]:
            return Reply(503, b"down")
        return lose(seen)

    provider.override = override
    return state


class Clock:
    """A wall clock the test moves (journal times, the history window, "too early to say")."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def client_for(provider: Provider, tmp_path: Path, clock: Clock | None = None) -> wavenb.AsyncClient:
    runtime = wavenb.Runtime.scaled(0.01)
    if clock is not None:
        runtime.now = clock
    return wavenb.AsyncClient(CANARY_KEY, provider.url, output_dir=tmp_path, runtime=runtime)


async def test_a_lost_answer_is_found_in_the_history_and_never_paid_again(tmp_path: Path) -> None:
    with Provider() as provider:
        provider.override = lose_answers(provider, create=True)
        async with client_for(provider, tmp_path) as client:
            video = await client.generate(png_bytes(), PROMPT)
            [row] = client.journal.rows()
        assert video.path.read_bytes() == MP4
        assert video.id == provider.ids[0] and len(provider.submits()) == 1
        assert row.prediction_id == video.id and row.phase.value == "downloaded"
        assert row.cost == 0.5  # it was charged, and is counted


async def test_no_task_in_the_history_is_settled_as_not_charged_with_the_evidence(tmp_path: Path) -> None:
    clock = Clock()
    with Provider() as provider:
        provider.override = lose_answers(provider, create=False)
        async with client_for(provider, tmp_path, clock) as client:
            with pytest.raises(wavenb.SubmissionUncertain):
                await client.generate(png_bytes(), PROMPT)
            [early] = await client.reconcile()
            assert early.outcome == "pending"  # the history may lag a fresh submit
            clock.now += SETTLE_AFTER + timedelta(seconds=1)
            [settled] = await client.reconcile()
            [row] = client.journal.rows()
        assert settled.outcome == "not charged" and "no task with these inputs" in settled.evidence
        assert (row.status, row.cost, row.phase.value) == ("refused", 0.0, "refused")
        assert row.error.startswith("not charged: no task with these inputs")
        assert client.journal.unresolved() == [] and len(provider.submits()) == 1


async def test_two_matching_tasks_are_shown_never_guessed(tmp_path: Path) -> None:
    clock = Clock()
    image = "https://img.example/cat.png"
    with Provider() as provider:
        # The very same inputs sent from elsewhere (the web playground) a moment before:
        other = provider.made_elsewhere({"prompt": PROMPT, "image": image})
        provider.override = lose_answers(provider, create=True)
        async with client_for(provider, tmp_path, clock) as client:
            with pytest.raises(wavenb.SubmissionUncertain):
                await client.generate(image, PROMPT)
            clock.now += SETTLE_AFTER + timedelta(seconds=1)
            [result] = await client.reconcile()
            [uncertain] = client.journal.unresolved()
        assert result.outcome == "ambiguous"
        assert set(result.candidates) == {other, provider.ids[-1]}
        assert "2 tasks with the same inputs" in result.evidence
        assert uncertain.status == "unknown" and uncertain.prediction_id is None


async def test_a_history_without_inputs_is_no_evidence_of_no_charge(tmp_path: Path) -> None:
    """The history's items may come without their inputs (its shape is not documented): a task
    of the window that cannot be compared may be this one, so the row is never "not charged"."""
    clock = Clock()
    with Provider() as provider:
        lose = lose_answers(provider, create=True)

        def no_inputs(seen: Seen) -> Reply | None:
            if seen.path == "/api/v3/predictions":
                items = [provider.prediction(pid) for pid in provider.tasks]
                return Reply.json({"code": 200, "message": "success", "data": {
                    "page": 1, "page_size": 100, "total": len(items), "items": items}})
            return lose(seen)

        provider.override = no_inputs
        async with client_for(provider, tmp_path, clock) as client:
            with pytest.raises(wavenb.SubmissionUncertain):
                await client.generate(png_bytes(), PROMPT)
            clock.now += SETTLE_AFTER + timedelta(seconds=1)
            [result] = await client.reconcile()
            [row] = client.journal.unresolved()
        assert result.outcome == "ambiguous" and result.candidates == (provider.ids[0],)
        assert "carry no inputs" in result.evidence
        assert (row.status, row.cost) == ("unknown", 0.5)  # still counted as maybe charged
        assert row.error is not None and provider.ids[0] in row.error  # the evidence is kept
        assert len(provider.submits()) == 1


async def test_no_history_endpoint_leaves_it_unknown_and_says_why(tmp_path: Path) -> None:
    with Provider() as provider:
        def no_history(seen: Seen) -> Reply | None:
            if seen.path == "/api/v3/predictions":
                return Reply.json({"code": 404, "message": "not here"}, status=404)
            return None

        lose = lose_answers(provider, create=True)
        provider.override = lambda seen: no_history(seen) or lose(seen)
        async with client_for(provider, tmp_path) as client:
            with pytest.raises(wavenb.SubmissionUncertain):
                await client.generate(png_bytes(), PROMPT)
            [result] = await client.reconcile()
        assert result.outcome == "unavailable" and "could not be read" in result.evidence
        assert len(provider.submits()) == 1


@pytest.mark.parametrize("settled_by", ["wavenb.resume()", "wavenb.unresolved(), then the CLI"])
def test_an_uncertain_submission_is_settled_by_resume_or_unresolved_alone(
    settled_by: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing else called first: either reads the account's history itself, finds the task
    the lost answer was about, and its video is fetched (one payment)."""
    with Provider() as provider:
        monkeypatch.setenv("WAVESPEED_API_KEY", CANARY_KEY)
        monkeypatch.setenv("WAVENB_BASE_URL", provider.url)
        history = lost_while_history_is_down(provider)
        with pytest.raises(wavenb.SubmissionUncertain):
            wavenb.generate(png_bytes(), PROMPT)
        history["down"] = False
        if settled_by == "wavenb.resume()":
            [resumed] = wavenb.resume()
            assert resumed.video is not None and resumed.video.path.read_bytes() == MP4
            assert resumed.row.prediction_id == provider.ids[0]
        else:
            assert wavenb.unresolved() == []  # settled: it is the provider's task
            from wavenb.cli.main import main

            assert main(["resume"]) == 0
            assert provider.ids[0] in capsys.readouterr().out
        assert len(provider.submits()) == 1 and wavenb.unresolved() == []


DIES_WHILE_SENDING = """
import sys, wavenb
# The provider takes the submit and never answers: the process is killed while it waits.
wavenb.generate(sys.argv[1], "Camera slowly zooms in")
"""


def test_a_submit_whose_process_died_while_sending_is_settled_and_joined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel killed with its submit in the air: the same request later pays nothing."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    image = tmp_path / "cat.png"
    image.write_bytes(png_bytes())
    held = {"on": True}

    def hold_the_answer(seen: Seen) -> Reply | None:
        if seen.path.endswith("/gen4-turbo") and held["on"]:
            provider.answer(seen)  # taken (and charged)...
            return Reply(mode="hang")  # ...and the answer never comes before the kill
        return None

    with Provider() as provider:
        provider.override = hold_the_answer
        env = {**os.environ, "WAVESPEED_API_KEY": CANARY_KEY, "WAVENB_BASE_URL": provider.url}
        child = subprocess.Popen([sys.executable, "-c", DIES_WHILE_SENDING, str(image)], cwd=ROOT,
                                 env=env, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while not provider.ids and time.monotonic() < deadline:
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        held["on"] = False
        monkeypatch.setenv("WAVESPEED_API_KEY", CANARY_KEY)
        monkeypatch.setenv("WAVENB_BASE_URL", provider.url)
        [uncertain] = wavenb.history()
        assert uncertain.status == "submitting" and uncertain.prediction_id is None
        video = wavenb.generate(str(image), "Camera slowly zooms in")
        assert video.id == provider.ids[0] and video.path.read_bytes() == MP4
        assert len(provider.submits()) == 1
        [row] = wavenb.history()
        assert row.prediction_id == video.id and row.phase.value == "downloaded"


async def test_the_same_request_again_after_a_lost_answer_that_was_not_charged_goes_out(
    tmp_path: Path,
) -> None:
    """The identical earlier submit is settled "not charged" from the history: this one is sent
    (once), instead of stopping with "may already have been charged"."""
    clock = Clock()
    image = "https://img.example/cat.png"
    with Provider() as provider:
        provider.override = lose_answers(provider, create=False)
        async with client_for(provider, tmp_path, clock) as client:
            with pytest.raises(wavenb.SubmissionUncertain):
                await client.generate(image, PROMPT)
            clock.now += SETTLE_AFTER + timedelta(seconds=1)
            video = await client.generate(image, PROMPT)
            rows = client.journal.rows()
        assert video.path.read_bytes() == MP4 and len(provider.ids) == 1
        assert len(provider.submits()) == 2  # the lost one (not created), then this one
    assert sorted(row.status for row in rows) == ["completed", "refused"]
