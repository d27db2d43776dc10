"""``torch.compile`` for inference and training: the toolchain check and the compiled callable."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import torch

from ..errors import ConfigError

CXX_NAMES = ("g++", "c++", "clang++")


def check_compile_toolchain(device: torch.device) -> None:
    """Fail early where ``torch.compile`` cannot work: on the CPU, Inductor generates C++ and needs a compiler.

    Raises:
        ConfigError: no C++ compiler on PATH (``$CXX`` if set, else g++, c++ or clang++).
    """
    if device.type != "cpu":
        return
    names = [os.environ["CXX"]] if os.environ.get("CXX") else list(CXX_NAMES)
    if not any(shutil.which(name) for name in names):
        raise ConfigError("compile (--compile) on the CPU needs a C++ compiler (torch.compile generates C++ there); "
                          f"none of {', '.join(names)} is on PATH",
                          hint="install one (e.g. g++), or run without compiling")


def compile_module(module: torch.nn.Module, *, fixed_shapes: bool) -> Callable[..., torch.Tensor]:
    """``torch.compile(module)``; ``fixed_shapes`` compiles for the exact shapes seen (tiles, patches).

    The module itself stays plain (its state dict, attributes and checkpoints are unchanged), and
    the compiled callable reads its current weights on every call (tested for the mean teacher,
    whose weights the EMA changes in place).
    """
    return torch.compile(module, dynamic=False if fixed_shapes else None)
