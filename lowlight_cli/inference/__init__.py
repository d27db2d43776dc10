"""Inference: padding, tiling, precision, devices and the :class:`Enhancer` that combines them."""

from __future__ import annotations

from .device import resolve_device
from .engine import Enhancer, Event, InferenceConfig, Notice, TileProgress, auto_curve_scale, auto_tile_size
from .onnx_backend import OnnxModel
from .padding import pad_to, pad_to_multiple, round_up
from .precision import PRECISIONS, resolve_precision
from .tiling import Tile, plan_tiles, tile_starts, tiled_forward, window_1d

__all__ = [
    "PRECISIONS",
    "Enhancer",
    "Event",
    "InferenceConfig",
    "Notice",
    "OnnxModel",
    "Tile",
    "TileProgress",
    "auto_curve_scale",
    "auto_tile_size",
    "pad_to",
    "pad_to_multiple",
    "plan_tiles",
    "resolve_device",
    "resolve_precision",
    "round_up",
    "tile_starts",
    "tiled_forward",
    "window_1d",
]
