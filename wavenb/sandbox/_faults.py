"""Fault injection for the sandbox: the failures of a real service, on purpose and on a seed.

A :class:`FaultPlan` says how often (probabilities) or exactly when (scripted "the next 2
submits get a 429") each fault happens. ``SandboxConfig(faults=plan)`` switches it on;
``create_app`` then wraps the whole app in a :class:`FaultInjector`, outside Starlette's own
error handling, so a connection can be cut before anything is answered.

Request faults, and what a client sees:

- ``429``: a 429 envelope, ``Retry-After`` as seconds, an HTTP date, or absent
  (``retry_after_form``). The request was not handled.
- ``5xx``: a 500 envelope, or a 502 / 503 HTML page from a "proxy". Not handled.
- ``reset``: the connection is closed without an answer (a TCP RST). Not handled.
- ``timeout``: no answer for ``slow`` seconds; a client that gives up first leaves the request
  unhandled, one that waits longer gets its answer late.
- ``truncate``: handled, then half the body is sent: JSON cut short, or a video cut off
  mid-stream with the connection closed.
- ``drop``: handled (a submit is accepted and charged), then the connection is closed without
  the answer: "accepted, then the connection dropped".

Every accepted submission also draws a fate: ``fail`` (the task ends ``failed`` with an error
message once its render is done), ``nsfw`` (completed with ``has_nsfw_contents: [true]``) or
``expire`` (completed, but its output URL answers 403 AccessDenied or 404 NoSuchKey as S3 /
CloudFront do for a deleted object). The 429 of ``submit_rate`` and the ``created`` queue of
``max_concurrent`` are ``SandboxConfig`` options, not faults.

Served by uvicorn, a reset really closes the socket (with ``SO_LINGER`` 0, so the peer gets a
RST) and a timeout really holds the request. In-process, under ``httpx.ASGITransport``, there
is no socket and no clock that httpx watches, so the injector raises what httpx raises for a
real socket instead: ``httpx.ReadError`` for a reset or a drop, ``httpx.ReadTimeout`` for a
timeout, ``httpx.RemoteProtocolError`` for a video cut off mid-stream.

Decisions come from one ``random.Random(seed)`` drawn in the order requests arrive, under a
lock: the same seed and the same sequence of requests give the same faults. Everything that
fired is counted per route in ``app.state.sandbox.faults.stats``.

Tests and tools can read the counters and change the plan over HTTP, from loopback with a
bearer key the sandbox accepts: ``GET /sandbox-admin/stats``, ``GET`` / ``POST
/sandbox-admin/faults`` (a JSON plan, as in :meth:`FaultPlan.from_mapping`). Those routes exist
only on apps made with a plan (``FaultPlan()`` injects nothing but enables them).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import math
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

import httpx
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wavenb.core.types import MODEL_ID
from wavenb.sandbox._app import (
    _MULTIPART_OVERHEAD,
    MAX_UPLOAD_BYTES,
    SANDBOX_HEADER,
    SandboxState,
    _owner,
    envelope,
    error_envelope,
)
from wavenb.sandbox._jobs import Storage

__all__ = [
    "ADMIN_PREFIX",
    "ROUTES",
    "FaultInjector",
    "FaultPlan",
    "FaultStats",
    "Faults",
    "Scripted",
    "install",
]

RouteName = Literal[
    "submit", "result", "upload", "download", "balance", "enhance", "media", "other"
]
"""What a request is for, as far as faults are concerned."""
ROUTES: Final[frozenset[str]] = frozenset(get_args(RouteName))
RequestFault = Literal["429", "500", "502", "503", "reset", "timeout", "truncate", "drop"]
"""Faults that hit one request."""
Fate = Literal["fail", "nsfw", "expire"]
"""Faults that hit an accepted task."""
RetryAfterForm = Literal["mixed", "seconds", "date", "none"]
_REQUEST_FAULTS: Final = (*get_args(RequestFault), "5xx")
_FATES: Final[tuple[str, ...]] = get_args(Fate)

ADMIN_PREFIX: Final = "/sandbox-admin/"

_ALIASES: Final = {
    "429": "rate_limit",
    "5xx": "server_error",
    "reset": "reset",
    "timeout": "timeout",
    "truncate": "truncate",
    "drop": "drop",
    "fail": "fail",
    "nsfw": "nsfw",
    "expire": "expire",
    "slow": "slow",
}
"""Short names of the compact spec (``429=0.1,5xx=0.05``) -> field names."""
_REQUEST_RATES: Final = (
    ("429", "rate_limit"),
    ("5xx", "server_error"),
    ("reset", "reset"),
    ("timeout", "timeout"),
    ("truncate", "truncate"),
    ("drop", "drop"),
)
_FATE_RATES: Final = (("fail", "fail"), ("nsfw", "nsfw"), ("expire", "expire"))

FAILURE_MESSAGE: Final = (
    "Internal error: the model could not generate this video (sandbox injected fault). "
    "Please try again."
)
"""The ``error`` of a task that draws the ``fail`` fate: worded like the real service's vague
failures, and free of moderation words (it must not read as a content-policy refusal)."""
_PROXY_PAGES: Final = {
    502: "502 Bad Gateway",
    503: "503 Service Temporarily Unavailable",
}
_S3_ERRORS: Final = {
    403: ("AccessDenied", "Access Denied"),
    404: ("NoSuchKey", "The specified key does not exist."),
}
_PREDICTION_PATH: Final = re.compile(r"/api/v3/predictions/([^/]+)(?:/result)?")
_DOWNLOAD_PATH: Final = re.compile(re.escape(Storage.CDN_ROUTE) + r"([^/]+)/1\.mp4")
_FIXED_ROUTES: Final[dict[str, RouteName]] = {
    f"/api/v3/{MODEL_ID}": "submit",
    "/api/v3/media/upload/binary": "upload",
    "/api/v3/balance": "balance",
    "/api/v3/wavespeed-ai/prompt-optimizer": "enhance",
}
_HOLD_BODY_LIMIT: Final = MAX_UPLOAD_BYTES + _MULTIPART_OVERHEAD
"""A held request's body is kept in memory to be replayed; past this it is dropped instead."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class Scripted:
    """One scripted fault: the next ``times`` requests to ``route`` get ``fault``.

    Request faults (``429``, ``500``, ``502``, ``503``, ``5xx``, ``reset``, ``timeout``,
    ``truncate``, ``drop``) apply to any route; fates (``fail``, ``nsfw``, ``expire``) to the
    next ``times`` accepted submissions (route ``submit``).
    """

    route: str
    fault: str
    times: int = 1

    def __post_init__(self) -> None:
        if self.route not in ROUTES:
            raise ValueError(f"unknown route {self.route!r}; one of: {', '.join(sorted(ROUTES))}")
        if self.fault not in (*_REQUEST_FAULTS, *_FATES):
            known = ", ".join((*_REQUEST_FAULTS, *_FATES))
            raise ValueError(f"unknown fault {self.fault!r}; one of: {known}")
        if self.fault in _FATES and self.route != "submit":
            raise ValueError(f"{self.fault!r} is the fate of a task: script it on 'submit'")
        if self.times < 1:
            raise ValueError(f"a scripted fault needs times >= 1; got {self.times}")


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """Which faults the sandbox injects, how often, and on which routes.

    Probabilities are per request (the first six, which together may not exceed 1) or per
    accepted submission (the three fates, likewise). Scripted faults come first, in order.

    >>> FaultPlan.parse("429=0.1,5xx=0.05,reset=0.02,timeout=0.02,fail=0.05,seed=1").fail
    0.05
    >>> FaultPlan.parse("submit.429=2").script
    (Scripted(route='submit', fault='429', times=2),)
    """

    rate_limit: float = 0.0
    """Chance of a 429 (compact name ``429``)."""
    server_error: float = 0.0
    """Chance of a 500, 502 or 503, a third each (compact name ``5xx``)."""
    reset: float = 0.0
    """Chance the connection is closed without an answer."""
    timeout: float = 0.0
    """Chance the request is held ``slow`` seconds without an answer."""
    truncate: float = 0.0
    """Chance the answer is cut to half its length."""
    drop: float = 0.0
    """Chance the request is handled, then the connection closed without the answer."""
    fail: float = 0.0
    """Chance an accepted task ends ``failed`` with ``FAILURE_MESSAGE``."""
    nsfw: float = 0.0
    """Chance an accepted task completes with ``has_nsfw_contents: [true]``."""
    expire: float = 0.0
    """Chance an accepted task's output URL answers 403 or 404, as an expired one does."""
    seed: int = 0
    """Seeds every decision."""
    retry_after: float = 1.0
    """Seconds a 429 asks the client to wait."""
    retry_after_form: RetryAfterForm = "mixed"
    """How a 429 says it: delta ``seconds``, an HTTP ``date``, ``none`` (no header, as WaveSpeed
    documents none), or ``mixed`` (a seeded third each)."""
    slow: float = 35.0
    """Seconds a ``timeout`` holds a request: longer than the client's timeout (30 s default)."""
    routes: frozenset[str] = ROUTES
    """Routes the probabilities apply to (scripts name their own)."""
    script: tuple[Scripted, ...] = ()
    """Faults for the next requests of a route, consumed in order before any probability."""

    def __post_init__(self) -> None:
        for short, name in (*_REQUEST_RATES, *_FATE_RATES):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{short} must be a probability from 0 to 1; got {value!r}")
        for kind, rates in (("request", _REQUEST_RATES), ("fate", _FATE_RATES)):
            total = sum(getattr(self, name) for _, name in rates)
            if total > 1.0 + 1e-9:
                names = "+".join(short for short, _ in rates)
                raise ValueError(f"{kind} fault probabilities ({names}) add up to {total:g} > 1")
        if not (math.isfinite(self.retry_after) and self.retry_after >= 0):
            raise ValueError(f"retry_after must be seconds >= 0; got {self.retry_after!r}")
        if self.retry_after_form not in get_args(RetryAfterForm):
            forms = ", ".join(get_args(RetryAfterForm))
            raise ValueError(
                f"retry_after_form must be one of {forms}; got {self.retry_after_form!r}"
            )
        if not (math.isfinite(self.slow) and self.slow > 0):
            raise ValueError(f"slow must be seconds > 0; got {self.slow!r}")
        if unknown := set(self.routes) - ROUTES:
            raise ValueError(
                f"unknown routes {sorted(unknown)}; one of: {', '.join(sorted(ROUTES))}"
            )

    @property
    def empty(self) -> bool:
        """True when the plan injects nothing (it still enables the admin routes)."""
        rates = (*_REQUEST_RATES, *_FATE_RATES)
        return not self.script and not any(getattr(self, name) for _, name in rates)

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """Read a plan from the command line: a compact spec, inline JSON, or a JSON file.

        The compact spec is ``key=value`` pairs separated by commas: probabilities by their
        short names (``429``, ``5xx``, ``reset``, ``timeout``, ``truncate``, ``drop``, ``fail``,
        ``nsfw``, ``expire``), ``seed``, ``retry_after``, ``retry_after_form``, ``slow``,
        ``routes`` (joined with ``+``), and scripted faults as ``<route>.<fault>=<times>``.

        Raises:
            ValueError: the spec cannot be read, or names an unknown key, route or fault.
        """
        text = spec.strip()
        if text.startswith("{"):
            return cls.from_mapping(_json_object(text, "the --faults JSON"))
        if text.endswith(".json") or (text and "=" not in text):
            try:
                content = Path(text).expanduser().read_text(encoding="utf-8")
            except OSError as error:
                raise ValueError(f"cannot read the fault plan file {text!r}: {error}") from None
            return cls.from_mapping(_json_object(content, text))
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"expected key=value in the fault spec, got {item!r}")
            pairs[key.strip()] = value.strip()
        return cls.from_mapping(pairs)

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> FaultPlan:
        """Build a plan from a mapping (parsed JSON, or the compact spec's pairs).

        Keys are field names or compact short names; values may be numbers or text. A
        ``script`` is a list of ``{"route", "fault", "times"}``; ``"<route>.<fault>": times``
        keys are appended to it in order.

        Raises:
            ValueError: an unknown key, or a value of the wrong kind.
        """
        names = {f.name for f in fields(cls)}
        settings: dict[str, Any] = {}
        script: list[Scripted] = []
        for key, value in values.items():
            if "." in key:
                route, _, fault = key.partition(".")
                script.append(Scripted(route, fault, _integer(value, key)))
                continue
            name = _ALIASES.get(key, key)
            if name not in names:
                raise ValueError(f"unknown fault plan key {key!r}")
            settings[name] = _field_value(name, value)
        settings["script"] = (*settings.get("script", ()), *script)
        return cls(**settings)

    def as_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready values; ``from_mapping`` reads it back unchanged."""
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        values["routes"] = sorted(self.routes)
        values["script"] = [
            {"route": s.route, "fault": s.fault, "times": s.times} for s in self.script
        ]
        return values

    def describe(self) -> str:
        """The plan in the compact spec's words, for the banner (``"none"`` when empty)."""
        rates = (*_REQUEST_RATES, *_FATE_RATES)
        parts = [f"{short}={getattr(self, name):g}" for short, name in rates if getattr(self, name)]
        parts += [f"{s.route}.{s.fault}={s.times}" for s in self.script]
        if not parts:
            return "none"
        parts.append(f"seed={self.seed}")
        if self.routes != ROUTES:
            parts.append("routes=" + "+".join(sorted(self.routes)))
        return ",".join(parts)


