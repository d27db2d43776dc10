"""Chroma smoothing of a brightened image, guided by its own luma, where it was brightened (**ours**).

Brightening a dark photo amplifies its sensor noise in every channel; the colour part of that noise
(blotches of red, green and blue in the shadows, the mottle of a night sky) is what a viewer sees
most, and colour itself carries little fine detail. :func:`smooth_chroma` replaces the image's
chroma (``R - Y``, ``B - Y``, BT.601 luma ``Y``) by He, Sun and Tang's guided filter of it (ECCV
2010, TPAMI 2013) with the luma as guide: in each window chroma is fitted as ``a Y + b``, so colour
edges that follow brightness edges stay sharp while colour noise that luma does not explain is
averaged away. Luma is kept, unless ``luma=True`` smooths it with the same filter guided by
itself; the result is blended in by the curve's brightening, so a pixel the model did not brighten
comes back bit for bit.

What it gains and costs on the default photo model: README "Photo quality" and "Speed"; how its
radius, ``eps`` and gate were chosen (validation pairs): docs/crnet-training.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .base import area_mean, needs_graph

if TYPE_CHECKING:
    from .noise import AmplifiedNoise

# BT.601 luma weights (as ``lowlight_cli.metrics.color.luma_bt601`` without its offset and scale);
# the guide of the filter, and the luma :mod:`.noise` measures the photo's noise on
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
_KR, _KG, _KB = LUMA_WEIGHTS


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the ``(2 radius + 1)^2`` window around each pixel of ``(B, C, H, W)``, the image
    extended by repeating its edge pixels; one add per tap and direction, with no padded copy
    (``avg_pool2d`` with stride 1 took half as long again on the CPU). Under autograd, tracing or
    export: the same means from a replicate-padded copy and ``avg_pool2d`` (in-place adds into
    views of a tensor do not survive ONNX export: they exported wrong values at the borders)."""
    if needs_graph(x):
        padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
        return F.avg_pool2d(padded, 2 * radius + 1, stride=1)
    return _box_sum_1d(_box_sum_1d(x, radius, -1), radius, -2).mul_(1.0 / (2 * radius + 1) ** 2)


