"""lowlight: low-light image enhancement — models, training, metrics and export."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
