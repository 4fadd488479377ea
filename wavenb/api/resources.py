"""The API's resources, one small class each, over the ``Http`` shell.

=================  ===========================================================================
``Predictions``    submit (the paid POST, sent once), result checks, the account's history,
                   delete
``Media``          image upload (``POST /api/v3/media/upload/binary``, multipart)
``Account``        the balance
``Models``         the catalog and price quotes (cached per client: prices rarely change)
``Enhancer``       the prompt optimizer (an ordinary model, answered in sync mode)
=================  ===========================================================================

Nothing here journals, waits or decides anything about money: that is the lifecycle's job
(``wavenb.jobs``). These methods are what a user reaches as ``client.predictions.list(...)``.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from wavenb.api.http import Http
from wavenb.core import protocol
from wavenb.core.errors import PredictionFailed, ServerError, SubmissionUncertain
from wavenb.core.images import PreparedImage
from wavenb.core.models import Prediction
from wavenb.core.polling import PollPolicy
from wavenb.core.types import ENHANCER_MODEL_ID, MODEL_ID

__all__ = ["Account", "Enhancer", "Media", "Models", "Predictions", "Quote"]

logger = logging.getLogger("wavenb")

ENHANCER_ID: Final = ENHANCER_MODEL_ID
ENHANCER_POLICY: Final = PollPolicy(
    min_interval=1.0, first_delay=1.0, growth=0.25, max_interval=3.0
)
MAX_HISTORY_PAGES: Final = 50
"""A history walk stops after this many pages (5,000 predictions): enough for a week of work."""


class Predictions:
    """Tasks: the paid submit, result checks, the account's history."""

    def __init__(self, http: Http) -> None:
        self._http = http

    async def create(
        self,
        body: Mapping[str, Any],
        *,
        model: str = MODEL_ID,
        on_admitted: Callable[[], Awaitable[None]] | None = None,
    ) -> Prediction:
        """Send the paid submit **once** and return the new task.

        No retry and no journal here: callers go through the lifecycle (``wavenb.jobs``),
        which records the submission before calling this and paces it. ``on_admitted`` runs
        once the request holds a connection slot, just before it goes out (``Http.call``).

        Raises:
            SubmissionUncertain: sent, but no usable answer (the task may exist).
            TransportError: with ``request_sent`` False, it never left the machine.
            APIError: refused by the server (nothing was created).
        """
        data = await self._http.call("POST", f"{protocol.API_PREFIX}/{model}", json=dict(body),
                                     paid=True, on_admitted=on_admitted)  # fmt: skip
        try:
            return protocol.parse_prediction(data)
        except ServerError:
            raise SubmissionUncertain(
                "the submit was answered without a task id; it may have been accepted (and "
                "charged). wavenb will look for it in the account's history (resume)."
            ) from None

    async def get(self, prediction_id: str) -> Prediction:
        """A task's current state (``GET /api/v3/predictions/{id}/result``), with read retries.

        Raises:
            ServerError: the answer is about another task, or is not a prediction.
            NotFoundError: the provider does not know the id (kept 7 days).
        """
        data = await self._http.read("GET", protocol.result_path(prediction_id))
        return protocol.parse_prediction(data, expected_id=prediction_id)

    async def page(
        self,
        *,
        created_after: datetime,
        created_before: datetime,
        page: int = 1,
        model: str | None = MODEL_ID,
        status: str | None = None,
        page_size: int = protocol.HISTORY_PAGE_SIZE,
    ) -> tuple[tuple[Prediction, ...], int]:
        """One page of the account's history (``POST /api/v3/predictions``) and the total."""
        body = protocol.build_history_body(
            page=page, created_after=created_after, created_before=created_before,
            model=model, status=status, page_size=page_size,
        )  # fmt: skip
        return protocol.parse_history_page(await self._http.read("POST", protocol.HISTORY_PATH,
                                                                  json=body))  # fmt: skip

    async def list(
        self,
        *,
        created_after: datetime,
        created_before: datetime,
        model: str | None = MODEL_ID,
        status: str | None = None,
    ) -> AsyncIterator[Prediction]:
        """Every prediction of the account in a time window, newest first, page by page."""
        seen = 0
        for number in range(1, MAX_HISTORY_PAGES + 1):
            items, total = await self.page(
                created_after=created_after, created_before=created_before, page=number,
                model=model, status=status,
            )  # fmt: skip
            for item in items:
                yield item
            seen += len(items)
            if not items or seen >= total:
                return

    async def delete(self, ids: builtins.list[str]) -> None:
        """Remove predictions from the account's history (``POST /api/v3/predictions/delete``)."""
        for prediction_id in ids:
            protocol.result_path(prediction_id)  # checks the id's shape
        await self._http.call("POST", protocol.DELETE_PATH, json={"ids": list(ids)})


