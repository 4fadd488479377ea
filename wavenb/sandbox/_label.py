"""The SANDBOX mark burned into every sandbox video, so no clip can pass for Runway's.

Drawn once per clip with Pillow (white letters with a dark outline, legible on any picture)
at about 3 % of the frame's short side, in the top-right corner: the bottom is where players
put their controls. Each frame then blends it into the Y'CbCr planes it is built from: luma
toward the mark, chroma toward neutral grey under it (so the letters stay white, not tinted).
It stays still while the camera moves, small and in a corner, where the window of a global
motion estimate (phase correlation) gives it almost no weight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["LABEL_TEXT", "Label"]

LABEL_TEXT: Final = "SANDBOX"
_HEIGHT_SHARE: Final = 0.03
"""Font size as a share of the frame's short side (22 px at 720p)."""
_MIN_SIZE: Final = 8
_OPACITY: Final = 0.85
_Y_WHITE, _Y_BLACK = 235.0, 16.0
"""Limited-range luma of white and black (BT.709, as the renderer encodes)."""
_NEUTRAL: Final = 128.0
Float = np.ndarray[tuple[int, int], np.dtype[np.float32]]


@dataclass(frozen=True, slots=True)
class Label:
    """The mark for one frame size: where it goes, its luma, and how opaque each pixel is."""

    left: int
    top: int
    luma: Float
    alpha: Float
    chroma_alpha: Float
    """``alpha`` at half resolution (the 4:2:0 chroma planes), from ``left // 2, top // 2``."""

    @classmethod
    def for_size(cls, size: tuple[int, int]) -> Label:
        """Draw the mark for frames of ``size`` (width, height)."""
        font_size = max(_MIN_SIZE, round(min(size) * _HEIGHT_SHARE))
        font = ImageFont.load_default(size=font_size)
        stroke = max(1, font_size // 10)
        left, top, right, bottom = (round(v) for v in font.getbbox(LABEL_TEXT, stroke_width=stroke))
        picture = Image.new("LA", (right - left, bottom - top), (0, 0))
        ImageDraw.Draw(picture).text(
            (-left, -top), LABEL_TEXT, font=font, fill=(255, 255),
            stroke_width=stroke, stroke_fill=(0, 255),
        )  # fmt: skip
        grey, opacity = (np.asarray(band, dtype=np.float32) / 255.0 for band in picture.split())
        margin = round(font_size * 0.6)
        x = max(0, size[0] - picture.width - margin) & ~1  # even: chroma aligns with luma
        y = min(margin, max(0, size[1] - picture.height)) & ~1
        alpha = opacity * _OPACITY
        half = picture.resize(
            ((picture.width + 1) // 2, (picture.height + 1) // 2), Image.Resampling.BOX
        )
        chroma_alpha = np.asarray(half.getchannel("A"), dtype=np.float32) / 255.0 * _OPACITY
        luma = _Y_BLACK + grey * (_Y_WHITE - _Y_BLACK)
        return cls(x, y, luma, alpha, chroma_alpha)

    def blend_luma(self, plane: np.ndarray) -> None:
        """Blend the mark into a full-resolution Y plane (height x width, uint8), in place."""
        _blend(plane, self.left, self.top, self.luma, self.alpha)

    def blend_chroma(self, plane: np.ndarray) -> None:
        """Turn a half-resolution Cb or Cr plane neutral under the mark, in place."""
        _blend(plane, self.left // 2, self.top // 2, _NEUTRAL, self.chroma_alpha)


def _blend(plane: np.ndarray, left: int, top: int, value: Float | float, alpha: Float) -> None:
    height = min(alpha.shape[0], plane.shape[0] - top)
    width = min(alpha.shape[1], plane.shape[1] - left)
    if height <= 0 or width <= 0:
        return
    region = plane[top : top + height, left : left + width]
    weight = alpha[:height, :width]
    mark = value if isinstance(value, float) else value[:height, :width]
    mixed = region * (1.0 - weight) + mark * weight
    region[...] = np.rint(mixed).astype(np.uint8)
