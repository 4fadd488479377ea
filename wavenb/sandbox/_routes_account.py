"""Routes about the account: balance, model catalog, price quotes, and the index page.

- ``GET /api/v3/balance`` -> ``data = {"balance": <dollars>}`` (fake money).
- ``GET /api/v3/models`` -> ``data = [model, ...]`` (see ``wavenb.sandbox._catalog``).
- ``POST /api/v3/model/price`` ``{model_id, inputs}`` -> ``data = {"model_id", "price",
  "discounted_price", "currency": "USD"}``.
- ``POST /api/v3/model/pricing`` (the legacy name) ``{model_id, inputs}`` -> ``data =
  {"model_id", "unit_price", "base_price", "discount_rate": 0, "currency": "USD"}``.

A model the sandbox does not know is a 404 envelope; ``inputs`` that its schema refuses, a 400.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from wavenb.sandbox._catalog import catalog, quote
from wavenb.sandbox._envelope import SANDBOX_BANNER, envelope
from wavenb.sandbox._parsing import json_object, reject_unknown, state_of

__all__ = ["get_balance", "index", "list_models", "price", "pricing"]


async def get_balance(request: Request) -> Response:
    """``GET /api/v3/balance``: the sandbox's fake dollars."""
    return envelope({"balance": state_of(request).balance})


async def list_models(_request: Request) -> Response:
    """``GET /api/v3/models``: the two models the sandbox serves, with their request schemas."""
    return envelope(catalog())


async def price(request: Request) -> Response:
    """``POST /api/v3/model/price``: what one run with these inputs costs."""
    model_id, dollars = await _quote(request)
    return envelope(
        {"model_id": model_id, "price": dollars, "discounted_price": dollars, "currency": "USD"}
    )


async def pricing(request: Request) -> Response:
    """``POST /api/v3/model/pricing``: the older name of the quote, answering ``unit_price``."""
    model_id, dollars = await _quote(request)
    return envelope(
        {
            "model_id": model_id,
            "unit_price": dollars,
            "base_price": dollars,
            "discount_rate": 0,
            "currency": "USD",
        }
    )


async def _quote(request: Request) -> tuple[str, float]:
    body: dict[str, Any] = await json_object(request)
    reject_unknown(body, ("model_id", "inputs"), "the price route")
    model_id = body.get("model_id")
    dollars = quote(model_id, body.get("inputs"))
    return str(model_id), dollars


async def index(request: Request) -> Response:
    """Tell whoever opens the server's address in a browser what it is, and how it is set."""
    return PlainTextResponse(
        f"{SANDBOX_BANNER}.\nThis server speaks the WaveSpeedAI API (/api/v3/...) for wavenb; "
        "nothing here reaches Runway, and its balance is not real money.\n"
        f"Settings: {state_of(request).config.describe()}.\n"
    )
