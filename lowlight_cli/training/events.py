"""What the training loop reports; the CLI renders these, the library never prints."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlanEvent:
    """Training is about to start: ``start_step`` of ``total_steps`` optimiser steps are done."""

    start_step: int
    total_steps: int
    steps_per_epoch: int


@dataclass(frozen=True)
class PaceEvent:
    """Seconds per optimiser step, measured over the first steps after the first (which warms up)."""

    seconds_per_step: float
    steps_per_epoch: int
    steps_left: int


@dataclass(frozen=True)
class TickEvent:
    """An optimiser step finished (every step, for a progress display; :class:`StepEvent` carries
    the loss terms every ``log_every`` steps)."""

    step: int
    epoch: int = 0


@dataclass(frozen=True)
class StepEvent:
    """An optimiser step finished (reported every ``log_every`` steps)."""

    step: int
    total_steps: int
    epoch: int
    terms: dict[str, float]
    lr: float
    patches_per_s: float


@dataclass(frozen=True)
class ValidationEvent:
    """Validation scores on the held-out training pairs: PSNR (dB; selects the best checkpoint), SSIM,
    and PSNR with each output scaled to its reference's mean grey level (exposure error left out)."""

    step: int
    psnr: float
    ssim: float
    best: bool
    psnr_gt_mean: float


@dataclass(frozen=True)
class InfoEvent:
    """A message worth showing (data found, resume point, checkpoint written)."""

    message: str
    data: dict = field(default_factory=dict)
