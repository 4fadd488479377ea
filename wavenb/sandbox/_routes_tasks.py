"""Routes about tasks: submit (video, prompt optimizer), result, history and delete.

Two generic submit options, as the docs describe them for every model:

- ``enable_sync_mode: true`` in the body holds the request until the task ends, then answers
  the final prediction; past ``SandboxConfig.sync_limit`` seconds (sandbox clock) it answers
  HTTP 200 with the prediction as it stands plus ``data.code == 5004`` and an ``error`` saying
  the wait expired. The task goes on, and its result can be fetched as usual.
- ``?webhook=<http(s) url>`` on the submit: once the task ends, its final envelope is POSTed
  there (see ``wavenb.sandbox._webhooks``).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from wavenb.core.types import ENHANCER_MODEL_ID
from wavenb.sandbox._enhancer import MODES, STYLES, Mode, Style, enhance
from wavenb.sandbox._envelope import ApiError, envelope
from wavenb.sandbox._history import HistoryQuery, page_of
from wavenb.sandbox._jobs import TERMINAL, Job
from wavenb.sandbox._parsing import (
    base_of,
    choice,
    field,
    json_object,
    owner_in,
    parse_video_request,
    reject_unknown,
    state_of,
)
from wavenb.sandbox._prediction import prediction_json, sync_timeout_json
from wavenb.sandbox._state import SandboxState
from wavenb.sandbox._webhooks import check_webhook_url

__all__ = [
    "delete_predictions",
    "get_prediction",
    "list_predictions",
    "optimize_prompt",
    "submit_video",
    "wait_for_end",
]

_SYNC_STEP: Final = 0.02
"""Real seconds between looks at a task a sync-mode request waits for."""
_WEBHOOK_STEP: Final = 0.05
"""Real seconds between looks at a task a webhook waits for."""
_MAX_DELETE: Final = 1000
_ENHANCER_FIELDS: Final = ("text", "mode", "style", "image", "enable_sync_mode")


async def submit_video(request: Request) -> Response:
    """``POST /api/v3/runwayml/gen4-turbo`` (``?webhook=``, ``enable_sync_mode`` honoured)."""
    webhook = _webhook(request)
    body = await json_object(request)
    video = parse_video_request(body)
    sync: bool = field(body, "enable_sync_mode", bool, default=False)
    job = state_of(request).submit_video(video, owner_in(request), inputs=_inputs(body))
    return await _answer(request, job, sync=sync, webhook=webhook)


async def optimize_prompt(request: Request) -> Response:
    """``POST /api/v3/wavespeed-ai/prompt-optimizer``: done at once, so sync answers completed."""
    webhook = _webhook(request)
    body = await json_object(request)
    reject_unknown(body, _ENHANCER_FIELDS, ENHANCER_MODEL_ID)
    text: str = field(body, "text", str)
    if not text.strip():
        raise ApiError(400, "Invalid parameters: 'text' must not be empty.")
    mode = choice(body, "mode", MODES, "image")
    style = choice(body, "style", STYLES, "default")
    field(body, "image", str, default="")
    sync: bool = field(body, "enable_sync_mode", bool, default=False)
    enhanced = await run_in_threadpool(
        enhance, text, style=cast("Style", style), mode=cast("Mode", mode)
    )
    job = state_of(request).submit_enhancement(enhanced, owner_in(request), inputs=_inputs(body))
    return await _answer(request, job, sync=sync, webhook=webhook)


async def get_prediction(request: Request) -> Response:
    """``GET /api/v3/predictions/{id}/result`` and ``GET /api/v3/predictions/{id}``."""
    job_id: str = request.path_params["id"]
    job = state_of(request).jobs.get(job_id)
    if job is None:
        raise ApiError(404, f"Prediction not found: {job_id[:64]!r}.")
    return envelope(prediction_json(job, base_of(request)))


async def list_predictions(request: Request) -> Response:
    """``POST /api/v3/predictions``: one page of this key's history (see ``_history``)."""
    query = HistoryQuery.parse(await json_object(request))
    jobs = state_of(request).jobs.owned_by(owner_in(request))
    return envelope(page_of(query, jobs, base_of(request)))


async def delete_predictions(request: Request) -> Response:
    """``POST /api/v3/predictions/delete`` ``{ids: [...]}``: forget this key's predictions.

    Answers ``data = {"deleted": [ids removed], "not_found": [the other ids]}``; ids of other
    keys count as not found. Their result routes and videos then answer 404.
    """
    body = await json_object(request)
    reject_unknown(body, ("ids",), "the delete route")
    ids: list[Any] = field(body, "ids", list)
    if not ids or len(ids) > _MAX_DELETE or not all(isinstance(i, str) for i in ids):
        raise ApiError(
            400, f"Invalid parameters: 'ids' must be a list of 1 to {_MAX_DELETE} id strings."
        )
    deleted = state_of(request).delete(ids, owner_in(request))
    gone = set(deleted)
    return envelope({"deleted": deleted, "not_found": [i for i in ids if i not in gone]})


async def wait_for_end(
    state: SandboxState, job_id: str, limit: float | None, step: float = _SYNC_STEP
) -> Job | None:
    """Wait until the job has ended or ``limit`` seconds of the sandbox clock have passed.

    Returns the job as it is then, or ``None`` if it was deleted meanwhile. The status is
    computed from the clock whenever it is read, so this looks every ``step`` real seconds.
    """
    clock = state.config.clock
    deadline = None if limit is None else clock() + limit
    while True:
        job = state.jobs.get(job_id)
        if job is None or job.status in TERMINAL:
            return job
        if deadline is not None and clock() >= deadline:
            return job
        await asyncio.sleep(step)


async def _answer(request: Request, job: Job, *, sync: bool, webhook: str | None) -> Response:
    """The submit's answer: the new prediction, or (sync mode) the final one or a 5004."""
    state, base = state_of(request), base_of(request)
    if webhook is not None:

        async def final() -> dict[str, Any] | None:
            ended = await wait_for_end(state, job.id, None, _WEBHOOK_STEP)
            if ended is None:
                return None
            return {"code": 200, "message": "success", "data": prediction_json(ended, base)}

        state.webhooks.start(job.id, webhook, final)
    if not sync:
        return envelope(prediction_json(job, base))
    ended = await wait_for_end(state, job.id, state.config.sync_limit)
    if ended is None:
        raise ApiError(404, f"Prediction not found: {job.id!r} was deleted.")
    if ended.status not in TERMINAL:
        return envelope(sync_timeout_json(ended, base))
    return envelope(prediction_json(ended, base))


def _webhook(request: Request) -> str | None:
    """The ``webhook`` query parameter, checked; ``None`` when absent or empty."""
    url = request.query_params.get("webhook", "")
    return check_webhook_url(url) if url else None


def _inputs(body: dict[str, Any]) -> dict[str, Any]:
    """What the history shows as ``input``: the body without the generic sync flag."""
    return {name: value for name, value in body.items() if name != "enable_sync_mode"}
