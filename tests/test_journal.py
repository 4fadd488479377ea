"""The journal: every submission recorded before it is sent, and followed to the local file."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import CANARY_KEY, ROOT
from wavenb.core.config import SANDBOX_BASE_URL
from wavenb.core.errors import WavenbError
from wavenb.core.models import Prediction, Status
from wavenb.core.types import MODEL_ID, PRICE_PER_VIDEO
from wavenb.journal.rows import JournalRow, format_table, request_hash, sha256_file, to_pandas
from wavenb.journal.schema import SCHEMA_VERSION
from wavenb.journal.store import RETENTION, STALE_SUBMIT, Journal

API = "https://api.wavespeed.ai"
START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    """A clock that moves only when told."""

    now: datetime = START
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite3", clock=clock) as opened:
        yield opened


def begin(
    journal: Journal,
    prompt: str = "Camera slowly zooms in",
    *,
    ratio: str | None = "16:9",
    image_sha256: str | None = "ab" * 32,
    image_source: str = "cat.jpg",
    base_url: str = API,
    cost: float = PRICE_PER_VIDEO,
) -> str:
    wanted = request_hash(
        model=MODEL_ID,
        image_sha256=image_sha256,
        image_source=image_source,
        prompt=prompt,
        aspect_ratio=ratio,
        base_url=base_url,
    )
    return journal.begin(
        request_hash=wanted,
        model=MODEL_ID,
        prompt=prompt,
        aspect_ratio=ratio,
        image_sha256=image_sha256,
        image_source=image_source,
        backend="sandbox" if base_url == SANDBOX_BASE_URL else "api",
        base_url=base_url,
        cost=cost,
    )


def prediction(
    task_id: str,
    status: Status = Status.CREATED,
    *,
    output: str | None = None,
    error: str | None = None,
    inference_ms: int | None = None,
    sandbox: bool = False,
) -> Prediction:
    return Prediction(
        id=task_id,
        model=MODEL_ID,
        status=status,
        outputs=(output,) if output else (),
        error=error,
        inference_ms=inference_ms,
        sandbox=sandbox,
    )


def only_row(journal: Journal) -> JournalRow:
    (row,) = journal.rows()
    return row


def row_of(journal: Journal, task_id: str) -> JournalRow:
    row = journal.get(task_id)
    assert row is not None
    return row


def completed(journal: Journal, clock: Clock, task_id: str, prompt: str = "Zoom in") -> str:
    """A submission accepted, then seen completed 30 s later."""
    key = begin(journal, prompt)
    journal.accepted(key, prediction(task_id))
    clock.advance(30)
    journal.update(prediction(task_id, Status.COMPLETED, output=f"https://cdn/{task_id}/1.mp4"))
    return key


def saved(journal: Journal, task_id: str, folder: Path, data: bytes = b"mp4 bytes") -> Path:
    path = folder / f"{task_id}.mp4"
    path.write_bytes(data)
    journal.downloaded(task_id, path, *sha256_file(path))
    return path


# -- the file ------------------------------------------------------------------------------


def test_default_path_is_in_wavenb_home(tmp_path: Path) -> None:
    with Journal() as journal:
        assert journal.path == tmp_path / "wavenb-home" / "journal.sqlite3"
        assert journal.path.exists()


def test_file_is_in_wal_mode_with_schema_version_and_indexes(journal: Journal) -> None:
    db = sqlite3.connect(journal.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    indexed = {
        row[0] for row in db.execute("SELECT sql FROM sqlite_master WHERE type = 'index'") if row[0]
    }
    for column in ("prediction_id", "request_hash", "status", "submitted_at"):
        assert any(f"({column})" in sql for sql in indexed), column
    db.close()


def test_reopening_keeps_rows(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "journal.sqlite3"
    with Journal(path, clock=clock) as first:
        begin(first)
    with Journal(path, clock=clock) as second:
        assert len(second.rows()) == 1


def test_a_file_from_a_newer_wavenb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(WavenbError, match="newer wavenb"):
        Journal(path)


# -- the life of a row ---------------------------------------------------------------------


def test_a_row_follows_a_submission_to_its_file(
    journal: Journal, clock: Clock, tmp_path: Path
) -> None:
    key = begin(journal, "Zoom in")
    row = only_row(journal)
    assert (row.request_key, row.status, row.prediction_id) == (key, "submitting", None)
    assert (row.prompt, row.aspect_ratio, row.image_source, row.backend) == (
        "Zoom in",
        "16:9",
        "cat.jpg",
        "api",
    )
    assert (row.cost, row.submitted_at, row.base_url, row.model) == (0.5, START, API, MODEL_ID)

    clock.advance(1)
    journal.accepted(key, prediction("t1"))
    row = only_row(journal)
    assert (row.prediction_id, row.status, row.accepted_at) == ("t1", "created", clock.now)
    assert row.resumable

    clock.advance(10)
    journal.update(prediction("t1", Status.PROCESSING))
    assert row_of(journal, "t1").status == "processing"

    clock.advance(20)
    url = "https://cdn.example/predictions/t1/1.mp4"
    journal.update(prediction("t1", Status.COMPLETED, output=url, inference_ms=25_000))
    row = row_of(journal, "t1")
    assert (row.status, row.output_url, row.inference_ms) == ("completed", url, 25_000)
    assert row.finished_at == clock.now
    assert row.terminal
    assert row.needs_download
    assert row.resumable

    clock.advance(2)
    path = saved(journal, "t1", tmp_path, b"a video")
    row = row_of(journal, "t1")
    assert (row.path, row.size, row.downloaded_at) == (str(path), 7, clock.now)
    assert row.sha256 == hashlib.sha256(b"a video").hexdigest()
    assert not row.needs_download
    assert not row.resumable
    assert row.updated_at == clock.now


def test_refused_submission_costs_nothing(journal: Journal) -> None:
    key = begin(journal)
    journal.refused(key, "HTTP 400: invalid parameters: prompt too long")
    row = only_row(journal)
    assert (row.status, row.cost, row.terminal) == ("refused", 0.0, True)
    assert row.error == "HTTP 400: invalid parameters: prompt too long"
    assert row.finished_at is not None
    assert journal.spent() == 0.0
    assert journal.unresolved() == []
    assert journal.resumable() == []


def test_unknown_submission_is_unresolved_not_resumable(journal: Journal) -> None:
    key = begin(journal)
    journal.unknown(key, "the submit request was sent but no answer came before the timeout")
    row = only_row(journal)
    assert (row.status, row.cost, row.terminal) == ("unknown", 0.5, False)
    assert [r.request_key for r in journal.unresolved()] == [key]
    assert journal.resumable() == []
    assert journal.spent() == 0.5
    assert journal.spent(include_unknown=False) == 0.0


def test_unknown_submission_found_later_counts_as_accepted(journal: Journal) -> None:
    key = begin(journal)
    journal.unknown(key, "no answer")
    journal.accepted(key, prediction("t1", Status.PROCESSING))
    row = only_row(journal)
    assert (row.status, row.prediction_id, row.error, row.cost) == ("processing", "t1", None, 0.5)
    assert journal.unresolved() == []
    assert journal.spent(include_unknown=False) == 0.5


def test_answers_for_a_missing_or_answered_row_raise(journal: Journal) -> None:
    with pytest.raises(KeyError):
        journal.accepted("nope", prediction("t1"))
    key = begin(journal)
    journal.accepted(key, prediction("t1"))
    with pytest.raises(KeyError):
        journal.refused(key, "too late")
    with pytest.raises(KeyError):
        journal.unknown(key, "too late")
    with pytest.raises(ValueError, match="t1"):
        journal.accepted(key, prediction("t2"))
    journal.accepted(key, prediction("t1"))  # the same answer twice is harmless
    assert only_row(journal).status == "created"


def test_begin_rejects_a_bad_backend_or_cost(journal: Journal) -> None:
    def start(backend: str, cost: float) -> str:
        return journal.begin(
            request_hash="h",
            model=MODEL_ID,
            prompt="p",
            aspect_ratio=None,
            image_sha256=None,
            image_source="https://x/y.png",
            backend=backend,
            base_url=API,
            cost=cost,
        )

    with pytest.raises(ValueError, match="backend"):
        start("replicate", 0.5)
    with pytest.raises(ValueError, match="cost"):
        start("api", -1)
    assert journal.rows() == []


def test_a_sandbox_answer_makes_the_row_free(journal: Journal) -> None:
    """A served sandbox may only reveal itself in its answer; it must not count as spent."""
    key = begin(journal, base_url="http://127.0.0.1:8765")
    journal.accepted(key, prediction("t1", sandbox=True))
    row = only_row(journal)
    assert (row.backend, row.cost) == ("sandbox", 0.0)


def test_update_of_an_unknown_id_does_nothing(journal: Journal) -> None:
    journal.update(prediction("elsewhere", Status.COMPLETED, output="https://cdn/x.mp4"))
    journal.downloaded("elsewhere", Path("x.mp4"), "00" * 32, 1)
    assert journal.rows() == []
    assert journal.get("elsewhere") is None


def test_a_terminal_status_is_final(journal: Journal, clock: Clock) -> None:
    """A late answer from an older check (another kernel polling) must not reopen a task."""
    completed(journal, clock, "t1")
    before = journal.get("t1")
    clock.advance(5)
    journal.update(prediction("t1", Status.PROCESSING))
    assert journal.get("t1") == before


def test_an_unrecognised_api_status_is_stored_as_processing(journal: Journal) -> None:
    """The API's unknown status means "still running", not the journal's "fate unknown"."""
    key = begin(journal)
    journal.accepted(key, prediction("t1", Status.UNKNOWN))
    assert only_row(journal).status == "processing"
    assert journal.unresolved() == []


def test_a_failed_task_keeps_its_error(journal: Journal) -> None:
    key = begin(journal)
    journal.accepted(key, prediction("t1"))
    journal.update(prediction("t1", Status.FAILED, error="content policy violation"))
    row = only_row(journal)
    assert (row.status, row.error, row.terminal, row.resumable) == (
        "failed",
        "content policy violation",
        True,
        False,
    )


# -- unresolved submits --------------------------------------------------------------------


def test_a_submit_in_flight_is_not_unresolved(journal: Journal, clock: Clock) -> None:
    begin(journal)
    assert journal.unresolved() == []
    clock.advance(STALE_SUBMIT.total_seconds() + 1)
    assert [row.status for row in journal.unresolved()] == ["submitting"]


def test_a_submit_left_by_a_dead_process_is_unresolved(journal: Journal) -> None:
    """A kernel that died between begin() and the answer leaves a row to report at once."""
    script = textwrap.dedent(f"""
        from wavenb.journal.store import Journal
        Journal({str(journal.path)!r}).begin(
            request_hash="h", model="m", prompt="died", aspect_ratio=None, image_sha256=None,
            image_source="bytes", backend="api", base_url={API!r}, cost=0.5)
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    assert [row.prompt for row in journal.unresolved()] == ["died"]
    assert journal.resumable() == []


