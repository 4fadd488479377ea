"""Read which camera move a prompt asks for, in the labels the metrics measure.

``requested_moves`` answers "what should the camera do?" so a measured move can be checked
against it (``wavenb.ab.metrics.VideoMetrics.motion_match``). It is deliberately
narrower than the sandbox's own reader (which must always produce *some* motion): a prompt that
says nothing about the camera asks for nothing, and the answer is an empty set, not a default.

How a prompt is read:

* Case-folded, apostrophes dropped, cut into clauses at punctuation and at ``then``, ``while``,
  ``as``, ``but``, ``when``, so "as the sun rises" never moves the camera.
* The vocabulary: pan / truck left or right, tilt / crane / boom / pedestal up or down,
  zoom / push / dolly in, pull back, zoom / dolly out, orbit / arc / circle, and ordinary
  verbs (move, glide, drift, slide, travel, track, rise, descend, ...). A direction word may
  follow within a few words ("pan slowly to the left"); ``pan up`` is a tilt.
* A move counts when its clause names the camera ("the camera tilts down", "drone shot
  rising") or opens with it ("slowly tilt up", "a slow push-in"). Camera-only words (zoom,
  pan, truck, dolly, crane, boom, pedestal, orbit, arc) with a direction count anywhere. So
  "she tilts her head up", "a frying pan" and "she walks to the left" ask for nothing. A
  bare participle or noun-like word opening a clause needs the camera named ("circling
  seagulls", "a crane lifts a beam" ask for nothing; "crane shot" asks for a crane move).
* A bare move without a direction asks for either direction of its axis ("slow pan" is
  ``pan_left`` or ``pan_right``); bare zoom, push-in and dolly mean in, rise and ascend mean up,
  descend and lower mean down.
* A negation just before a move drops it ("no zoom", "without panning"); ``and`` / ``with`` end
  its reach.
* Still words (static shot, locked-off, locked down, tripod, fixed camera, "no camera
  movement", "the camera does not move") ask for ``static``, unless the prompt also asks for a
  move.

The other way round, ``name_move`` names a measured motion with the same labels (the rules are
in ``wavenb.ab.metrics``'s docstring), and ``readings`` gives every label it answers to: a pan
that pushes in slightly is, to the pixels, also an orbit, since the sandbox renders an orbit as
a pan plus a 5 % push-in; a prompt asking for either is answered.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal

__all__ = ["CAMERA_MOVES", "CameraMove", "name_move", "readings", "requested_moves"]

CameraMove = Literal[
    "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "orbit", "static"
]
"""A dominant global camera move: what the metrics measure and what a prompt can ask for."""

CAMERA_MOVES: Final[tuple[CameraMove, ...]] = (
    "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "orbit", "static",
)  # fmt: skip
"""Every ``CameraMove``, in the order answers are given."""

_Axis = Literal["pan", "tilt", "zoom", "orbit"]

_STATIC_TRAVEL: Final = 0.02
"""Edge travel over the clip (share of the frame) under which nothing moved."""
_ORBIT_ZOOM: Final = (0.035, 0.065)
"""Log zoom over the clip that makes a horizontal travel an orbit: the sandbox's orbit pushes
in by log(1.05) = 0.049 (measured back within 0.002), with room for real footage. A pan that
pushes in by 2 or 3 % is a pan."""
_PUSH_ZOOM: Final = (0.02, 0.08)
"""Log zoom over the clip in which a horizontal travel answers to both its pan and ``orbit``."""
_NEVER: Final = (0.0, 0.0)

_BY_AXIS: Final[dict[_Axis, tuple[CameraMove, CameraMove]]] = {
    "pan": ("pan_left", "pan_right"),
    "tilt": ("tilt_down", "tilt_up"),
    "zoom": ("zoom_out", "zoom_in"),
}
"""(negative, positive) move of each axis (an orbit has no sides: it is one move)."""


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _forms(
    words: str, axes: tuple[_Axis, ...], bare: int | None, *, jargon: bool
) -> dict[str, tuple[tuple[_Axis, ...], int | None, bool]]:
    return dict.fromkeys(_words(words), (axes, bare, jargon))


# word -> (axes its direction words may name, bare meaning: +1/-1/0 = either/None, jargon)
_VERBS: Final = {
    **_forms("zoom zooms zoomed zooming", ("zoom",), 1, jargon=True),
    **_forms("dolly dollies dollied dollying", ("zoom", "pan"), 1, jargon=True),
    **_forms("push pushes pushing", ("zoom",), 1, jargon=False),
    **_forms("pull pulls pulling", ("zoom",), None, jargon=False),
    **_forms("pan pans panned panning", ("pan", "tilt"), 0, jargon=True),
    **_forms("truck trucks trucking", ("pan",), 0, jargon=True),
    **_forms("tilt tilts tilted tilting", ("tilt",), 0, jargon=False),
    **_forms("crane cranes craning boom booms booming pedestal", ("tilt",), 0, jargon=True),
    **_forms("orbit orbits orbiting arc arcs arcing", ("orbit", "pan"), 1, jargon=True),
    **_forms("circle circles circling", ("orbit", "pan"), 1, jargon=False),
    **_forms("rise rises rising ascend ascends ascending", ("tilt",), 1, jargon=False),
    **_forms("descend descends descending lower lowers lowering", ("tilt",), -1, jargon=False),
    **_forms("approach approaches approaching", ("zoom",), 1, jargon=False),
    **_forms("recede recedes receding retreat retreats", ("zoom",), -1, jargon=False),
    **_forms(
        "move moves moving glide glides gliding drift drifts drifting slide slides sliding "
        "travel travels traveling travelling track tracks tracking sweep sweeps sweeping "
        "fly flies flying float floats floating creep creeps creeping",
        ("zoom", "pan", "tilt"),
        None,
        jargon=False,
    ),
}

_DIRECTIONS: Final[dict[str, tuple[_Axis, int]]] = {
    **dict.fromkeys(_words("in into closer nearer forward forwards inward"), ("zoom", 1)),
    **dict.fromkeys(_words("out back backward backwards away outward"), ("zoom", -1)),
    **dict.fromkeys(_words("right rightward rightwards clockwise"), ("pan", 1)),
    **dict.fromkeys(_words("left leftward leftwards counterclockwise anticlockwise"), ("pan", -1)),
    **dict.fromkeys(_words("up upward upwards skyward"), ("tilt", 1)),
    **dict.fromkeys(_words("down downward downwards"), ("tilt", -1)),
}
_CAMERA_NOUNS: Final = _words(
    "camera cam shot view lens pov viewpoint perspective framing drone footage"
)
_NEGATIONS: Final = _words("no not without never dont doesnt avoid zero nor")
_SCOPE_BREAKS: Final = frozenset({"and", "with"})
_CONNECTORS: Final = frozenset({"and", "or", "with", "revealing", "showing"})
_STILL: Final = _words("static still stationary motionless unmoving fixed")
_LINKS: Final = _words(
    "is remains stays holds keeps completely perfectly totally absolutely entirely"
)
"""Words that may sit between a camera noun and a still word: "the camera stays still"."""
_LEADING: Final = _words(
    "a an the then and now just slow slowly gentle gently subtle subtly slight slightly "
    "smooth smoothly steady steadily fast quick quickly rapid rapidly swift swiftly "
    "dramatic dramatically cinematic continuous long"
)
"""Words that may open a clause before a camera verb: "slowly tilt up", "a slow push-in"."""
_NOUNISH: Final = _words("crane cranes boom booms pedestal arc arcs circle circles")
_MOVEMENT: Final = _words("move moves moving movement motion")
_CLAUSE_SPLIT: Final = re.compile(r"[,;:!?()\[\]{}\n\"]+|\.(?!\d)")
_CLAUSE_WORDS: Final = _words("then while whilst as but when meanwhile")
_WORD: Final = re.compile(r"[a-z]+")
_LOOKAHEAD: Final = 5


def requested_moves(prompt: str) -> frozenset[CameraMove]:
    """The camera moves ``prompt`` asks for; empty when it says nothing about the camera.

    Several moves come back for a prompt that combines them ("pan right and zoom in") or
    leaves the direction open ("slow pan": left or right); a video matches when its measured
    move is any of them. Never raises.

    Examples:
        >>> sorted(requested_moves("Gentle camera pan to the right, then zoom in"))
        ['pan_right', 'zoom_in']
        >>> requested_moves("The model walks forward slowly")
        frozenset()

    """
    moves: set[CameraMove] = set()
    still = False
    for clause in _clauses(prompt):
        moves |= _clause_moves(clause)
        still = still or _says_still(clause)
    if not moves and still:
        return frozenset({"static"})
    return frozenset(moves)


def name_move(
    pan: float,
    tilt: float,
    log_zoom: float,
    roll: float,
    *,
    orbit_zoom: tuple[float, float] = _ORBIT_ZOOM,
) -> CameraMove:
    """Name the dominant move of a clip from its camera's travel over the whole clip.

    ``pan`` and ``tilt`` in frame widths and heights (right and up positive), ``log_zoom``
    (in positive), ``roll`` in radians. Each part's edge travel (the travel, half the log zoom,
    half the roll) decides: all under 2 % is ``static``; the largest names the move; a
    horizontal travel with a log zoom in ``orbit_zoom`` is ``orbit``.

    Examples:
        >>> name_move(0.2, 0.0, 0.0, 0.0), name_move(0.2, 0.0, 0.049, 0.0)
        ('pan_right', 'orbit')
    """
    lateral, zooming, rolling = math.hypot(pan, tilt), abs(log_zoom) / 2, abs(roll) / 2
    if max(lateral, zooming, rolling) < _STATIC_TRAVEL:
        return "static"
    if rolling >= max(lateral, zooming):
        return "orbit"
    if zooming >= lateral:
        return "zoom_in" if log_zoom > 0 else "zoom_out"
    if abs(pan) >= abs(tilt):
        if orbit_zoom[0] <= log_zoom < orbit_zoom[1]:
            return "orbit"
        return "pan_right" if pan > 0 else "pan_left"
    return "tilt_up" if tilt > 0 else "tilt_down"


def readings(pan: float, tilt: float, log_zoom: float, roll: float) -> frozenset[CameraMove]:
    """Every label a clip's move answers to (arguments as ``name_move``'s).

    Mostly just ``name_move``'s; but a horizontal travel that pushes in slightly (log zoom 0.02
    to 0.08) is both its pan and ``orbit``: the pixels of a pan creeping closer and of the
    sandbox's orbit are the same.

    Examples:
        >>> sorted(readings(0.2, 0.0, 0.03, 0.0)), sorted(readings(0.2, 0.0, 0.2, 0.0))
        (['orbit', 'pan_right'], ['pan_right'])
    """
    bands = (_ORBIT_ZOOM, _NEVER, _PUSH_ZOOM)
    return frozenset(name_move(pan, tilt, log_zoom, roll, orbit_zoom=band) for band in bands)


def _clauses(prompt: str) -> list[list[str]]:
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


def _clause_moves(tokens: list[str]) -> set[CameraMove]:
    moves: set[CameraMove] = set()
    camera = any(token in _CAMERA_NOUNS for token in tokens)
    for i, word in enumerate(tokens):
        verb = _VERBS.get(word)
        if verb is None or _negated(tokens[:i]):
            continue
        axes, bare, jargon = verb
        direction = _direction(tokens[i + 1 : _lookahead_end(tokens, i)], axes)
        if not (camera or (jargon and direction is not None) or _opens(tokens, i, direction)):
            continue
        if "orbit" in axes:
            moves.add("orbit")  # an orbit's direction words say which way round, not a pan
        elif direction is not None:
            axis, sign = direction
            moves.add(_BY_AXIS[axis][sign > 0])
        elif bare is not None:
            negative, positive = _BY_AXIS[axes[0]]
            moves.update(
                (negative, positive) if bare == 0 else (positive if bare > 0 else negative,)
            )
    return moves


def _opens(tokens: list[str], i: int, direction: tuple[_Axis, int] | None) -> bool:
    """Whether the verb at ``i`` opens its clause ("slowly tilt up", "orbit the statue").

    Without a direction, a participle or a word that is mostly a noun is taken as one:
    "circling seagulls", "a crane lifts a beam".
    """
    if not all(token in _LEADING for token in tokens[:i]):
        return False
    word = tokens[i]
    return direction is not None or not (word in _NOUNISH or word.endswith(("ing", "ed")))


def _lookahead_end(tokens: list[str], i: int) -> int:
    """Index just past the words after a verb that can still give its direction."""
    end = i + 1
    while end < len(tokens) and end <= i + _LOOKAHEAD:
        if tokens[end] in _VERBS or tokens[end] in _CONNECTORS:
            break
        end += 1
    return end


def _direction(words: list[str], axes: tuple[_Axis, ...]) -> tuple[_Axis, int] | None:
    """The first direction among ``words`` that a verb of ``axes`` can take, or None.

    "from left to right" and "left to right" mean right: the origin gives way to the
    destination. "up close" is
    a push in, not a tilt.
    """
    for j, word in enumerate(words):
        found = _DIRECTIONS.get(word)
        if word == "up" and words[j + 1 : j + 2] == ["close"]:
            found = ("zoom", 1)
        if found is None or found[0] not in axes or "from" in words[max(0, j - 2) : j]:
            continue
        rest = [w for w in words[j + 1 : j + 4] if w != "the"]
        target = _DIRECTIONS.get(rest[1]) if rest[:1] == ["to"] and len(rest) > 1 else None
        return target if target is not None and target[0] == found[0] else found
    return None


def _negated(prefix: list[str]) -> bool:
    """Whether one of the last few words before a verb negates it ("no zoom")."""
    for word in reversed(prefix[-3:]):
        if word in _SCOPE_BREAKS:
            return False
        if word in _NEGATIONS:
            return True
    return False


def _says_still(tokens: list[str]) -> bool:
    """Whether a clause asks for a still camera.

    "static shot", "fixed camera", "the camera stays completely still", "locked-off",
    "tripod", "no camera movement", "the camera does not move"; not "a shot of a still lake".
    """
    camera = any(token in _CAMERA_NOUNS for token in tokens)
    for i, word in enumerate(tokens):
        following = tokens[i + 1 : i + 2]
        if word == "tripod" or (word == "locked" and following in (["off"], ["down"])):
            return True
        if word in _STILL and not _negated(tokens[:i]) and _said_of_camera(tokens, i):
            return True
        if camera and word in _MOVEMENT and _negated(tokens[:i]):
            return True
    return False


def _said_of_camera(tokens: list[str], i: int) -> bool:
    """Whether the still word at ``i`` describes the camera.

    It does right before a camera noun ("static shot"), or after one with only "is / remains
    / stays / completely ..." between ("the camera stays completely still").
    """
    if tokens[i + 1 : i + 2] and tokens[i + 1] in _CAMERA_NOUNS:
        return True
    for j in range(i - 1, max(-1, i - 5), -1):
        if tokens[j] in _CAMERA_NOUNS:
            return True
        if tokens[j] not in _LINKS:
            return False
    return False
