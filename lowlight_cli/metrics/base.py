"""Metric metadata, the metric registry, and the 8-bit quantisation of the evaluation protocol.

Every metric is a pure function plus a thin ``nn.Module``; the registry maps a metric name to its
:class:`MetricInfo` (what the CLI prints and sorts by) and the module factory.
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, MetricError
from ..registry import Registry

INPUT_RANGE = "0..1 float RGB, scored on the 0..255 scale"
# How far values may stray outside [0, data_range], relative to data_range, before a metric refuses
# them: rounding of a resize or colour conversion, never a 0..255 image scored as 0..1.
RANGE_TOLERANCE = 1e-3


class MetricWarning(RuntimeWarning):
    """A metric returned a degraded value (NaN, an unreliable estimate) instead of raising."""


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures and how to read it.

    Attributes:
        name: registry name, e.g. ``"psnr"``.
        full_reference: True when the metric needs a reference image (PSNR, SSIM).
        higher_is_better: direction of improvement (False for NIQE).
        input_range: the value range the module expects and the scale it scores on.
        description: one line for tables and ``--help``.
        paper: citation of the defining paper.
    """

    name: str
    full_reference: bool
    higher_is_better: bool
    input_range: str
    description: str
    paper: str


@dataclass(frozen=True)
class MetricEntry:
    """A registry entry: the metadata and a factory returning the metric's ``nn.Module``."""

    info: MetricInfo
    factory: Callable[..., nn.Module]


METRICS: Registry[MetricEntry] = Registry("metric")


def register_metric(info: MetricInfo, factory: Callable[..., nn.Module]) -> MetricEntry:
    """Register ``factory`` under ``info.name``; raises ``ValueError`` if the name is taken."""
    return METRICS.register(info.name, MetricEntry(info=info, factory=factory))


def create_metric(name: str, **kwargs: object) -> nn.Module:
    """Build the ``nn.Module`` of metric ``name`` with ``kwargs`` passed to its constructor.

    Raises:
        UnknownNameError: ``name`` is not registered (the message suggests close names).
        ConfigError: an option the metric does not have (the message lists its options).
        MetricError: an option value the metric refuses (e.g. ``data_range=0``).

    Example:
        >>> import torch
        >>> from lowlight_cli.metrics import create_metric
        >>> metric = create_metric("psnr")
        >>> x = torch.full((1, 3, 4, 4), 0.5)
        >>> round(float(metric(x, x + 1 / 255)), 4)
        48.1308
    """
    entry = METRICS.get(name)
    parameters = inspect.signature(entry.factory).parameters.values()
    options = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    takes_any = any(p.kind == p.VAR_KEYWORD for p in parameters)
    unknown = [] if takes_any else [key for key in kwargs if key not in options]
    if unknown:  # said here, naming the options, rather than as the constructor's TypeError
        close = difflib.get_close_matches(unknown[0], options, n=1)
        raise ConfigError(
            f"metric {name!r} has no option {unknown[0]!r} (its options: {', '.join(options) or 'none'})",
            hint=f"did you mean {close[0]}?" if close else None,
        )
    return entry.factory(**kwargs)


def metric_info(name: str) -> MetricInfo:
    """Metadata of metric ``name``; raises :class:`UnknownNameError` for unknown names.

    Example:
        >>> from lowlight_cli.metrics import metric_info
        >>> metric_info("niqe").higher_is_better
        False
    """
    return METRICS.get(name).info


def list_metrics() -> list[str]:
    """Names of the registered metrics, in registration order.

    Example:
        >>> from lowlight_cli.metrics import list_metrics
        >>> list_metrics()[:3]
        ['psnr', 'ssim', 'niqe']
    """
    return METRICS.names()


