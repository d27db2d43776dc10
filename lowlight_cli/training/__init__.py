"""Training: one fit loop driven by the step objects of registered methods, resumable, distributed.

Each system's module registers its methods (``steps``: crnet, mcmt; ``unpaired_curves``: scl-lle,
pie; ``semi_llie``: semi-llie; ``skf``: skf); importing them here fills :data:`METHODS`.
"""

from __future__ import annotations

from . import steps, unpaired_curves, semi_llie, skf  # noqa: F401 - registration of the methods, in listing order
from .config import TrainConfig, build_config, load_config, save_config
from .ema import EMA
from .engine import Trainer
from .events import InfoEvent, PaceEvent, PlanEvent, StepEvent, TickEvent, ValidationEvent
from .methods import METHODS, Method, StepContext, register_method

__all__ = [
    "EMA", "InfoEvent", "METHODS", "Method", "PaceEvent", "PlanEvent", "StepContext", "StepEvent", "TickEvent", "TrainConfig", "Trainer",
    "ValidationEvent", "build_config", "load_config", "register_method", "save_config",
]
