"""The pure layer: requests, envelopes, errors, predictions, Retry-After. No I/O."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavenb import (
    APIError,
    AuthenticationError,
    InputError,
    InsufficientCreditsError,
    InvalidRequestError,
    NotFoundError,
    RateLimitError,
    ServerError,
    Status,
    WavenbError,
)
from wavenb.core import protocol

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
REAL_SUBMIT_ANSWER = {
    "code": 200,
    "message": "success",
    "data": {
        "id": "6488c2754f6f4dfea924382fa14d11bd",
        "model": "alibaba/wan-2.5/text-to-image",
        "outputs": [],
        "urls": {
            "get": "https://api.wavespeed.ai/api/v3/predictions/6488c2754f6f4dfea924382fa14d11bd/result"
        },
        "has_nsfw_contents": [],
        "status": "created",
        "created_at": "2025-09-29T23:09:43.027Z",
        "error": "",
        "executionTime": 0,
        "timings": {"inference": 0},
    },
}


def envelope(status: int, body: object, headers: dict[str, str] | None = None) -> object:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return protocol.parse_envelope(status, content, headers or {}, now=NOW)


def test_submit_body_has_only_documented_fields():
    body = protocol.build_submit_body("https://x/i.png", "  Camera slowly zooms in ", "16:9")
    assert body == {
        "prompt": "Camera slowly zooms in",
        "image": "https://x/i.png",
        "aspect_ratio": "16:9",
    }


def test_submit_body_omits_ratio_to_match_source():
    assert "aspect_ratio" not in protocol.build_submit_body("https://x/i.png", "zoom", None)


@pytest.mark.parametrize("bad", ["2:1", "16x9", "auto", 1.77, "16:9 "[:-2]])
def test_unknown_ratio_names_the_allowed_values(bad):
    with pytest.raises(InputError, match=r"16:9, 4:3, 1:1, 3:4, 9:16"):
        protocol.validate_aspect_ratio(bad)


def test_ratio_error_is_a_value_error():
    with pytest.raises(ValueError, match="aspect_ratio"):
        protocol.validate_aspect_ratio("21:9")


@pytest.mark.parametrize("prompt", ["", "   ", "\n"])
def test_empty_prompt_is_refused(prompt):
    with pytest.raises(InputError, match="empty"):
        protocol.validate_prompt(prompt)


def test_long_prompt_is_refused_with_its_length():
    with pytest.raises(InputError, match="1001 characters"):
        protocol.validate_prompt("a" * 1001)


def test_control_characters_are_refused_but_newlines_kept():
    assert protocol.validate_prompt("pan left\nthen tilt up") == "pan left\nthen tilt up"
    with pytest.raises(InputError, match="control character"):
        protocol.validate_prompt("pan\x00left")


@given(st.text(max_size=2000))
def test_any_prompt_is_accepted_or_refused_with_input_error(text):
    try:
        result = protocol.validate_prompt(text)
    except InputError:
        return
    assert 0 < len(result) <= protocol.MAX_PROMPT_CHARS


def test_real_submit_answer_parses():
    prediction = protocol.parse_prediction(envelope(200, REAL_SUBMIT_ANSWER))
    assert prediction.id == "6488c2754f6f4dfea924382fa14d11bd"
    assert prediction.status is Status.CREATED
    assert prediction.outputs == ()
    assert prediction.error is None
    assert prediction.inference_ms is None
    assert prediction.created_at == datetime(2025, 9, 29, 23, 9, 43, 27000, tzinfo=UTC)
    assert prediction.urls["get"].endswith("/result")
    assert not prediction.sandbox
    assert not prediction.terminal


def test_completed_prediction_with_two_fraction_digits_and_extras():
    data = dict(
        REAL_SUBMIT_ANSWER["data"],
        status="completed",
        outputs=["https://cdn/p/1.mp4"],
        has_nsfw_contents=[False],
        created_at="2025-09-29T23:09:43.92Z",
        timings={"inference": 41234},
        executionTime=45000,
        brand_new_field=1,
    )
    prediction = protocol.parse_prediction(data)
    assert prediction.status.succeeded and prediction.terminal
    assert prediction.output_url == "https://cdn/p/1.mp4"
    assert prediction.inference_ms == 41234
    assert prediction.execution_ms == 45000
    assert prediction.created_at.microsecond == 920000
    assert prediction.raw["brand_new_field"] == 1


@pytest.mark.parametrize("outputs", [None, "nope", [None, 3]])
def test_odd_outputs_read_as_empty(outputs):
    data = dict(REAL_SUBMIT_ANSWER["data"], outputs=outputs)
    assert protocol.parse_prediction(data).outputs == ()


def test_unknown_status_is_treated_as_running():
    prediction = protocol.parse_prediction(dict(REAL_SUBMIT_ANSWER["data"], status="warming-up"))
    assert prediction.status is Status.UNKNOWN
    assert not prediction.terminal


@pytest.mark.parametrize("status", ["failed", "cancelled", "timeout", "deleted"])
def test_failure_statuses_are_terminal(status):
    prediction = protocol.parse_prediction(dict(REAL_SUBMIT_ANSWER["data"], status=status))
    assert prediction.terminal and not prediction.status.succeeded


def test_created_reads_as_queued():
    assert Status.CREATED.label == "queued"


def test_prediction_without_id_is_a_server_error():
    with pytest.raises(ServerError, match="without a prediction id"):
        protocol.parse_prediction({"status": "created"})


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (422, InvalidRequestError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (418, APIError),
    ],
)
def test_http_errors_map_to_their_exception(status, kind):
    with pytest.raises(kind) as caught:
        envelope(status, {"code": status, "message": "nope", "data": None})
    assert type(caught.value) is kind
    assert caught.value.status == status
    assert "nope" in str(caught.value)


def test_bare_error_object_is_read():
    with pytest.raises(InvalidRequestError, match="webhook not allowed"):
        envelope(400, {"error": "webhook not allowed"})


def test_envelope_code_on_http_200_is_an_error():
    with pytest.raises(InvalidRequestError) as caught:
        envelope(200, {"code": 400, "message": "file too large", "data": None})
    assert caught.value.code == 400


def test_html_gateway_page_is_a_server_error():
    with pytest.raises(ServerError, match="502"):
        envelope(502, b"<html><body>Bad Gateway</body></html>")


def test_non_json_success_is_a_server_error():
    with pytest.raises(ServerError, match="not JSON"):
        envelope(200, b"<html>")


def test_insufficient_balance_is_recognised_from_the_message():
    with pytest.raises(InsufficientCreditsError):
        envelope(400, {"code": 400, "message": "Insufficient balance", "data": None})


def test_rate_limit_carries_retry_after():
    with pytest.raises(RateLimitError) as caught:
        envelope(429, {"code": 429, "message": "slow down"}, {"retry-after": "7"})
    assert caught.value.retry_after == 7.0
    assert "wait 7 s" in str(caught.value)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("5", 5.0),
        ("0", 0.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("999999", 3600.0),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("", None),
        ("soon", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_forms(header, seconds):
    assert protocol.parse_retry_after(header, NOW) == seconds


@given(st.text(max_size=100))
def test_retry_after_never_raises(text):
    value = protocol.parse_retry_after(text, NOW)
    assert value is None or 0.0 <= value <= protocol.MAX_RETRY_AFTER


@given(st.binary(max_size=300), st.integers(100, 599))
def test_envelope_parsing_raises_only_wavenb_errors(content, status):
    with contextlib.suppress(WavenbError):
        protocol.parse_envelope(status, content, {}, now=NOW)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
        max_leaves=30,
    )
)
def test_prediction_parsing_raises_only_wavenb_errors(data):
    with contextlib.suppress(WavenbError):
        protocol.parse_prediction(data)


def test_result_path_refuses_path_tricks():
    assert protocol.result_path("abc123") == "/api/v3/predictions/abc123/result"
    with pytest.raises(InputError):
        protocol.result_path("../balance")


def test_enhance_body_is_video_mode_and_sync():
    body = protocol.build_enhance_body("a cat", "https://x/c.png", "cinematic"[:0] or "artistic")
    assert body == {
        "text": "a cat",
        "mode": "video",
        "enable_sync_mode": True,
        "style": "artistic",
        "image": "https://x/c.png",
    }
    with pytest.raises(InputError, match="style"):
        protocol.build_enhance_body("a cat", None, "noir")
