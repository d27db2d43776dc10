"""Validation on held-out training pairs: PSNR and SSIM of 8-bit-rounded outputs (the metric protocol)."""

from __future__ import annotations

import torch
from torch import nn

from ..data.pairs import ImagePair
from ..inference.tiling import tiled_forward
from ..io import to_float
from ..metrics import psnr, quantize, ssim
from .distributed import DistContext, all_reduce_sum


@torch.no_grad()
def validate(model: nn.Module, pairs: list[ImagePair], device: torch.device, ctx: DistContext, multiple: int) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM of ``model`` over ``pairs``, whole images, split across processes.

    Every process scores ``pairs[rank::world_size]``; sums are all-reduced, so all processes
    return the same numbers.
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64)
    for pair in pairs[ctx.rank :: ctx.world_size]:
        low = torch.from_numpy(to_float(pair.low)).permute(2, 0, 1)[None]
        high = torch.from_numpy(to_float(pair.high)).permute(2, 0, 1)[None].double()
        out = tiled_forward(lambda b: model(b).clamp(0, 1), low, tile=0, multiple=multiple, device=device)
        pred = quantize(out.double().cpu())
        totals += torch.tensor([float(psnr(pred, high)), float(ssim(pred, high)), 1.0], dtype=torch.float64)
    model.train(was_training)
    totals = all_reduce_sum(totals.to(device) if device.type == "cuda" else totals, ctx).cpu()
    count = max(1.0, float(totals[2]))
    return float(totals[0]) / count, float(totals[1]) / count