def _json_object(text: str, where: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{where} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object")  # noqa: TRY004  (bad plans: ValueError)
    return value


def _field_value(name: str, value: object) -> object:
    if name == "seed":
        return _integer(value, name)
    if name == "retry_after_form":
        return str(value)
    if name == "routes":
        if isinstance(value, str):
            return frozenset(filter(None, (r.strip() for r in value.split("+"))))
        if isinstance(value, list):
            return frozenset(str(r) for r in value)
        raise ValueError(f"routes must be a list or 'a+b' text; got {value!r}")
    if name == "script":
        if not isinstance(value, list):
            raise ValueError("script must be a list of {route, fault, times}")
        return tuple(_scripted(item) for item in value)
    return _number(value, name)


def _scripted(item: object) -> Scripted:
    if not isinstance(item, dict):
        raise ValueError(f"a script entry must be an object; got {item!r}")  # noqa: TRY004
    extra = set(item) - {"route", "fault", "times"}
    if extra:
        raise ValueError(f"unknown script entry keys {sorted(extra)}")
    return Scripted(
        str(item.get("route")), str(item.get("fault")), _integer(item.get("times", 1), "times")
    )


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name} must be a number; got {value!r}")  # noqa: TRY004
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number; got {value!r}") from None


def _integer(value: object, name: str) -> int:
    number = _number(value, name)
    if not number.is_integer():
        raise ValueError(f"{name} must be a whole number; got {value!r}")
    return int(number)


