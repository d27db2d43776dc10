"""Exact parameter counts and multiply-accumulates per pixel, measured, not estimated."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from .base import EnhancementModel


@dataclass(frozen=True)
class Complexity:
    """Size and cost of a model.

    Attributes:
        parameters: number of trainable and fixed parameters.
        macs: multiply-accumulates of one forward pass at ``size`` x ``size``.
        size: side of the square input measured.
    """

    parameters: int
    macs: int
    size: int

    @property
    def macs_per_pixel(self) -> float:
        return self.macs / (self.size * self.size)


def measure_complexity(model: EnhancementModel, size: int = 256) -> Complexity:
    """Count parameters and the MACs of ``forward`` on a ``(1, 3, size, size)`` input.

    MACs come from torch's FLOP counter (convolutions, matrix products; MACs = FLOPs / 2);
    element-wise operations are not counted, as is usual.
    """
    params = sum(p.numel() for p in model.parameters())
    x = torch.rand(1, 3, size, size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(x)
    return Complexity(parameters=params, macs=counter.get_total_flops() // 2, size=size)
