"""The one async I/O shell: send a request to the API, get the envelope's ``data`` or a typed error.

Everything here is about the wire; what a request means lives in ``wavenb.core.protocol`` and
``wavenb.api.resources``. The transport is the single test seam (``httpx.MockTransport``,
``httpx.ASGITransport`` for the in-process sandbox).

What this layer guarantees:

- **The key stays home.** It is added at send time to requests for the API's own base URL
  only (never to output downloads on a CDN, never kept in client headers), and every text
  taken from an answer is redacted (``wavenb.core.redact``).
- **Bounded answers.** An API answer is read up to ``MAX_ANSWER`` bytes *after* decoding (a
  gzip bomb is stopped at the limit, with zlib's ``max_length``, not after inflating);
  downloads are capped separately, by the caller.
- **Admission, not a queue.** At most ``max_connections`` requests are in flight per client; the
  rest wait on a semaphore *before* httpx sees them, so httpx's pool never builds a long
  queue (whose assignment loop rescans it on every release) and never times out a request
  that was never sent.
- **Sent or not sent.** ``TransportError.request_sent`` is False only when the request
  certainly never left the machine (no connection, no pooled connection, a header refused
  locally); for the paid submit anything else after sending is ``SubmissionUncertain``.
- **Retries for reads only** (``read``): stamina, on connection errors, 5xx and 429 (honouring
  ``Retry-After`` up to ``LONGEST_RETRY_AFTER``). The paid submit is sent once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
from typing import Any, Final

import httpx
import stamina

from wavenb.core import protocol
from wavenb.core.config import Secret, Settings
from wavenb.core.errors import (
    APIError,
    RateLimitError,
    ServerError,
    SubmissionUncertain,
    TransportError,
    WavenbError,
)
from wavenb.core.redact import install_log_filter, redact
from wavenb.core.runtime import Runtime

__all__ = ["DEFAULT_CONNECTIONS", "MAX_ANSWER", "Http", "read_capped", "read_retryable"]

logger = logging.getLogger("wavenb")
install_log_filter(logger)

MAX_ANSWER: Final = 1 << 20
"""The largest API answer read (decoded bytes): real answers are a few kB."""
LONGEST_RETRY_AFTER: Final = 30.0
"""A 429 on a read asking for a longer wait than this is raised to the caller, not slept."""
DEFAULT_CONNECTIONS: Final = 32
"""Requests in flight at once per client (the rest wait their turn before httpx sees them).
Measured at 1,000 videos in flight: 32 keeps the loop's longest turn (answers that arrive
together are handled in one turn) near 15 ms of CPU; 64 doubled it."""
USER_AGENT_NAME: Final = "wavenb"


class _BearerAuth(httpx.Auth):
    """Adds the key at send time, so it never sits in the client's default headers."""

    def __init__(self, key: Secret) -> None:
        self._key = key

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._key.reveal()}"
        yield request


