"""Test images made on the fly: scikit-image sample photos darkened with sensor-like noise."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from lowlight_cli.data.synthetic import DarkeningModel, darken, sample_photo


def dark_photo(height: int, width: int, *, name: str = "astronaut", seed: int = 0, exposure: float = 0.05) -> np.ndarray:
    """``(height, width, 3)`` float32 in [0, 1]: a sample photo resized and darkened."""
    photo = cv2.resize(sample_photo(name), (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    return darken(photo.astype(np.float32) / 255.0, DarkeningModel(exposure=exposure), rng)


def save_photo(path: Path, rgb: np.ndarray, bit_depth: int = 8) -> Path:
    """Write float RGB ``(H, W, 3)`` in [0, 1] to ``path`` with OpenCV (independent of lowlight's writer)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scale = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    assert cv2.imwrite(str(path), np.round(np.clip(rgb, 0, 1)[..., ::-1] * scale).astype(dtype))
    return path
