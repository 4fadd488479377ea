"""Read a camera move out of a text prompt, the way the sandbox imitates Gen4 Turbo.

The real model invents motion from the whole prompt. The sandbox only needs something
plausible and predictable: it looks for the camera vocabulary people actually write in
image-to-video prompts ("slow push in", "pan to the right", "crane up", "locked-off shot")
and turns it into a ``CameraMotion`` that the renderer plays back over the source image.

How a prompt is read:

* The prompt is case-folded and cut into clauses at punctuation and at ``then``, ``while``,
  ``as``, ``but``, ``when``, so a clause about the subject ("as the sun rises") does not
  move the camera.
* Camera-only words (zoom, pan, truck, dolly, pedestal, orbit) count wherever they appear
  with a direction. Ordinary verbs (moves, rises, descends, glides, tilts, pulls ...) count
  only when the clause is about the camera: a camera noun comes before them ("the camera
  rises"), a camera noun follows them ("tracking shot left"), or they open the clause
  ("glide to the right", "slowly move closer"). "The model walks forward" moves nothing.
* A negation a few words before a move drops it ("no zoom", "without panning", "doesn't
  tilt", "no zoom or pan"); ``and``/``with`` end its reach ("no blur and zoom in" zooms).
* Speed words near a move scale it: gentle ≈ 12 %, normal 20 %, fast 35 % of the frame (or
  of the magnification, for zooms). A move with no speed word of its own takes the first
  speed word of any other camera clause ("slow zoom in while panning left").
* A stated amount beats a speed word ("pan right 15%", "zoom in 10 percent"); it is bounded
  to half a frame of travel, 2x magnification, or 0.5x for zooming out. So the text of
  ``CameraMotion.describe`` reads back as the same motion.
* The first mention of each axis wins; different axes combine ("pan right and zoom in").
* No camera words at all gives ``DEFAULT_MOTION``, a gentle push-in. Still words
  (static, locked-off, tripod, "no camera movement") give a still camera, unless the prompt
  also asks for a move.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace
from typing import Final, Literal

__all__ = ["DEFAULT_MOTION", "CameraMotion", "Easing", "parse_motion"]

Easing = Literal["ease-in-out", "linear"]
"""How the move is spread over the clip: smoothstep (starts and ends at rest) or constant speed."""

_EASINGS: Final[frozenset[str]] = frozenset({"ease-in-out", "linear"})


@dataclass(frozen=True, slots=True)
class CameraMotion:
    """A camera move over the whole clip, relative to the first frame.

    Raises:
        ValueError: if an amount is not finite, ``zoom`` is -1 or less (the picture would
            vanish), or ``easing`` is not one of ``Easing``.

    Examples:
        >>> CameraMotion(zoom=0.2, pan=0.15).describe()
        'zoom in 20%, pan right 15%'

    """

    zoom: float = 0.0
    """Relative change of magnification over the clip: +0.25 makes content 25 % larger at the
    end (zoom in, push in, dolly in); negative values zoom out / pull back."""

    pan: float = 0.0
    """Horizontal travel of the view over the clip, as a fraction of the visible width;
    positive moves the camera right, so content slides left in the frame."""

    tilt: float = 0.0
    """Vertical travel of the view, as a fraction of the visible height; positive moves the
    camera up, so content slides down in the frame."""

    still: bool = False
    """A locked-off camera: the renderer ignores the amounts and holds the first frame's view."""

    easing: Easing = "ease-in-out"
    """``"ease-in-out"`` (smoothstep: starts and stops at rest) or ``"linear"``."""

    def __post_init__(self) -> None:
        for name in ("zoom", "pan", "tilt"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"CameraMotion.{name} must be finite")
        if self.zoom <= -1.0:
            raise ValueError(f"CameraMotion.zoom must be greater than -1, got {self.zoom}")
        if self.easing not in _EASINGS:
            raise ValueError(f"CameraMotion.easing must be one of {sorted(_EASINGS)}")

    @property
    def is_static(self) -> bool:
        """Whether nothing moves: ``still`` is set or every amount is zero."""
        return self.still or (self.zoom == 0.0 and self.pan == 0.0 and self.tilt == 0.0)

    def describe(self) -> str:
        """Say the move in a few words: ``"zoom in 20%, pan right 15%"``, ``"static camera"``."""
        if self.is_static:
            return "static camera"
        parts = [
            f"{verb} {pos if amount > 0 else neg} {abs(amount) * 100:.0f}%"
            for verb, amount, pos, neg in (
                ("zoom", self.zoom, "in", "out"),
                ("pan", self.pan, "right", "left"),
                ("tilt", self.tilt, "up", "down"),
            )
            if amount != 0.0
        ]
        if self.easing == "linear":
            parts.append("constant speed")
        return ", ".join(parts)


