"""Metric metadata, the metric registry, and the 8-bit quantisation of the evaluation protocol.

Every metric is a pure function plus a thin ``nn.Module``; the registry maps a metric name to its
:class:`MetricInfo` (what the CLI prints and sorts by) and the module factory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import MetricError
from ..registry import Registry

INPUT_RANGE = "0..1 float RGB, scored on the 0..255 scale"


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

    Example:
        >>> import torch
        >>> from lowlight_cli.metrics import create_metric
        >>> metric = create_metric("psnr")
        >>> x = torch.full((1, 3, 4, 4), 0.5)
        >>> round(float(metric(x, x + 1 / 255)), 4)
        48.1308
    """
    return METRICS.get(name).factory(**kwargs)


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


def quantize(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Clip ``x`` to [0, 1] and round it to ``levels + 1`` evenly spaced values (8-bit by default).

    This is the protocol's "round to 8-bit before scoring" step, kept apart from the
    differentiable metric functions so that training losses never see it. Rounding is half to even
    (``torch.round``); values stay in [0, 1] and keep their dtype.

    Args:
        x: float tensor of any shape, nominally in [0, 1].
        levels: the largest integer code (255 for 8-bit, 65535 for 16-bit).

    Example:
        >>> import torch
        >>> quantize(torch.tensor([0.0, 0.5, 1.2])) * 255
        tensor([  0., 128., 255.])
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    return torch.round(x.clamp(0.0, 1.0) * levels) / levels


def check_space(metric: str, space: str, allowed: tuple[str, ...]) -> None:
    """Raise :class:`MetricError` naming the choices unless ``space`` is one of ``allowed``."""
    if space not in allowed:
        raise MetricError(
            f"{metric}: unknown space {space!r}", hint=f"use one of {', '.join(allowed)}"
        )


def check_image_pair(pred: torch.Tensor, target: torch.Tensor, metric: str) -> None:
    """Raise :class:`MetricError` unless both are float (B, C, H, W) tensors of one shape."""
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
