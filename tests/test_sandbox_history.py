"""The account's history (``POST /api/v3/predictions``) and delete, per API key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.test_sandbox_api import (
    AUTH,
    ENHANCE,
    SUBMIT,
    assert_error,
    body,
    rendered,
    sandbox,
    settle,
    submit,
)
from wavenb.core.types import ENHANCER_MODEL_ID, MODEL_ID
from wavenb.sandbox import FaultPlan, SandboxConfig
from wavenb.sandbox._faults import Scripted
from wavenb.sandbox._keys import key_digest

HISTORY = "/api/v3/predictions"
DELETE = "/api/v3/predictions/delete"
OTHER = {"Authorization": "Bearer wsk-someone-else"}


@pytest.fixture
async def instant() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    async with sandbox(SandboxConfig(speed="instant", duration=0.2)) as pair:
        yield pair


async def history(
    client: httpx.AsyncClient, headers: dict[str, str] = AUTH, **query: Any
) -> dict[str, Any]:
    response = await client.post(HISTORY, json=query, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["code"] == 200
    data: dict[str, Any] = response.json()["data"]
    return data


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


async def test_history_lists_this_keys_predictions_newest_first(instant) -> None:
    _, client = instant
    made = [(await submit(client, prompt=f"zoom in {n}"))["id"] for n in range(3)]
    page = await history(client)
    assert ids(page) == made[::-1]
    assert (page["page"], page["total"], page["total_pages"]) == (1, 3, 1)


async def test_an_item_is_a_prediction_with_its_inputs(instant) -> None:
    app, client = instant
    sent = body(prompt="Slow pan left", aspect_ratio="9:16")
    created = (await client.post(SUBMIT, json=sent, headers=AUTH)).json()["data"]
    await settle(app, client, created["id"])
    (item,) = (await history(client))["items"]
    assert item["input"] == sent
    assert item["status"] == "completed"
    assert item["model"] == MODEL_ID
    assert item["outputs"] and item["has_nsfw_contents"] == [False]
    assert item["execution_time"] == item["executionTime"]
    assert item["urls"]["get"].endswith(f"/api/v3/predictions/{created['id']}/result")
    assert item["created_at"] == created["created_at"]
    assert (item["error"], item["sandbox"]) == ("", True)


async def test_inputs_can_be_left_out(instant) -> None:
    _, client = instant
    await submit(client)
    (item,) = (await history(client, include_inputs=False))["items"]
    assert "input" not in item


async def test_the_sync_flag_is_not_part_of_the_inputs(instant) -> None:
    _, client = instant
    await client.post(SUBMIT, json=body(enable_sync_mode=True), headers=AUTH)
    (item,) = (await history(client))["items"]
    assert "enable_sync_mode" not in item["input"]


async def test_each_key_sees_only_its_own_predictions(instant) -> None:
    _, client = instant
    mine = (await submit(client))["id"]
    response = await client.post(SUBMIT, json=body(), headers=OTHER)
    theirs = response.json()["data"]["id"]
    assert ids(await history(client)) == [mine]
    assert ids(await history(client, OTHER)) == [theirs]


async def test_history_is_kept_under_a_digest_of_the_key_never_the_key(instant) -> None:
    app, client = instant
    made = (await submit(client))["id"]
    secret = AUTH["Authorization"].removeprefix("Bearer ")
    jobs = app.state.sandbox.jobs
    assert [job.id for job in jobs.owned_by(key_digest(secret))] == [made]
    assert secret not in repr(jobs.owned_by(key_digest(secret)))


async def test_pages_split_the_history(instant) -> None:
    _, client = instant
    made = [(await submit(client))["id"] for _ in range(5)][::-1]
    first = await history(client, page=1, page_size=2)
    third = await history(client, page=3, page_size=2)
    beyond = await history(client, page=4, page_size=2)
    assert ids(first) == made[:2] and ids(third) == made[4:]
    assert (first["total"], first["total_pages"], first["page_size"]) == (5, 3, 2)
    assert ids(beyond) == [] and beyond["total"] == 5


async def test_page_size_is_capped_at_100(instant) -> None:
    _, client = instant
    await submit(client)
    page = await history(client, page_size=10_000)
    assert page["page_size"] == 100 and page["total"] == 1


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ({"page": 0}, ("page",)),
        ({"page_size": 0}, ("page_size",)),
        ({"page": "1"}, ("page", "number")),
        ({"page": True}, ("page",)),
        ({"created_after": "yesterday"}, ("created_after", "ISO-8601")),
        ({"status": 3}, ("status", "string")),
        ({"include_inputs": "yes"}, ("include_inputs", "boolean")),
        ({"sort": "asc"}, ("sort",)),
    ],
)
async def test_bad_queries_are_400(instant, query: dict[str, Any], words: tuple[str, ...]) -> None:
    _, client = instant
    assert_error(await client.post(HISTORY, json=query, headers=AUTH), 400, *words)


async def test_null_fields_count_as_absent(instant) -> None:
    _, client = instant
    await submit(client)
    page = await history(client, model=None, status=None, created_after=None, page=None)
    assert page["total"] == 1


async def test_history_filters_by_status(instant) -> None:
    app, client = instant
    good = (await submit(client))["id"]
    bad = (await submit(client, prompt="zoom in on the gore"))["id"]
    await rendered(app, good)
    assert ids(await history(client, status="completed")) == [good]
    assert ids(await history(client, status="failed")) == [bad]
    assert ids(await history(client, status="processing")) == []


async def test_history_filters_by_model(instant) -> None:
    _, client = instant
    video = (await submit(client))["id"]
    response = await client.post(ENHANCE, json={"text": "a cat", "mode": "video"}, headers=AUTH)
    enhanced = response.json()["data"]["id"]
    assert ids(await history(client, model=MODEL_ID)) == [video]
    (item,) = (await history(client, model=ENHANCER_MODEL_ID))["items"]
    assert item["id"] == enhanced and item["input"] == {"text": "a cat", "mode": "video"}


async def test_history_filters_by_creation_time(instant) -> None:
    _, client = instant
    made = await submit(client)
    created = datetime.fromisoformat(made["created_at"])
    second = timedelta(seconds=1)

    async def window(**bounds: datetime) -> list[str]:
        return ids(await history(client, **{k: v.isoformat() for k, v in bounds.items()}))

    assert await window(created_after=created - second, created_before=created + second) == [
        made["id"]
    ]
    assert await window(created_after=created + second) == []
    assert await window(created_before=created) == []  # before is exclusive
    assert await window(created_after=created) == [made["id"]]  # after is inclusive
    naive = (created + second).astimezone(UTC).replace(tzinfo=None)
    assert await window(created_before=naive) == [made["id"]]  # no offset: UTC


async def test_delete_removes_from_history_and_result_and_video(instant) -> None:
    app, client = instant
    made = await submit(client)
    done = await settle(app, client, made["id"])
    video = done["outputs"][0]
    response = await client.post(DELETE, json={"ids": [made["id"]]}, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "code": 200, "message": "success", "data": {"deleted": [made["id"]], "not_found": []}
    }  # fmt: skip
    assert (await history(client))["total"] == 0
    for url in (f"/api/v3/predictions/{made['id']}/result", f"/api/v3/predictions/{made['id']}"):
        assert_error(await client.get(url, headers=AUTH), 404)
    assert (await client.get(video)).status_code == 404
    assert not app.state.sandbox.storage.video_path(made["id"]).exists()


async def test_delete_leaves_other_keys_and_unknown_ids_alone(instant) -> None:
    _, client = instant
    theirs = (await client.post(SUBMIT, json=body(), headers=OTHER)).json()["data"]["id"]
    response = await client.post(DELETE, json={"ids": [theirs, "f" * 32]}, headers=AUTH)
    assert response.json()["data"] == {"deleted": [], "not_found": [theirs, "f" * 32]}
    assert ids(await history(client, OTHER)) == [theirs]


async def test_deleting_twice_finds_nothing_the_second_time(instant) -> None:
    _, client = instant
    made = (await submit(client))["id"]
    await client.post(DELETE, json={"ids": [made]}, headers=AUTH)
    response = await client.post(DELETE, json={"ids": [made]}, headers=AUTH)
    assert response.json()["data"] == {"deleted": [], "not_found": [made]}


@pytest.mark.parametrize(
    "payload", [{}, {"ids": []}, {"ids": "abc"}, {"ids": [1]}, {"ids": ["a"], "all": True}]
)
async def test_bad_deletes_are_400(instant, payload: dict[str, Any]) -> None:
    _, client = instant
    assert_error(await client.post(DELETE, json=payload, headers=AUTH), 400)


@pytest.mark.parametrize("path", [HISTORY, DELETE])
async def test_history_and_delete_need_a_key(instant, path: str) -> None:
    _, client = instant
    assert_error(await client.post(path, json={"ids": ["x"]}), 401)


async def test_history_body_must_be_a_json_object(instant) -> None:
    _, client = instant
    assert_error(await client.post(HISTORY, content=b"[1, 2]", headers=AUTH), 400, "object")


async def test_injected_fates_show_in_the_history_as_in_the_result() -> None:
    """A task the fault plan flags NSFW (or fails) must not look clean in the history."""
    plan = FaultPlan(script=(Scripted("submit", "nsfw", 1), Scripted("submit", "fail", 1)))
    config = SandboxConfig(speed="instant", duration=0.2, faults=plan)
    async with sandbox(config) as (app, client):
        flagged, failed = [(await submit(client))["id"] for _ in range(2)]
        for job_id in (flagged, failed):
            await rendered(app, job_id)
        items = {item["id"]: item for item in (await history(client))["items"]}
        results = {
            i: (await client.get(f"/api/v3/predictions/{i}/result", headers=AUTH)).json()["data"]
            for i in items
        }
    assert items[flagged]["has_nsfw_contents"] == [True] == results[flagged]["has_nsfw_contents"]
    assert items[failed]["status"] == "failed" == results[failed]["status"]
    assert items[failed]["error"] == results[failed]["error"]


async def test_a_fated_sync_submit_answers_its_fate() -> None:
    plan = FaultPlan(script=(Scripted("submit", "nsfw", 1),))
    async with sandbox(SandboxConfig(speed="instant", duration=0.2, faults=plan)) as (_, client):
        response = await client.post(SUBMIT, json=body(enable_sync_mode=True), headers=AUTH)
    data = response.json()["data"]
    assert (data["status"], data["has_nsfw_contents"]) == ("completed", [True])