DEFAULT_MOTION: Final = CameraMotion(zoom=0.10)
"""What a prompt without camera words gets: a gentle push-in, the usual "alive" default."""

# --- vocabulary ----------------------------------------------------------------------------

_Axis = Literal["zoom", "pan", "tilt"]
_Strength = Literal["gentle", "normal", "fast"]


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_AMOUNTS: Final[dict[_Strength, float]] = {"gentle": 0.12, "normal": 0.20, "fast": 0.35}
_MAX_TRAVEL: Final = 0.5
_MAX_ZOOM_IN: Final = 1.0
_MAX_ZOOM_OUT: Final = 0.5
"""Bounds on stated amounts: half a frame of travel, 2x magnification, or 0.5x."""
_ORBIT_ZOOM: Final = 0.05
"""An orbit keeps the subject centred while the background swings: a pan plus a slight push."""

_ZOOM: Final[frozenset[_Axis]] = frozenset({"zoom"})
_PAN: Final[frozenset[_Axis]] = frozenset({"pan"})
_TILT: Final[frozenset[_Axis]] = frozenset({"tilt"})
_ANY: Final[frozenset[_Axis]] = frozenset({"zoom", "pan", "tilt"})


@dataclass(frozen=True, slots=True)
class _Verb:
    axes: frozenset[_Axis]
    """Which direction words the verb takes ("pan" takes left/right and, colloquially, up/down)."""
    default: tuple[_Axis, int] | None = None
    """The move the verb means without a direction word, if it means one."""
    jargon: bool = False
    """A camera-only word: with a direction it counts even outside a camera clause."""
    orbit: bool = False


def _forms(words: str, verb: _Verb) -> dict[str, _Verb]:
    return dict.fromkeys(_words(words), verb)


# Verb forms are listed, not stemmed: some forms are left out on purpose because they are
# mostly nouns or adjectives in prompts ("lower half", "head", "ease-in").
_VERBS: Final[dict[str, _Verb]] = {
    **_forms("zoom zooms zoomed zooming", _Verb(_ZOOM, ("zoom", 1), jargon=True)),
    **_forms("dolly dollies dollied dollying", _Verb(_ZOOM | _PAN, ("zoom", 1), jargon=True)),
    **_forms("pan pans panned panning", _Verb(_PAN | _TILT, ("pan", 1), jargon=True)),
    **_forms("truck trucks trucked trucking", _Verb(_PAN, jargon=True)),
    **_forms("pedestal pedestals pedestaled pedestaling", _Verb(_TILT, jargon=True)),
    **_forms("orbit orbits orbited orbiting", _Verb(_PAN, ("pan", 1), jargon=True, orbit=True)),
    **_forms("arc arcs arcing circle circles circling", _Verb(_PAN, ("pan", 1), orbit=True)),
    **_forms("push pushes pushed pushing pull pulls pulled pulling", _Verb(_ZOOM)),
    **_forms(
        "approach approaches approached approaching advance advances advancing",
        _Verb(_ZOOM, ("zoom", 1)),
    ),
    **_forms("recede recedes receding retreat retreats retreating", _Verb(_ZOOM, ("zoom", -1))),
    **_forms("track tracks tracked tracking", _Verb(_PAN | _ZOOM)),
    **_forms(
        "tilt tilts tilted tilting crane cranes craning boom booms booming jib jibs "
        "rise rises rose rising ascend ascends ascended ascending climb climbs climbing",
        _Verb(_TILT, ("tilt", 1)),
    ),
    **_forms(
        "descend descends descended descending lowers lowered lowering sink sinks sinking",
        _Verb(_TILT, ("tilt", -1)),
    ),
    **_forms(
        "move moves moved moving glide glides glided gliding drift drifts drifted drifting "
        "slide slides slid sliding travel travels traveled travelled traveling travelling "
        "fly flies flew flying float floats floated floating sweep sweeps swept sweeping "
        "creep creeps crept creeping come comes came coming go goes went going "
        "inch inches inched inching",
        _Verb(_ANY),
    ),
}