def _box_sum_1d(x: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """Sum over ``2 radius + 1`` neighbours along ``dim``, the edge values repeated past the ends."""
    n = x.shape[dim]
    out = x.clone()
    for shift in range(1, radius + 1):
        inner = max(0, n - shift)
        out.narrow(dim, shift, inner).add_(x.narrow(dim, 0, inner))  # the neighbour ``shift`` before
        out.narrow(dim, 0, inner).add_(x.narrow(dim, shift, inner))  # ... and after
        edge = min(shift, n)  # positions whose neighbour lies past an end take the edge value
        out.narrow(dim, 0, edge).add_(x.narrow(dim, 0, 1))
        out.narrow(dim, n - edge, edge).add_(x.narrow(dim, n - 1, 1))
    return out


def smooth_chroma(
    y: torch.Tensor, gate: torch.Tensor, radius: int, eps: float, ceiling: float = 1.0, scale: int = 1,
    luma: bool = False, noise: AmplifiedNoise | None = None,
) -> torch.Tensor:
    """``y`` with its chroma guided-filtered by its luma, blended in by ``gate``.

    Args:
        y: ``(B, 3, H, W)`` RGB in ``[0, 1]``.
        gate: ``(B, 1, H, W)`` in ``[0, 1]``: how much of the smoothing each pixel takes; 0 gives
            ``y`` exactly.
        radius: window radius in pixels (``2 radius + 1`` square).
        eps: the guided filter's regulariser on luma variance (``[0, 1]`` scale): below it, a
            window counts as flat and its chroma is averaged; above it, chroma follows luma.
        ceiling: no channel is raised above ``max(y, ceiling)`` (the caller's guard against clipping).
        scale: fit the per-window coefficients on a ``1/s`` area-downscaled copy, ``s = min(scale,
            radius)``, with the radius divided by ``s`` (so the window keeps its size in pixels of
            the photo), and apply them, upsampled bilinearly, to the full-resolution luma (He and
            Sun's fast guided filter, arXiv 1505.00996): fewer full-resolution passes, for the large
            photos whose curves are already estimated at reduced resolution (``curve_scale``).
        luma: smooth luma too, with the same window and ``eps`` (the guided filter of luma on
            itself: flat windows are averaged, edges and texture above ``eps`` in variance kept);
            the change is added to all three channels, so chroma is as without it.
        noise: the noise the curve left in each pixel (:class:`~lowlight_cli.models.noise.AmplifiedNoise`):
            its variance is added to ``eps`` pixel by pixel, so that noisier windows count as
            flat up to a larger variance. With ``scale`` it is computed at the fitting resolution
            from the luma and gate there, and not divided by ``s^2`` as white noise averaged over
            ``s x s`` pixels would be: what the denoiser leaves is not white, and on 3x-enlarged
            noisy photos at curve scale 2 dividing by ``s^2`` or ``s`` scored lower on PSNR, SSIM
            and NIQE alike (docs/photo-quality.md).

    Returns:
        ``(B, 3, H, W)``, same dtype, not clamped below (the caller clamps to ``[0, 1]``); computed
        in float32 at least (the window variances are differences of means, which half precision
        would cancel).
    """
    dtype = y.dtype
    work = y.float() if y.dtype in (torch.float16, torch.bfloat16) else y
    guide = _luma(work)
    fit_scale = min(scale, max(1, radius))  # the window never grows past the tuned one: at most 1/radius
    if fit_scale > 1:  # only averages of the image are needed at low resolution: luma and chroma are linear in it
        height, width = guide.shape[-2:]
        small = area_mean(work, fit_scale, ceil_mode=True)
        small_luma = _luma(small)
        if noise is not None:
            eps = noise.variance(small_luma, area_mean(gate.float(), fit_scale, ceil_mode=True), fit_scale).add_(eps)
        coefficients = _coefficients(small_luma, small[:, 0::2] - small_luma, radius // fit_scale, eps, luma)
        # upsampled to whole cells, then cut: a last partial cell keeps the grid aligned with the pixels
        cells = (small.shape[-2] * fit_scale, small.shape[-1] * fit_scale)
        coefficients = F.interpolate(coefficients, size=cells, mode="bilinear", align_corners=False)[..., :height, :width]
    else:
        if noise is not None:
            eps = noise.variance(guide, gate).add_(eps)
        coefficients = _coefficients(guide, work[:, 0::2] - guide, radius, eps, luma)
    # the smoothed red and blue, (slope + 1) luma + offset, minus the image's: how far each moves
    delta = torch.addcmul(coefficients[:, 2:4], coefficients[:, 0:2], guide).sub_(work[:, 0::2]).mul_(gate)
    # red and blue move; green keeps luma: -(kr dR + kb dB) / kg
    green = delta[:, 0:1] * (-_KR / _KG) + delta[:, 1:2] * (-_KB / _KG)
    # luma: the smoothed luma, a luma + b, minus luma: the same change in every channel
    shift = torch.addcmul(coefficients[:, 5:6], coefficients[:, 4:5], guide).sub_(guide).mul_(gate) if luma else None
    if needs_graph(work, gate, coefficients):  # out of place: slices written in place do not export
        moved = torch.cat((delta[:, 0:1], green, delta[:, 1:2]), dim=1)
        out = work + moved if shift is None else work + (moved + shift)
    else:
        out = work.clone()
        out[:, 0::2] += delta
        out[:, 1:2] += green
        if shift is not None:
            out += shift
    # no new clipping; values below 0 (the fit overshooting at a strong colour edge) are left to the
    # model's final clamp, which every output gets
    return torch.minimum(out, work.clamp(min=ceiling)).to(dtype)


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma ``(B, 1, H, W)`` of ``(B, 3, H, W)``."""
    return (rgb[:, 0:1] * _KR).add_(rgb[:, 1:2], alpha=_KG).add_(rgb[:, 2:3], alpha=_KB)


def _coefficients(luma: torch.Tensor, chroma: torch.Tensor, radius: int, eps: float | torch.Tensor,
                  with_luma: bool = False) -> torch.Tensor:
    """The guided filter's window-averaged ``(slope + 1, offset)`` of chroma on luma, ``(B, 4, H, W)``:
    ``(slope + 1) luma + offset`` is then the smoothed red (blue) itself, since chroma is red (blue)
    minus luma. ``with_luma`` appends luma's own ``(a, b)``, ``(B, 6, H, W)`` in all."""
    means = box_mean(torch.cat((luma, chroma, luma * luma, luma * chroma), dim=1), radius)
    mean_luma, mean_chroma, mean_luma2, mean_cross = means[:, 0:1], means[:, 1:3], means[:, 3:4], means[:, 4:6]
    slope = (mean_cross - mean_luma * mean_chroma) / (mean_luma2 - mean_luma * mean_luma + eps)
    offset = mean_chroma - slope * mean_luma
    parts = [slope + 1.0, offset]
    if with_luma:  # luma guided by itself: a = var / (var + eps), b = (1 - a) mean
        variance = mean_luma2 - mean_luma * mean_luma
        a = variance / (variance + eps)
        parts += [a, mean_luma - a * mean_luma]
    return box_mean(torch.cat(parts, dim=1), radius)
