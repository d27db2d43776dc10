"""Peak signal-to-noise ratio on the 0..255 scale, per image."""

from __future__ import annotations

import torch
from torch import nn

from .base import check_image_pair


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each image: ``10 log10(data_range^2 / MSE)`` over all pixels and channels.

    With the default ``data_range=1.0`` and inputs in [0, 1] this equals the protocol's
    ``10 log10(255^2 / MSE)`` on the 0..255-scaled values. No rounding is done here (see
    :func:`~lowlight_cli.metrics.quantize`).

    Args:
        pred: (B, C, H, W) float tensor in [0, data_range].
        target: reference of the same shape, dtype and device.
        data_range: the peak value of the input scale (1.0 for [0, 1], 255.0 for 0..255).

    Returns:
        (B,) tensor of the input dtype; ``inf`` where an image equals its reference.

    Raises:
        MetricError: shapes differ, are not 4-D, or the tensors are not floats.

    Example:
        >>> import torch
        >>> x = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
        >>> psnr(x + 1 / 255, x)
        tensor([48.1308, 48.1308], dtype=torch.float64)
        >>> psnr(x, x)
        tensor([inf, inf], dtype=torch.float64)
    """
    check_image_pair(pred, target, "psnr")
    mse = (pred - target).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range**2 / mse)


class PSNR(nn.Module):
    """Module form of :func:`psnr`: ``PSNR(data_range)(pred, target) -> (B,)`` dB, higher is better.

    Example:
        >>> import torch
        >>> x = torch.rand(1, 3, 8, 8)
        >>> PSNR()(x, x)
        tensor([inf])
    """

    def __init__(self, data_range: float = 1.0) -> None:
        super().__init__()
        self.data_range = data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return psnr(pred, target, data_range=self.data_range)
