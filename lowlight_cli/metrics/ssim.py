"""Structural similarity (Wang et al. 2004): differentiable, shared by evaluation and losses."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import MetricError
from .base import check_data_range, check_image_pair, check_space, scoring_dtypes
from .color import gray_matlab, luma_bt601

SSIMSpace = Literal["rgb", "y", "gray"]
SSIM_SPACES: tuple[str, ...] = ("rgb", "y", "gray")


def gaussian_window_1d(
    size: int,
    sigma: float,
    *,
    dtype: torch.dtype = torch.float64,
    device: torch.device | None = None,
) -> torch.Tensor:
    """Normalised 1-D Gaussian of ``size`` taps (odd) and standard deviation ``sigma`` in pixels.

    The 2-D SSIM window is its outer product with itself.

    Example:
        >>> w = gaussian_window_1d(11, 1.5)
        >>> w.shape, round(float(w.sum()), 12)
        (torch.Size([11]), 1.0)
    """
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype=dtype, device=device)


def _to_space(x255: torch.Tensor, space: str) -> torch.Tensor:
    """Convert (B, C, H, W) values on 0..255 to the scoring space (channels kept for ``rgb``); one
    channel is a gray image's own values in every space, as MATLAB's and BasicSR's SSIM take it."""
    if space == "rgb" or x255.shape[1] == 1:
        return x255
    if x255.shape[1] != 3:
        raise MetricError(
            f"ssim: space {space!r} needs 3-channel RGB input, got {x255.shape[1]} channels"
        )
    r, g, b = x255[:, 0:1], x255[:, 1:2], x255[:, 2:3]
    return luma_bt601(r, g, b) if space == "y" else gray_matlab(r, g, b)