# -- resuming and reusing ------------------------------------------------------------------


def test_resumable_lists_running_and_undownloaded_tasks(
    journal: Journal, clock: Clock, tmp_path: Path
) -> None:
    running = begin(journal, "running")
    journal.accepted(running, prediction("run"))
    completed(journal, clock, "not-saved")
    completed(journal, clock, "saved")
    saved(journal, "saved", tmp_path)
    completed(journal, clock, "removed")
    saved(journal, "removed", tmp_path).unlink()
    completed(journal, clock, "cut")
    saved(journal, "cut", tmp_path).write_bytes(b"mp4")
    failed = begin(journal)
    journal.accepted(failed, prediction("failed"))
    journal.update(prediction("failed", Status.FAILED, error="boom"))
    journal.unknown(begin(journal), "no answer")
    journal.refused(begin(journal), "HTTP 401")
    begin(journal)  # in flight

    assert [row.prediction_id for row in journal.resumable()] == [
        "run",
        "not-saved",
        "removed",
        "cut",
    ]
    assert [row.prediction_id for row in journal.resumable(API + "/")] == [
        "run",
        "not-saved",
        "removed",
        "cut",
    ]
    assert journal.resumable("http://127.0.0.1:8765") == []


def test_resumable_skips_tasks_past_the_providers_retention(journal: Journal, clock: Clock) -> None:
    journal.accepted(begin(journal), prediction("old"))
    clock.advance(RETENTION.total_seconds() + 1)
    journal.accepted(begin(journal), prediction("new"))
    assert [row.prediction_id for row in journal.resumable()] == ["new"]


