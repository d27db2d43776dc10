"""Single-channel conversions used by the metrics (SSIM ``y``/``gray`` spaces, NIQE step 1).

Both take and return values on the 0..255 scale and work on numpy arrays and torch tensors alike
(plain arithmetic on the three channel planes), so SSIM and NIQE share one definition.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

# ITU-R BT.601 luma as in MATLAB rgb2ycbcr: coefficients for RGB in [0, 1], pre-divided by 255 for
# RGB on 0..255 in the same order MATLAB applies them (imlincomb with T/255, then the offset).
_LUMA_BT601 = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)
_LUMA_OFFSET = 16.0

# MATLAB rgb2gray: first row of inv([1 0.956 0.621; 1 -0.272 -0.647; 1 -1.106 1.703]), i.e.
# 0.298936 R + 0.587043 G + 0.114021 B at full precision.
_GRAY_MATLAB = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def luma_bt601(r: ArrayT, g: ArrayT, b: ArrayT) -> ArrayT:
    """BT.601 luma ``16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for R, G, B on 0..255.

    Returns Y on the 0..255 scale (16..235 for in-range input), not rounded.

    Example:
        >>> import numpy as np
        >>> float(luma_bt601(np.float64(255), np.float64(255), np.float64(255)))
        235.0
    """
    kr, kg, kb = _LUMA_BT601
    return r * kr + g * kg + b * kb + _LUMA_OFFSET


def gray_matlab(r: ArrayT, g: ArrayT, b: ArrayT) -> ArrayT:
    """MATLAB ``rgb2gray``: 0.298936 R + 0.587043 G + 0.114021 B on 0..255, not rounded.

    Example:
        >>> import numpy as np
        >>> round(float(gray_matlab(np.float64(100), np.float64(100), np.float64(100))), 9)
        100.0
    """
    kr, kg, kb = _GRAY_MATLAB
    return r * kr + g * kg + b * kb


def round_half_up(x: np.ndarray) -> np.ndarray:
    """Round non-negative values half away from zero, as MATLAB's conversion to uint8 does."""
    return np.floor(x + 0.5)
