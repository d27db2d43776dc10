"""Test images made on the fly: scikit-image sample photos darkened with sensor-like noise."""

from __future__ import annotations

import cv2
import numpy as np

from lowlight_cli.data.synthetic import DarkeningModel, darken, sample_photo


def dark_photo(height: int, width: int, *, name: str = "astronaut", seed: int = 0, exposure: float = 0.05) -> np.ndarray:
    """``(height, width, 3)`` float32 in [0, 1]: a sample photo resized and darkened."""
    photo = cv2.resize(sample_photo(name), (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    return darken(photo.astype(np.float32) / 255.0, DarkeningModel(exposure=exposure), rng)
