"""The sandbox reads a camera move out of a prompt: what it understands, and what it must not."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wavenb.sandbox._motion import DEFAULT_MOTION, CameraMotion, Easing, parse_motion

GENTLE, NORMAL, FAST = 0.12, 0.20, 0.35


def axes(prompt: str) -> tuple[float, float, float, bool]:
    motion = parse_motion(prompt)
    return (motion.zoom, motion.pan, motion.tilt, motion.still)


# --- the prompts people write --------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Gentle camera pan to the right, revealing more of the scene", (0, GENTLE, 0, False)),
        ("The camera slowly zooms in on the face", (GENTLE, 0, 0, False)),
        ("Camera slowly zooms in", (GENTLE, 0, 0, False)),
        ("A woman on a beach at sunset, slow pan left", (0, -GENTLE, 0, False)),
        ("Drone shot, the camera rises above the forest", (0, 0, NORMAL, False)),
        ("Static shot of a lighthouse, waves crashing", (0, 0, 0, True)),
    ],
)
def test_product_page_prompts(prompt: str, expected: tuple[float, float, float, bool]) -> None:
    assert axes(prompt) == pytest.approx(expected)


@pytest.mark.parametrize(
    "prompt",
    [
        "The model walks forward slowly",
        "A lighthouse on a cliff at sunset",
        "The sun rises over the sea",
        "A rising sun over the sea",
        "She tilts her head up and smiles",
        "She walks to the left",
        "A frying pan on the stove",
        "Circling seagulls above an approaching storm",
        "",
    ],
)
def test_a_prompt_without_camera_words_gets_the_default_push_in(prompt: str) -> None:
    """A subject moving is not a camera move."""
    assert parse_motion(prompt) == DEFAULT_MOTION


def test_the_default_is_a_gentle_push_in() -> None:
    assert CameraMotion(zoom=0.10) == DEFAULT_MOTION


@pytest.mark.parametrize(
    ("prompt", "zoom"),
    [
        ("zoom in", NORMAL),
        ("Zoom out", -NORMAL),
        ("ZOOMING IN ON THE EYES", NORMAL),
        ("push in", NORMAL),
        ("a slow push-in on her eyes", GENTLE),
        ("pull back", -NORMAL),
        ("The camera pulls out to reveal the city", -NORMAL),
        ("dolly in", NORMAL),
        ("dolly out", -NORMAL),
        ("The camera moves closer", NORMAL),
        ("move up close to her face", NORMAL),
        ("camera approaches the building", NORMAL),
        ("The camera zooms towards the door", NORMAL),
    ],
)
def test_zoom_words(prompt: str, zoom: float) -> None:
    assert axes(prompt) == pytest.approx((zoom, 0, 0, False))


@pytest.mark.parametrize(
    ("prompt", "pan"),
    [
        ("pan left", -NORMAL),
        ("pan right", NORMAL),
        ("truck right", NORMAL),
        ("truck left", -NORMAL),
        ("glide to the right", NORMAL),
        ("tracking shot left", -NORMAL),
        ("The camera moves towards the left", -NORMAL),
        ("pan from left to right", NORMAL),
        ("camera moves from right to left", -NORMAL),
        ("a slow leftward pan", -GENTLE),
        ("slow pan across the valley", GENTLE),
    ],
)
def test_pan_words(prompt: str, pan: float) -> None:
    """Positive pan moves the camera right."""
    assert axes(prompt) == pytest.approx((0, pan, 0, False))


@pytest.mark.parametrize(
    ("prompt", "tilt"),
    [
        ("tilt up", NORMAL),
        ("tilt down", -NORMAL),
        ("crane up", NORMAL),
        ("crane down", -NORMAL),
        ("pedestal up", NORMAL),
        ("pedestal down", -NORMAL),
        ("The camera rises above the forest", NORMAL),
        ("The camera descends to the street", -NORMAL),
        ("Slowly rise above the trees", GENTLE),
    ],
)
def test_tilt_and_crane_words(prompt: str, tilt: float) -> None:
    """Positive tilt moves the camera up."""
    assert axes(prompt) == pytest.approx((0, 0, tilt, False))


@pytest.mark.parametrize(
    ("prompt", "pan"),
    [("orbit around the statue", NORMAL), ("slow orbit left", -GENTLE), ("arc shot right", NORMAL)],
)
def test_an_orbit_is_a_pan_with_a_slight_push_in(prompt: str, pan: float) -> None:
    motion = parse_motion(prompt)
    assert motion.pan == pytest.approx(pan)
    assert 0 < motion.zoom <= 0.1


@pytest.mark.parametrize(
    ("prompt", "amount"),
    [
        ("slow pan right", GENTLE),
        ("slowly pan right", GENTLE),
        ("gentle pan right", GENTLE),
        ("subtle pan right", GENTLE),
        ("pan right", NORMAL),
        ("fast pan right", FAST),
        ("quick pan right", FAST),
        ("rapid pan right", FAST),
        ("dramatic pan right", FAST),
        ("pan right quickly", FAST),
    ],
)
def test_speed_words_scale_the_move(prompt: str, amount: float) -> None:
    assert parse_motion(prompt).pan == pytest.approx(amount)


@pytest.mark.parametrize(
    "prompt",
    [
        "static shot",
        "Static camera, a woman reads",
        "locked-off camera",
        "locked off shot of a street",
        "tripod shot of a busy street",
        "still camera",
        "The camera stays still while people pass",
        "no camera movement",
        "The camera does not move",
        "no zoom",
        "Neither zoom nor pan",
    ],
)
def test_still_words_stop_the_camera(prompt: str) -> None:
    motion = parse_motion(prompt)
    assert motion.still
    assert motion.is_static


@pytest.mark.parametrize(
    "prompt",
    ["A still life of fruit on a table", "A still image of a cat", "She stands still, smiling"],
)
def test_still_about_the_picture_or_the_subject_is_not_a_still_camera(prompt: str) -> None:
    assert parse_motion(prompt) == DEFAULT_MOTION


def test_a_move_wins_over_a_still_word() -> None:
    assert axes("Still image of a cat, slow zoom in") == pytest.approx((GENTLE, 0, 0, False))


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("pan right and zoom in", (NORMAL, NORMAL, 0)),
        ("The camera pans left and tilts up", (0, -NORMAL, NORMAL)),
        ("slow pan right then fast zoom out", (-FAST, GENTLE, 0)),
        ("Slow zoom out while panning left", (-GENTLE, -GENTLE, 0)),
        ("Crane up as the camera trucks right", (0, NORMAL, NORMAL)),
    ],
)
def test_moves_combine(prompt: str, expected: tuple[float, float, float]) -> None:
    motion = parse_motion(prompt)
    assert (motion.zoom, motion.pan, motion.tilt) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("pan right, no zoom", (0, NORMAL, 0)),
        ("pan left without zooming", (0, -NORMAL, 0)),
        ("zoom in with no pan", (NORMAL, 0, 0)),
        ("The camera does not zoom, it pans left", (0, -NORMAL, 0)),
        ("Avoid any zoom; slow tilt down", (0, 0, -GENTLE)),
        ("pan right with no jitter and zoom in", (NORMAL, NORMAL, 0)),
        ("don't pan, just zoom in", (NORMAL, 0, 0)),
    ],
)
def test_negated_moves_are_dropped(prompt: str, expected: tuple[float, float, float]) -> None:
    motion = parse_motion(prompt)
    assert (motion.zoom, motion.pan, motion.tilt) == pytest.approx(expected)


def test_refusing_only_a_pan_keeps_the_default_push_in() -> None:
    assert parse_motion("without panning") == DEFAULT_MOTION


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("pan right 15%", (0, 0.15, 0)),
        ("zoom out 30 percent", (-0.30, 0, 0)),
        ("a 25% zoom in", (0.25, 0, 0)),
        ("tilt up 12.5%", (0, 0, 0.125)),
        ("zoom in 500%", (1.0, 0, 0)),
        ("pan left 90%", (0, -0.5, 0)),
        ("a gentle, slow push-in (zoom in 10%)", (0.10, 0, 0)),
    ],
)
def test_stated_amounts_win_and_are_bounded(
    prompt: str, expected: tuple[float, float, float]
) -> None:
    motion = parse_motion(prompt)
    assert (motion.zoom, motion.pan, motion.tilt) == pytest.approx(expected)


@pytest.mark.parametrize(
    "prompt", ["linear pan right", "pan right at a constant speed", "zoom in at a steady pace"]
)
def test_constant_speed_words_ask_for_linear_easing(prompt: str) -> None:
    assert parse_motion(prompt).easing == "linear"


def test_moves_ease_in_and_out_by_default() -> None:
    assert parse_motion("smooth pan right").easing == "ease-in-out"


# --- CameraMotion --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("motion", "text"),
    [
        (CameraMotion(zoom=0.2, pan=0.15), "zoom in 20%, pan right 15%"),
        (CameraMotion(zoom=-0.1, tilt=-0.35), "zoom out 10%, tilt down 35%"),
        (CameraMotion(pan=-0.12, easing="linear"), "pan left 12%, constant speed"),
        (CameraMotion(tilt=0.2), "tilt up 20%"),
        (CameraMotion(still=True), "static camera"),
        (CameraMotion(), "static camera"),
    ],
)
def test_describe(motion: CameraMotion, text: str) -> None:
    assert motion.describe() == text


@pytest.mark.parametrize(
    "kwargs",
    [{"zoom": -1.0}, {"zoom": math.nan}, {"pan": math.inf}, {"tilt": -math.inf}, {"easing": "x"}],
)
def test_camera_motion_rejects_impossible_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="CameraMotion"):
        CameraMotion(**kwargs)  # type: ignore[arg-type]


# --- properties ----------------------------------------------------------------------------

_VOCABULARY = [
    "zoom in", "zoom out", "pan left", "pan right", "tilt up", "tilt down", "push in",
    "pull back", "dolly in", "crane up", "truck left", "orbit", "slow", "fast", "gentle",
    "static", "locked-off", "no zoom", "without panning", "camera", "the model", "walks",
    "forward", "rises", "and", "then", "while", ",", ".", "15%", "not",
]  # fmt: skip
_camera_prompts = st.lists(st.sampled_from(_VOCABULARY), max_size=12).map(" ".join)


def assert_valid(motion: CameraMotion) -> None:
    assert -0.5 <= motion.zoom <= 1.0
    assert -0.5 <= motion.pan <= 0.5
    assert -0.5 <= motion.tilt <= 0.5
    assert motion.easing in {"ease-in-out", "linear"}
    if motion.still:
        assert (motion.zoom, motion.pan, motion.tilt) == (0, 0, 0)


@given(st.text())
def test_any_text_gives_a_valid_bounded_motion(prompt: str) -> None:
    assert_valid(parse_motion(prompt))


@given(_camera_prompts)
def test_any_mix_of_camera_words_gives_a_valid_bounded_motion(prompt: str) -> None:
    assert_valid(parse_motion(prompt))


@given(_camera_prompts)
def test_case_does_not_matter(prompt: str) -> None:
    assert parse_motion(prompt.upper()) == parse_motion(prompt) == parse_motion(prompt.title())


@given(_camera_prompts)
def test_a_sentence_about_the_subject_changes_nothing(prompt: str) -> None:
    subject = "The model walks forward slowly, smiling."
    assert parse_motion(f"{prompt}. {subject}") == parse_motion(prompt)


@given(
    zoom=st.integers(-50, 100),
    pan=st.integers(-50, 50),
    tilt=st.integers(-50, 50),
    easing=st.sampled_from(["ease-in-out", "linear"]),
)
def test_a_description_reads_back_as_the_same_motion(
    zoom: int, pan: int, tilt: int, easing: Easing
) -> None:
    """The prompt enhancer restates the move with describe(); the renderer must agree."""
    motion = CameraMotion(zoom / 100, pan / 100, tilt / 100, easing=easing)
    if not motion.is_static:
        assert parse_motion(motion.describe()) == motion