class Http:
    """Requests to one API server, with auth, caps, admission and typed errors.

    Args:
        settings: the resolved key and base URL.
        transport: the test seam; ``None`` for the network.
        timeout: seconds for each network operation (connect at most 10 s).
        version: sent as ``X-Client-Version``.
        max_connections: requests in flight at once.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None,
        timeout: float,
        version: str,
        runtime: Runtime,
        max_connections: int = DEFAULT_CONNECTIONS,
    ) -> None:
        self.settings = settings
        self.runtime = runtime
        self.sandbox_seen = settings.embedded
        """Whether the server has said it is wavenb's sandbox (a header on every answer)."""
        self._auth = _BearerAuth(settings.api_key)
        self._admission = asyncio.Semaphore(max_connections)
        self._client = httpx.AsyncClient(
            base_url=settings.base_url,
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={
                "X-Client-Name": USER_AGENT_NAME,
                "X-Client-Version": version,
                # Only encodings this module can inflate with a bound (see read_capped).
                "Accept-Encoding": "gzip, deflate",
            },
            follow_redirects=True,
        )

    @property
    def base_url(self) -> str:
        """The server requests go to."""
        return self.settings.base_url

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        paid: bool = False,
        on_admitted: Callable[[], Awaitable[None]] | None = None,
        **kwargs: Any,  # noqa: ANN401  (httpx's request options, passed through)
    ) -> Any:  # noqa: ANN401  (the envelope's data is whatever the endpoint returns)
        """Send one request to the API and return the envelope's ``data``; no retries.

        ``on_admitted`` runs once the request holds one of the client's connection slots, just
        before it is handed to httpx: the lifecycle journals "sending" there, so a submit
        cancelled while it waits for a slot is known never to have left.

        Raises:
            TransportError: no answer (``request_sent`` says whether it left the machine).
            SubmissionUncertain: ``paid`` and it went out, but no usable answer came back.
            APIError: the server answered with an error (typed by ``protocol.error_for``).
        """
        # The paid submit never follows a redirect: a 307 would re-POST it somewhere else.
        request = self._client.build_request(method, path, **kwargs)
        async with self._admitted():
            if on_admitted is not None:
                await on_admitted()
            status, headers, content = await self._exchange(
                request, paid=paid, follow=not paid, auth=self._auth
            )
        if headers.get("x-wavenb-sandbox"):
            self.sandbox_seen = True
        logger.debug("%s %s -> %s", method, path, status)
        if paid and 300 <= status < 400:  # noqa: PLR2004
            raise APIError(
                f"the submit was redirected (HTTP {status}); wavenb does not resend paid requests "
                "elsewhere. Check the base URL.",
                status=status,
            )
        try:
            return protocol.parse_envelope(status, content, headers, now=self.runtime.now())
        except ServerError as error:
            if paid:
                raise SubmissionUncertain(
                    f"the submit request got HTTP {error.status}; it may have been accepted (and "
                    "charged). wavenb will look for it in the account's history (resume)."
                ) from None
            raise

    async def read(self, method: str, path: str, **kwargs: Any) -> Any:  # noqa: ANN401
        """``call`` for idempotent requests, retried on 429, 5xx and broken connections."""
        async for attempt in self.retrying(
            read_retryable, attempts=6, timeout=120.0, wait_initial=0.5, wait_max=30.0
        ):
            with attempt:
                data = await self.call(method, path, **kwargs)
        return data

    def retrying(
        self,
        on: Callable[[Exception], bool | float],
        *,
        attempts: int,
        timeout: float,
        wait_initial: float,
        wait_max: float,
    ) -> AsyncIterator[stamina.Attempt]:
        """The retry loop (stamina) with every wait in runtime seconds (the runtime's ``scale``).

        Production (scale 1) waits exactly what the arguments say. A scaled test runtime waits
        the same schedule, shorter: the same attempts, back-off and ``Retry-After`` waits, with
        no test-only mode (a ``Retry-After`` of ``s`` server seconds is ``s * server_seconds``
        runtime seconds).
        """
        scale, server = self.runtime.scale, self.runtime.server_seconds

        def scaled(error: Exception) -> bool | float:
            verdict = on(error)
            if isinstance(verdict, bool):
                return verdict
            return verdict * server * scale

        return stamina.retry_context(
            on=scaled,
            attempts=attempts,
            timeout=timeout * scale,
            wait_initial=wait_initial * scale,
            wait_max=wait_max * scale,
            wait_jitter=1.0 * scale,
        )

    @contextlib.asynccontextmanager
    async def stream(self, url: str) -> AsyncIterator[httpx.Response]:
        """A streaming GET of an output URL (no key: outputs live on a CDN, another host).

        The caller reads ``response.aiter_raw()`` (``Accept-Encoding: identity`` is asked for,
        so the bytes are the file's). Connection problems raise ``TransportError``.
        """
        async with self._admitted():
            try:
                request = self._client.build_request(
                    "GET", url, headers={"Accept-Encoding": "identity"}
                )
            except (httpx.InvalidURL, ValueError, TypeError) as error:
                raise ServerError(
                    f"the output URL cannot be used ({type(error).__name__})", status=200
                ) from None
            response = await self._send(request, paid=False, follow=True, auth=None, stream=True)
            try:
                if response.headers.get("x-wavenb-sandbox"):
                    self.sandbox_seen = True
                yield response
            except httpx.RequestError as error:
                raise TransportError(
                    f"the download broke: {_describe(error)}", request_sent=True
                ) from None
            finally:
                await response.aclose()

    # -- internals -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _admitted(self) -> AsyncIterator[None]:
        async with self._admission:
            yield

    async def _exchange(
        self, request: httpx.Request, *, paid: bool, follow: bool, auth: httpx.Auth | None
    ) -> tuple[int, httpx.Headers, bytes]:
        response = await self._send(request, paid=paid, follow=follow, auth=auth, stream=True)
        try:
            content = await read_capped(response, MAX_ANSWER)
        except httpx.RequestError as error:
            raise _failure(request, error, paid=paid, sent=True) from None
        finally:
            await response.aclose()
        return response.status_code, response.headers, content

    async def _send(
        self,
        request: httpx.Request,
        *,
        paid: bool,
        follow: bool,
        auth: httpx.Auth | None,
        stream: bool,
    ) -> httpx.Response:
        try:
            return await self._client.send(
                request, stream=stream, follow_redirects=follow, auth=auth
            )
        except httpx.RequestError as error:
            raise _failure(request, error, paid=paid, sent=None) from None


