"""The sandbox's model catalog and price quotes: shapes, the schema's rules, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.test_sandbox_api import AUTH, assert_error, sandbox
from wavenb.core.types import ASPECT_RATIOS, ENHANCER_MODEL_ID, MODEL_ID, PRICE_PER_VIDEO
from wavenb.sandbox import SandboxConfig

PRICE = "/api/v3/model/price"
PRICING = "/api/v3/model/pricing"


@pytest.fixture
async def instant() -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """An app whose jobs complete as soon as their 1-second clip is rendered."""
    async with sandbox(SandboxConfig(speed="instant", duration=1.0)) as pair:
        yield pair


async def models(client: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    response = await client.get("/api/v3/models", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["code"] == 200
    return {model["model_id"]: model for model in response.json()["data"]}


def request_schema(model: dict[str, Any]) -> dict[str, Any]:
    (run,) = [s for s in model["api_schema"]["api_schemas"] if s["type"] == "model_run"]
    assert run["method"] == "POST"
    assert run["api_path"] == f"/api/v3/{model['model_id']}"
    schema: dict[str, Any] = run["request_schema"]
    return schema


async def test_the_catalog_lists_both_models_with_prices(instant) -> None:
    _, client = instant
    catalog = await models(client)
    assert set(catalog) == {MODEL_ID, ENHANCER_MODEL_ID}
    assert catalog[MODEL_ID]["base_price"] == catalog[MODEL_ID]["price"] == PRICE_PER_VIDEO
    assert catalog[ENHANCER_MODEL_ID]["price"] == 0.001
    for model in catalog.values():
        assert model["name"] and model["description"] and model["type"]
        assert model["sandbox"] is True


async def test_the_video_schema_says_what_a_submit_accepts(instant) -> None:
    _, client = instant
    schema = request_schema((await models(client))[MODEL_ID])
    properties = schema["properties"]
    assert set(properties) == {"image", "prompt", "aspect_ratio", "enable_sync_mode"}
    assert sorted(schema["required"]) == ["image", "prompt"]
    assert properties["prompt"] == {**properties["prompt"], "type": "string", "maxLength": 1000}
    assert [r for r in properties["aspect_ratio"]["enum"] if r] == list(ASPECT_RATIOS)
    assert len(ASPECT_RATIOS) == 5
    assert properties["enable_sync_mode"]["type"] == "boolean"


async def test_the_enhancer_schema_requires_text(instant) -> None:
    _, client = instant
    schema = request_schema((await models(client))[ENHANCER_MODEL_ID])
    assert schema["required"] == ["text"]
    assert "video" in schema["properties"]["mode"]["enum"]


@pytest.mark.parametrize(("model_id", "dollars"), [(MODEL_ID, 0.5), (ENHANCER_MODEL_ID, 0.001)])
async def test_price_quotes_each_model(instant, model_id: str, dollars: float) -> None:
    _, client = instant
    inputs = {"prompt": "zoom in", "aspect_ratio": "9:16"} if model_id == MODEL_ID else {}
    response = await client.post(PRICE, json={"model_id": model_id, "inputs": inputs}, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "model_id": model_id, "price": dollars, "discounted_price": dollars, "currency": "USD",
    }  # fmt: skip


async def test_the_legacy_pricing_route_answers_unit_price(instant) -> None:
    _, client = instant
    response = await client.post(PRICING, json={"model_id": MODEL_ID, "inputs": {}}, headers=AUTH)
    data = response.json()["data"]
    assert (data["unit_price"], data["currency"], data["model_id"]) == (0.5, "USD", MODEL_ID)


async def test_a_quote_costs_nothing(instant) -> None:
    app, client = instant
    before = app.state.sandbox.balance
    await client.post(PRICE, json={"model_id": MODEL_ID, "inputs": {}}, headers=AUTH)
    assert app.state.sandbox.balance == before


@pytest.mark.parametrize("route", [PRICE, PRICING])
async def test_an_unknown_model_is_a_404_envelope(instant, route: str) -> None:
    _, client = instant
    response = await client.post(
        route, json={"model_id": "acme/nothing", "inputs": {}}, headers=AUTH
    )
    assert_error(response, 404, "acme/nothing")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"model_id": MODEL_ID, "inputs": {"seed": 1}}, ("seed",)),
        ({"model_id": MODEL_ID, "inputs": {"aspect_ratio": "21:9"}}, ("aspect_ratio", "16:9")),
        ({"model_id": MODEL_ID, "inputs": {"prompt": "x" * 1001}}, ("1001", "1000")),
        ({"model_id": MODEL_ID, "inputs": {"prompt": 5}}, ("prompt", "string")),
        ({"model_id": MODEL_ID, "inputs": {"enable_sync_mode": "yes"}}, ("boolean",)),
        ({"model_id": MODEL_ID, "inputs": [1]}, ("inputs", "object")),
        ({"inputs": {}}, ("model_id",)),
        ({"model_id": 7, "inputs": {}}, ("model_id",)),
        ({"model_id": MODEL_ID, "inputs": {}, "extra": 1}, ("extra",)),
    ],
)
async def test_bad_quote_requests_are_400(
    instant, payload: dict[str, Any], words: tuple[str, ...]
) -> None:
    _, client = instant
    assert_error(await client.post(PRICE, json=payload, headers=AUTH), 400, *words)


async def test_a_quote_body_must_be_json(instant) -> None:
    _, client = instant
    response = await client.post(PRICE, content=b"{not json", headers=AUTH)
    assert_error(response, 400, "JSON")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/api/v3/models"), ("POST", PRICE), ("POST", PRICING)]
)
async def test_catalog_and_prices_need_a_key(instant, method: str, path: str) -> None:
    _, client = instant
    response = await client.request(method, path, json={"model_id": MODEL_ID, "inputs": {}})
    assert_error(response, 401, "Authorization")
