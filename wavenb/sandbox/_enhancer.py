"""An offline stand-in for WaveSpeed's prompt optimizer: deterministic, no model, no network.

It keeps the user's words as they are and adds labelled sentences that a video model reads
well: the camera move (restated precisely with the renderer's own prompt parser, or a gentle
push-in when the prompt names none), lighting that fits the prompt's mood and the chosen
style, and pacing. In ``image`` mode it adds composition, lighting and detail instead.

Enhancing an enhanced prompt drops the sentences this module wrote and rebuilds them from the
user's words alone, so a second pass changes nothing and the text never keeps growing; the
result always fits Runway's 1000-character limit.

>>> enhance("A lighthouse on a cliff at sunset, waves crashing")
... # doctest: +NORMALIZE_WHITESPACE
'A lighthouse on a cliff at sunset, waves crashing. Camera: a gentle, slow push-in (zoom in
10%), smooth and stabilised. Lighting: warm golden-hour light with long, soft shadows;
natural color that stays consistent from start to end. Pacing: smooth, steady motion across
the whole clip in one shot, no cuts; the subject keeps its look.'
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = ["MAX_CHARS", "MODES", "STYLES", "Mode", "Style", "enhance"]

Mode = Literal["video", "image"]
Style = Literal["default", "artistic", "photographic", "technical", "anime", "realistic"]
MODES: Final[tuple[Mode, ...]] = ("video", "image")
STYLES: Final[tuple[Style, ...]] = (
    "default",
    "artistic",
    "photographic",
    "technical",
    "anime",
    "realistic",
)
MAX_CHARS: Final = 1000
"""Runway's prompt limit: an enhanced prompt must still be submittable."""

_STYLE_LOOKS: Final[dict[Style, str]] = {
    "default": "natural color that stays consistent from start to end",
    "artistic": "expressive, painterly color and light",
    "photographic": "photographic realism with natural light and a shallow depth of field",
    "technical": "even, neutral light, sharp focus and a steady exposure",
    "anime": "clean anime shading with vivid, saturated colors",
    "realistic": "physically plausible light, shadows and true-to-life textures",
}

# The first group with a word in the prompt sets the mood of the light.
_MOODS: Final[tuple[tuple[frozenset[str], str], ...]] = (
    (
        frozenset({"sunset", "sunrise", "golden", "dusk", "dawn"}),
        "warm golden-hour light with long, soft shadows",
    ),
    (
        frozenset({"night", "neon", "midnight", "moon", "moonlit", "dark"}),
        "low-key night light with glowing highlights and deep shadows",
    ),
    (
        frozenset({"rain", "rainy", "fog", "foggy", "mist", "misty", "storm", "snow", "overcast"}),
        "soft, diffused light through the weather",
    ),
    (
        frozenset({"fire", "fireplace", "candle", "candles", "flame", "flames"}),
        "flickering warm firelight",
    ),
    (
        frozenset({"underwater", "ocean", "sea", "lake", "river", "waves"}),
        "shimmering light reflected off the water",
    ),
    (
        frozenset({"studio", "product", "portrait"}),
        "clean studio light with a soft key and a gentle rim",
    ),
)
_DEFAULT_MOOD: Final = "soft natural light"

_FAST_WORDS: Final = frozenset(
    {"fast", "quick", "quickly", "rapid", "rapidly", "sudden", "suddenly", "rushes", "running"}
    | {"runs", "races", "explodes", "explosion", "dash", "dashes", "whip"}
)
_SLOW_WORDS: Final = frozenset(
    {"slow", "slowly", "gentle", "gently", "calm", "calmly", "serene", "drift", "drifts"}
    | {"drifting", "peaceful", "lazy", "softly"}
)
_TEMPOS: Final = ("energetic, continuous motion", "slow, calm motion", "smooth, steady motion")

_CAMERA_SUFFIX: Final = ", smooth and stabilised."
_STATIC_CAMERA: Final = "Camera: locked-off static camera, no camera movement."
_COMPOSITION: Final = "Composition: balanced framing with one clear focal subject."
_DETAIL: Final = "Detail: crisp textures and coherent perspective."
_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+")
_CUT_SLACK: Final = 40
"""Shorter than any sentence added here (the shortest, a bare zoom, has 42 characters)."""