# --------------------------------------------------------------------------- state and counters


@dataclass
class FaultStats:
    """What the injector saw and did; every counter keeps growing until the app is dropped."""

    requests: Counter[str] = field(default_factory=Counter)
    """Requests by route name (``submit``, ``result``...), refused or not."""
    fired: Counter[str] = field(default_factory=Counter)
    """Faults fired, keyed ``"<route> <fault>"`` (``"submit 429"``, ``"download expire"``)."""
    retry_after_forms: Counter[str] = field(default_factory=Counter)
    """How the injected 429s said when to come back: ``seconds``, ``date`` or ``none``."""
    fates: dict[str, str] = field(default_factory=dict)
    """Prediction id -> the fate its task drew (``fail``, ``nsfw``, ``expire:403``...)."""

    def as_dict(self) -> dict[str, Any]:
        """The counters as JSON-ready values."""
        return {
            "requests": dict(self.requests),
            "fired": dict(self.fired),
            "retry_after_forms": dict(self.retry_after_forms),
            "fates": dict(self.fates),
        }


class Faults:
    """A sandbox's fault plan in force, its random source, and its counters.

    At ``app.state.sandbox.faults``. ``set_plan`` swaps the plan (and reseeds) while serving.
    Thread-safe: the app may be driven from several event loops and threads.
    """

    def __init__(self, plan: FaultPlan) -> None:
        self.stats = FaultStats()
        self._lock = threading.Lock()
        self.plan = plan
        self._rng = random.Random(plan.seed)  # noqa: S311  (fault timing, not secrets)
        self._left = [s.times for s in plan.script]

    def set_plan(self, plan: FaultPlan) -> None:
        """Put ``plan`` in force from the next request; the counters carry on."""
        with self._lock:
            self.plan = plan
            self._rng = random.Random(plan.seed)  # noqa: S311
            self._left = [s.times for s in plan.script]

    def request_fault(self, route: str) -> RequestFault | None:
        """Count a request to ``route`` and decide the fault it gets, if any."""
        with self._lock:
            self.stats.requests[route] += 1
            fault = self._scripted(route, _REQUEST_FAULTS)
            if fault is None and route in self.plan.routes:
                fault = self._draw(_REQUEST_RATES)
            if fault is None:
                return None
            if fault == "5xx":
                fault = self._rng.choice(("500", "502", "503"))
            self.stats.fired[f"{route} {fault}"] += 1
            return cast("RequestFault", fault)

    def decide_fate(self, prediction_id: str) -> None:
        """Draw the fate of a newly accepted task and remember it by id."""
        with self._lock:
            fate = self._scripted("submit", _FATES) or self._draw(_FATE_RATES)
            if fate is None:
                return
            if fate == "expire":
                fate = f"expire:{self._rng.choice((403, 404))}"
            self.stats.fates[prediction_id] = fate
            self.stats.fired[f"submit {fate.partition(':')[0]}"] += 1

    def fate(self, prediction_id: str) -> str | None:
        """The fate a task drew (``fail``, ``nsfw``, ``expire:403``, ``expire:404``), if any."""
        with self._lock:
            return self.stats.fates.get(prediction_id)

    def retry_after(self) -> tuple[str, str | None]:
        """How the next 429 says when to come back: its form and ``Retry-After`` value."""
        with self._lock:
            form = self.plan.retry_after_form
            if form == "mixed":
                form = self._rng.choice(("seconds", "date", "none"))
            self.stats.retry_after_forms[form] += 1
            wait = self.plan.retry_after
        if form == "seconds":
            return form, str(math.ceil(wait))
        if form == "date":
            # HTTP dates have whole seconds: round up, so the client never comes back early.
            when = datetime.now(UTC) + timedelta(seconds=math.ceil(wait) + 1)
            return form, format_datetime(when.replace(microsecond=0), usegmt=True)
        return form, None

    def count(self, key: str) -> None:
        """Count something the injector did outside ``request_fault`` (an expired download)."""
        with self._lock:
            self.stats.fired[key] += 1

    def _scripted(self, route: str, kinds: Iterable[str]) -> str | None:
        allowed = set(kinds)
        for index, entry in enumerate(self.plan.script):
            if entry.route == route and entry.fault in allowed and self._left[index] > 0:
                self._left[index] -= 1
                return entry.fault
        return None

    def _draw(self, rates: Iterable[tuple[str, str]]) -> str | None:
        chances = [(short, getattr(self.plan, name)) for short, name in rates]
        if not any(chance for _, chance in chances):
            return None  # draw nothing, so a plan without these faults keeps its sequence
        roll = self._rng.random()
        for short, chance in chances:
            if roll < chance:
                return short
            roll -= chance
        return None


