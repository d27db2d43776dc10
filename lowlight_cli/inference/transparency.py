"""Photos with fully transparent pixels: their hidden colour must not change the visible part.

Editors leave anything under alpha 0 (white, black, the original photo); a model sees colour only.
:func:`fill_hidden` gives every fully transparent pixel the colour of the nearest visible one, so
the model's local view near an edge is the visible photo continued, whatever was hidden; the
enhancer's whole-image statistics are taken over the visible pixels
(:meth:`~lowlight_cli.inference.engine.Enhancer.enhance_pixels`, ``visible``).
"""

from __future__ import annotations

import cv2
import numpy as np


def fill_hidden(rgb: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``rgb`` ``(H, W, 3)`` with each pixel where ``visible`` ``(H, W)`` is False replaced by the
    colour of its nearest visible pixel (Euclidean distance); ``rgb`` itself when every pixel is
    visible or none is (nothing to continue from). Never modifies ``rgb``."""
    if visible.shape != rgb.shape[:2]:
        raise ValueError(f"visible must have shape {rgb.shape[:2]}, got {visible.shape}")
    if visible.all() or not visible.any():
        return rgb
    hidden = (~visible).astype(np.uint8)  # distances are measured to the zeros: the visible pixels
    _, labels = cv2.distanceTransformWithLabels(hidden, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    rows, cols = np.nonzero(visible)
    source_row = np.zeros(int(labels.max()) + 1, np.int64)
    source_col = np.zeros_like(source_row)
    source_row[labels[rows, cols]], source_col[labels[rows, cols]] = rows, cols
    return rgb[source_row[labels], source_col[labels]]
