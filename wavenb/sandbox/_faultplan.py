"""The fault plan: which failures the sandbox injects, how often, and the counters of what fired.

A ``FaultPlan`` says how often (probabilities) or exactly when (scripted "the next 2
submits get a 429") each fault happens; ``Faults`` holds the plan in force, its seeded
random source and the counters (``FaultStats``). The injector that acts on them is
``wavenb.sandbox._faults``, which describes every fault.

Decisions come from one ``random.Random(seed)`` drawn in the order requests arrive, under a
lock: the same seed and the same sequence of requests give the same faults.
"""

from __future__ import annotations

import json
import math
import random
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Final, Literal, cast, get_args

__all__ = [
    "ROUTES",
    "Fate",
    "FaultPlan",
    "FaultStats",
    "Faults",
    "RequestFault",
    "RouteName",
    "Scripted",
    "json_object_in",
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
            return cls.from_mapping(json_object_in(text, "the --faults JSON"))
        if text.endswith(".json") or (text and "=" not in text):
            try:
                content = Path(text).expanduser().read_text(encoding="utf-8")
            except OSError as error:
                raise ValueError(f"cannot read the fault plan file {text!r}: {error}") from None
            return cls.from_mapping(json_object_in(content, text))
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


def json_object_in(text: str, where: str) -> dict[str, object]:
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