def quantize(x: torch.Tensor | np.ndarray, levels: int = 255) -> torch.Tensor | np.ndarray:
    """Clip ``x`` to [0, 1] and round it to ``levels + 1`` evenly spaced values (8-bit by default).

    This is the protocol's "round to 8-bit before scoring" step, kept apart from the
    differentiable metric functions so that training losses never see it. Rounding is half to even
    (``torch.round``); values stay in [0, 1] and keep their dtype.

    Args:
        x: float tensor, or float numpy array, of any shape, nominally in [0, 1]. An array gives an
            array (the same values a tensor would).
        levels: the largest integer code (255 for 8-bit, 65535 for 16-bit).

    Raises:
        MetricError: ``x`` is not a float tensor or array (integer codes are quantised already).
        ValueError: ``levels`` is under 1.

    Example:
        >>> import torch
        >>> quantize(torch.tensor([0.0, 0.5, 1.2])) * 255
        tensor([  0., 128., 255.])
        >>> quantize(np.array([0.3, 0.5])) * 255
        array([ 76., 128.])
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    if isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise MetricError(f"quantize: expected a float array in [0, 1], got dtype {x.dtype}")
        return quantize(torch.from_numpy(np.ascontiguousarray(x)), levels).numpy()
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        what = f"a {x.dtype} tensor" if isinstance(x, torch.Tensor) else f"a {type(x).__name__}"
        raise MetricError(f"quantize: expected a float tensor in [0, 1], got {what}")
    return torch.round(x.clamp(0.0, 1.0) * levels) / levels


def check_space(metric: str, space: str, allowed: tuple[str, ...]) -> None:
    """Raise :class:`MetricError` naming the choices unless ``space`` is one of ``allowed``."""
    if space not in allowed:
        raise MetricError(
            f"{metric}: unknown space {space!r}", hint=f"use one of {', '.join(allowed)}"
        )


def check_tensor(x: object, metric: str) -> None:
    """Raise :class:`MetricError` unless ``x`` is a torch tensor (a numpy array gets how to convert it)."""
    if not isinstance(x, torch.Tensor):
        raise MetricError(
            f"{metric}: expected (B, C, H, W) torch tensors, got a {type(x).__module__}.{type(x).__name__}",
            hint="convert an (H, W, 3) numpy image with torch.from_numpy(image).permute(2, 0, 1)[None]",
        )


def check_data_range(data_range: object, metric: str) -> None:
    """Raise :class:`MetricError` unless ``data_range`` is a finite positive number."""
    if isinstance(data_range, bool) or not isinstance(data_range, numbers.Real) or not (
        math.isfinite(data_range) and data_range > 0
    ):
        raise MetricError(
            f"{metric}: data_range must be a positive number, got {data_range!r}",
            hint="data_range is the value of white: 1.0 for images in [0, 1], 255 for 0..255",
        )


def check_value_range(x: torch.Tensor, data_range: float, metric: str, what: str) -> None:
    """Raise :class:`MetricError` when ``x`` strays outside [0, data_range] by more than
    :data:`RANGE_TOLERANCE` of ``data_range`` (an image on 0..255 scored as 0..1 would otherwise give
    a plausible, wrong score). NaN is left to the metric. Not checked for a tensor that requires
    grad: a prediction being trained may stray outside while the metric serves as a loss."""
    if x.requires_grad or x.numel() == 0:
        return
    low, high = (float(v) for v in torch.aminmax(x.detach()))
    check_span(low, high, data_range, metric, what)


_SPAN_HINT = "pass data_range=255 for images on 0..255 (data_range is the value of white); clamp predictions first"


def check_span(low: float, high: float, data_range: float, metric: str, what: str, *,
               bound: str = "[0, data_range] = ", hint: str = _SPAN_HINT) -> None:
    """Raise :class:`MetricError` when values spanning ``low..high`` stray outside [0, data_range] by
    more than :data:`RANGE_TOLERANCE` of ``data_range``; a non-finite span is left to the metric.
    ``bound`` names the range in the message before its value."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return
    tolerance = RANGE_TOLERANCE * data_range
    if low < -tolerance or high > data_range + tolerance:
        raise MetricError(f"{metric}: {what} values span {low:.4g}..{high:.4g}, outside {bound}[0, {data_range:g}]", hint=hint)


def scoring_dtypes(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """``(result, compute)`` dtypes of a metric of ``pred`` and ``target``: the promoted dtype of the
    two, or float32 for both when that is a half type (SSIM's 0..255 moments overflow float16, and a
    bfloat16 PSNR keeps three significant digits: 30.875 for 30.892)."""
    result = torch.promote_types(pred.dtype, target.dtype)
    return (torch.float32, torch.float32) if result in (torch.float16, torch.bfloat16) else (result, result)


def check_image_pair(
    pred: torch.Tensor, target: torch.Tensor, metric: str, *, data_range: float | None = None
) -> None:
    """Raise :class:`MetricError` unless both are float (B, C, H, W) tensors of one shape on one
    device; with ``data_range``, also unless it is a positive number and both hold values in
    [0, data_range] (:func:`check_value_range`)."""
    check_tensor(pred, metric)
    check_tensor(target, metric)
    if pred.shape != target.shape:
        raise MetricError(
            f"{metric}: prediction and reference shapes differ: "
            f"{tuple(pred.shape)} vs {tuple(target.shape)}",
            hint="score images of the same size (no resizing is done by the metric)",
        )
    if pred.ndim != 4:
        raise MetricError(f"{metric}: expected (B, C, H, W) tensors, got shape {tuple(pred.shape)}")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise MetricError(f"{metric}: expected float tensors, got {pred.dtype} and {target.dtype}")
    if pred.device != target.device:
        raise MetricError(f"{metric}: prediction and reference are on different devices: {pred.device} and {target.device}")
    if data_range is not None:
        check_data_range(data_range, metric)
        check_value_range(pred, data_range, metric, "prediction")
        check_value_range(target, data_range, metric, "reference")
