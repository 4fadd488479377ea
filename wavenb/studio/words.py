"""How the Studio reads: pure functions from values to the words its front end shows.

Nothing here touches a widget or does I/O, so every text is testable on its own. The front end
puts these strings into the page as text (``textContent``), never as HTML: nothing a user or a
server wrote can become markup.
"""

from __future__ import annotations

import difflib
import json
import re
import traceback
from collections.abc import Mapping
from typing import Any, Final

from wavenb.core.errors import APIError, PredictionError, PredictionFailed, WavenbError
from wavenb.core.models import Video
from wavenb.core.protocol import MAX_PROMPT_CHARS
from wavenb.core.types import ASPECT_RATIOS, OUTPUT_SIZES, PRICE_PER_VIDEO, AspectRatio
from wavenb.studio.image import SourceImage
from wavenb.ui.text import seconds, short_id

__all__ = [
    "EXAMPLE_PROMPTS",
    "SANDBOX_HINT",
    "char_count",
    "describe_error",
    "generate_code",
    "image_summary",
    "progress_text",
    "ratio_options",
    "resume_offer",
    "seconds",
    "short_id",
    "spent_label",
    "unresolved_warning",
    "video_caption",
    "word_diff",
]

EXAMPLE_PROMPTS: Final = (
    "The model walks forward slowly, camera follows",
    "Gentle camera pan to the right, revealing more of the scene",
    "Camera slowly zooms in on the subject",
    "Slow orbit around the product, soft studio light",
    "Static shot, the cat blinks and looks around",
)
"""The example prompts of the model's product page."""

TIMES: Final = "\u00d7"
"""The multiplication sign (U+00D7) written between width and height."""
RATIO_USES: Final[dict[AspectRatio, str]] = {
    "16:9": "YouTube",
    "9:16": "Reels/TikTok/Shorts",
    "1:1": "Instagram feed",
    "4:3": "classic",
    "3:4": "portrait feed",
}
RATIO_ORDER: Final[tuple[AspectRatio, ...]] = ("16:9", "9:16", "1:1", "4:3", "3:4")

SANDBOX_HINT: Final = (
    f"Set WAVESPEED_API_KEY to use the real API (${PRICE_PER_VIDEO:.2f} per video)."
)


def spent_label(spent: float, *, sandbox: bool) -> str:
    """What this Studio session paid: ``"Spent this session: $1.00"``, free on the sandbox."""
    amount = "free (sandbox)" if sandbox and spent == 0 else f"${spent:.2f}"
    return f"Spent this session: {amount}"


def resume_offer(count: int) -> str:
    """The line beside the Resume button: runs an earlier session left unfinished."""
    if count == 0:
        return ""
    runs = "run" if count == 1 else "runs"
    return f"{count} unfinished {runs} from earlier (kernel restart, cancelled wait)"


def unresolved_warning(count: int) -> str:
    """The plain warning for submissions whose fate is unknown; they are never resent."""
    if count == 0:
        return ""
    subject, pronoun = (
        ("submission got", "it is") if count == 1 else ("submissions got", "they are")
    )
    return (
        f"{count} {subject} no answer and may have been charged; {pronoun} never resent "
        "(see wavenb.unresolved())"
    )


def ratio_options() -> list[tuple[str, str]]:
    """(label, value) pairs: "match source" (value ``""``) then each ratio, its use and size."""
    options = [("match source", "")]
    for ratio in RATIO_ORDER:
        width, height = OUTPUT_SIZES[ratio]
        options.append((f"{ratio} {RATIO_USES[ratio]} · {width}{TIMES}{height}", ratio))
    assert set(RATIO_ORDER) == set(ASPECT_RATIOS)  # noqa: S101  (the table covers every ratio)
    return options


def char_count(text: str) -> str:
    """``"42 / 1000"``."""
    return f"{len(text.strip())} / {MAX_PROMPT_CHARS}"


