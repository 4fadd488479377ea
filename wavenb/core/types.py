"""Closed sets and constants of the API wavenb speaks: the model, its aspect ratios and sizes."""

from __future__ import annotations

import math
from typing import Final, Literal, get_args

__all__ = [
    "ASPECT_RATIOS",
    "ENHANCER_MODEL_ID",
    "ENHANCER_PRICE",
    "MODEL_ID",
    "OUTPUT_SIZES",
    "PRICE_PER_VIDEO",
    "AspectRatio",
    "closest_ratio",
]

MODEL_ID: Final = "runwayml/gen4-turbo"
"""The WaveSpeedAI model path of Runway Gen4 Turbo image-to-video."""

AspectRatio = Literal["16:9", "4:3", "1:1", "3:4", "9:16"]
"""The five aspect ratios the model accepts; ``None`` elsewhere means "match the source"."""

ASPECT_RATIOS: Final[tuple[AspectRatio, ...]] = get_args(AspectRatio)
"""The five accepted aspect ratios as a tuple, in ``AspectRatio``'s order (for menus and loops)."""

OUTPUT_SIZES: Final[dict[AspectRatio, tuple[int, int]]] = {
    "16:9": (1280, 720),
    "9:16": (720, 1280),
    "1:1": (960, 960),
    "4:3": (1104, 832),
    "3:4": (832, 1104),
}
"""Runway Gen4 Turbo's output size (width, height) for each ratio."""

PRICE_PER_VIDEO: Final = 0.50
"""US dollars the real API charges for one video (the seed page's flat price)."""

ENHANCER_MODEL_ID: Final = "wavespeed-ai/prompt-optimizer"
"""The WaveSpeedAI model path of the prompt optimizer (an ordinary model, priced per run)."""

ENHANCER_PRICE: Final = 0.001
"""US dollars the real API lists for one prompt-optimizer run."""


def closest_ratio(width: int, height: int) -> AspectRatio:
    """The one of the five output ratios nearest to ``width:height``, compared in log space.

    Log space makes 2:1 and 1:2 equally far from 1:1. Ties go to the earlier ratio of
    ``ASPECT_RATIOS``.

    Raises:
        ValueError: a side is not positive.

    Examples:
        >>> closest_ratio(3000, 2000)
        '4:3'
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    target = math.log(width / height)

    def distance(ratio: AspectRatio) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ASPECT_RATIOS, key=distance)
