"""Prompt A/B comparison: the same image through several prompts (and ratios), side by side.

``compare()`` builds a *design* (images x prompts x aspect ratios x repeats), one *cell* per
combination, so that each video differs from its neighbours in one factor only. Then:

1. **Plan** (no request; ``planning``): each cell is looked up in the journal by its request
   (repeat 0 is a plain ``generate``'s request, repeat ``n`` its variant ``repeat-n``): done
   before is reused, still running is resumed, the rest is new. Over ``max_cost`` nothing
   starts.
2. **Run** (``engine``): each cell is one ``wavenb.Job``; each image is uploaded once; at most
   ``concurrency`` cells at the provider at once; the client's submit gate is the one 429
   policy. One cell failing never stops the others; ``retry(cell_id)`` runs it again alone.
   Each video is measured (camera move, first-frame SSIM, flicker, sharpness) as soon as it
   is on disk, off the event loop.
3. **Judge and keep** (``judging``, ``manifest``, ``report``): 👍/👎 and notes, votes
   (``vote(winner, loser)``, ``tie``, the blind ``pairwise()`` view), ``rank()`` and
   ``summary()``, ``rows`` / ``to_pandas()``, ``save()`` (manifest, MP4s, contact sheet,
   previews, HTML report) and ``load()``.

This module is the front door: it gathers the public names of the modules above.
"""

from __future__ import annotations

from wavenb.ab.cache import CacheRecord, CellCache
from wavenb.ab.cells import (
    METRIC_FIELDS,
    ROW_FIELDS,
    CellMetrics,
    CellRun,
    Estimate,
    Rating,
    cell_badges,
)
from wavenb.ab.design import (
    Cell,
    Design,
    ImageFactor,
    PromptFactor,
    build_design,
    cell_key,
)
from wavenb.ab.engine import Comparison
from wavenb.ab.judging import (
    PromptSummary,
    Summary,
    Vote,
    Winner,
    blind_pairs,
    summarize,
    summarize_prompts,
)
from wavenb.ab.planning import compare

__all__ = [
    "METRIC_FIELDS",
    "ROW_FIELDS",
    "CacheRecord",
    "Cell",
    "CellCache",
    "CellMetrics",
    "CellRun",
    "Comparison",
    "Design",
    "Estimate",
    "ImageFactor",
    "PromptFactor",
    "PromptSummary",
    "Rating",
    "Summary",
    "Vote",
    "Winner",
    "blind_pairs",
    "build_design",
    "cell_badges",
    "cell_key",
    "compare",
    "summarize",
    "summarize_prompts",
]