# --------------------------------------------------------------------------- the middleware


def install(app: Any, state: SandboxState) -> None:  # noqa: ANN401  (a Starlette app)
    """Wrap ``app`` in a ``FaultInjector`` for ``state.config.faults``; called by ``create_app``.

    The injector goes outside Starlette's middleware stack (which it builds now), because a
    reset must close the connection before Starlette's error middleware could answer a 500.
    """
    plan = state.config.faults
    if plan is None:
        raise ValueError("install needs a SandboxConfig with faults")
    state.faults = Faults(plan)
    app.middleware_stack = FaultInjector(app.build_middleware_stack(), state)


class FaultInjector:
    """ASGI middleware that injects the faults of ``state.faults`` and serves the admin routes."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        if state.faults is None:
            raise ValueError("FaultInjector needs state.faults")
        self.app = app
        self.state = state
        self.faults: Faults = state.faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            await self._admin(scope, receive, send)
            return
        route = route_of(path)
        fault = self.faults.request_fault(route)
        link = _Link(send)
        if fault == "429":
            await self._rate_limited(scope, receive, send)
        elif fault in ("500", "502", "503"):
            await _server_error(int(fault), scope, receive, send)
        elif fault == "reset":
            await link.reset()
        elif fault == "timeout":
            await self._hold(route, scope, receive, link)
        elif fault == "truncate":
            await self._truncated(route, scope, receive, link)
        elif fault == "drop":
            await self._handle(route, scope, receive, _discard)
            await link.reset()
        else:
            await self._handle(route, scope, receive, send)

    # -- handling, with fates ----------------------------------------------------------------

    async def _handle(self, route: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the app answer, applying task fates: the one path every handled request takes."""
        if route == "submit":
            answer = await _capture(self.app, scope, receive)
            self._note_submission(answer)
            await answer.replay(send)
            return
        prediction_id = _id_in(path=scope["path"], route=route)
        fate = None if prediction_id is None else self.faults.fate(prediction_id)
        if fate is None:
            await self.app(scope, receive, send)
        elif route == "download" and fate.startswith("expire"):
            self.faults.count("download expire")
            await _expired(int(fate.partition(":")[2]), scope, receive, send)
        elif route == "result" and fate in ("fail", "nsfw"):
            answer = await _capture(self.app, scope, receive)
            await answer.rewritten(lambda data: _apply_fate(data, fate)).replay(send)
        else:
            await self.app(scope, receive, send)

    def _note_submission(self, answer: _Answer) -> None:
        if answer.status != 200:  # noqa: PLR2004
            return
        prediction_id = _json_path(answer.body, "data", "id")
        if isinstance(prediction_id, str):
            self.faults.decide_fate(prediction_id)

    # -- the faults ----------------------------------------------------------------------------

    async def _rate_limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        form, value = self.faults.retry_after()
        headers = {SANDBOX_HEADER: "1"}
        if value is not None:
            headers["Retry-After"] = value
        message = f"Too many requests (sandbox injected fault, Retry-After as {form}): slow down."
        await error_envelope(429, message, headers)(scope, receive, send)

    async def _hold(self, route: str, scope: Scope, receive: Receive, link: _Link) -> None:
        """Answer nothing for ``slow`` seconds; then drop the request if the client left.

        In-process there is no client timeout to outlast: raise what httpx raises for one.
        """
        if not link.served:
            raise httpx.ReadTimeout("timed out (sandbox injected fault)")
        body = await _read_body(receive, _HOLD_BODY_LIMIT)
        if body is None:
            await link.reset()
            return
        try:
            await asyncio.wait_for(_disconnected(receive), self.faults.plan.slow)
        except TimeoutError:
            # The client waited longer than we held it: answer, late.
            await self._handle(route, scope, _replay(body, receive), link.send)
        # else: the client gave up; the request was never handled, and nothing is sent.

    async def _truncated(self, route: str, scope: Scope, receive: Receive, link: _Link) -> None:
        if route == "download":
            await self._handle(route, scope, receive, _CutOff(link))
            return
        answer = await _capture_handled(self, route, scope, receive)
        cut = answer.body[: len(answer.body) // 2]
        await replace(answer, body=cut).replay(link.send)

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``/sandbox-admin/stats`` and ``/sandbox-admin/faults``: loopback and a key only."""
        client = scope.get("client")
        if not _loopback(client[0] if client else None):
            refused = error_envelope(403, "Forbidden: the admin routes answer loopback only.")
            await _labelled(refused, scope, receive, send)
            return
        refusal = self.state.refusal(_owner(scope))
        if refusal is not None:
            await _labelled(error_envelope(401, refusal), scope, receive, send)
            return
        name, method = scope["path"].removeprefix(ADMIN_PREFIX), scope["method"]
        if (name, method) == ("stats", "GET"):
            response: Response = envelope(self.stats())
        elif (name, method) == ("faults", "GET"):
            response = envelope(self.faults.plan.as_dict())
        elif (name, method) == ("faults", "POST"):
            response = await self._set_plan(receive)
        elif name in ("stats", "faults"):
            response = error_envelope(405, f"Method not allowed: {method} {scope['path']}.")
        else:
            response = error_envelope(404, f"Not found: no admin route {scope['path']}.")
        await _labelled(response, scope, receive, send)

    async def _set_plan(self, receive: Receive) -> Response:
        body = await _read_body(receive, 64 * 1024)
        try:
            plan = FaultPlan.from_mapping(_json_object((body or b"").decode("utf-8", "replace"),
                                                       "the plan"))  # fmt: skip
        except ValueError as error:
            return error_envelope(400, f"Invalid fault plan: {error}")
        self.faults.set_plan(plan)
        return envelope(plan.as_dict())

    def stats(self) -> dict[str, Any]:
        """Everything a test asserts on: plan, fault counters, routes, accepted submissions."""
        state = self.state
        return {
            "plan": self.faults.plan.as_dict(),
            "faults": self.faults.stats.as_dict(),
            "routes": dict(state.requests),
            "accepted": state.accepted,
            "submissions": [{"id": i, "request_sha256": h} for i, h in state.submissions],
            "outputs": {i: state.output_sha256(i) for i, _ in state.submissions},
        }


async def _capture_handled(
    injector: FaultInjector, route: str, scope: Scope, receive: Receive
) -> _Answer:
    """Handle the request (fates included) and keep the whole answer instead of sending it."""
    captured: list[Message] = []

    async def keep(message: Message) -> None:
        captured.append(message)

    await injector._handle(route, scope, receive, keep)
    return _Answer.of(captured)


# --------------------------------------------------------------------------- connections


class _Link:
    """The client connection behind ``send``: a real socket under uvicorn, or nothing in-process.

    uvicorn's ``send`` is a bound method of its per-request cycle object, which keeps the
    asyncio transport as ``.transport`` (true of its h11 and httptools protocols alike; the
    tests check it). In-process (``httpx.ASGITransport``) there is no transport.
    """

    def __init__(self, send: Send) -> None:
        self.send = send
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        self.transport = transport if isinstance(transport, asyncio.Transport) else None

    @property
    def served(self) -> bool:
        """Whether a real socket is behind this request."""
        return self.transport is not None

    async def reset(self) -> None:
        """Cut the connection without a word: a TCP RST served, ``httpx.ReadError`` in-process."""
        if self.transport is None:
            raise httpx.ReadError("[Errno 104] Connection reset by peer (sandbox injected fault)")
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends a RST rather than a FIN, as a crashed proxy would.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()
        # One turn of the loop lets uvicorn see the connection lost, so it neither answers a
        # 500 nor logs "returned without starting response".
        await asyncio.sleep(0)

    async def hang_up(self) -> None:
        """Close after what was sent so far (a FIN): the peer reads a body that stops short."""
        if self.transport is None:
            raise httpx.RemoteProtocolError("peer closed connection (sandbox injected fault)")
        self.transport.close()
        await asyncio.sleep(0)


class _CutOff:
    """A ``send`` that lets half the promised body through, then cuts the connection."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.expected: int | None = None
        self.sent = 0
        self.cut = False

    async def __call__(self, message: Message) -> None:
        if self.cut:
            return  # the connection is gone: what the app still sends goes nowhere
        if message["type"] == "http.response.start":
            length = MutableHeaders(scope=message).get("content-length", "")
            self.expected = int(length) if length.isdigit() else None
            await self.link.send(message)
            return
        chunk: bytes = message.get("body", b"")
        # With no length promised, cut this chunk in half.
        limit = self.sent + len(chunk) // 2 if self.expected is None else self.expected // 2
        if self.sent + len(chunk) < limit and message.get("more_body", False):
            self.sent += len(chunk)
            await self.link.send(message)
            return
        keep = max(0, limit - self.sent)
        self.cut = True
        if self.link.served:
            await self.link.send(
                {"type": "http.response.body", "body": chunk[:keep], "more_body": True}
            )
            await self.link.hang_up()
            return
        received = self.sent + keep
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body "
            f"(received {received} bytes, expected {self.expected}) (sandbox injected fault)"
        )


