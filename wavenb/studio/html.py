"""How the Studio reads: pure functions from values to the HTML and labels its widgets show.

Nothing here touches a widget or does I/O, so every text is testable on its own. Everything
user-supplied goes through ``html.escape``.
"""

from __future__ import annotations

import difflib
import html
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
from wavenb.ui.display import SANDBOX_BADGE
from wavenb.ui.tasks import STATUS_COLORS

__all__ = [
    "EXAMPLE_PROMPTS",
    "SANDBOX_HINT",
    "STYLE",
    "char_count",
    "chip",
    "describe_error",
    "error_box",
    "field_message",
    "header",
    "image_summary",
    "price_label",
    "progress_text",
    "ratio_options",
    "resume_offer",
    "seconds",
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

STYLE: Final = """<style>
.wavenb-studio .wavenb-chip{display:inline-block;border-radius:9px;padding:0 8px;
  font-size:11px;font-weight:600;color:white;line-height:18px}
.wavenb-studio .wavenb-indeterminate .progress-bar{width:100%!important;
  background-image:repeating-linear-gradient(45deg,rgba(255,255,255,.35) 0 10px,
  transparent 10px 20px);
  background-size:28px 28px;animation:wavenb-stripes 1s linear infinite;opacity:.8}
@keyframes wavenb-stripes{from{background-position:0 0}to{background-position:28px 0}}
.wavenb-studio ins{background:#bbf7d0;text-decoration:none}
.wavenb-studio del{color:#b91c1c}
.wavenb-studio details pre{max-height:16em;overflow:auto;font-size:11px}
</style>"""
"""CSS for the parts stock widgets cannot style: chips, the indeterminate bar, diffs.

Scoped under ``.wavenb-studio``; where a front end drops ``<style>``, the bar degrades to an
empty bar labelled "…", which is still honest."""


def header(sandbox: bool) -> str:  # noqa: FBT001
    """The title line: the SANDBOX badge and its hint whenever the sandbox answers."""
    title = "<b>wavenb Studio</b> · Runway Gen4 Turbo image-to-video"
    if not sandbox:
        return title
    return f"{title} {SANDBOX_BADGE} <small>{html.escape(SANDBOX_HINT)}</small>"


def spent_label(spent: float, *, sandbox: bool) -> str:
    """What this Studio session paid: ``"spent this session: $1.00"``, free on the sandbox."""
    amount = "free (sandbox)" if sandbox and spent == 0 else f"${spent:.2f}"
    return f'<small style="color:#6b7280">spent this session: {amount}</small>'


def resume_offer(count: int) -> str:
    """The line before the Resume button: runs an earlier session left unfinished."""
    runs = "run" if count == 1 else "runs"
    return (
        f"<small>{count} unfinished {runs} from earlier (kernel restart, cancelled wait) —</small>"
    )


def unresolved_warning(count: int) -> str:
    """The plain warning for submissions whose fate is unknown; they are never resent."""
    if count == 0:
        return ""
    subject, pronoun = (
        ("submission got", "it is") if count == 1 else ("submissions got", "they are")
    )
    return (
        f'<small style="color:#b45309">⚠ {count} {subject} no answer and may have been '
        f"charged; {pronoun} never resent (see <code>wavenb.unresolved()</code>)</small>"
    )


def price_label(price: float) -> str:
    """``"free"`` on the sandbox, else dollars: ``"$0.50"``."""
    return "free" if price == 0 else f"${price:.2f}"


def ratio_options() -> list[tuple[str, str]]:
    """Dropdown options: "match source" (value ``""``) then each ratio with its use and size."""
    options = [("match source", "")]
    for ratio in RATIO_ORDER:
        width, height = OUTPUT_SIZES[ratio]
        options.append((f"{ratio} {RATIO_USES[ratio]} · {width}{TIMES}{height}", ratio))
    assert set(RATIO_ORDER) == set(ASPECT_RATIOS)  # noqa: S101  (the table covers every ratio)
    return options


def char_count(text: str) -> str:
    """``"42 / 1000"``, red when over the limit."""
    count = len(text.strip())
    color = "#b91c1c" if count > MAX_PROMPT_CHARS else "#6b7280"
    return f'<small style="color:{color}">{count} / {MAX_PROMPT_CHARS}</small>'


def chip(label: str) -> str:
    """A coloured status chip; ``label`` is ``Status.label`` or a Studio phase."""
    color = STATUS_COLORS.get(label.split(" ", maxsplit=1)[0], "#6b7280")
    return f'<span class="wavenb-chip" style="background:{color}">{html.escape(label)}</span>'


def image_summary(source: SourceImage) -> str:
    """Size, detected shape and closest output ratio; the downscale note when there is one."""
    closest = source.closest_ratio
    width, height = OUTPUT_SIZES[closest]
    text = (
        f"{source.width}{TIMES}{source.height} px · {_shape(source.width, source.height)} · "
        f"closest ratio {closest} ({width}{TIMES}{height})"
    )
    note = f"<br><i>{html.escape(source.note)} before upload</i>" if source.note else ""
    label = html.escape(_short(source.label, 60))
    return f'<div style="line-height:1.4"><small>{label}<br>{text}{note}</small></div>'


def field_message(text: str, *, error: bool = True) -> str:
    """A small line under a field: red for a problem, grey for a hint."""
    color = "#b91c1c" if error else "#6b7280"
    return f'<small style="color:{color}">{html.escape(text)}</small>'


def word_diff(old: str, new: str) -> str:
    """The change from ``old`` to ``new`` word by word: deletions struck, insertions marked.

    >>> word_diff("a cat", "a small cat")
    '<small>a <ins>small</ins> cat</small>'
    """
    before, after = old.split(), new.split()
    parts: list[str] = []
    matcher = difflib.SequenceMatcher(a=before, b=after, autojunk=False)
    for op, a0, a1, b0, b1 in matcher.get_opcodes():
        if op == "equal":
            parts.append(html.escape(" ".join(before[a0:a1])))
            continue
        if a1 > a0:
            parts.append(f"<del>{html.escape(' '.join(before[a0:a1]))}</del>")
        if b1 > b0:
            parts.append(f"<ins>{html.escape(' '.join(after[b0:b1]))}</ins>")
    return f"<small>{' '.join(parts)}</small>"


def seconds(value: float) -> str:
    """``"8 s"``, ``"1 min 05 s"``."""
    whole = max(0, round(value))
    if whole < 60:  # noqa: PLR2004
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


def progress_text(elapsed: float, eta: float | None, past_runs: int) -> str:
    """Elapsed time, and the time left when past runs give an estimate."""
    text = f"{seconds(elapsed)} elapsed"
    if eta is None:
        return f"<small>{text} · no estimate yet</small>"
    if eta <= 0:
        return f"<small>{text} · taking longer than usual</small>"
    runs = "run" if past_runs == 1 else "runs"
    return f"<small>{text} · about {seconds(eta)} left (from {past_runs} past {runs})</small>"


def video_caption(video: Video) -> str:
    """The result's label: id, inference time, the badge for sandbox renders, and "reused"."""
    badge = f"{SANDBOX_BADGE} " if video.sandbox else ""
    ms = video.prediction.inference_ms
    took = f" · inference {ms / 1000:.1f} s" if ms else ""
    reused = " · reused from history · free" if video.reused else ""
    return f"<small>{badge}id <code>{html.escape(video.id)}</code>{took}{reused}</small>"


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


def error_box(sentence: str, details: str | None) -> str:
    """The error area: the sentence, and a closed "details" disclosure with the raw data."""
    text = f'<div style="color:#b91c1c">⚠ {html.escape(sentence)}</div>'
    if details is None:
        return text
    return f"{text}<details><summary>details</summary><pre>{html.escape(details)}</pre></details>"


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


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
