"""Peak signal-to-noise ratio on the 0..255 scale, per image."""

from __future__ import annotations

import torch
from torch import nn

from .base import check_data_range, check_image_pair, scoring_dtypes


def psnr(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each image: ``10 log10(data_range^2 / MSE)`` over all pixels and channels.

    With the default ``data_range=1.0`` and inputs in [0, 1] this equals the protocol's
    ``10 log10(255^2 / MSE)`` on the 0..255-scaled values. No rounding is done here (see
    :func:`~lowlight_cli.metrics.quantize`).

    Args:
        pred: (B, C, H, W) float torch tensor in [0, data_range] (numpy arrays are refused: convert
            an (H, W, 3) image with ``torch.from_numpy(image).permute(2, 0, 1)[None]``).
        target: reference of the same shape and device; dtypes may differ (promoted).
        data_range: the peak value of the input scale (1.0 for [0, 1], 255.0 for 0..255).

    Returns:
        (B,) tensor of the promoted input dtype (computed in float32 for float16 and bfloat16);
        ``inf`` where an image equals its reference.

    Raises:
        MetricError: not tensors, shapes differ or are not 4-D, not floats, different devices,
            ``data_range`` not a positive number, or values outside [0, data_range] by more than
            0.1% of it (e.g. 0..255 images with the default ``data_range=1``); a tensor that
            requires grad may stray outside (the metric as a loss).

    Example:
        >>> import torch
        >>> x = torch.zeros(2, 3, 8, 8, dtype=torch.float64)
        >>> psnr(x + 1 / 255, x)
        tensor([48.1308, 48.1308], dtype=torch.float64)
        >>> psnr(x, x)
        tensor([inf, inf], dtype=torch.float64)
    """
    check_image_pair(pred, target, "psnr", data_range=data_range)
    result, compute = scoring_dtypes(pred, target)
    mse = (pred.to(compute) - target.to(compute)).square().flatten(1).mean(dim=1)
    return (10.0 * torch.log10(data_range**2 / mse)).to(result)


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
        check_data_range(data_range, "psnr")
        self.data_range = data_range

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return psnr(pred, target, data_range=self.data_range)
