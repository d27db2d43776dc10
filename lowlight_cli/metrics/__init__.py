"""Image quality metrics of the evaluation protocol: PSNR, SSIM (full reference) and NIQE (none).

Each metric is a pure function plus a thin ``nn.Module``; the registry ``METRICS`` maps names to
their :class:`MetricInfo` and module factory (``create_metric("ssim", space="y")``). Inputs are
[0, 1] float RGB scored on the 0..255 scale; round predictions to 8-bit with :func:`quantize`
before scoring to follow the protocol (the project's metric specification, ``SPEC-metrics.md``; docs/usage.md "Evaluate").
"""

from __future__ import annotations

from .base import (
    INPUT_RANGE,
    METRICS,
    MetricEntry,
    MetricInfo,
    MetricWarning,
    create_metric,
    list_metrics,
    metric_info,
    quantize,
    register_metric,
)
from .niqe import NIQE, niqe
from .psnr import PSNR, psnr
from .ssim import SSIM, ssim

register_metric(
    MetricInfo(
        name="psnr",
        full_reference=True,
        higher_is_better=True,
        input_range=INPUT_RANGE,
        description="Peak signal-to-noise ratio in dB: 10 log10(255^2 / MSE) over pixels, channels",
        paper="",
    ),
    PSNR,
)
register_metric(
    MetricInfo(
        name="ssim",
        full_reference=True,
        higher_is_better=True,
        input_range=INPUT_RANGE,
        description="Structural similarity: Gaussian 11x11 (sigma 1.5), valid region, L = 255",
        paper=(
            "Z. Wang, A. C. Bovik, H. R. Sheikh, E. P. Simoncelli, 'Image quality assessment: from "
            "error visibility to structural similarity', IEEE TIP 13(4), 2004"
        ),
    ),
    SSIM,
)
register_metric(
    MetricInfo(
        name="niqe",
        full_reference=False,
        higher_is_better=False,
        input_range=INPUT_RANGE,
        description="Naturalness image quality evaluator: LIVE pristine model, 96x96 blocks, Y",
        paper=(
            "A. Mittal, R. Soundararajan, A. C. Bovik, 'Making a Completely Blind Image Quality "
            "Analyzer', IEEE Signal Processing Letters 20(3), 2013"
        ),
    ),
    NIQE,
)

__all__ = [
    "METRICS",
    "NIQE",
    "PSNR",
    "SSIM",
    "MetricEntry",
    "MetricInfo",
    "MetricWarning",
    "create_metric",
    "list_metrics",
    "metric_info",
    "niqe",
    "psnr",
    "quantize",
    "ssim",
]

# LPIPS: full reference, needs pretrained weights (weights argument or $LOWLIGHT_LPIPS_WEIGHTS).
from .lpips import LPIPS, lpips_distance  # noqa: E402
from .lpips import PAPER as LPIPS_PAPER  # noqa: E402

register_metric(
    MetricInfo(
        name="lpips",
        full_reference=True,
        higher_is_better=False,
        input_range="0..1 float RGB, mapped to -1..1 for the network",
        description="Learned perceptual distance (LPIPS v0.1, AlexNet or VGG16 features); needs pretrained weights",
        paper=LPIPS_PAPER,
    ),
    LPIPS,
)
__all__ += ["LPIPS", "lpips_distance"]
