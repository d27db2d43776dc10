"""Choose the compute device from the user's words (``auto``, ``cpu``, ``cuda[:i]``, ``mps``)."""

from __future__ import annotations

import torch

from ..errors import DeviceError, UsageError


def is_device_spelling(spec: str) -> bool:
    """Whether ``spec`` spells a device (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``, ...), present or not."""
    spec = spec.strip().lower()
    if spec == "auto":
        return True
    try:
        torch.device(spec)
    except RuntimeError:
        return False
    return True


def resolve_device(spec: str = "auto") -> torch.device:
    """Turn a device spelling into a :class:`torch.device` that exists on this machine.

    ``auto`` picks CUDA, then Apple MPS, then the CPU.

    Raises:
        UsageError: unknown spelling.
        DeviceError: the device is not available (e.g. ``cuda`` on a machine without a GPU).
    """
    if not is_device_spelling(spec):
        raise UsageError(f"unknown device {spec.strip().lower()!r}", hint="use auto, cpu, cuda, cuda:N or mps")
    spec = spec.strip().lower()
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was asked for but no CUDA GPU is available", hint="use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"{spec}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("MPS was asked for but is not available", hint="use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {spec!r}", hint="use auto, cpu, cuda, cuda:N or mps")
    return device
