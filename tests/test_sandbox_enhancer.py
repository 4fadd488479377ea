"""The offline prompt enhancer: keeps the intent, adds camera, light and pacing, stays put."""

from __future__ import annotations

import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wavenb.sandbox import _enhancer
from wavenb.sandbox._enhancer import MAX_CHARS, STYLES, enhance
from wavenb.sandbox._motion import parse_motion


def sentence(text: str, label: str) -> str:
    return next(s for s in text.split(". ") if s.startswith(f"{label}:"))


def test_keeps_the_users_words_first() -> None:
    assert enhance("A fox  runs through\nsnow").startswith("A fox runs through snow. Camera:")


def test_no_camera_words_get_a_gentle_push_in() -> None:
    assert "a gentle, slow push-in (zoom in 10%)" in sentence(enhance("A fox in snow"), "Camera")


def test_camera_words_are_restated_precisely() -> None:
    camera = sentence(enhance("Quick pan left across the harbour"), "Camera")
    assert camera == f"Camera: {parse_motion('Quick pan left').describe()}, smooth and stabilised"


def test_a_still_camera_stays_still() -> None:
    assert "static camera" in enhance("Locked-off tripod shot of a waterfall")


def test_the_enhanced_prompt_moves_the_sandbox_camera_the_same_way() -> None:
    prompt = "Slow tilt up over a cathedral"
    assert parse_motion(enhance(prompt)) == parse_motion(prompt)


@pytest.mark.parametrize(
    ("prompt", "light"),
    [("A harbour at sunset", "golden-hour"), ("Neon street at night", "night light"),
     ("A misty forest", "diffused"), ("A bare white room", "soft natural light")],
)
def test_lighting_follows_the_prompt(prompt: str, light: str) -> None:
    assert light in sentence(enhance(prompt), "Lighting")


@pytest.mark.parametrize("style", STYLES)
def test_each_style_changes_the_look(style: str) -> None:
    looks = {sentence(enhance("A cat", style=s), "Lighting") for s in STYLES}
    assert len(looks) == len(STYLES)
    assert sentence(enhance("A cat", style=style), "Lighting") in looks


@pytest.mark.parametrize(
    ("prompt", "tempo"),
    [("A horse runs fast", "energetic"), ("Leaves drift slowly", "slow, calm"),
     ("A boat on a lake", "smooth, steady")],
)
def test_pacing_follows_the_prompt(prompt: str, tempo: str) -> None:
    assert tempo in sentence(enhance(prompt), "Pacing")


def test_image_mode_adds_composition_not_camera() -> None:
    enhanced = enhance("A red kite", mode="image")
    assert "Composition:" in enhanced
    assert "Camera:" not in enhanced


def test_a_users_own_camera_sentence_is_kept() -> None:
    enhanced = enhance("Camera: slow tilt up. A tree.")
    assert enhanced.startswith("Camera: slow tilt up. A tree. Camera: tilt up")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"text": "  "}, "empty"), ({"text": "x", "style": "noir"}, "style"),
     ({"text": "x", "mode": "audio"}, "mode")],
)
def test_bad_input_raises(kwargs: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        enhance(**kwargs)  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(
    text=st.text(min_size=1, max_size=1200).filter(str.strip),
    style=st.sampled_from(STYLES),
    mode=st.sampled_from(["video", "image"]),
)
def test_enhancing_twice_changes_nothing_and_fits_the_limit(text: str, style, mode) -> None:
    once = enhance(text, style=style, mode=mode)
    assert len(once) <= MAX_CHARS
    assert enhance(once, style=style, mode=mode) == once


@settings(max_examples=100, deadline=None)
@given(
    words=st.lists(
        st.sampled_from(["zoom", "in", "pan", "left", "sunset", "fast", "a", "fox", "Camera:",
                         "x" * 30, "end.", "Pacing:", "   "]),
        min_size=150, max_size=400,
    ),
)
def test_long_texts_are_cut_once_and_then_left_alone(words: list[str]) -> None:
    once = enhance(" ".join(words))
    assert len(once) <= MAX_CHARS
    assert enhance(once) == once


def test_a_text_of_only_added_sentences_is_still_enhanced() -> None:
    added = "Detail: crisp textures and coherent perspective."
    assert enhance(added).startswith(added)


def test_module_examples_hold() -> None:
    assert doctest.testmod(_enhancer).failed == 0