def image_summary(source: SourceImage) -> str:
    """Size, detected shape and closest output ratio; the downscale note when there is one."""
    closest = source.closest_ratio
    width, height = OUTPUT_SIZES[closest]
    text = (
        f"{source.width}{TIMES}{source.height} px · {_shape(source.width, source.height)} · "
        f"closest ratio {closest} ({width}{TIMES}{height})"
    )
    return f"{text} · {source.note} before upload" if source.note else text


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """The change from ``old`` to ``new`` word by word, as (kind, words) segments.

    Kinds are ``"same"``, ``"del"`` (struck) and ``"ins"`` (highlighted).

    >>> word_diff("a cat", "a small cat")
    [('same', 'a'), ('ins', 'small'), ('same', 'cat')]
    """
    before, after = old.split(), new.split()
    parts: list[tuple[str, str]] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            parts.append(("same", " ".join(before[a0:a1])))
            continue
        if a1 > a0:
            parts.append(("del", " ".join(before[a0:a1])))
        if b1 > b0:
            parts.append(("ins", " ".join(after[b0:b1])))
    return parts


def progress_text(elapsed: float, eta: float | None, past_runs: int) -> str:
    """Elapsed time, and the time left when past runs give an estimate."""
    text = f"{seconds(elapsed)} elapsed"
    if eta is None:
        return f"{text} · no estimate yet"
    if eta <= 0:
        return f"{text} · taking longer than usual"
    runs = "run" if past_runs == 1 else "runs"
    return f"{text} · about {seconds(eta)} left (from {past_runs} past {runs})"


def video_caption(video: Video) -> str:
    """The result's label: id, inference time, and "reused" (the badge is drawn apart)."""
    ms = video.prediction.inference_ms
    took = f" · inference {ms / 1000:.1f} s" if ms else ""
    reused = " · reused from history · free" if video.reused else ""
    return f"id {video.id}{took}{reused}"


def generate_code(image: str, prompt: str, aspect_ratio: AspectRatio | None) -> str:
    """The ``wavenb.generate(...)`` call that makes the same request (copy as code).

    ``image`` is what the user gave: a path or a URL (an uploaded image is named by the path
    the Studio kept it at, so the code runs as it is).
    """
    arguments = [repr(image), repr(prompt)]
    if aspect_ratio is not None:
        arguments.append(f"aspect_ratio={aspect_ratio!r}")
    one_line = f"video = wavenb.generate({', '.join(arguments)})"
    if len(one_line) <= 88:  # noqa: PLR2004  (fits a narrow editor)
        return f"import wavenb\n\n{one_line}\nvideo"
    body = "".join(f"    {argument},\n" for argument in arguments)
    return f"import wavenb\n\nvideo = wavenb.generate(\n{body})\nvideo"


def describe_error(error: BaseException) -> tuple[str, str | None]:
    """One readable sentence for an error, and the raw details (JSON or a traceback) if any."""
    if isinstance(error, PredictionFailed) and error.moderation:
        sentence = f"The content filter refused this prompt: {error.prediction.error}"
    elif isinstance(error, PredictionFailed):
        sentence = f"The video failed at the provider: {error.prediction.error or error}"
    elif isinstance(error, WavenbError):
        sentence = str(error)
    else:
        sentence = f"Unexpected error ({type(error).__name__}): {error}"
    return _sentence(sentence), _details(error)


def _details(error: BaseException) -> str | None:
    if isinstance(error, APIError):
        body: Mapping[str, Any] = error.body or {
            "status": error.status,
            "code": error.code,
            "message": error.message,
        }
        return _json(body)
    if isinstance(error, PredictionError):
        return _json(error.prediction.raw or {"id": error.prediction.id})
    if isinstance(error, WavenbError):
        return None
    return "".join(traceback.format_exception(error)).rstrip()


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _sentence(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip() or "Something went wrong."
    return text[0].upper() + text[1:]


def _shape(width: int, height: int) -> str:
    """The image's own ratio: ``"3:2"`` when small numbers say it, else ``"1.52:1"``."""
    for denominator in range(1, 17):
        numerator = width / height * denominator
        if abs(numerator - round(numerator)) < 0.01 * denominator:
            return f"{round(numerator)}:{denominator}"
    return f"{width / height:.2f}:1"
