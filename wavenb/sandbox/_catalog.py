"""The sandbox's model catalog and prices: ``GET /api/v3/models`` and the price quotes.

The sandbox knows two models, ``runwayml/gen4-turbo`` ($0.50 a video) and
``wavespeed-ai/prompt-optimizer`` ($0.001 a run), each with the JSON schema of its request.

Shapes. The real catalog is documented only as "each model carries its request schema". Public
clients of WaveSpeed read, per model, ``model_id``, ``name``, ``description``, ``type``,
``base_price`` and ``api_schema.api_schemas[]`` whose ``model_run`` entry has ``method``,
``api_path`` and ``request_schema`` (``properties``, ``required``, ``x-order-properties``);
those fields are taken from them. **Guessed**: ``price`` (a copy of ``base_price``),
``currency``, ``sandbox``, the exact wording of names, descriptions and ``type`` values, the
schema's ``title``/``description`` texts, and the price answers' ``currency``, ``unit_price`` /
``base_price`` / ``discount_rate`` beside ``price`` and ``discounted_price`` (a later desktop
client reads all of those, in dollars).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from wavenb.core.types import (
    ASPECT_RATIOS,
    ENHANCER_MODEL_ID,
    ENHANCER_PRICE,
    MODEL_ID,
    PRICE_PER_VIDEO,
)
from wavenb.sandbox._enhancer import MODES, STYLES
from wavenb.sandbox._envelope import ApiError
from wavenb.sandbox._parsing import MAX_PROMPT_CHARS

__all__ = ["MODELS", "PRICES", "catalog", "check_inputs", "quote"]

PRICES: Final[dict[str, float]] = {MODEL_ID: PRICE_PER_VIDEO, ENHANCER_MODEL_ID: ENHANCER_PRICE}
"""US dollars per run of each model the sandbox knows."""

_SYNC_FLAG: Final = {
    "type": "boolean",
    "default": False,
    "description": "Wait for the result in the submit request (not advised for video).",
}

_VIDEO_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "image": {
            "type": "string",
            "description": "URL of the source image (upload local files first), or a data URI "
            "of at most 5 MB. JPEG, PNG, WebP, GIF, BMP or TIFF; aspect 0.5 to 2.0.",
        },
        "prompt": {
            "type": "string",
            "maxLength": MAX_PROMPT_CHARS,
            "description": "The motion or action to generate.",
        },
        "aspect_ratio": {
            "type": "string",
            "enum": ["", *ASPECT_RATIOS],
            "default": "",
            "description": "The output's aspect ratio; empty to match the source image.",
        },
        "enable_sync_mode": _SYNC_FLAG,
    },
    "required": ["image", "prompt"],
    "x-order-properties": ["image", "prompt", "aspect_ratio", "enable_sync_mode"],
}

_ENHANCER_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "The prompt to improve."},
        "mode": {"type": "string", "enum": list(MODES), "default": "image"},
        "style": {"type": "string", "enum": list(STYLES), "default": "default"},
        "image": {"type": "string", "description": "An image for visual context (optional)."},
        "enable_sync_mode": _SYNC_FLAG,
    },
    "required": ["text"],
    "x-order-properties": ["text", "mode", "style", "image", "enable_sync_mode"],
}

MODELS: Final[tuple[dict[str, Any], ...]] = (
    {
        "model_id": MODEL_ID,
        "name": "Runway Gen4 Turbo (image-to-video)",
        "type": "image-to-video",
        "description": "Animates a still image into a 5 s, 24 fps, 720p-class H.264 video, "
        "following a text prompt. (Sandbox: a local render of the image under a camera move "
        "read from the prompt.)",
        "schema": _VIDEO_SCHEMA,
    },
    {
        "model_id": ENHANCER_MODEL_ID,
        "name": "Prompt Optimizer",
        "type": "text-to-text",
        "description": "Rewrites a prompt for image or video generation; the result is "
        "outputs[0]. (Sandbox: a deterministic offline stand-in.)",
        "schema": _ENHANCER_SCHEMA,
    },
)

_JSON_TYPES: Final[dict[str, type | tuple[type, ...]]] = {
    "string": str,
    "boolean": bool,
    "number": (int, float),
    "integer": int,
    "object": dict,
    "array": list,
}


def catalog() -> list[dict[str, Any]]:
    """The catalog as ``GET /api/v3/models`` answers it (``api_path`` is a path, as for real)."""
    return [
        {
            "model_id": model["model_id"],
            "name": model["name"],
            "type": model["type"],
            "description": model["description"],
            "base_price": PRICES[model["model_id"]],
            "price": PRICES[model["model_id"]],
            "currency": "USD",
            "api_schema": {
                "api_schemas": [
                    {
                        "type": "model_run",
                        "method": "POST",
                        "api_path": f"/api/v3/{model['model_id']}",
                        "request_schema": model["schema"],
                    }
                ]
            },
            "sandbox": True,
        }
        for model in MODELS
    ]


def quote(model_id: object, inputs: object) -> float:
    """The price of one run of ``model_id`` with ``inputs``, in dollars.

    Raises ``ApiError``: 400 for a missing or non-text ``model_id`` or inputs that the model's
    schema refuses, 404 for a model the sandbox does not know.
    """
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, "Invalid parameters: 'model_id' is required and must be a string.")
    schema = _schema(model_id)
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        raise ApiError(400, "Invalid parameters: 'inputs' must be an object.")
    check_inputs(model_id, schema, inputs, require=False)
    return PRICES[model_id]


def _schema(model_id: str) -> Mapping[str, Any]:
    for model in MODELS:
        if model["model_id"] == model_id:
            schema: Mapping[str, Any] = model["schema"]
            return schema
    raise ApiError(404, f"Model not found: {model_id[:200]!r}.")


def check_inputs(
    model_id: str, schema: Mapping[str, Any], inputs: Mapping[str, Any], *, require: bool
) -> None:
    """Check ``inputs`` against a model's request schema (names, types, enums, lengths).

    With ``require``, the schema's required fields must be present too. Raises ``ApiError``
    (400) naming the first field at fault.
    """
    properties: Mapping[str, Mapping[str, Any]] = schema["properties"]
    unknown = sorted(set(inputs) - set(properties))
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ApiError(
            400,
            f"Invalid parameters: unknown field {names}; {model_id} accepts only "
            f"{', '.join(properties)}.",
        )
    if require:
        for name in schema["required"]:
            if name not in inputs:
                raise ApiError(400, f"Invalid parameters: '{name}' is required.")
    for name, value in inputs.items():
        _check_value(name, value, properties[name])


def _check_value(name: str, value: object, rule: Mapping[str, Any]) -> None:
    kind = rule["type"]
    if not isinstance(value, _JSON_TYPES[kind]) or (kind != "boolean" and isinstance(value, bool)):
        raise ApiError(400, f"Invalid parameters: '{name}' must be a {kind}.")
    if "enum" in rule and value not in rule["enum"]:
        allowed = ", ".join(repr(option) for option in rule["enum"])
        raise ApiError(400, f"Invalid parameters: '{name}' must be one of {allowed}.")
    if isinstance(value, str) and len(value) > rule.get("maxLength", len(value)):
        raise ApiError(
            400,
            f"Invalid parameters: '{name}' has {len(value)} characters; "
            f"the limit is {rule['maxLength']}.",
        )
