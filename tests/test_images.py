"""Image inputs are checked locally, before anything is sent."""

from __future__ import annotations

import base64
import contextlib
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.conftest import png_bytes
from wavenb import InputError
from wavenb.core.images import MAX_SIDE, prepare_image


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_url_passes_through():
    assert prepare_image("https://example.com/cat.jpg").url == "https://example.com/cat.jpg"


def test_url_without_host_is_refused():
    with pytest.raises(InputError, match="no host"):
        prepare_image("https:///cat.jpg")


def test_jpeg_file_is_sent_as_is(portrait):
    prepared = prepare_image(portrait)
    assert prepared.data == portrait.read_bytes()
    assert prepared.content_type == "image/jpeg"
    assert (prepared.width, prepared.height) == (512, 512)
    assert prepared.filename == "portrait-astronaut.jpg"
    assert prepared.note is None


def test_missing_file_says_so(tmp_path):
    with pytest.raises(InputError, match="not found"):
        prepare_image(tmp_path / "nope.jpg")


def test_zero_bytes_is_refused():
    with pytest.raises(InputError, match="empty"):
        prepare_image(b"")


def test_text_is_not_an_image():
    with pytest.raises(InputError, match="not an image"):
        prepare_image(b"hello, I am not a picture")


def test_truncated_png_is_refused():
    with pytest.raises(InputError):
        prepare_image(png_bytes((200, 200))[:60])


def test_extreme_aspect_is_refused_before_upload():
    with pytest.raises(InputError, match=r"aspect 3\.00"):
        prepare_image(png_bytes((300, 100)))


def test_tiny_image_is_refused():
    with pytest.raises(InputError, match="too small"):
        prepare_image(png_bytes((8, 8)))


def test_bmp_is_reencoded_and_reported():
    prepared = prepare_image(encoded(Image.new("RGB", (100, 80), "blue"), "BMP"))
    assert prepared.content_type == "image/jpeg"
    assert prepared.note == "re-encoded BMP as JPEG"
    assert Image.open(io.BytesIO(prepared.data)).size == (100, 80)


def test_huge_image_is_downscaled_not_refused():
    big = Image.new("RGB", (MAX_SIDE * 2, MAX_SIDE), "green")
    prepared = prepare_image(big)
    assert (prepared.width, prepared.height) == (MAX_SIDE, MAX_SIDE // 2)
    assert "downscaled" in prepared.note


def test_transparency_is_kept_as_png():
    prepared = prepare_image(Image.new("RGBA", (64, 64), (255, 0, 0, 128)))
    assert prepared.content_type == "image/png"


def test_data_uri_is_decoded_and_checked():
    uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    assert prepare_image(uri).width == 64
    with pytest.raises(InputError, match="base64"):
        prepare_image("data:image/png;base64,@@@")


def test_decompression_bomb_is_refused():
    # A PNG header claiming 50,000 x 50,000 pixels.
    bomb = encoded(Image.new("1", (20_000, 10_000)), "PNG")
    with pytest.raises(InputError, match="too many pixels"):
        prepare_image(bomb)


def test_wrong_type_is_refused():
    with pytest.raises(InputError, match="got int"):
        prepare_image(42)  # type: ignore[arg-type]


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_give_an_image_or_input_error(data):
    with contextlib.suppress(InputError):
        prepare_image(data)
