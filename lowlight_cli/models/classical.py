"""Classical enhancers that need no trained weights: references and offline fallbacks."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..errors import ConfigError
from .base import EnhancementModel, ModelInfo


class GammaCurve(EnhancementModel):
    """Fixed tone curve ``y = x ** (1 / gamma)``, per pixel (tile-exact, exportable).

    Args:
        info: the registered :class:`ModelInfo`.
        gamma: curve exponent (> 0); 2.2 lifts shadows like an sRGB encoding curve.

    Shapes: ``(B, 3, H, W)`` in ``[0, 1]`` -> same shape and range.
    """

    def __init__(self, info: ModelInfo, gamma: float = 2.2) -> None:
        super().__init__()
        if not gamma > 0:
            raise ConfigError(f"gamma must be > 0, got {gamma}")
        self.info = info
        self.config = {"gamma": float(gamma)}
        self.exponent = 1.0 / float(gamma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0).pow(self.exponent)


class CLAHE(EnhancementModel):
    """Contrast-limited adaptive histogram equalisation on the L channel of CIE Lab (OpenCV).

    The colour channels a and b are kept, so hues do not shift. CLAHE works on 8-bit or 16-bit
    integers; we quantise L to 16 bits, so 16-bit photos keep their precision. It is not a torch
    operation: not differentiable, not exportable, and its own tile grid makes it image-global.

    Args:
        info: the registered :class:`ModelInfo`.
        clip_limit: OpenCV's contrast limit.
        grid: number of CLAHE tiles along each side.

    Shapes: ``(B, 3, H, W)`` in ``[0, 1]`` -> same shape and range.
    """

    def __init__(self, info: ModelInfo, clip_limit: float = 2.0, grid: int = 8) -> None:
        super().__init__()
        if clip_limit <= 0 or grid < 1:
            raise ConfigError("clahe needs clip_limit > 0 and grid >= 1")
        self.info = info
        self.config = {"clip_limit": float(clip_limit), "grid": int(grid)}
        self._clahe = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=(int(grid), int(grid)))

    def _one(self, rgb: np.ndarray) -> np.ndarray:
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)  # float32 input: L in [0, 100]
        lightness = np.round(lab[..., 0] * (65535.0 / 100.0)).astype(np.uint16)
        lab[..., 0] = self._clahe.apply(lightness).astype(np.float32) * (100.0 / 65535.0)
        return np.clip(cv2.cvtColor(lab, cv2.COLOR_Lab2RGB), 0.0, 1.0)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        arrays = x.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        out = np.stack([self._one(np.ascontiguousarray(a)) for a in arrays])
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(device=x.device, dtype=x.dtype)
