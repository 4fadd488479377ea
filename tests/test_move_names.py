"""Naming a measured camera move, and the labels it answers to (``wavenb.ab.intent``).

The renders that check these rules against real pixels are in tests/test_metrics.py (slow);
here the rules themselves, on the travel over a whole clip.
"""

from __future__ import annotations

import math

import pytest

from wavenb.ab.intent import name_move, readings

SANDBOX_ORBIT_PUSH = math.log(1.05)  # wavenb/sandbox/_motion.py renders an orbit as pan + 5 %


@pytest.mark.parametrize(
    ("travel", "move"),
    [
        ((0.0, 0.0, 0.0, 0.0), "static"),
        ((0.015, 0.0, 0.02, 0.0), "static"),  # every edge moves under 2 % of the frame
        ((0.2, 0.0, 0.0, 0.0), "pan_right"),
        ((-0.2, 0.05, 0.0, 0.0), "pan_left"),
        ((0.0, 0.2, 0.0, 0.0), "tilt_up"),
        ((0.0, -0.2, 0.0, 0.0), "tilt_down"),
        ((0.05, 0.0, math.log(1.2), 0.0), "zoom_in"),
        ((0.0, 0.0, math.log(0.8), 0.0), "zoom_out"),
        ((0.0, 0.0, 0.0, 0.1), "orbit"),  # a roll
        ((0.2, 0.0, SANDBOX_ORBIT_PUSH, 0.0), "orbit"),
        ((-0.12, 0.0, SANDBOX_ORBIT_PUSH, 0.0), "orbit"),
        ((0.2, 0.0, math.log(1.03), 0.0), "pan_right"),  # a slighter push is a pan
        ((0.2, 0.0, math.log(1.08), 0.0), "pan_right"),
        ((0.0, 0.2, SANDBOX_ORBIT_PUSH, 0.0), "tilt_up"),  # only sideways travel orbits
    ],
)
def test_name_move(travel: tuple[float, float, float, float], move: str) -> None:
    assert name_move(*travel) == move


@pytest.mark.parametrize(
    ("travel", "labels"),
    [
        ((0.2, 0.0, 0.0, 0.0), {"pan_right"}),
        ((0.2, 0.0, math.log(1.03), 0.0), {"pan_right", "orbit"}),
        ((-0.2, 0.0, SANDBOX_ORBIT_PUSH, 0.0), {"pan_left", "orbit"}),
        ((0.2, 0.0, math.log(1.08), 0.0), {"pan_right", "orbit"}),
        ((0.2, 0.0, math.log(1.12), 0.0), {"pan_right"}),  # a clear push: a pan, not an orbit
        ((0.2, 0.0, -0.05, 0.0), {"pan_right"}),  # pulling back is no orbit
        ((0.0, 0.0, 0.0, 0.1), {"orbit"}),  # a roll is no pan
        ((0.0, 0.2, SANDBOX_ORBIT_PUSH, 0.0), {"tilt_up"}),
        ((0.0, 0.0, math.log(1.2), 0.0), {"zoom_in"}),
        ((0.0, 0.0, 0.0, 0.0), {"static"}),
    ],
)
def test_readings(travel: tuple[float, float, float, float], labels: set[str]) -> None:
    assert readings(*travel) == labels
    assert name_move(*travel) in labels