def test_find_reusable_hits_a_saved_video(journal: Journal, clock: Clock, tmp_path: Path) -> None:
    completed(journal, clock, "t1", prompt="Zoom in")
    saved(journal, "t1", tmp_path)
    wanted = row_of(journal, "t1").request_hash
    hit = journal.find_reusable(wanted)
    assert hit is not None
    assert hit.prediction_id == "t1"
    assert journal.find_reusable(wanted, verify=True) == hit


def test_find_reusable_prefers_the_newest(journal: Journal, clock: Clock, tmp_path: Path) -> None:
    for task_id in ("old", "new"):
        completed(journal, clock, task_id)
        saved(journal, task_id, tmp_path)
    hit = journal.find_reusable(row_of(journal, "old").request_hash)
    assert hit is not None
    assert hit.prediction_id == "new"


def test_find_reusable_misses_once_the_file_is_gone(
    journal: Journal, clock: Clock, tmp_path: Path
) -> None:
    completed(journal, clock, "t1")
    wanted = row_of(journal, "t1").request_hash
    assert journal.find_reusable(wanted) is None  # never downloaded
    saved(journal, "t1", tmp_path).unlink()
    assert journal.find_reusable(wanted) is None


def test_find_reusable_with_verify_notices_changed_content(
    journal: Journal, clock: Clock, tmp_path: Path
) -> None:
    completed(journal, clock, "t1")
    saved(journal, "t1", tmp_path, b"original").write_bytes(b"replaced")  # same size
    wanted = row_of(journal, "t1").request_hash
    assert journal.find_reusable(wanted) is not None
    assert journal.find_reusable(wanted, verify=True) is None


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(("Zoom out", "16:9", "ab" * 32), id="prompt"),
        pytest.param(("Zoom in", "9:16", "ab" * 32), id="ratio"),
        pytest.param(("Zoom in", "16:9", "cd" * 32), id="image"),
    ],
)
def test_find_reusable_misses_a_different_request(
    journal: Journal, clock: Clock, tmp_path: Path, other: tuple[str, str, str]
) -> None:
    completed(journal, clock, "t1", "Zoom in")
    saved(journal, "t1", tmp_path)
    assert journal.find_reusable(row_of(journal, "t1").request_hash) is not None
    prompt, ratio, image_sha256 = other
    different = begin(journal, prompt, ratio=ratio, image_sha256=image_sha256)
    (row,) = [r for r in journal.rows() if r.request_key == different]
    assert journal.find_reusable(row.request_hash) is None


