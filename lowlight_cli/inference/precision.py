"""Numeric precision of inference: fp32 on the CPU; bf16/fp16 autocast on GPUs."""

from __future__ import annotations

import contextlib

import torch

from ..errors import UsageError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(requested: str, device: torch.device) -> str:
    """Pick the precision actually used: ``fp32``, ``fp16`` or ``bf16``.

    ``auto`` means fp32 on the CPU and MPS, bf16 on CUDA GPUs that support it, else fp16.

    Raises:
        UsageError: unknown value, or half precision asked for on the CPU.
    """
    if requested not in PRECISIONS:
        raise UsageError(f"unknown precision {requested!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        if requested in ("fp16", "bf16"):
            raise UsageError(f"{requested} inference needs a CUDA GPU; the CPU runs fp32", hint="drop --precision")
        return "fp32"
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return requested


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])
