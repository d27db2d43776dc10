"""One check the losses share: tensors compared element by element must have one shape."""

from __future__ import annotations

import torch


def check_same_shape(what: str, **tensors: torch.Tensor) -> None:
    """Raise ``ValueError`` unless every tensor has the same shape: a loss that compares them element
    by element would otherwise broadcast a batch of 1 against a batch of 2, or a gray image against
    RGB, and return a plausible number.

    Example:
        >>> check_same_shape("l1", output=torch.zeros(2, 3, 4, 4), target=torch.zeros(2, 3, 4, 4))
        >>> check_same_shape("l1", output=torch.zeros(2, 3, 4, 4), target=torch.zeros(1, 3, 4, 4))
        Traceback (most recent call last):
        ...
        ValueError: l1: output (2, 3, 4, 4) and target (1, 3, 4, 4) must have the same shape
    """
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    if len(set(shapes.values())) > 1:
        named = [f"{name} {shape}" for name, shape in shapes.items()]
        raise ValueError(f"{what}: {', '.join(named[:-1])} and {named[-1]} must have the same shape")