_DIRECTIONS: Final[dict[str, tuple[_Axis, int]]] = {
    **dict.fromkeys(
        _words("in into close closer nearer forward forwards inward inwards"), ("zoom", 1)
    ),
    **dict.fromkeys(_words("out back backward backwards away outward outwards"), ("zoom", -1)),
    **dict.fromkeys(_words("right rightward rightwards clockwise"), ("pan", 1)),
    **dict.fromkeys(_words("left leftward leftwards counterclockwise anticlockwise"), ("pan", -1)),
    **dict.fromkeys(_words("up upward upwards skyward skywards"), ("tilt", 1)),
    **dict.fromkeys(_words("down downward downwards"), ("tilt", -1)),
}
_WEAK_DIRECTIONS: Final[dict[str, tuple[_Axis, int]]] = dict.fromkeys(
    _words("toward towards"), ("zoom", 1)
)
"""Used only when no other direction word is there: "towards the left" is a pan."""

_CAMERA_NOUNS: Final = _words(
    "camera cam cameras shot shots view lens pov viewpoint perspective framing drone "
    "we viewer footage angle"
)
_GENTLE: Final = _words(
    "slow slowly slower gentle gently subtle subtly slight slightly soft softly gradual "
    "gradually calm calmly leisurely delicate delicately barely little"
)
_FAST: Final = _words(
    "fast faster quick quickly rapid rapidly dramatic dramatically swift swiftly sudden "
    "suddenly aggressive aggressively dynamic energetic sweeping whip crash snap"
)
_NEGATIONS: Final = _words(
    "no not without never dont doesnt didnt isnt wont cannot cant avoid avoids avoiding "
    "zero none nor neither"
)
_LEADING: Final = (
    _words(
        "a an the then and now just very really smooth smoothly steady steadily cinematic "
        "continuous continuously long extreme extremely super nice single clean"
    )
    | _GENTLE
    | _FAST
)
"""Words that may open a clause before a verb without making it about someone else."""

_CONNECTORS: Final = _words("and or nor with reveal revealing showing")
"""Words that end a verb's look-ahead for direction and speed words."""
_SCOPE_BREAKS: Final = _words("and with")
"""Words that end a negation's reach: "no jitter and zoom in" still zooms."""

_STILL_WORDS: Final = _words("static still stationary motionless unmoving immobile")
_NOT_STILL_AFTER: Final = _words("image images photo photograph picture life")
_MOVEMENT_WORDS: Final = _words("move moves moving movement movements motion")
_LINEAR_WORDS: Final = _words("constant uniform even steady")
_RATE_WORDS: Final = _words("speed pace rate velocity")

# A full stop splits, except inside a number ("12.5%").
_CLAUSE_SPLIT: Final = re.compile(r"[,;:!?()\[\]{}\n\r\t\"]+|\.(?!\d)")
_CLAUSE_WORDS: Final = _words("then while whilst as but when meanwhile")
_WORD: Final = re.compile(r"[a-z]+|\d+(?:\.\d+)?%?")
_PERCENT: Final = re.compile(r"(\d+(?:\.\d+)?)%")
_PERCENT_WORDS: Final = _words("percent pct")
_LOOKAHEAD: Final = 8


# --- parsing -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Move:
    axis: _Axis
    sign: int
    strength: _Strength | None
    amount: float | None
    """An amount the prompt states ("pan right 15%"), in place of the speed word's."""
    orbit: bool


@dataclass(slots=True)
class _Reading:
    """Everything found in a prompt, before it becomes a CameraMotion."""

    moves: list[_Move] = field(default_factory=list)
    negated: set[_Axis] = field(default_factory=set)
    still: bool = False
    strengths: list[_Strength] = field(default_factory=list)
    """Speed words of clauses about the camera, in order: the fallback for bare moves."""


