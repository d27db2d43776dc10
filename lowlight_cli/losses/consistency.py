"""The multi-consistency regularisation of the mean teacher (MCMT)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .shapes import check_same_shape


def multi_consistency_loss(
    student_output: torch.Tensor,
    student_stages: Sequence[torch.Tensor],
    teacher_output: torch.Tensor,
    teacher_stages: Sequence[torch.Tensor],
    *,
    lambda_mc: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_MCR = MSE(S(x), T(x+n)) + lambda_mc * mean_k MSE(S_k(x), T_k(x+n))`` (SPEC-crnet.md).

    Args:
        student_output, teacher_output: final images ``(B, 3, H, W)``; the teacher's carry no
            gradient (they are detached here in any case).
        student_stages, teacher_stages: intermediate stage images, equal in number.
        lambda_mc: weight of the intermediate-stage term.

    Returns:
        Scalar loss (gradient flows into the student only), float32 whatever the inputs' dtype
        (bf16 / fp16 outputs are compared in float32), and its terms for logging.

    Raises:
        ValueError: stage counts differ, or a student image and its teacher image differ in shape.
    """
    if len(student_stages) != len(teacher_stages):
        raise ValueError(f"student has {len(student_stages)} stages, teacher {len(teacher_stages)}")
    check_same_shape("multi_consistency_loss", student=student_output, teacher=teacher_output)
    for k, (s, t) in enumerate(zip(student_stages, teacher_stages), 1):
        check_same_shape("multi_consistency_loss", **{f"student stage {k}": s, f"teacher stage {k}": t})
    final = F.mse_loss(student_output.float(), teacher_output.detach().float())
    if student_stages:
        inter = torch.stack(
            [F.mse_loss(s.float(), t.detach().float()) for s, t in zip(student_stages, teacher_stages)]
        ).mean()
    else:
        inter = final.new_zeros(())
    total = final + lambda_mc * inter
    return total, {"mc_final": float(final.detach()), "mc_stages": float(inter.detach())}


class MultiConsistencyLoss(nn.Module):
    """Module form of :func:`multi_consistency_loss` taking two ``forward_train`` dicts."""

    def __init__(self, lambda_mc: float = 1.0) -> None:
        super().__init__()
        self.lambda_mc = lambda_mc

    def forward(self, student: dict, teacher: dict) -> torch.Tensor:
        return multi_consistency_loss(
            student["output"], student["stages"], teacher["output"], teacher["stages"], lambda_mc=self.lambda_mc
        )[0]