def _failure(
    request: httpx.Request, error: httpx.RequestError, *, paid: bool, sent: bool | None
) -> WavenbError:
    """The typed error for a request that got no (whole) answer; never chains httpx's text."""
    where = f"{request.method} {request.url.copy_with(query=None)}"
    if sent is None:
        sent = not isinstance(error, _NOT_SENT)
    if not sent:
        return TransportError(f"{where}: not sent ({_describe(error)})", request_sent=False)
    if paid:
        return SubmissionUncertain(
            f"the submit request was sent but {_describe(error)}; it may have been accepted (and "
            "charged). wavenb will look for it in the account's history (resume)."
        )
    return TransportError(f"{where}: {_describe(error)}", request_sent=True)


_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                    httpx.LocalProtocolError, httpx.UnsupportedProtocol)  # fmt: skip
"""httpx errors raised before a byte of the request left the machine."""


def _describe(error: httpx.RequestError) -> str:
    if isinstance(error, httpx.PoolTimeout):
        return "no connection was free before the timeout"
    if isinstance(error, httpx.ConnectTimeout | httpx.ConnectError):
        return f"could not connect ({type(error).__name__})"
    if isinstance(error, httpx.TimeoutException):
        return "no answer came before the timeout"
    if isinstance(error, httpx.LocalProtocolError | httpx.UnsupportedProtocol):
        return f"refused locally ({type(error).__name__})"
    if isinstance(error, httpx.TransportError):
        return f"the connection broke ({type(error).__name__})"
    return f"its answer was unusable ({type(error).__name__})"


async def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The decoded body, refusing more than ``limit`` bytes however it is encoded."""
    if response.is_stream_consumed:
        # Built in memory (a test transport): httpx has read, and decoded, it already.
        if len(response.content) > limit:
            raise ServerError(_too_big(limit), status=response.status_code)
        return response.content
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    inflate: Callable[[bytes, int], bytes]
    if encoding in ("", "identity"):
        def inflate(chunk: bytes, _room: int) -> bytes:
            return chunk
        finish: Callable[[], bytes] = bytes
    elif encoding in ("gzip", "x-gzip", "deflate"):
        # wbits 47 reads gzip and zlib headers; raw deflate (no header) falls back below.
        decoder = zlib.decompressobj(47)

        def inflate(chunk: bytes, room: int) -> bytes:
            out = decoder.decompress(chunk, room + 1)
            if decoder.unconsumed_tail:
                raise ServerError(_too_big(limit), status=response.status_code)
            return out

        finish = decoder.flush
    else:
        raise ServerError(
            f"the answer is encoded as {redact(encoding)[:40]!r}, which wavenb did not ask for",
            status=response.status_code,
        )
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in response.aiter_raw():
            out = inflate(chunk, limit - size)
            size += len(out)
            if size > limit:
                raise ServerError(_too_big(limit), status=response.status_code)
            parts.append(out)
        tail = finish()
    except zlib.error:
        raise ServerError(
            "the answer's compression is broken (bad gzip/deflate data)",
            status=response.status_code,
        ) from None
    if size + len(tail) > limit:
        raise ServerError(_too_big(limit), status=response.status_code)
    return b"".join([*parts, tail])


def _too_big(limit: int) -> str:
    return f"the answer is larger than {limit // 1024} kB once decoded: not an API answer"


def read_retryable(error: Exception) -> bool | float:
    """Reads are safe to repeat: retry on 429 (as long as asked), 5xx and broken connections."""
    if isinstance(error, RateLimitError):
        wait = error.retry_after
        if wait is None:
            return True
        return wait if wait <= LONGEST_RETRY_AFTER else False
    return isinstance(error, ServerError | TransportError)
