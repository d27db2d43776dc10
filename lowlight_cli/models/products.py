"""Matrix products that sum over a long axis (all pixels of a feature map), done in float32."""

from __future__ import annotations

import contextlib

import torch


def long_inner_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` in float32, whatever ``a``'s dtype and any autocast, for products whose inner axis
    is long (``H*W`` or ``C*H*W``) and whose result is small (a Gram matrix of a few rows).

    In bfloat16, oneDNN's batched product (torch 2.13, one thread) kills the process with SIGFPE
    for some such shapes, e.g. ``(1, 3, 524288) @ (1, 524288, 3)``: layer attention on a 1024 x
    1024 photo. Float32 avoids that and keeps the long sums accurate; the copies cost little next
    to the layer that made the maps.

    Args:
        a: ``(..., M, K)``; b: ``(..., K, N)``, any float dtype.

    Returns:
        ``(..., M, N)`` float32.
    """
    device = a.device.type
    # torch releases before MPS autocast refuse even a disabled autocast on devices they have none for
    off = torch.autocast(device, enabled=False) if device in ("cpu", "cuda") else contextlib.nullcontext()
    with off:
        return torch.matmul(a.float(), b.float())
