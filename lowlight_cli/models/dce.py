"""DCE-Net (Zero-DCE's curve estimator), the network of SCL-LLE and PIE; registers its sizes at import.

Seven 3x3 convolutions at full resolution estimate, per pixel, ``iterations`` RGB curve parameters
``r_i`` in ``[-1, 1]``; the image is brightened by applying the quadratic curve
``x <- x + r_i (x^2 - x)`` ``iterations`` times. The curve maps ``[0, 1]`` onto itself for any
``r_i`` in ``[-1, 1]``, so the output never clips and never goes negative.

With ``curve_scale > 1`` (Zero-DCE++'s trick) the curves are estimated on an area-downscaled copy of
the image and upsampled bilinearly before they are applied at full resolution: the network's cost
falls by ``curve_scale**2`` while the curves, which are smooth by training (their total variation
is a loss term), lose little. That model is no longer tile-exact.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import EnhancementModel, ModelInfo, check_curve_scale
from .registry import register_model

ZERO_DCE_PAPER = "Guo, Li, Guo, Loy, Hou, Kwong, Cong, Zero-Reference Deep Curve Estimation for Low-Light Image Enhancement, CVPR 2020"
SCL_LLE_PAPER = (
    "Liang, Li, Wei, Yang, Zhang, Yang, Du, Zhou, Semantically Contrastive Learning for Low-Light Image Enhancement, "
    f"AAAI 2022 (network: {ZERO_DCE_PAPER})"
)
PIE_PAPER = (
    "Liang, Xu, Li, Wei, Chen, PIE: Physics-inspired Low-light Enhancement, IJCV 2024, arXiv 2404.04586 "
    f"(network: {ZERO_DCE_PAPER})"
)
RECEPTIVE_RADIUS = 7  # seven 3x3 convolutions, one pixel each


def apply_curves(x: torch.Tensor, curves: torch.Tensor) -> torch.Tensor:
    """Apply the light-enhancement curves ``x <- x + r_i (x^2 - x)``, ``i = 1 .. K``, in order.

    Args:
        x: ``(B, 3, H, W)`` images in ``[0, 1]``.
        curves: ``(B, 3K, H, W)`` curve parameters in ``[-1, 1]``; channels ``3i .. 3i+2`` are the
            RGB parameters of iteration ``i``. Negative values brighten, positive ones darken.

    Returns:
        ``(B, 3, H, W)``, in ``[0, 1]`` up to rounding when the inputs are in range (not clamped).

    Example:
        >>> x = torch.full((1, 3, 1, 1), 0.25)
        >>> apply_curves(x, torch.full((1, 3, 1, 1), -1.0)).flatten().tolist()  # 2x - x^2
        [0.4375, 0.4375, 0.4375]
    """
    if curves.shape[1] % 3 or curves.shape[0] != x.shape[0] or curves.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"curves {tuple(curves.shape)} do not fit images {tuple(x.shape)} (need (B, 3K, H, W))")
    for r in curves.split(3, dim=1):
        x = x + r * (x * x - x)
    return x


class DCENet(EnhancementModel):
    """Zero-DCE's deep curve estimation network.

    ``conv1..conv4`` run in sequence; ``conv5`` reads ``cat(x3, x4)``, ``conv6`` ``cat(x2, x5)`` and
    ``conv7`` ``cat(x1, x6)``, each concatenation doubling the width; ``conv7`` gives ``3 *
    iterations`` channels through ``tanh``. All convolutions are 3x3 with zero padding and ReLU
    (except the last). At width 32 and 8 iterations it has 79,416 parameters, as published.

    Args:
        info: the registered :class:`ModelInfo`.
        width: channels of ``conv1..conv6``.
        iterations: number of curves applied (``conv7`` outputs ``3 * iterations`` maps).
        curve_scale: estimate the curves at ``1/curve_scale`` resolution (area downscaling) and
            upsample them bilinearly; 1 = full resolution (the papers). Above 1 the model is not
            tile-exact and its ``info`` says so.

    Raises:
        ConfigError: a size or scale below 1.

    Shapes: ``(B, 3, H, W)`` in ``[0, 1]`` -> same shape and range; any ``H``, ``W``.
    """

    def __init__(self, info: ModelInfo, width: int = 32, iterations: int = 8, curve_scale: int = 1) -> None:
        super().__init__()
        if width < 1 or iterations < 1:
            raise ConfigError(f"DCE-Net needs width >= 1 and iterations >= 1, got {width} and {iterations}")
        self.width, self.iterations = int(width), int(iterations)
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1)
        self.conv4 = nn.Conv2d(width, width, 3, padding=1)
        self.conv5 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.conv6 = nn.Conv2d(2 * width, width, 3, padding=1)
        self.conv7 = nn.Conv2d(2 * width, 3 * iterations, 3, padding=1)
        self._registered_info = info
        self.set_curve_scale(curve_scale)
        self.built_curve_scale = self.curve_scale  # the checkpoint's; set_curve_scale leaves it
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' initialisation: convolution weights ~ N(0, 0.02), biases PyTorch's default.

        Small weights give curves near 0, so training starts close to the identity.
        """
        for conv in self.convolutions():
            nn.init.normal_(conv.weight, 0.0, 0.02)

    def convolutions(self) -> tuple[nn.Conv2d, ...]:
        """``conv1 .. conv7`` in order."""
        return (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5, self.conv6, self.conv7)

    supports_curve_scale = True

    @classmethod
    def curve_capable(cls, kwargs: dict) -> bool:
        """Every DCE-Net estimates curve maps."""
        return True

    def set_curve_scale(self, curve_scale: int) -> DCENet:
        """Estimate the curves at ``1/curve_scale`` resolution from now on (weights unchanged); returns self.

        Also updates ``config`` (saved checkpoints rebuild the same way) and ``info``: tile-exact
        with a 7-pixel radius at scale 1, not tile-exact above.

        Raises:
            ConfigError: ``curve_scale`` is not an integer from 1 to 64.
        """
        self.curve_scale = check_curve_scale(curve_scale)
        self.config = {"width": self.width, "iterations": self.iterations, "curve_scale": self.curve_scale}
        exact = self.curve_scale == 1
        self.info = dataclasses.replace(
            self._registered_info,
            tile_exact=exact and self._registered_info.tile_exact,
            receptive_radius=self._registered_info.receptive_radius if exact else 0,
        )
        return self

    def curve_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The network alone: ``(B, 3, h, w)`` images -> ``(B, 3 * iterations, h, w)`` curves in ``[-1, 1]``."""
        x1 = F.relu(self.conv1(x))
        x2 = F.relu(self.conv2(x1))
        x3 = F.relu(self.conv3(x2))
        x4 = F.relu(self.conv4(x3))
        x5 = F.relu(self.conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.conv6(torch.cat([x2, x5], 1)))
        return torch.tanh(self.conv7(torch.cat([x1, x6], 1)))

    def estimate_curves(self, x: torch.Tensor) -> torch.Tensor:
        """Curves for every pixel of ``x`` ``(B, 3, H, W)``: ``(B, 3 * iterations, H, W)`` in ``[-1, 1]``.

        At ``curve_scale`` s > 1 they are estimated on the means of ``x``'s s x s blocks (``ceil(H/s) x
        ceil(W/s)``) and upsampled bilinearly (half-pixel centres), which keeps them in ``[-1, 1]``.
        """
        if self.curve_scale == 1:
            return self.curve_maps(x)
        height, width = x.shape[-2:]
        # Mean of each s x s block (the last row / column of blocks may be partial): area downscaling
        # to ceil(H/s) x ceil(W/s) that ONNX can export for any input size, unlike adaptive pooling.
        small = F.avg_pool2d(x, self.curve_scale, stride=self.curve_scale, ceil_mode=True, count_include_pad=False)
        return F.interpolate(self.curve_maps(small), size=(height, width), mode="bilinear", align_corners=False)

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``{"output": (B,3,H,W) unclamped, "stages": [], "curves": (B, 3*iterations, H, W)}``.

        The curves are what the illumination-smoothness loss regularises.
        """
        curves = self.estimate_curves(x)
        return {"output": apply_curves(x, curves), "stages": [], "curves": curves}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The enhanced image, clamped to ``[0, 1]`` (only rounding can take the curves outside)."""
        return apply_curves(x, self.estimate_curves(x)).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return f"width={self.width}, iterations={self.iterations}, curve_scale={self.curve_scale}"


def register() -> None:
    """Register the DCE-Net sizes: ``scl-lle``, ``pie``, ``zero-dce`` (same network, their papers) and ``dce-tiny``.

    ``scl-lle`` and ``pie`` run their bundled weights (``weights/scl-lle-lol``, ``weights/pie-lol``,
    trained here by ``lowlight train --method``); ``lowlight import`` converts the authors' checkpoints.
    ``zero-dce`` bundles no weights: it is there to run Zero-DCE's own checkpoint
    (``lowlight import Epoch99.pth --arch zero-dce -o DIR``), the baseline of issues 15 and 17.
    """
    common = dict(
        family="dce",
        input_multiple=1,
        tile_exact=True,
        receptive_radius=RECEPTIVE_RADIUS,
        default_tile=1024,
        memory_per_pixel=1536,  # measured: peak RSS ~1,400 bytes per pixel at 1 MP, fp32
    )
    for name, paper, system in (
        ("scl-lle", SCL_LLE_PAPER, "SCL-LLE (AAAI 2022)"),
        ("pie", PIE_PAPER, "PIE (IJCV 2024)"),
    ):
        register_model(
            ModelInfo(
                name=name,
                listed_macs=324_403_200,  # DCE-Net at width 32, as zero-dce
                description=f"{system}: Zero-DCE's DCE-Net (79k parameters, 8 pixel-wise curves), full resolution, "
                "tile-exact (--curve-scale N: curves at 1/N resolution); `lowlight import` converts the authors' checkpoint",
                paper=paper,
                bundled_weights=f"{name}-lol",
                **common,
            ),
            DCENet,
        )
    register_model(
        ModelInfo(
            name="zero-dce",
            listed_macs=324_403_200,
            description="Zero-DCE (CVPR 2020): DCE-Net, 8 pixel-wise curves, tile-exact; no bundled weights: "
            "`lowlight import Epoch99.pth --arch zero-dce -o DIR` converts the authors' checkpoint",
            paper=ZERO_DCE_PAPER,
            **common,
        ),
        DCENet,
    )
    register_model(
        ModelInfo(
            name="dce-tiny",
            listed_macs=31_555_584,
            description="DCE-Net test size (width 8)",
            paper=ZERO_DCE_PAPER,
            tags=("test",),
            **common,
        ),
        DCENet,
        width=8,
    )


register()