def parse_motion(prompt: str) -> CameraMotion:
    """Turn a prompt into a ``CameraMotion``; never raises, whatever the text.

    Examples:
        >>> parse_motion("Gentle camera pan to the right, revealing more of the scene")
        CameraMotion(zoom=0.0, pan=0.12, tilt=0.0, still=False, easing='ease-in-out')
        >>> parse_motion("The model walks forward slowly") == DEFAULT_MOTION
        True

    """
    reading = _Reading()
    for clause in _clauses(prompt):
        _read_clause(clause, reading)
    easing: Easing = "linear" if _asks_linear(prompt) else "ease-in-out"

    amounts: dict[_Axis, float] = {}
    fallback = reading.strengths[0] if reading.strengths else "normal"
    # Stated amounts first, so "slow push-in (zoom in 10%)" is 10 %, then speed words.
    for move in sorted(reading.moves, key=lambda move: move.amount is None):
        amount = move.amount if move.amount is not None else _AMOUNTS[move.strength or fallback]
        amounts.setdefault(move.axis, _bounded(move.axis, move.sign * amount))
    if any(move.orbit for move in reading.moves) and "zoom" not in reading.negated:
        amounts.setdefault("zoom", _ORBIT_ZOOM)

    if amounts:
        return CameraMotion(
            zoom=amounts.get("zoom", 0.0),
            pan=amounts.get("pan", 0.0),
            tilt=amounts.get("tilt", 0.0),
            easing=easing,
        )
    # Nothing to play: a still camera if asked for one, or if all the prompt says about the
    # camera is that it must not zoom (which rules out the default push-in too).
    if reading.still or "zoom" in reading.negated:
        return CameraMotion(still=True, easing=easing)
    return replace(DEFAULT_MOTION, easing=easing)


def _bounded(axis: _Axis, amount: float) -> float:
    if axis == "zoom":
        return min(max(amount, -_MAX_ZOOM_OUT), _MAX_ZOOM_IN)
    return min(max(amount, -_MAX_TRAVEL), _MAX_TRAVEL)


def _clauses(prompt: str) -> list[list[str]]:
    # Apostrophes vanish ("don't" -> "dont"); other non-letters split ("locked-off").
    text = prompt.casefold().replace("'", "").replace("\u2019", "")
    clauses: list[list[str]] = []
    for piece in _CLAUSE_SPLIT.split(text):
        clause: list[str] = []
        for word in _WORD.findall(piece):
            if word in _CLAUSE_WORDS:
                clauses.append(clause)
                clause = []
            else:
                clause.append(word)
        clauses.append(clause)
    return [clause for clause in clauses if clause]


def _read_clause(tokens: list[str], reading: _Reading) -> None:
    start = 0  # where the current verb's own words begin: after the previous move's look-ahead
    moved = False  # a clause that already moved the camera is about the camera
    for i, word in enumerate(tokens):
        verb = _VERBS.get(word)
        if verb is None:
            continue
        end = _lookahead_end(tokens, i)
        prefix, after = tokens[start:i], tokens[i + 1 : end]
        direction = _direction(after, verb.axes) or _direction(prefix[-2:], verb.axes)
        if _negated(tokens[:i]):
            # Whoever it is said of, a refused move only ever removes that axis.
            refused = direction or verb.default
            if refused is not None:
                reading.negated.add(refused[0])
                moved, start = True, end
            continue
        if direction is None:
            direction = verb.default if moved or _bare_about_camera(tokens, i) else None
        elif not (verb.jargon or moved or _about_camera(tokens, i)):
            direction = None
        if direction is not None:
            strength = _strength(prefix, after) or _strength(tokens, [])
            amount = _percent(after) or _percent(prefix[-3:])
            reading.moves.append(_Move(*direction, strength, amount, verb.orbit))
            moved, start = True, end

    if moved or any(t in _CAMERA_NOUNS for t in tokens):
        reading.strengths.extend(_strengths(tokens))
    reading.still = reading.still or _says_still(tokens)


def _lookahead_end(tokens: list[str], i: int) -> int:
    """Index just past the words after a verb that can belong to it (direction, speed)."""
    end = i + 1
    while end < len(tokens) and end <= i + _LOOKAHEAD:
        if tokens[end] in _VERBS or tokens[end] in _CONNECTORS:
            break
        end += 1
    return end


def _about_camera(tokens: list[str], i: int) -> bool:
    """Tell whether the verb at ``i`` is said of the camera.

    It is when a camera noun comes before it ("the camera rises") or right after it
    ("tracking shot left"), or when the clause opens with it ("glide to the right").
    """
    before = tokens[:i]
    return (
        any(t in _CAMERA_NOUNS for t in before)
        or any(t in _CAMERA_NOUNS for t in tokens[i + 1 : i + 3])
        or all(t in _LEADING for t in before)
    )


