"""What a comparison compares: images x prompts x aspect ratios x repeats, one cell each.

``build_design`` checks and names the factors (no request is made); ``Design.cells`` is the
cross product, so that each video differs from its neighbours in one factor only. Every cell
has two identities:

- ``Cell.key`` (``cell_key``): which cell of which comparison it is, for what only the
  comparison keeps (ratings, notes, wall time; ``wavenb.ab.cache``);
- its journal request (``request_hash_of``): repeat 0 is exactly the request a plain
  ``generate`` of the same image, prompt and ratio makes (so each reuses and joins the
  other), and repeat ``n`` adds the variant ``"repeat-n"`` (a *different* video of the same
  request, on purpose). The journal is the truth about each cell's task.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import TypeAlias, cast

from wavenb.core import protocol
from wavenb.core.errors import InputError
from wavenb.core.images import ImageInput, PreparedImage, prepare_image
from wavenb.core.types import MODEL_ID, AspectRatio
from wavenb.journal.rows import request_hash

__all__ = [
    "Cell",
    "Design",
    "ImageFactor",
    "ImagesInput",
    "PromptFactor",
    "PromptsInput",
    "build_design",
    "cell_key",
    "request_hash_of",
    "variant_of",
]

ImagesInput: TypeAlias = "ImageInput | Sequence[ImageInput] | Mapping[str, ImageInput]"
PromptsInput: TypeAlias = "Sequence[str] | Mapping[str, str]"


@dataclass(frozen=True, slots=True)
class ImageFactor:
    """One source image of a comparison."""

    id: str
    """Its short name: the dict key given, else the file's stem, else ``image1``…"""
    source: str
    """Where it came from: a path, a URL, ``"bytes"`` or ``"PIL image"``."""
    sha256: str | None
    """SHA-256 of the bytes that are uploaded; ``None`` for URL images (sent as they are)."""
    url: str | None = None
    """The URL, for URL images."""
    width: int | None = None
    height: int | None = None
    prepared: PreparedImage | None = field(default=None, repr=False, compare=False)
    """The checked bytes to upload (local images)."""

    @property
    def identity(self) -> str:
        """What makes two images the same: the bytes' hash, or the URL."""
        return f"sha256:{self.sha256}" if self.sha256 is not None else self.url or self.source

    @property
    def data(self) -> bytes | None:
        """The image's bytes (local images), for uploading and for first-frame SSIM."""
        return None if self.prepared is None else self.prepared.data


@dataclass(frozen=True, slots=True)
class PromptFactor:
    """One prompt of a comparison."""

    id: str
    """Its short name: the dict key given, else ``A``, ``B``, …"""
    text: str
    """The prompt as sent."""


@dataclass(frozen=True, slots=True)
class Cell:
    """One video of the design: one image, one prompt, one ratio, one repeat."""

    id: str
    """``"<prompt>/<ratio>/<repeat>"`` (``"<image>/…"`` first when there are several images),
    e.g. ``"A/16:9/0"``; ``"auto"`` stands for "match the source" ratio."""
    image: str
    """The image's id."""
    prompt_id: str
    prompt: str
    aspect_ratio: AspectRatio | None
    """``None`` matches the source image."""
    repeat: int
    """0, 1, …: the model takes no seed, so repeats are how variation is seen."""
    key: str
    """``cell_key(...)``: equal keys mean "this very cell, already asked for"."""

    @property
    def variant(self) -> str | None:
        """The journal variant: ``None`` for repeat 0 (a plain ``generate``), else ``repeat-n``."""
        return variant_of(self.repeat)


@dataclass(frozen=True, slots=True)
class Design:
    """What is compared: every cell is one of images x prompts x ratios x repeats."""

    images: tuple[ImageFactor, ...]
    prompts: tuple[PromptFactor, ...]
    aspect_ratios: tuple[AspectRatio | None, ...]
    repeats: int

    def cells(self, *, model: str, base_url: str) -> tuple[Cell, ...]:
        """The cross product, image by image, prompt by prompt, then ratio, then repeat.

        Raises:
            InputError: two cells would have the same id (a name containing ``/``).
        """
        several = len(self.images) > 1
        cells = []
        for image, prompt, ratio, repeat in product(
            self.images, self.prompts, self.aspect_ratios, range(self.repeats)
        ):
            parts = [image.id] if several else []
            cell_id = "/".join([*parts, prompt.id, ratio or "auto", str(repeat)])
            key = cell_key(
                model=model, image=image.identity, prompt=prompt.text, aspect_ratio=ratio,
                repeat=repeat, base_url=base_url,
            )  # fmt: skip
            cells.append(Cell(cell_id, image.id, prompt.id, prompt.text, ratio, repeat, key))
        if len({cell.id for cell in cells}) != len(cells):
            raise InputError("image and prompt names must not contain '/' (cell ids collide)")
        return tuple(cells)

    def image(self, image_id: str) -> ImageFactor:
        """The image factor of that id.

        Raises:
            KeyError: no image of that id.
        """
        for image in self.images:
            if image.id == image_id:
                return image
        raise KeyError(image_id)

    @property
    def columns(self) -> tuple[tuple[AspectRatio | None, int], ...]:
        """The grid's columns: (ratio, repeat) pairs."""
        return tuple(product(self.aspect_ratios, range(self.repeats)))


def variant_of(repeat: int) -> str | None:
    """The journal variant of a repeat: ``None`` for 0, ``"repeat-n"`` after."""
    return None if repeat == 0 else f"repeat-{repeat}"


