"""A photo's noise level and the noise a brightening curve leaves in each pixel (**ours**).

The default photo model ends with a guided filter (:mod:`.chroma`) whose ``eps`` separates noise
(windows that vary less than it are averaged) from texture (kept). One ``eps`` for every photo and
pixel keeps the amplified noise of a night sky as if it were texture; :func:`noise_eps` gives the
variance the noise has in each output pixel, to be added to it (:class:`AmplifiedNoise` carries
what it needs to the filter, which computes it at the resolution it fits at).

The input's noise is Immerkaer's estimate (Fast Noise Variance Estimation, CVIU 64(2), 1996): the
mean absolute response of the image's luma to the difference of two Laplacians
``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` (zero on any locally linear image), times
``sqrt(pi / 2) / 6``. Here it is taken inside the ``s x s`` cells of the pixel-unshuffled input
(the positions whose 3x3 neighbourhood lies in the cell), so its mean over a photo is the
pixel-weighted mean over any partition of the photo into whole cells: tiled inference gets the
whole photo's value band by band, as it gets CRNet's global context (``CRNet.image_context``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .base import area_mean, needs_graph
from .chroma import LUMA_WEIGHTS

# Immerkaer: sigma = sqrt(pi / 2) / 6 * mean |luma * mask|
IMMERKAER_SCALE = math.sqrt(math.pi / 2) / 6
_MASK = ((1.0, -2.0, 1.0), (-2.0, 4.0, -2.0), (1.0, -2.0, 1.0))


def cell_noise_taps(cell: int) -> torch.Tensor:
    """``((cell - 2)^2, 3 cell^2, 1, 1)`` weights of a 1x1 convolution that takes a pixel-unshuffled RGB
    image (channel ``c cell^2 + i cell + j`` holds colour ``c`` at row ``i``, column ``j`` of each cell)
    to the mask's response on luma at each position of the cell whose neighbours lie in the cell."""
    if cell < 3:
        raise ValueError(f"a cell of {cell} px has no position with all 8 neighbours inside it")
    inner = cell - 2
    taps = torch.zeros(inner * inner, 3 * cell * cell)
    for i in range(1, cell - 1):
        for j in range(1, cell - 1):
            row = (i - 1) * inner + (j - 1)
            for a in (-1, 0, 1):
                for b in (-1, 0, 1):
                    for colour, weight in enumerate(LUMA_WEIGHTS):
                        taps[row, colour * cell * cell + (i + a) * cell + (j + b)] += _MASK[a + 1][b + 1] * weight
    return taps[:, :, None, None]


def cell_noise_response(unshuffled: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``(B, 1, h, w)`` float32: the mean absolute mask response in each cell of ``unshuffled``
    ``(B, 3 cell^2, h, w)`` (``taps`` from :func:`cell_noise_taps`). Its mean over a photo times
    :data:`IMMERKAER_SCALE` is the photo's noise standard deviation (``[0, 1]`` scale)."""
    return F.conv2d(unshuffled.float(), taps.float()).abs().mean(dim=1, keepdim=True)


@dataclass(frozen=True)
class AmplifiedNoise:
    """The noise a brightening curve left in each pixel of its output, for the guided filter's ``eps``
    (:func:`~lowlight_cli.models.chroma.smooth_chroma`): the curve's brightening ``b = 1 - 1/g``
    (``brightening``, ``(B, 1, H, W)``, the green channel's), the input's noise ``sigma`` (``(B, 1)``
    or ``(B, 1, 1, 1)``, ``[0, 1]`` scale) and a ``strength``. The filter asks for the variance
    at the resolution it fits at (:meth:`variance`), from the luma it has there anyway."""

    brightening: torch.Tensor
    sigma: torch.Tensor
    strength: float

    def variance(self, luma: torch.Tensor, gate: torch.Tensor, scale: int = 1) -> torch.Tensor:
        """:func:`noise_eps` for the output's ``luma`` and the filter's ``gate`` at ``1/scale``
        resolution (``ceil``-rounded area means, as the filter takes them)."""
        brightening = self.brightening if scale == 1 else area_mean(self.brightening.float(), scale, ceil_mode=True)
        return noise_eps(luma, brightening, gate, self.sigma, self.strength)


def noise_eps(luma: torch.Tensor, brightening: torch.Tensor, gate: torch.Tensor, sigma: torch.Tensor,
              strength: float) -> torch.Tensor:
    """``strength * gate * (slope * sigma)^2``, ``(B, 1, H, W)`` float32: the variance the input's noise
    ``sigma`` ``(B, 1, 1, 1)`` has after the curve, weighted by the filter's ``gate``.

    ``slope`` is the derivative of the curve ``f = g y / (1 + (g - 1) y)`` at the pixel, written in
    what the model has at hand, its brightening ``b = 1 - 1/g`` (``brightening``, ``(B, 1, H, W)``,
    the green channel's) and the output's luma ``f`` (``luma``, ``(B, 1, H, W)``, not changed):
    ``(1 - b f)^2 / (1 - b)`` (``g`` at black, ``1/g`` at white). Where the model did not
    brighten, ``b = 0`` and the gate is 0.
    """
    f, b, gate = luma.float(), brightening.float(), gate.float()
    scale = sigma.float().reshape(-1, 1, 1, 1)
    if needs_graph(f, b, gate, scale):
        slope = (1.0 - b * f.clamp(0.0, 1.0)).square() / (1.0 - b)
        return strength * gate * (slope * scale).square()
    # the same, in place on one new map: a full-resolution channel, about eight passes
    slope = f.clamp(0.0, 1.0).mul_(b).neg_().add_(1.0).square_().div_(torch.rsub(b, 1.0))
    return slope.mul_(scale).square_().mul_(gate).mul_(strength)
