"""What a photo enhancer must not do, measured per image (issue 15's real-photo criteria).

All functions take 8-bit RGB arrays ``(H, W, 3)`` uint8, the input and the enhanced output of
the same photo, as they are written to disk; they return plain floats.
"""

from __future__ import annotations

import numpy as np

_GRAY = np.array([0.299, 0.587, 0.114])

CLIP_LEVEL = 255
UNCLIPPED_INPUT = 250  # input pixels below this in every channel were not clipped by the camera


def mean_gray(rgb: np.ndarray) -> float:
    """Mean BT.601 gray level in ``[0, 1]``."""
    return float((rgb.astype(np.float64) @ _GRAY).mean() / 255.0)


def new_clipping_share(low: np.ndarray, out: np.ndarray) -> float:
    """Share of pixels whose input was below 250 in every channel and whose output reaches 255 in
    some channel: highlights the enhancer clipped, as a fraction in ``[0, 1]``."""
    unclipped = (low < UNCLIPPED_INPUT).all(axis=-1)
    clipped = (out >= CLIP_LEVEL).any(axis=-1)
    return float((unclipped & clipped).mean())


def darkening(low: np.ndarray, out: np.ndarray) -> float:
    """How much darker the output is than its input, in mean gray (``[0, 1]``; 0 when brighter)."""
    return max(0.0, mean_gray(low) - mean_gray(out))


def black_level(rgb: np.ndarray, percentile: float = 1.0) -> float:
    """The ``percentile``-th percentile of gray, in ``[0, 1]``: where the blacks sit."""
    return float(np.percentile(rgb.astype(np.float64) @ _GRAY, percentile) / 255.0)
