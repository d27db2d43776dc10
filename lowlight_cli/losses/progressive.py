"""CRNet's progressive enhancement loss: ``1 - SSIM`` on the final image plus L1 on every stage."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.ssim import ssim
from .shapes import check_same_shape


def ssim_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - mean SSIM`` (same gradient as ``-SSIM``, a nicer value: 0 for identical images).

    Args:
        pred, target: ``(B, 3, H, W)`` in ``[0, 1]``; ``pred`` may stray outside (a model's
            unclamped output, in training or under ``torch.no_grad`` in validation).

    Returns:
        Scalar in ``[0, 2]``. Computed in float32 outside autocast: SSIM's variances are
        differences of large moments and lose everything in half precision.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):  # no range check: see above
        return 1.0 - ssim(pred.float(), target.float(), check_range=False).mean()


def progressive_loss(
    output: torch.Tensor,
    stages: Sequence[torch.Tensor],
    target: torch.Tensor,
    *,
    lambda_ms: float = 1.0,
    lambda_final_l1: float = 0.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_PE = (1 - SSIM(y_G, gt)) + lambda_ms * mean_k |y_k - gt|_1`` (SPEC-crnet.md).

    ``lambda_final_l1`` (ours, 0 = the paper) adds ``|y_G - gt|_1``: SSIM barely sees a global
    brightness error, and with few stages (small variants) little else constrains it.

    Args:
        output: final stage ``(B, 3, H, W)``.
        stages: intermediate stage images ``y_1 .. y_{G-1}``, each like ``output`` (may be empty).
        target: reference ``(B, 3, H, W)`` in ``[0, 1]``.
        lambda_ms: weight of the multi-stage L1 term.

    Returns:
        The scalar loss and its terms as floats (``ssim``, ``stages_l1``) for logging.
    """
    check_same_shape("progressive_loss", output=output, target=target)
    for k, stage in enumerate(stages, 1):
        check_same_shape("progressive_loss", **{f"stage {k}": stage, "target": target})
    structural = ssim_loss(output, target)
    if stages:
        stage_l1 = torch.stack([F.l1_loss(s.float(), target.float()) for s in stages]).mean()
    else:
        stage_l1 = output.new_zeros((), dtype=torch.float32)
    total = structural + lambda_ms * stage_l1
    terms = {"ssim": float(structural.detach()), "stages_l1": float(stage_l1.detach())}
    if lambda_final_l1:
        final_l1 = F.l1_loss(output.float(), target.float())
        total = total + lambda_final_l1 * final_l1
        terms["final_l1"] = float(final_l1.detach())
    return total, terms


class SSIMLoss(nn.Module):
    """Module form of :func:`ssim_loss`."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ssim_loss(pred, target)


class ProgressiveLoss(nn.Module):
    """Module form of :func:`progressive_loss`; returns only the scalar."""

    def __init__(self, lambda_ms: float = 1.0, lambda_final_l1: float = 0.0) -> None:
        super().__init__()
        self.lambda_ms, self.lambda_final_l1 = lambda_ms, lambda_final_l1

    def forward(self, output: torch.Tensor, stages: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        return progressive_loss(output, stages, target, lambda_ms=self.lambda_ms, lambda_final_l1=self.lambda_final_l1)[0]
