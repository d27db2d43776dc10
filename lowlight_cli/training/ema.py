"""The one exponential-moving-average class: the mean teacher's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``teacher = a * teacher + (1 - a) * student`` after every optimiser step.

    The decay warms up as ``a_t = min(1 - 1/(t + 1), decay)`` (``t`` = updates so far), so an
    early teacher is not dominated by the random initialisation; buffers (none in CRNet, but
    e.g. norm statistics) are copied, not averaged. The teacher never receives gradients.

    Args:
        student: the model being trained; the teacher starts as a copy of it.
        decay: the final decay ``a`` (paper: 0.99).
        warmup: use the warm-up schedule (True) or ``decay`` from the first step.
    """

    def __init__(self, student: nn.Module, decay: float = 0.99, *, warmup: bool = True) -> None:
        self.teacher = copy.deepcopy(student).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.updates = 0

    def current_decay(self) -> float:
        """The decay the next update uses."""
        if not self.warmup:
            return self.decay
        return min(1.0 - 1.0 / (self.updates + 1), self.decay)

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """Blend the student's parameters into the teacher; copy its buffers."""
        a = self.current_decay()
        for t, s in zip(self.teacher.parameters(), student.parameters()):
            t.lerp_(s.detach(), 1.0 - a)
        for t, s in zip(self.teacher.buffers(), student.buffers()):
            t.copy_(s)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"teacher": self.teacher.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.teacher.load_state_dict(state["teacher"])
        self.updates = int(state["updates"])