# -- request_hash and sha256_file ----------------------------------------------------------


def hash_of(
    *,
    model: str = MODEL_ID,
    image_sha256: str | None = "ab" * 32,
    image_source: str = "cat.jpg",
    prompt: str = "Camera slowly zooms in",
    aspect_ratio: str | None = "16:9",
    base_url: str = API,
) -> str:
    return request_hash(
        model=model,
        image_sha256=image_sha256,
        image_source=image_source,
        prompt=prompt,
        aspect_ratio=aspect_ratio,
        base_url=base_url,
    )


def test_request_hash_is_stable() -> None:
    """The hash is part of the file format: old rows must keep matching new requests."""
    assert hash_of() == "3fa957cef9fb59049eeec2c791c733582a25ae74944a399df028f27a70511236"


@pytest.mark.parametrize(
    "changed",
    [
        pytest.param(hash_of(model="runwayml/gen4-aleph"), id="model"),
        pytest.param(hash_of(image_sha256="cd" * 32), id="image"),
        pytest.param(hash_of(prompt="Camera slowly zooms out"), id="prompt"),
        pytest.param(hash_of(prompt="camera slowly zooms in"), id="prompt-case"),
        pytest.param(hash_of(aspect_ratio=None), id="ratio-none"),
        pytest.param(hash_of(aspect_ratio="9:16"), id="ratio"),
        pytest.param(hash_of(base_url=SANDBOX_BASE_URL), id="server"),
    ],
)
def test_request_hash_changes_with_each_field(changed: str) -> None:
    assert changed != hash_of()


