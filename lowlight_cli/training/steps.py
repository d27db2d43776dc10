"""Step objects: what one optimisation step computes, for the one fit loop to drive; CRNet's methods.

A step takes the student (possibly DDP-wrapped) and a batch and returns the loss to back-propagate
and its terms for logging. Both steps here run the student once on the whole batch, so a single
backward pass updates it. This module registers CRNet's training methods: ``crnet`` (supervised,
:class:`SupervisedStep`) and ``mcmt`` (``--semi``, :class:`MeanTeacherStep`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..inference.compilation import compile_module
from ..losses import multi_consistency_loss, progressive_loss
from .config import LossSection
from .ema import EMA
from .methods import Method, StepContext, register_method


class StagesForward(nn.Module):
    """Exposes ``model.forward_train`` as ``forward`` so DDP sees (and synchronises) it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, **kwargs: object) -> dict:
        return self.model.forward_train(x, **kwargs)


def training_forwards(student: nn.Module, ema: EMA | None, *, semi: bool, compile: bool) -> tuple[Callable, Callable | None]:
    """The student's forward to train through and, for MCMT, the teacher's forward.

    ``student`` is a :class:`StagesForward` (possibly DDP-wrapped: ``torch.compile`` goes outside
    DDP). With ``compile`` both run through ``torch.compile``; the teacher's keeps reading the
    weights the EMA updates in place. Without MCMT the teacher's forward is None.
    """
    teacher = StagesForward(ema.teacher) if semi and ema is not None else None
    if not compile:
        return student, teacher
    return (compile_module(student, fixed_shapes=False),
            compile_module(teacher, fixed_shapes=False) if teacher is not None else None)


@dataclass
class StepOutput:
    """The scalar to back-propagate and its parts (floats) for the log."""

    loss: torch.Tensor
    terms: dict[str, float]


class SupervisedStep:
    """Fully supervised: the progressive loss ``L_PE`` on labeled patches."""

    def __init__(self, loss: LossSection) -> None:
        self.loss = loss

    def __call__(self, student: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        return self._step(student, batch)

    def _step(self, student: nn.Module, batch: dict[str, torch.Tensor], **forward: object) -> StepOutput:
        """The progressive loss of ``student(labeled lows, **forward)`` against their references."""
        mask = batch["labeled"]
        out = student(batch["low"][mask], **forward)
        total, terms = progressive_loss(
            out["output"], out["stages"], batch["high"][mask],
            lambda_ms=self.loss.lambda_ms, lambda_final_l1=self.loss.lambda_final_l1,
        )
        return StepOutput(total, {"loss": float(total.detach()), **terms})


class MultiScaleSupervisedStep(SupervisedStep):
    """:class:`SupervisedStep` with the body at ``curve_scales[k % n]`` in step ``k`` (``model.curve_scales``).

    The count of steps taken is the step's own state (saved with the run, so a resumed run goes on
    with the scale it would have used); it moves in :meth:`after_step`, with the optimiser step,
    so a step cut off by Ctrl-C does not count.
    """

    def __init__(self, loss: LossSection, curve_scales: tuple[int, ...]) -> None:
        super().__init__(loss)
        self.curve_scales = curve_scales
        self.steps = 0

    def __call__(self, student: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        scale = self.curve_scales[self.steps % len(self.curve_scales)]
        result = self._step(student, batch, curve_scale=scale)
        result.terms["curve_scale"] = float(scale)
        return result

    def after_step(self) -> None:
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])


def supervised_step(context: StepContext) -> SupervisedStep:
    """The ``crnet`` method's step: :class:`MultiScaleSupervisedStep` when ``model.curve_scales`` is set."""
    scales = tuple(context.config.model.curve_scales)
    return MultiScaleSupervisedStep(context.losses, scales) if scales else SupervisedStep(context.losses)


