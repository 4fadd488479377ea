"""How a prediction looks on the wire: the real API's fields, plus ``"sandbox": true``."""

from __future__ import annotations

from typing import Any, Final

from wavenb.sandbox._jobs import Job

__all__ = [
    "SYNC_TIMEOUT_CODE",
    "SYNC_TIMEOUT_ERROR",
    "history_item",
    "prediction_json",
    "sync_timeout_json",
]

SYNC_TIMEOUT_CODE: Final = 5004
"""``data.code`` of a sync-mode answer whose wait expired while the task goes on."""
SYNC_TIMEOUT_ERROR: Final = (
    "Sync mode timed out: the task is still running. Query its result later at urls.get."
)


def prediction_json(job: Job, base: str) -> dict[str, Any]:
    """Shape a prediction as the real API does, plus ``"sandbox": true``.

    ``base`` is the scheme and host the request came in on, so links work under any address.
    """
    outputs: list[str] = []
    if job.status == "completed" and job.output is not None:
        outputs = [base + job.output if job.output_is_path else job.output]
    elapsed = 0
    if job.started is not None and job.finished is not None:
        elapsed = round((job.finished - job.started) * 1000)
    return {
        "id": job.id,
        "model": job.model,
        "outputs": outputs,
        "urls": {"get": f"{base}/api/v3/predictions/{job.id}/result"},
        "has_nsfw_contents": [False] * len(outputs),
        "status": job.status,
        "created_at": job.created_at,
        "error": job.error,
        "executionTime": elapsed,
        "timings": {"inference": elapsed},
        "sandbox": True,
    }


def sync_timeout_json(job: Job, base: str) -> dict[str, Any]:
    """The prediction a sync-mode submit answers when its wait expired: ``code`` 5004."""
    return {**prediction_json(job, base), "code": SYNC_TIMEOUT_CODE, "error": SYNC_TIMEOUT_ERROR}


def history_item(job: Job, base: str, *, include_inputs: bool) -> dict[str, Any]:
    """A prediction as the history route lists it: snake_case ``execution_time`` and ``input``."""
    item = prediction_json(job, base)
    item["execution_time"] = item["executionTime"]
    if include_inputs:
        item["input"] = dict(job.inputs)
    return item