def test_request_hash_counts_a_local_image_by_its_bytes_and_a_remote_one_by_url() -> None:
    assert hash_of(image_source="/elsewhere/renamed.jpg") == hash_of()
    remote = hash_of(image_sha256=None, image_source="https://x/a.png")
    assert remote != hash_of(image_sha256=None, image_source="https://x/b.png")


def test_request_hash_ignores_a_trailing_slash_on_the_server() -> None:
    assert hash_of(base_url=API + "/") == hash_of()


def test_sha256_file_streams_in_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 1000
    path = tmp_path / "video.mp4"
    path.write_bytes(data)
    assert sha256_file(path, chunk=4096) == (hashlib.sha256(data).hexdigest(), len(data))


# -- queries -------------------------------------------------------------------------------


@pytest.fixture
def history(journal: Journal, clock: Clock) -> Journal:
    """Three accepted submissions a minute apart, the middle one failed, plus a refused one."""
    for task_id, prompt in [
        ("aaa111", "A cat"),
        ("bbb222", "Le CAFÉ au lait"),
        ("ccc333", "A dog"),
    ]:
        journal.accepted(begin(journal, prompt), prediction(task_id, Status.PROCESSING))
        clock.advance(60)
    journal.update(prediction("bbb222", Status.FAILED, error="boom"))
    journal.refused(begin(journal, "A cat, refused"), "HTTP 400")
    return journal


def ids(rows: list[JournalRow]) -> list[str | None]:
    return [row.prediction_id for row in rows]


def test_rows_are_newest_first(history: Journal) -> None:
    assert ids(history.rows()) == [None, "ccc333", "bbb222", "aaa111"]
    assert ids(history.rows(limit=2)) == [None, "ccc333"]


def test_rows_filter_by_status(history: Journal) -> None:
    assert ids(history.rows(status="failed")) == ["bbb222"]
    assert ids(history.rows(status=["processing", "refused"])) == [None, "ccc333", "aaa111"]
    with pytest.raises(ValueError, match="unknown status 'done'"):
        history.rows(status="done")


def test_rows_filter_by_time(history: Journal) -> None:
    assert ids(history.rows(since=START + timedelta(seconds=60))) == [None, "ccc333", "bbb222"]
    assert ids(history.rows(until=START + timedelta(seconds=60))) == ["aaa111"]
    assert ids(history.rows(since=START, until=START + timedelta(seconds=61))) == [
        "bbb222",
        "aaa111",
    ]


def test_rows_filter_by_text_in_prompt_or_id(history: Journal) -> None:
    assert ids(history.rows(text="cat")) == [None, "aaa111"]
    assert ids(history.rows(text="café")) == ["bbb222"]  # beyond ASCII too
    assert ids(history.rows(text="B222")) == ["bbb222"]
    assert ids(history.rows(text="%")) == []  # no LIKE wildcards


def test_spent_counts_accepted_and_possibly_charged_submissions(
    history: Journal, clock: Clock
) -> None:
    assert history.spent() == 1.5  # the failed task counts; the refused one does not
    assert history.spent(since=START + timedelta(seconds=60)) == 1.0
    history.unknown(begin(history), "no answer")
    begin(history)  # in flight
    assert history.spent() == 2.5
    assert history.spent(include_unknown=False) == 1.5
    begin(history, base_url=SANDBOX_BASE_URL, cost=0.0)
    assert history.spent() == 2.5