def _filter_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Depthwise separable correlation of (B, C, H, W) with ``window``, no padding ('valid')."""
    channels = x.shape[1]
    size = window.numel()
    x = F.conv2d(x, window.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(x, window.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


# Output rows per band of the banded path: the band's moments (5 x channels x (rows + window - 1)
# rows) stay within a few MB for photos a few thousand pixels wide. 8 was the fastest of 4, 8, 16,
# 32 and 128 at 2000x1500 (AMD EPYC Zen 3, one thread).
BAND_ROWS = 8


def _ssim_map(moments: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    """The SSIM map of filtered moments ``(B, 5C, H, W)`` (means, second moments, cross moment)."""
    mu_x, mu_y, xx, yy, xy = moments.chunk(5, dim=1)
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov_xy = xy - mu_x * mu_y
    return ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2))


def _ssim_convolved(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    """Mean SSIM per image with one grouped convolution over all moment planes at once.

    The path gradients, float32 and GPUs take; it holds the image's 5 x C moment planes.
    """
    moments = _filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), window)
    return _ssim_map(moments, c1, c2).flatten(1).mean(dim=1)


def _filter_valid_shifted(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """:func:`_filter_valid` as one multiply-add per tap and direction (same values to rounding)."""
    n = len(taps)
    width = x.shape[-1] - n + 1
    rows = x[..., :width] * taps[0]
    for k in range(1, n):
        rows.add_(x[..., k : k + width], alpha=taps[k])
    height = rows.shape[-2] - n + 1
    out = rows[..., :height, :] * taps[0]
    for k in range(1, n):
        out.add_(rows[..., k : k + height, :], alpha=taps[k])
    return out


def _ssim_banded(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor, c1: float, c2: float) -> torch.Tensor:
    """Mean SSIM per image, computed :data:`BAND_ROWS` output rows at a time.

    For float64 on the CPU, where ``conv2d`` has no fast kernel (a 12 MP photo took 29 s on one
    thread): the band's moments stay in cache and are filtered with one multiply-add per tap, and
    the image's 5 x C moment planes are never held at once. Equal to the convolution path to
    float rounding (``tests/test_metrics.py``); ``python benchmarks/metric_speed.py`` times it.
    """
    taps = [float(t) for t in window]
    n = len(taps)
    height, width = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    total = x.new_zeros(x.shape[0])
    for top in range(0, height, BAND_ROWS):
        bottom = min(top + BAND_ROWS, height) + n - 1
        xs, ys = x[..., top:bottom, :], y[..., top:bottom, :]
        moments = _filter_valid_shifted(torch.cat([xs, ys, xs * xs, ys * ys, xs * ys], dim=1), taps)
        total += _ssim_map(moments, c1, c2).sum(dim=(1, 2, 3))
    return total / (x.shape[1] * height * width)


def ssim(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    data_range: float = 1.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    space: SSIMSpace = "rgb",
    check_range: bool = True,
) -> torch.Tensor:
    """Mean SSIM of each image, Gaussian window, 'valid' region, on the 0..255 scale (L = 255).

    Inputs are rescaled to 0..255 (``x * 255 / data_range``), optionally converted to one channel
    (``space="y"``: BT.601 luma ``16 + (65.481 R + 128.553 G + 24.966 B)/255`` with R, G, B on
    0..255, unrounded; ``"gray"``: MATLAB rgb2gray; one-channel input is used as it is), filtered with the normalised ``window_size`` x ``window_size`` Gaussian without
    padding, and the SSIM map is averaged over the valid region and the channels. This equals
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=255, channel_axis=-1)`` on the 0..255 values (skimage
    filters with padding and then crops ``(window_size - 1) // 2`` pixels, i.e. the same region).

    Differentiable (no rounding inside; use :func:`~lowlight_cli.metrics.quantize` first for the
    8-bit protocol), works on any device; computed in the promoted dtype of the two inputs, float32
    for float16 and bfloat16 (whose range the 0..255 moments overflow).

    Args:
        pred: (B, C, H, W) float torch tensor in [0, data_range]; C = 3 (RGB) or 1 (a gray
            image, scored as it is) for ``y`` and ``gray``. Numpy arrays are refused: convert an (H, W, 3) image with
            ``torch.from_numpy(image).permute(2, 0, 1)[None]``.
        target: reference of the same shape and device; dtypes may differ (promoted).
        data_range: peak value of the input scale (1.0 for [0, 1], 255.0 for 0..255).
        window_size: odd window side in pixels.
        sigma: Gaussian standard deviation in pixels.
        k1, k2: stabilising constants; ``C1 = (k1 * 255)^2``, ``C2 = (k2 * 255)^2``.
        space: ``"rgb"`` (per channel, averaged), ``"y"`` or ``"gray"``.
        check_range: refuse values outside ``[0, data_range]`` (below); False for SSIM as a loss,
            whose prediction (a model's unclamped output, with or without grad) may stray outside.

    Returns:
        (B,) tensor of the promoted input dtype, 1 for identical images.

    Raises:
        MetricError: not tensors, mismatched or non-4-D shapes, different devices, unknown space,
            even window, an image smaller than the window, ``data_range`` not a positive number, or
            values outside [0, data_range] by more than 0.1% of it (e.g. 0..255 images with the
            default ``data_range=1``); a tensor that requires grad may stray outside (the metric as
            a training loss, whose prediction is not clamped).

    Example:
        >>> import torch
        >>> x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
        >>> ssim(x, x)
        tensor([1., 1.], dtype=torch.float64)
        >>> bool((ssim(x, 0.5 * x, space="y") < 1).all())
        True
    """
    check_image_pair(pred, target, "ssim", data_range=data_range if check_range else None)
    if not check_range:
        check_data_range(data_range, "ssim")
    check_space("ssim", space, SSIM_SPACES)
    if window_size < 1 or window_size % 2 == 0:
        raise MetricError(f"ssim: window_size must be a positive odd number, got {window_size}")
    height, width = pred.shape[-2:]
    if height < window_size or width < window_size:
        raise MetricError(
            f"ssim: image {width}x{height} (width x height) is smaller than the {window_size}x{window_size} window"
        )

    result, compute = scoring_dtypes(pred, target)
    scale = 255.0 / data_range
    x = _to_space(pred.to(compute) * scale, space)
    y = _to_space(target.to(compute) * scale, space)
    c1 = (k1 * 255.0) ** 2
    c2 = (k2 * 255.0) ** 2

    window = gaussian_window_1d(window_size, sigma, dtype=x.dtype, device=x.device)
    if x.device.type == "cpu" and x.dtype == torch.float64 and not (pred.requires_grad or target.requires_grad):
        return _ssim_banded(x, y, window, c1, c2).to(result)  # how `lowlight evaluate` scores
    return _ssim_convolved(x, y, window, c1, c2).to(result)


class SSIM(nn.Module):
    """Module form of :func:`ssim` with the options fixed at construction; higher is better.

    Example:
        >>> import torch
        >>> metric = SSIM(space="y")
        >>> x = torch.rand(1, 3, 16, 16)
        >>> metric(x, x)
        tensor([1.])
    """

    def __init__(
        self,
        data_range: float = 1.0,
        window_size: int = 11,
        sigma: float = 1.5,
        k1: float = 0.01,
        k2: float = 0.03,
        space: SSIMSpace = "rgb",
    ) -> None:
        super().__init__()
        check_space("ssim", space, SSIM_SPACES)
        check_data_range(data_range, "ssim")
        self.data_range = data_range
        self.window_size = window_size
        self.sigma = sigma
        self.k1 = k1
        self.k2 = k2
        self.space: SSIMSpace = space

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim(
            pred,
            target,
            data_range=self.data_range,
            window_size=self.window_size,
            sigma=self.sigma,
            k1=self.k1,
            k2=self.k2,
            space=self.space,
        )
