"""Training: one fit loop driven by step objects (supervised, mean teacher), resumable, distributed."""

from __future__ import annotations

from .config import TrainConfig, build_config, load_config, save_config
from .ema import EMA
from .engine import Trainer
from .events import InfoEvent, PaceEvent, PlanEvent, StepEvent, ValidationEvent

__all__ = ["EMA", "InfoEvent", "PaceEvent", "PlanEvent", "StepEvent", "TrainConfig", "Trainer", "ValidationEvent", "build_config", "load_config", "save_config"]
