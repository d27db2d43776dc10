"""Validation on held-out training pairs: PSNR and SSIM of 8-bit-rounded outputs (the metric protocol)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..data.pairs import ImagePair
from ..errors import ConfigError, DataError
from ..evaluation.scoring import gt_mean_scale
from ..inference.colour import keep_input_colour
from ..inference.tiling import tiled_forward
from ..io import to_float
from ..metrics import psnr, quantize, ssim
from .distributed import DistContext, all_reduce_sum


SSIM_WINDOW = 11  # the side of SSIM's Gaussian window (the metric protocol): no validation image may be smaller


def check_validation_sizes(pairs: list[ImagePair]) -> None:
    """Refuse, before any training, validation pairs smaller than SSIM's window (validation would
    fail only after the first stretch of training, which would then be lost).

    Raises:
        DataError: naming the first such pair and its size.
    """
    small = [p for p in pairs if min(p.low.shape[:2]) < SSIM_WINDOW]
    if small:
        h, w = small[0].low.shape[:2]
        raise DataError(f"{len(small)} validation pair(s) are smaller than {SSIM_WINDOW}x{SSIM_WINDOW} px, the SSIM "
                        f"window validation scores with (e.g. {small[0].name}: {w}x{h})",
                        hint="remove such tiny images from the data folder: any pair may be held out for validation, "
                             "and a training image must hold a patch (data.patch_size)")


@dataclass(frozen=True)
class ValidationScores:
    """Means over the validation pairs: PSNR (dB), SSIM, and PSNR after GT-mean scaling.

    ``psnr_gt_mean`` scales each output to its reference's mean grey level first (as
    ``lowlight evaluate --gt-mean``): the part of the error that is not overall exposure.
    """

    psnr: float
    ssim: float
    psnr_gt_mean: float


def check_val_every(val_every: int, *, validated: bool) -> None:
    """Refuse ``run.val_every`` (``--val-every``) for a run without validation pairs, which would ignore it.

    0, the default, is always accepted.

    Raises:
        ConfigError: ``val_every`` > 0 and not ``validated``.
    """
    if val_every and not validated:
        raise ConfigError(f"run.val_every (--val-every) is {val_every}, but this run has no validation: its data has "
                          "fewer than 2 pairs with references to hold out",
                          hint="drop --val-every (--set run.val_every=0 over a config file's value); without validation "
                               "the final weights are last/ (final/ for a run exporting its EMA teacher), saved each epoch "
                               "(--set run.save_every=N: every N steps)")


@torch.no_grad()
def validate(
    model: nn.Module, pairs: list[ImagePair], device: torch.device, ctx: DistContext, multiple: int, *, colour: str = "model"
) -> ValidationScores:
    """Scores of ``model`` over ``pairs``, whole images, split across processes.

    ``colour="input"`` scores the outputs with the input's colour kept
    (:func:`~lowlight_cli.inference.colour.keep_input_colour`, ``lowlight enhance --colour input``).

    Every process scores ``pairs[rank::world_size]``; sums are all-reduced, so all processes
    return the same numbers. Model selection uses ``psnr`` or ``ssim`` (``run.select_on``).
    """
    was_training = model.training
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64)
    for pair in pairs[ctx.rank :: ctx.world_size]:
        low = torch.from_numpy(to_float(pair.low)).permute(2, 0, 1)[None]
        high = torch.from_numpy(to_float(pair.high)).permute(2, 0, 1)[None].double()
        out = tiled_forward(lambda b: model(b).clamp(0, 1), low, tile=0, multiple=multiple, device=device)
        out = out.float().cpu()
        if colour == "input":
            keep_input_colour(low[0].permute(1, 2, 0).numpy(), out[0].permute(1, 2, 0).numpy())
        pred = quantize(out.double())
        scaled = gt_mean_scale(pred[0].permute(1, 2, 0).numpy(), high[0].permute(1, 2, 0).numpy())
        scaled_t = torch.from_numpy(scaled).permute(2, 0, 1)[None]
        totals += torch.tensor([float(psnr(pred, high)), float(ssim(pred, high)), float(psnr(scaled_t, high)), 1.0],
                               dtype=torch.float64)
    model.train(was_training)
    totals = all_reduce_sum(totals.to(device) if device.type == "cuda" else totals, ctx).cpu()
    count = max(1.0, float(totals[3]))
    psnr_mean, ssim_mean, psnr_gt_mean = (float(totals[i]) / count for i in range(3))
    return ValidationScores(psnr=psnr_mean, ssim=ssim_mean, psnr_gt_mean=psnr_gt_mean)
