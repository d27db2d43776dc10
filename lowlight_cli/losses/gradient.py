"""Gradient-map L1: edges of the output against edges of the reference (Semi-LLIE's supervised term).

The gradient map is the per-channel magnitude of central differences,
``sqrt((x[i+1, j] - x[i-1, j])^2 + (x[i, j+1] - x[i, j-1])^2 + 1e-6)``, with zeros beyond the
border (the authors' ``GetGradientNopadding``: 3x3 kernels ``[-1, 0, 1]`` with zero padding 1). The
``1e-6`` keeps the square root differentiable on flat regions.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GRADIENT_EPS = 1e-6


def gradient_map(images: torch.Tensor, eps: float = GRADIENT_EPS) -> torch.Tensor:
    """Per-channel gradient magnitude of central differences.

    Args:
        images: ``(B, C, H, W)``, any range.
        eps: added under the square root.

    Returns:
        ``(B, C, H, W)``, values ``>= sqrt(eps)``.

    Example:
        >>> ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 3, 4)
        >>> gradient_map(ramp, eps=0.0)[0, 0, 1].tolist()
        [1.0, 2.0, 2.0, 2.0]
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
    padded = F.pad(images, (1, 1, 1, 1))
    vertical = padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1]
    horizontal = padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2]
    return torch.sqrt(vertical.pow(2) + horizontal.pow(2) + eps)


def gradient_map_l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of the gradient maps of ``output`` and ``target``.

    Args:
        output: ``(B, C, H, W)`` enhanced images (gradients flow into them).
        target: same shape, the references (treated as constants).

    Returns:
        Scalar >= 0, in image units per pixel.
    """
    if output.shape != target.shape:
        raise ValueError(f"output {tuple(output.shape)} and target {tuple(target.shape)} differ in shape")
    dtype = torch.promote_types(output.dtype, torch.float32)  # bf16 / fp16 outputs are compared in float32
    return F.l1_loss(gradient_map(output.to(dtype)), gradient_map(target.detach().to(dtype)))


class GradientMapL1Loss(nn.Module):
    """Module form of :func:`gradient_map_l1_loss`: ``forward(output, target)``."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return gradient_map_l1_loss(output, target)
