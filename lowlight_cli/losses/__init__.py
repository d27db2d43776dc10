"""Losses: pure functions plus thin modules, registered by name (``create_loss``).

SSIM exists once, in :mod:`lowlight_cli.metrics.ssim`; the losses build on it.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ..registry import Registry
from .consistency import MultiConsistencyLoss, multi_consistency_loss
from .progressive import ProgressiveLoss, SSIMLoss, progressive_loss, ssim_loss

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")
LOSSES.register("ssim", SSIMLoss)
LOSSES.register("progressive", ProgressiveLoss)
LOSSES.register("multi_consistency", MultiConsistencyLoss)


def create_loss(name: str, **kwargs: object) -> nn.Module:
    """Build a registered loss module; unknown names raise with a "did you mean" hint."""
    return LOSSES.get(name)(**kwargs)


__all__ = [
    "LOSSES",
    "MultiConsistencyLoss",
    "ProgressiveLoss",
    "SSIMLoss",
    "create_loss",
    "multi_consistency_loss",
    "progressive_loss",
    "ssim_loss",
]
