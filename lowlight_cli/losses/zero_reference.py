"""Zero-reference losses of the curve models (Zero-DCE; reused by SCL-LLE and PIE): no target image needed.

- :func:`illumination_smoothness_loss`: total variation of the curve maps, so neighbouring pixels
  get similar curves (the papers weight it 200).
- :func:`colour_constancy_loss`: the grey-world assumption on the output's channel means (weight 8).
- :func:`exposure_control_loss`: 16x16 patch means of the output pulled towards a well-exposed
  level ``E = 0.6`` (Zero-DCE; SCL-LLE and PIE replace it with their contrastive terms).

Normalisations follow Zero-DCE's code, so the papers' weights apply unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

WELL_EXPOSED = 0.6  # Zero-DCE's E
EXPOSURE_PATCH = 16


def _check_images(x: torch.Tensor, what: str, channels: int | None = 3) -> None:
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        wanted = f"(B, {channels}, H, W)" if channels is not None else "(B, C, H, W)"
        raise ValueError(f"{what} must be {wanted}, got {tuple(x.shape)}")


def illumination_smoothness_loss(curves: torch.Tensor) -> torch.Tensor:
    """Squared total variation of curve maps, Zero-DCE's normalisation.

    ``2 / B * (sum (r[y+1] - r[y])^2 / ((H-1) W) + sum (r[x+1] - r[x])^2 / (H (W-1)))``, sums over
    the batch, the channels and the pixels: per pixel and image a mean, per curve channel a sum.

    Args:
        curves: ``(B, C, H, W)`` curve parameters (DCE-Net: ``C = 24`` in ``[-1, 1]``), ``H, W >= 2``.

    Returns:
        Scalar >= 0; 0 for spatially constant curves.

    Example:
        >>> illumination_smoothness_loss(torch.ones(2, 24, 8, 8)).item()
        0.0
    """
    _check_images(curves, "curves", channels=None)
    batch, _, height, width = curves.shape
    if height < 2 or width < 2:
        raise ValueError(f"curve maps need at least 2x2 pixels, got {height}x{width}")
    vertical = (curves[:, :, 1:, :] - curves[:, :, :-1, :]).pow(2).sum() / ((height - 1) * width)
    horizontal = (curves[:, :, :, 1:] - curves[:, :, :, :-1]).pow(2).sum() / (height * (width - 1))
    return 2.0 * (vertical + horizontal) / batch


def colour_constancy_loss(images: torch.Tensor) -> torch.Tensor:
    """Grey-world colour constancy: the three channel means of each image should agree.

    Per image, with ``D_pq = (mean_p - mean_q)^2``: ``sqrt(D_rg^2 + D_rb^2 + D_gb^2)``; mean over the
    batch. The gradient at a perfectly grey image is 0 (not NaN).

    Args:
        images: ``(B, 3, H, W)`` RGB, nominally ``[0, 1]``.

    Returns:
        Scalar in ``[0, ~1.7]``; 0 when every image's channel means are equal.

    Example:
        >>> colour_constancy_loss(torch.full((1, 3, 4, 4), 0.3)).item()
        0.0
    """
    _check_images(images, "images")
    red, green, blue = images.mean(dim=(2, 3)).unbind(1)
    pairs = torch.stack([(red - green) ** 2, (red - blue) ** 2, (green - blue) ** 2], dim=1)
    return torch.linalg.vector_norm(pairs, dim=1).mean()


def exposure_control_loss(
    images: torch.Tensor, *, well_exposed: float = WELL_EXPOSED, patch: int = EXPOSURE_PATCH
) -> torch.Tensor:
    """Zero-DCE's exposure control: mean over non-overlapping patches of ``(patch mean - E)^2``.

    The patch mean is taken over the pixels and the three channels of each ``patch x patch``
    block; a border narrower than a patch is left out (as average pooling does).

    Args:
        images: ``(B, 3, H, W)`` RGB, nominally ``[0, 1]``; ``H, W >= patch``.
        well_exposed: target level ``E`` in ``[0, 1]``.
        patch: side of the patches, pixels.

    Returns:
        Scalar in ``[0, 1]``; 0 when every patch averages ``E``.

    Example:
        >>> exposure_control_loss(torch.full((1, 3, 32, 32), 0.6)).item() < 1e-12
        True
    """
    _check_images(images, "images")
    if images.shape[-2] < patch or images.shape[-1] < patch:
        raise ValueError(f"exposure control needs images of at least {patch}x{patch}, got {tuple(images.shape[-2:])}")
    means = F.avg_pool2d(images.mean(dim=1, keepdim=True), patch)
    return (means - well_exposed).pow(2).mean()


class IlluminationSmoothnessLoss(nn.Module):
    """Module form of :func:`illumination_smoothness_loss`; ``forward(curves)``."""

    def forward(self, curves: torch.Tensor) -> torch.Tensor:
        return illumination_smoothness_loss(curves)


class ColourConstancyLoss(nn.Module):
    """Module form of :func:`colour_constancy_loss`; ``forward(images)``."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return colour_constancy_loss(images)


class ExposureControlLoss(nn.Module):
    """Module form of :func:`exposure_control_loss`; ``forward(images)``."""

    def __init__(self, well_exposed: float = WELL_EXPOSED, patch: int = EXPOSURE_PATCH) -> None:
        super().__init__()
        if not 0.0 <= well_exposed <= 1.0 or patch < 1:
            raise ValueError(f"need 0 <= well_exposed <= 1 and patch >= 1, got {well_exposed} and {patch}")
        self.well_exposed, self.patch = float(well_exposed), int(patch)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return exposure_control_loss(images, well_exposed=self.well_exposed, patch=self.patch)

    def extra_repr(self) -> str:
        return f"well_exposed={self.well_exposed}, patch={self.patch}"
