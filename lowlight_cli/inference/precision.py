"""Numeric precision: fp32 by default on the CPU; bf16/fp16 autocast on GPUs; bf16 on CPUs that have it."""

from __future__ import annotations

import contextlib
import os

import torch

from ..errors import UsageError

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), so bf16 autocast speeds it up.

    Without either, PyTorch emulates bf16 on the CPU and autocast only makes it slower.
    """
    return onednn_isa_allows_bf16() and _cpu_has_bf16_hardware()


def _cpu_has_bf16_hardware() -> bool:
    """AVX512-BF16 or AMX in the CPU, whatever ``ONEDNN_MAX_CPU_ISA`` lets oneDNN use."""
    cpu = getattr(torch, "cpu", None)
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)


def onednn_isa_allows_bf16() -> bool:
    """False when ``ONEDNN_MAX_CPU_ISA`` limits oneDNN below AVX512-BF16 (``AVX2``, ``AVX512_CORE``, ...):
    the CPU may have bf16, but oneDNN would emulate it."""
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    return not isa or isa == "ALL" or any(key in isa for key in ("BF16", "AMX", "FP16", "AVX10"))


def resolve_precision(requested: str, device: torch.device, *, cpu_bf16: bool = False) -> str:
    """Pick the precision actually used: ``fp32``, ``fp16`` or ``bf16``.

    ``auto`` means bf16 on CUDA GPUs that support it, else fp16; fp32 on MPS; on the CPU fp32, or
    with ``cpu_bf16`` bf16 where the CPU has native bf16 (:func:`cpu_has_native_bf16`; ``lowlight
    enhance`` asks for it: faster, outputs within a few hundredths of a dB, README "Speed"). An
    explicit ``bf16`` on the CPU is honoured where the CPU has native bf16.

    Raises:
        UsageError: unknown value, fp16 off CUDA, or bf16 on a CPU (or MPS) without native bf16.
    """
    if requested not in PRECISIONS:
        raise UsageError(f"unknown precision {requested!r}", hint=f"use one of {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        wants_bf16 = requested == "bf16" or (requested == "auto" and cpu_bf16)
        if device.type == "cpu" and wants_bf16 and cpu_has_native_bf16():
            return "bf16"
        if device.type == "cpu" and requested == "bf16":
            if not onednn_isa_allows_bf16() and _cpu_has_bf16_hardware():  # the CPU has it; the environment hides it
                isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip()
                raise UsageError(f"bf16 is switched off by ONEDNN_MAX_CPU_ISA={isa}, which limits oneDNN below this "
                                 "CPU's AVX512-BF16 / AMX, so it would only be emulated",
                                 hint="unset ONEDNN_MAX_CPU_ISA, or drop --precision (fp32)")
            raise UsageError("bf16 needs a CUDA GPU or a CPU with AVX512-BF16 or AMX; this CPU would only emulate it",
                             hint="drop --precision (fp32)")
        if requested in ("fp16", "bf16"):
            raise UsageError(f"{requested} needs a CUDA GPU (bf16: or a CPU with AVX512-BF16 or AMX); {device.type} runs fp32",
                             hint="drop --precision")
        return "fp32"
    if requested == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return requested


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast context for ``precision`` on ``device`` (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=_DTYPES[precision])