def test_durations_learn_from_completions_on_that_server(journal: Journal, clock: Clock) -> None:
    for seconds in (40, 50, 60):
        key = begin(journal)
        journal.accepted(key, prediction(f"t{seconds}"))
        clock.advance(seconds)
        journal.update(prediction(f"t{seconds}", Status.COMPLETED, output="https://cdn/x.mp4"))
    key = begin(journal, base_url=SANDBOX_BASE_URL, cost=0)
    journal.accepted(key, prediction("sandbox"))
    clock.advance(3)
    journal.update(prediction("sandbox", Status.COMPLETED, output="https://cdn/x.mp4"))
    failed = begin(journal)
    journal.accepted(failed, prediction("failed"))
    clock.advance(99)
    journal.update(prediction("failed", Status.FAILED, error="boom"))

    # Each end was seen one interval after the previous check: counted at its middle.
    assert journal.durations(API) == [20.0, 25.0, 30.0]
    assert journal.durations(API, limit=2) == [25.0, 30.0]
    assert journal.durations(SANDBOX_BASE_URL) == [1.5]


def test_durations_skip_completions_first_seen_after_a_restart(
    tmp_path: Path, clock: Clock
) -> None:
    """A task found completed by the next kernel says nothing about how long tasks take."""
    path = tmp_path / "journal.sqlite3"
    with Journal(path, clock=clock) as before:
        before.accepted(begin(before), prediction("t1"))
    clock.advance(3600)
    with Journal(path, clock=clock) as after:
        after.update(prediction("t1", Status.COMPLETED, output="https://cdn/x.mp4"))
        assert row_of(after, "t1").status == "completed"
        assert after.durations(API) == []


# -- concurrency ---------------------------------------------------------------------------