def request_hash_of(cell: Cell, image: ImageFactor, base_url: str) -> str:
    """The journal's request hash of a cell (as ``wavenb.jobs.request.identify`` makes it)."""
    return request_hash(
        model=MODEL_ID, image_sha256=image.sha256, image_source=image.source, prompt=cell.prompt,
        aspect_ratio=cell.aspect_ratio, base_url=base_url, variant=cell.variant,
    )  # fmt: skip


def cell_key(
    *,
    model: str,
    image: str,
    prompt: str,
    aspect_ratio: str | None,
    repeat: int,
    base_url: str,
) -> str:
    """A stable SHA-256 (hex) naming one cell: the request *and* which repeat of it it is.

    ``image`` is ``ImageFactor.identity`` (the bytes' hash, so a renamed file still matches).
    The server is part of it: a sandbox render must never stand in for a Runway video.
    """
    identity = {
        "v": 1,
        "kind": "compare-cell",
        "model": model,
        "image": image,
        "prompt": prompt,
        "aspect_ratio": aspect_ratio,
        "repeat": repeat,
        "base_url": base_url.rstrip("/"),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def build_design(
    image: ImagesInput,
    prompts: PromptsInput,
    aspect_ratios: Iterable[AspectRatio | str | None] | None = None,
    repeats: int = 1,
) -> Design:
    """Check and name the factors; read and check local images (no request is made).

    Raises:
        InputError: no prompt, an invalid prompt or ratio, a duplicate, ``repeats`` < 1, or
            an image the model cannot take.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise InputError(f"repeats must be a whole number of 1 or more; got {repeats!r}")
    return Design(
        images=_images(image),
        prompts=_prompts(prompts),
        aspect_ratios=_ratios(aspect_ratios),
        repeats=repeats,
    )


def _prompts(prompts: PromptsInput) -> tuple[PromptFactor, ...]:
    if isinstance(prompts, str):
        raise InputError("prompts must be a list or a dict of prompts, not one string")
    if isinstance(prompts, Mapping):
        named = [(_name(key, "prompt"), text) for key, text in prompts.items()]
    else:
        named = [(_letter(i), text) for i, text in enumerate(prompts)]
    if not named:
        raise InputError("give at least one prompt")
    factors = tuple(PromptFactor(name, protocol.validate_prompt(text)) for name, text in named)
    _unique([f.id for f in factors], "prompt names")
    seen: dict[str, str] = {}
    for factor in factors:
        if factor.text in seen:
            raise InputError(f"prompts {seen[factor.text]} and {factor.id} are the same text")
        seen[factor.text] = factor.id
    return factors


def _ratios(ratios: Iterable[AspectRatio | str | None] | None) -> tuple[AspectRatio | None, ...]:
    if isinstance(ratios, str):
        ratios = [ratios]
    checked = tuple(protocol.validate_aspect_ratio(r) for r in (ratios or [None]))
    if not checked:
        raise InputError("aspect_ratios is empty: leave it out to match the source image")
    _unique([r or "auto" for r in checked], "aspect ratios")
    return checked


def _images(image: ImagesInput) -> tuple[ImageFactor, ...]:
    if isinstance(image, Mapping):
        named = [(_name(key, "image"), value) for key, value in image.items()]
    elif isinstance(image, list | tuple):
        items = list(image)
        stems = [_stem(item) for item in items]
        if all(stems) and len(set(stems)) == len(stems):
            named = [(str(stem), item) for stem, item in zip(stems, items, strict=True)]
        else:
            named = [(f"image{i + 1}", item) for i, item in enumerate(items)]
    else:
        single = cast("ImageInput", image)
        named = [(_stem(single) or "image", single)]
    if not named:
        raise InputError("give at least one image")
    factors = tuple(_image_factor(name, value) for name, value in named)
    _unique([f.id for f in factors], "image names")
    _unique([f.identity for f in factors], "images (two are the same picture)")
    return factors


def _image_factor(name: str, image: ImageInput) -> ImageFactor:
    prepared = prepare_image(image)
    if prepared.url is not None:
        return ImageFactor(name, prepared.url, None, url=prepared.url)
    assert prepared.data is not None  # noqa: S101  (prepare_image sets url or data)
    digest = hashlib.sha256(prepared.data).hexdigest()
    return ImageFactor(
        name, _source(image), digest, width=prepared.width, height=prepared.height,
        prepared=prepared,
    )  # fmt: skip


def _source(image: ImageInput) -> str:
    if isinstance(image, str | os.PathLike):
        text = str(image)
        if text.startswith("data:"):
            return "data URI"  # the bytes are named by their hash; never store them twice
        return text if text.startswith(("http://", "https://")) else str(Path(text))
    return "bytes" if isinstance(image, bytes | bytearray | memoryview) else "PIL image"


def _stem(image: object) -> str | None:
    if isinstance(image, str) and image.startswith(("http://", "https://")):
        return Path(image.split("?", 1)[0]).stem or None
    if isinstance(image, str | os.PathLike) and not str(image).startswith("data:"):
        return Path(image).stem or None
    return None


def _name(key: object, what: str) -> str:
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"{what} names must be non-empty strings; got {key!r}")
    return key.strip()


def _letter(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"P{index + 1}"  # noqa: PLR2004


def _unique(values: Sequence[str], what: str) -> None:
    if len(set(values)) != len(values):
        duplicate = next(v for v in values if values.count(v) > 1)
        raise InputError(f"{what} must be distinct; {duplicate!r} appears twice")