def _bare_about_camera(tokens: list[str], i: int) -> bool:
    """Like ``_about_camera``, for a verb with no direction word.

    A participle opening a clause is usually an adjective ("rising sun", "approaching storm",
    "circling birds"), so bare ``-ing``/``-ed`` forms need a camera noun.
    """
    if tokens[i].endswith(("ing", "ed")):
        before, after = tokens[:i], tokens[i + 1 : i + 3]
        return any(t in _CAMERA_NOUNS for t in before) or any(t in _CAMERA_NOUNS for t in after)
    return _about_camera(tokens, i)


def _direction(words: list[str], axes: frozenset[_Axis]) -> tuple[_Axis, int] | None:
    """Find the direction ``words`` give a verb taking ``axes``, or None.

    "from left to right" and "left to right" both mean right: an origin after "from", or a
    direction followed by "to [the] <direction>", gives way to the destination. "up close"
    is a zoom, not a tilt.
    """
    weak: tuple[_Axis, int] | None = None
    for j, word in enumerate(words):
        found = _DIRECTIONS.get(word)
        if word == "up" and words[j + 1 : j + 2] == ["close"]:
            found = _DIRECTIONS["close"]
        if found is None or found[0] not in axes:
            if weak is None and word in _WEAK_DIRECTIONS and "zoom" in axes:
                weak = _WEAK_DIRECTIONS[word]
            continue
        if "from" in words[max(0, j - 2) : j]:
            continue
        rest = [w for w in words[j + 1 : j + 4] if w != "the"][:2]
        target = _DIRECTIONS.get(rest[1]) if rest[:1] == ["to"] and len(rest) > 1 else None
        if target is not None and target[0] == found[0]:
            return target
        return found
    return weak


def _percent(words: list[str]) -> float | None:
    """Find a stated amount ("15%", "15 percent") among ``words``, as a fraction."""
    for j, word in enumerate(words):
        match = _PERCENT.fullmatch(word)
        if match is not None:
            return float(match[1]) / 100
        if word[:1].isdigit() and words[j + 1 : j + 2] and words[j + 1] in _PERCENT_WORDS:
            return float(word.removesuffix("%")) / 100
    return None


def _negated(prefix: list[str]) -> bool:
    """Tell whether one of the last few words before a verb negates it ("no", "without")."""
    for word in reversed(prefix[-4:]):
        if word in _SCOPE_BREAKS:
            return False
        if word in _NEGATIONS:
            return True
    return False


def _strength(prefix: list[str], after: list[str]) -> _Strength | None:
    """Find the speed word nearest the verb: the last one before it, else the first after."""
    for word in [*reversed(prefix), *after]:
        if word in _GENTLE:
            return "gentle"
        if word in _FAST:
            return "fast"
    return None


def _strengths(tokens: list[str]) -> list[_Strength]:
    return ["gentle" if t in _GENTLE else "fast" for t in tokens if t in _GENTLE or t in _FAST]


def _says_still(tokens: list[str]) -> bool:
    """Tell whether a clause asks for a still camera.

    "static shot", "locked-off", "tripod", "the camera does not move", "no camera movement".
    """
    camera = any(t in _CAMERA_NOUNS for t in tokens)
    for i, word in enumerate(tokens):
        before, following = tokens[:i], tokens[i + 1 : i + 2]
        if word == "tripod" or (word == "locked" and following in (["off"], ["down"])):
            return True
        if word == "fixed" and following and following[0] in _CAMERA_NOUNS:
            return True
        if word in _STILL_WORDS and not _negated(before):
            if word == "still" and following and following[0] in _NOT_STILL_AFTER:
                continue
            if camera or all(t in _LEADING for t in before):
                return True
        if (
            word in _MOVEMENT_WORDS
            and _negated(before)
            and (camera or all(t in _LEADING or t in _NEGATIONS for t in before))
        ):
            return True
    return False


def _asks_linear(prompt: str) -> bool:
    """Whether the prompt asks for constant speed: "linear", "constant speed", "steady pace"."""
    words = _WORD.findall(prompt.casefold())
    if "linear" in words or "linearly" in words:
        return True
    return any(a in _LINEAR_WORDS and b in _RATE_WORDS for a, b in itertools.pairwise(words))
