"""Pad images to a model's input multiple and crop back; the user's image is never cropped."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def round_up(value: int, multiple: int) -> int:
    """Smallest multiple of ``multiple`` that is >= ``value``."""
    return -(-value // multiple) * multiple


def pad_to(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad ``x`` ``(B, C, H, W)`` at the bottom and right to ``(height, width)``.

    Reflect padding (no hard edge for the model to react to) where the image is large enough,
    replicate padding otherwise (reflect needs the pad to be smaller than the side).
    """
    pad_h, pad_w = height - x.shape[-2], width - x.shape[-1]
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"cannot pad {tuple(x.shape[-2:])} down to {(height, width)}")
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < x.shape[-2] and pad_w < x.shape[-1] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``x`` ``(B, C, H, W)`` so that H and W are multiples of ``multiple``."""
    return pad_to(x, round_up(x.shape[-2], multiple), round_up(x.shape[-1], multiple))