def enhance(text: str, *, style: Style = "default", mode: Mode = "video") -> str:
    """Return a richer prompt that keeps ``text``'s intent; deterministic and offline.

    Raises ``ValueError`` for an empty text, or a style or mode outside the API's values.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    # A text made only of sentences this module writes is kept as the user's own words.
    core = _own_words(text) or " ".join(text.split())
    if not core:
        raise ValueError("text is empty: nothing to enhance")
    words = set(re.findall(r"[a-z]+", core.lower()))
    if mode == "video":
        extras = [_camera(core), _lighting(words, style), _pacing(words)]
    else:
        extras = [_COMPOSITION, _lighting(words, style), _DETAIL]
    return _fit(core, extras)


def _own_words(text: str) -> str:
    """Drop sentences an earlier pass added; tidy whitespace; end with a full stop.

    Only sentences this module could have written are dropped, so a user's own "Camera: ..."
    stays and still steers the camera.
    """
    sentences = _SENTENCE_END.split(" ".join(text.split()))
    core = " ".join(s for s in sentences if s and not _is_ours(s))
    if core and core[-1] not in ".!?":
        core += "."
    return core


def _is_ours(sentence: str) -> bool:
    if sentence.startswith("Camera: "):
        return sentence.endswith(_CAMERA_SUFFIX)
    return sentence in _WRITTEN_HERE


def _camera(core: str) -> str:
    """Restate the prompt's camera move precisely, or a gentle push-in if it names none."""
    from wavenb.sandbox._motion import DEFAULT_MOTION, parse_motion  # noqa: PLC0415  (lazy)

    motion = parse_motion(core)
    if motion.is_static:
        return _STATIC_CAMERA
    description = motion.describe()
    if motion == DEFAULT_MOTION:
        description = f"a gentle, slow push-in ({description})"
    return f"Camera: {description}{_CAMERA_SUFFIX}"


def _lighting(words: set[str], style: Style) -> str:
    mood = next((mood for keys, mood in _MOODS if words & keys), _DEFAULT_MOOD)
    return _lighting_sentence(mood, _STYLE_LOOKS[style])


def _lighting_sentence(mood: str, look: str) -> str:
    return f"Lighting: {mood}; {look}."


def _pacing(words: set[str]) -> str:
    fast, slow, steady = _TEMPOS
    tempo = fast if words & _FAST_WORDS else slow if words & _SLOW_WORDS else steady
    return _pacing_sentence(tempo)


def _pacing_sentence(tempo: str) -> str:
    return (
        f"Pacing: {tempo} across the whole clip in one shot, no cuts; the subject keeps its look."
    )


def _fit(core: str, extras: list[str]) -> str:
    """Join the parts within ``MAX_CHARS``: drop extras from the last, then cut the core.

    A cut core ends within ``_CUT_SLACK`` characters of the limit (at a space if there is one
    that close), so no extra fits beside it on a second pass: the result stays a fixed point.
    """
    while extras and len(" ".join([core, *extras])) > MAX_CHARS:
        extras.pop()
    if len(core) <= MAX_CHARS:
        return " ".join([core, *extras])
    head = core[: MAX_CHARS - 1]
    at_space = head.rsplit(" ", 1)[0]
    if len(at_space) >= MAX_CHARS - _CUT_SLACK:
        head = at_space
    return head.rstrip() + "."


_WRITTEN_HERE: Final = frozenset(
    {_COMPOSITION, _DETAIL, _STATIC_CAMERA}
    | {_pacing_sentence(tempo) for tempo in _TEMPOS}
    | {
        _lighting_sentence(mood, look)
        for mood in (_DEFAULT_MOOD, *(mood for _, mood in _MOODS))
        for look in _STYLE_LOOKS.values()
    }
)
"""Every fixed sentence this module writes: what a second pass recognises and replaces."""