class Media:
    """Uploads: a local image becomes a URL the model can read."""

    def __init__(self, http: Http) -> None:
        self._http = http

    async def upload(self, image: PreparedImage) -> str:
        """Upload a prepared image and return its URL; an image that is a URL passes through.

        Retried like a read: an upload creates nothing that costs money.
        """
        if image.note:
            logger.warning("wavenb: image %s before upload", image.note)
        if image.url is not None:
            return image.url
        if image.data is None:
            raise ServerError("nothing to upload: the image has neither bytes nor URL", status=0)
        files = {"file": (image.filename, image.data, image.content_type)}
        # A boundary derived from the content (not random) makes the same upload the same
        # request: recorded cassettes replay, and retries are byte-identical.
        boundary = hashlib.sha256(image.data).hexdigest()[:32]
        headers = {"Content-Type": f"multipart/form-data; boundary=wavenb{boundary}"}
        data = await self._http.read("POST", protocol.UPLOAD_PATH, files=files, headers=headers)
        url = data.get("download_url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise ServerError("the upload answer has no data.download_url", status=200)
        return url


class Account:
    """The account: its balance."""

    def __init__(self, http: Http) -> None:
        self._http = http

    async def balance(self) -> float:
        """The account balance in US dollars (``GET /api/v3/balance``)."""
        data = await self._http.read("GET", protocol.BALANCE_PATH)
        value = data.get("balance") if isinstance(data, dict) else None
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ServerError("the balance answer has no number in data.balance", status=200)
        return float(value)


@dataclass(frozen=True, slots=True)
class Quote:
    """The price of one run of a model, and where the figure came from."""

    model: str
    price: float
    """US dollars per run."""
    source: str
    """``"quote"`` (the price endpoint answered) or ``"fallback"`` (offline list price)."""


class Models:
    """The model catalog and price quotes."""

    def __init__(self, http: Http) -> None:
        self._http = http
        self._quotes: dict[str, Quote] = {}
        self._lock = asyncio.Lock()

    async def catalog(self) -> list[Mapping[str, Any]]:
        """The models the account can use (``GET /api/v3/models``), as the server sends them."""
        data = await self._http.read("GET", protocol.MODELS_PATH)
        items = data.get("items", data.get("models")) if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise ServerError("the models answer has no list of models", status=200)
        return [item for item in items if isinstance(item, Mapping)]

    def cached(self, model: str = MODEL_ID) -> float:
        """The price last quoted for ``model``, else its list price (no request)."""
        quote = self._quotes.get(model)
        return quote.price if quote is not None else protocol.fallback_price(model)

    async def quote(self, model: str = MODEL_ID, inputs: Mapping[str, Any] | None = None) -> Quote:
        """The price of one run, from ``POST /api/v3/model/price`` (cached for this client).

        Falls back to the legacy ``/model/pricing`` route, then to the list price ($0.50 for
        gen4-turbo) when the server has no quote: the price shown is never a guess presented
        as a quote (``Quote.source`` says which).
        """
        async with self._lock:
            if model in self._quotes:
                return self._quotes[model]
            body = {"model_id": model, "inputs": dict(inputs or {})}
            quote = None
            for path in (protocol.PRICE_PATH, protocol.LEGACY_PRICE_PATH):
                try:
                    price = protocol.parse_price(await self._http.read("POST", path, json=body))
                except Exception as error:  # noqa: BLE001  (any failure: try the next, then fall back)
                    logger.debug("wavenb: no price from %s (%s)", path, type(error).__name__)
                    continue
                quote = Quote(model, price, "quote")
                break
            if quote is None:
                quote = Quote(model, protocol.fallback_price(model), "fallback")
            self._quotes[model] = quote
            return quote


class Enhancer:
    """The prompt optimizer (``wavespeed-ai/prompt-optimizer``), video mode."""

    def __init__(self, http: Http, predictions: Predictions) -> None:
        self._http = http
        self._predictions = predictions

    async def enhance(
        self, prompt: str, image_url: str | None = None, style: str | None = None
    ) -> str:
        """Rewrite a prompt for video; returns the text ($0.001 a run on the real API)."""
        body = protocol.build_enhance_body(prompt, image_url, style)
        data = await self._http.call("POST", f"{protocol.API_PREFIX}/{ENHANCER_ID}", json=body)
        prediction = protocol.parse_prediction(data)
        runtime = self._http.runtime
        deadline = runtime.clock() + 120.0
        checks = 0
        while not prediction.terminal and runtime.clock() < deadline:
            delay = ENHANCER_POLICY.next_delay(
                runtime.clock() - (deadline - 120.0), None, runtime.random()
            )
            await runtime.sleep(delay)
            prediction = await self._predictions.get(prediction.id)
            checks += 1
        if not prediction.status.succeeded or not prediction.outputs:
            reason = prediction.error or f"ended {prediction.status.value} with no text"
            raise PredictionFailed(f"the prompt optimizer gave no text: {reason}", prediction)
        return prediction.outputs[0].strip()