@dataclass(frozen=True, slots=True)
class _Answer:
    """A whole answer, kept instead of sent, so it can be read, changed or cut."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def of(cls, messages: list[Message]) -> _Answer:
        start = next((m for m in messages if m["type"] == "http.response.start"), None)
        if start is None:
            return cls(500, [], b"")
        body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
        return cls(int(start["status"]), list(start.get("headers", [])), body)

    def rewritten(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> _Answer:
        """The answer with its envelope's ``data`` passed through ``change`` (if it is JSON)."""
        try:
            document = json.loads(self.body)
        except ValueError:
            return self
        if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
            return self
        document["data"] = change(document["data"])
        body = json.dumps(document, separators=(",", ":")).encode()
        return replace(self, body=body)

    async def replay(self, send: Send) -> None:
        headers = [(k, v) for k, v in self.headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def _capture(app: ASGIApp, scope: Scope, receive: Receive) -> _Answer:
    captured: list[Message] = []

    async def keep(message: Message) -> None:
        captured.append(message)

    await app(scope, receive, keep)
    return _Answer.of(captured)


async def _discard(_message: Message) -> None:
    """A ``send`` for answers that will never be delivered."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body; ``None`` if the client left first or it is over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone (the body must have been read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the real one says."""
    pending = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed


# --------------------------------------------------------------------------- canned answers


async def _server_error(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    """A 500 from the API itself (its envelope), or a 502 / 503 page from a proxy in front."""
    if status == 500:  # noqa: PLR2004
        message = "Internal server error (sandbox injected fault). Please try again later."
        await error_envelope(500, message, {SANDBOX_HEADER: "1"})(scope, receive, send)
        return
    title = _PROXY_PAGES[status]
    page = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1>"
        "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
    response = Response(page, status_code=status, media_type="text/html")
    await _labelled(response, scope, receive, send)


async def _expired(status: int, scope: Scope, receive: Receive, send: Send) -> None:
    """What S3 behind CloudFront answers for a deleted object: XML, not the API's envelope."""
    code, message = _S3_ERRORS[status]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    )
    await _labelled(Response(body, status_code=status, media_type="application/xml"),
                    scope, receive, send)  # fmt: skip


async def _labelled(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    response.headers[SANDBOX_HEADER] = "1"
    await response(scope, receive, send)


def _apply_fate(data: dict[str, Any], fate: str) -> dict[str, Any]:
    """The prediction as its fate shows it: ``failed`` with a message, or flagged NSFW."""
    if data.get("status") != "completed":
        return data  # the fate shows once the render is over, as the real outcome would
    if fate == "fail":
        return {**data, "status": "failed", "outputs": [], "has_nsfw_contents": [],
                "error": FAILURE_MESSAGE}  # fmt: skip
    outputs = data.get("outputs") or []
    return {**data, "has_nsfw_contents": [True] * len(outputs)}


# --------------------------------------------------------------------------- helpers


def route_of(path: str) -> RouteName:
    """Name the route a path belongs to (method aside: a wrong method is still that route)."""
    if path in _FIXED_ROUTES:
        return _FIXED_ROUTES[path]
    if _PREDICTION_PATH.fullmatch(path):
        return "result"
    if _DOWNLOAD_PATH.fullmatch(path):
        return "download"
    return "media" if path.startswith(Storage.MEDIA_ROUTE) else "other"


def _id_in(*, path: str, route: str) -> str | None:
    pattern = {"result": _PREDICTION_PATH, "download": _DOWNLOAD_PATH}.get(route)
    match = pattern.fullmatch(path) if pattern is not None else None
    return match.group(1) if match else None


def _json_path(body: bytes, *keys: str) -> object:
    try:
        value: object = json.loads(body)
    except ValueError:
        return None
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
