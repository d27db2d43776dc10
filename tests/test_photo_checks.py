"""The real-photo measures of issue 15 (evaluation.photo_checks) on images with known answers."""

from __future__ import annotations

import numpy as np

from lowlight_cli.evaluation import photo_checks as checks


def test_new_clipping_counts_only_pixels_the_input_had_not_clipped():
    low = np.full((10, 10, 3), 100, np.uint8)
    low[0] = 252  # a row the camera already had near white: its clipping is not the enhancer's
    out = low.copy()
    out[0] = 255
    out[1, :5] = (255, 200, 200)  # 5 newly clipped pixels (one channel is enough)
    assert checks.new_clipping_share(low, out) == 5 / 100


def test_darkening_and_mean_gray():
    low = np.full((4, 4, 3), 102, np.uint8)
    assert abs(checks.mean_gray(low) - 0.4) < 1e-9
    assert checks.darkening(low, low + 20) == 0.0
    assert abs(checks.darkening(low, low - 51) - 0.2) < 1e-9


def test_black_level_is_a_low_percentile():
    rgb = np.full((10, 10, 3), 200, np.uint8)
    rgb[0, :2] = 0  # 2% black pixels
    assert checks.black_level(rgb, 1.0) == 0.0
    assert abs(checks.black_level(rgb, 50.0) - 200 / 255) < 1e-9
