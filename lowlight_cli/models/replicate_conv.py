"""3x3 convolutions with replicate padding, without a padded copy of their input at inference.

``nn.Conv2d(padding_mode="replicate")`` pads its whole input into a new tensor before every
convolution: on a large photo that copy costs as much as a third of a narrow convolution. The
same result comes from the convolution's own zero padding (which oneDNN applies without a copy)
followed by recomputing the one-pixel frame of the output from four thin strips of the input,
padded by replication. The two computations agree to float rounding (bit for bit at the tests'
sizes, within about 1e-6 where oneDNN picks another algorithm for one of the convolutions); the
frame is what replication padding changes, so nothing else needs fixing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import needs_graph

# below this many input elements per image the padded copy is cheap and one convolution call
# beats five (a 32-channel 256x256 input breaks even: benchmarks/inference_ops.py)
MIN_ELEMENTS = 4 * 1024 * 1024


def replicate_conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(pad(x, 1, "replicate"), weight, bias)`` for a 3x3 kernel, stride 1, without
    padding ``x``: zero-padded convolution, then its outer rows and columns recomputed.

    Args:
        x: ``(B, C, H, W)`` with ``H, W >= 2``, any memory format.
        weight: ``(C_out, C, 3, 3)``.
        bias: ``(C_out,)`` or None.
    """
    out = F.conv2d(x, weight, bias, padding=1)
    out[..., :1, :] = F.conv2d(F.pad(x[..., :2, :], (1, 1, 1, 0), mode="replicate"), weight, bias)
    out[..., -1:, :] = F.conv2d(F.pad(x[..., -2:, :], (1, 1, 0, 1), mode="replicate"), weight, bias)
    out[..., :, :1] = F.conv2d(F.pad(x[..., :, :2], (1, 0, 1, 1), mode="replicate"), weight, bias)
    out[..., :, -1:] = F.conv2d(F.pad(x[..., :, -2:], (0, 1, 1, 1), mode="replicate"), weight, bias)
    return out


class ReplicateConv2d(nn.Conv2d):
    """``nn.Conv2d(c_in, c_out, 3, padding=1, padding_mode="replicate")`` (same parameters and
    state-dict keys) that runs :func:`replicate_conv3x3` on large inputs at inference. Training
    (autograd), graph capture and small inputs take ``nn.Conv2d``'s own path."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding=1, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fast = (
            x.shape[-3] * x.shape[-2] * x.shape[-1] >= MIN_ELEMENTS
            and min(x.shape[-2:]) >= 2
            and not needs_graph(x, self.weight)
        )
        return replicate_conv3x3(x, self.weight, self.bias) if fast else super().forward(x)


def conv3x3(in_channels: int, out_channels: int, padding_mode: str) -> nn.Conv2d:
    """A 3x3, stride-1 convolution keeping the size, padded by ``padding_mode`` (``zeros``,
    ``replicate`` or ``reflect``)."""
    if padding_mode == "replicate":
        return ReplicateConv2d(in_channels, out_channels)
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode=padding_mode)