def test_threads_sharing_one_journal_lose_nothing(journal: Journal) -> None:
    def work(worker: int) -> None:
        for i in range(50):
            key = begin(journal, f"w{worker} #{i}")
            journal.accepted(key, prediction(f"w{worker}-{i}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = journal.rows()
    assert len(rows) == 400
    assert len({row.prediction_id for row in rows}) == 400
    assert {row.status for row in rows} == {"created"}


async def test_asyncio_tasks_and_worker_threads_share_one_journal(journal: Journal) -> None:
    """The kernel's loop thread and to_thread workers write side by side."""

    async def job(n: int) -> None:
        key = begin(journal, f"job {n}")
        await asyncio.to_thread(journal.accepted, key, prediction(f"t{n}"))
        journal.update(prediction(f"t{n}", Status.PROCESSING))
        await asyncio.to_thread(journal.update, prediction(f"t{n}", Status.COMPLETED))

    await asyncio.gather(*(job(n) for n in range(40)))
    assert {row.status for row in journal.rows()} == {"completed"}
    assert len(journal.rows()) == 40


WRITER = """
import json, sys, time
from wavenb.journal.store import Journal
from wavenb.core.models import Prediction, Status

path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
print("ready", flush=True)
sys.stdin.readline()  # both processes start writing together
started = time.perf_counter()
journal = Journal(path)  # a new file: both create it at once
for i in range(count):
    key = journal.begin(request_hash="h", model="m", prompt=f"{name} {i}", aspect_ratio=None,
                        image_sha256=None, image_source="bytes", backend="api",
                        base_url="https://api.wavespeed.ai", cost=0.5)
    journal.accepted(key, Prediction(id=f"{name}-{i}", model="m", status=Status.CREATED))
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def test_two_processes_write_one_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "journal.sqlite3"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, "200"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in ("kernel-a", "kernel-b")
    ]
    for writer in writers:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready"
    started = time.perf_counter()
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
    results = [writer.communicate(timeout=60) for writer in writers]
    elapsed = time.perf_counter() - started

    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err
        assert "locked" not in err
        json.loads(out)
    with Journal(path) as journal:
        rows = journal.rows()
    assert len(rows) == 400
    assert len({row.prediction_id for row in rows}) == 400
    print(f"two processes: {len(rows)} rows in {elapsed:.2f} s")


# -- no secrets ----------------------------------------------------------------------------


def test_the_file_has_no_place_for_a_key(journal: Journal) -> None:
    db = sqlite3.connect(journal.path)
    columns = [row[1] for row in db.execute("PRAGMA table_info(jobs)")]
    db.close()
    secretive = ("api_key", "apikey", "token", "auth", "secret", "password", "bearer")
    assert not [c for c in columns if any(word in c.lower() for word in secretive)]
    assert "key" not in columns
    for name, method in inspect.getmembers(Journal, inspect.isfunction):
        params = inspect.signature(method).parameters
        assert not [p for p in params if any(w in p.lower() for w in secretive)], name


def test_the_file_never_contains_the_key(
    journal: Journal, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driven through every method while the key is in the environment; then read raw bytes."""
    monkeypatch.setenv("WAVESPEED_API_KEY", CANARY_KEY)
    journal.refused(begin(journal), "HTTP 401: invalid or inactive API key (Bearer ***)")
    journal.unknown(begin(journal), "the submit request was sent but no answer came")
    completed(journal, clock, "t1")
    saved(journal, "t1", tmp_path)
    journal.accepted(begin(journal), prediction("t2"))
    journal.update(prediction("t2", Status.FAILED, error="content policy violation"))
    journal.rows(text="cat")
    journal.spent()
    journal.close()
    for part in journal.path.parent.glob("journal.sqlite3*"):
        assert CANARY_KEY.encode() not in part.read_bytes(), part.name


# -- presenting ----------------------------------------------------------------------------


def test_as_dict_is_plain_json(journal: Journal, clock: Clock) -> None:
    completed(journal, clock, "t1")
    plain = row_of(journal, "t1").as_dict()
    assert json.loads(json.dumps(plain)) == plain
    assert plain["submitted_at"] == START.isoformat()
    assert plain["prediction_id"] == "t1"


def test_format_table_shows_ids_status_and_cost(history: Journal) -> None:
    lines = format_table(history.rows()).splitlines()
    assert lines[0].split() == ["submitted", "(local)", "id", "phase", "ratio", "cost", "prompt"]
    assert len(lines) == 5
    assert "ccc333" in lines[2]
    assert "processing" in lines[2]
    assert "failed" in lines[3]
    assert "refused" in lines[1]
    assert "$0.50" in lines[4]
    assert "$0.00" in lines[1]


def test_format_table_shortens_long_prompts_to_the_width(journal: Journal) -> None:
    begin(journal, "A very long prompt " * 20)
    (line,) = format_table(journal.rows(), width=90).splitlines()[1:]
    assert len(line) == 90
    assert line.endswith("…")
    assert "  A very long prompt A very" in line


def test_format_table_of_nothing_says_so() -> None:
    assert format_table([]) == "no submissions in the journal"


def test_to_pandas_asks_for_pandas_when_missing(
    history: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"pip install 'wavenb\[pandas\]'"):
        to_pandas(history.rows())


def test_to_pandas_makes_a_frame(history: Journal) -> None:
    pytest.importorskip("pandas")
    frame = to_pandas(history.rows())
    assert list(frame["prediction_id"])[1:] == ["ccc333", "bbb222", "aaa111"]
    assert str(frame["submitted_at"].dt.tz) == "UTC"


def test_a_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    """A journal written by 0.1 opens: rows kept, counted as sent, the new columns added."""
    from wavenb.journal.schema import MIGRATIONS

    path = tmp_path / "journal.sqlite3"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute(
        "INSERT INTO jobs (request_key, prediction_id, status, model, prompt, image_source, "
        "request_hash, backend, base_url, price, cost, submitted_at, updated_at, owner) VALUES "
        "('k1', 'p1', 'processing', 'runwayml/gen4-turbo', 'zoom in', 'x', 'h', 'api', "
        "'https://api.wavespeed.ai', 0.5, 0.5, '2026-11-25T10:00:00.000000+00:00', "
        "'2026-11-25T10:00:00.000000+00:00', 'elsewhere:1')"
    )
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with Journal(path) as journal:
        [row] = journal.rows()
        assert (row.prediction_id, row.status, row.cost) == ("p1", "processing", 0.5)
        assert row.sent_at == row.submitted_at  # written just before sending, in 0.1
        assert row.image_url is None and row.variant is None
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    columns = {r[1] for r in raw.execute("PRAGMA table_info(jobs)")}
    assert {"sent_at", "image_url", "variant", "claim", "claim_at"} <= columns
    raw.close()