def sigmoid_rampup(step: int, length: int) -> float:
    """Mean Teacher's ramp-up factor ``exp(-5 (1 - t)^2)``, ``t = min(step / length, 1)``; 1 when ``length`` is 0."""
    if length <= 0:
        return 1.0
    t = min(max(step, 0) / length, 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


class MeanTeacherStep:
    """Multi-consistency mean teacher (MCMT).

    ``L = L_PE(labeled) + lambda_c * L_MCR(labeled + unlabeled)``: the student sees the clean
    batch, the EMA teacher the batch plus Gaussian noise (sigma ``teacher_noise``), without
    gradients; consistency is asked of the final and every intermediate stage. With
    ``loss.consistency_rampup`` set, ``lambda_c`` is scaled by :func:`sigmoid_rampup` of the
    teacher's update count (= optimiser steps taken in this run, kept across resumes).

    ``teacher_forward`` replaces the teacher's ``forward_train`` (e.g. a compiled
    ``StagesForward(ema.teacher)``); it must run the same module, whose weights the EMA updates.
    """

    def __init__(self, loss: LossSection, ema: EMA, teacher_forward: Callable[[torch.Tensor], dict] | None = None) -> None:
        self.loss = loss
        self.ema = ema
        self.teacher_forward = ema.teacher.forward_train if teacher_forward is None else teacher_forward

    def __call__(self, student: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput:
        x, mask = batch["low"], batch["labeled"]
        out = student(x)
        with torch.no_grad():
            noisy = x + torch.randn_like(x) * self.loss.teacher_noise
            target = self.teacher_forward(noisy)
        consistency, c_terms = multi_consistency_loss(
            out["output"], out["stages"], target["output"], target["stages"], lambda_mc=self.loss.lambda_mc
        )
        weight = self.loss.lambda_c * sigmoid_rampup(self.ema.updates, self.loss.consistency_rampup)
        total = weight * consistency
        terms = {**c_terms, "unlabeled": float((~mask).sum()), "consistency_weight": weight}
        if mask.any():
            supervised, s_terms = progressive_loss(
                out["output"][mask], [s[mask] for s in out["stages"]], batch["high"][mask],
                lambda_ms=self.loss.lambda_ms, lambda_final_l1=self.loss.lambda_final_l1,
            )
            total = total + supervised
            terms.update(s_terms)
        return StepOutput(total, {"loss": float(total.detach()), **terms})


CRNET_DOC = """\
CRNet fully supervised with the progressive loss of SPEC-crnet.md: SSIM loss on the final image
plus lambda_ms times the L1 of every intermediate stage against the reference (loss.lambda_ms,
default 1; loss.lambda_final_l1 adds an L1 on the final image, ours, default 0). Trains on the
labeled pairs only (--labeled-frac of the training images keep their reference). Adam 5e-4 halved
at epochs 20, 40, 60, 90; 100 epochs of 30 patches of 96 px per image, batch 16. With
--set run.export=teacher it also keeps an EMA of the student and exports that. CRNet curve models:
model.curve_scales [1, 2] trains the body at full and at half resolution in turn (ours), so the
weights also serve --curve-scale 2.
"""

MCMT_DOC = """\
CRNet with the multi-consistency mean teacher (MCMT, SPEC-crnet.md), also spelled --semi:
L = L_PE(labeled) + lambda_c * L_MCR(labeled + unlabeled). The student sees the clean batch, the
EMA teacher (teacher.ema_decay, 0.99) the batch plus Gaussian noise (loss.teacher_noise), and the
student's final and intermediate stages are pulled towards the teacher's (loss.lambda_mc).
Each step has data.batch_size labeled and data.unlabeled_batch_size unlabeled patches;
--labeled-frac (default 0.1 here) sets the labeled share. The exported weights are the teacher's.
"""

register_method(Method(
    name="crnet", summary="CRNet, supervised (progressive loss) on paired images", doc=CRNET_DOC,
    families=("crnet",), default_model="crnet", data="paired", teacher=False, losses=LossSection, section="loss",
    build_step=supervised_step, unread=("lambda_mc", "lambda_c", "teacher_noise", "consistency_rampup"),
))
register_method(Method(
    name="mcmt", summary="CRNet + multi-consistency mean teacher on labeled and unlabeled images (= --semi)", doc=MCMT_DOC,
    families=("crnet",), default_model="crnet", data="paired+unlabeled", teacher=True, losses=LossSection, section="loss",
    build_step=lambda ctx: MeanTeacherStep(ctx.losses, ctx.ema, ctx.teacher_forward), defaults={"data.labeled_frac": 0.1},
))
