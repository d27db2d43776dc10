"""Region brightness consistency (SCL-LLE, PIE): a region should be lit evenly, whatever its level.

Regions are per-pixel int labels (``(B, H, W)``) from a region provider
(:class:`~lowlight_cli.priors.SemanticRegions` for SCL-LLE's semantic regions,
:class:`~lowlight_cli.priors.FelzenszwalbRegions` for PIE's unsupervised ones); the loss never
sees the network or segmentation that made them.
"""

from __future__ import annotations

import torch
from torch import nn


def region_brightness_loss(images: torch.Tensor, regions: torch.Tensor, *, ignore_index: int | None = None) -> torch.Tensor:
    """Variance of brightness inside each region, per image, as the papers describe it.

    Brightness is the mean over channels. For image ``b``, every pixel's squared deviation from the
    mean brightness of its own region (in that image) is averaged over the image's pixels, i.e.
    ``sum_r (n_r / N) var_r``: the within-region variance, each region weighted by its area. The
    result is the mean over the images of the batch. Regions are per image: label 3 in image 0
    and label 3 in image 1 are different regions.

    The authors' code (``L_segexp``) differs: for each label it takes the mean over the *whole
    batch* (mixing images) and divides the region's sum by the number of pixels of the batch, not
    of the region; that "mean" is then used as the fill value for pixels outside the region. We do
    not reproduce that: it ties unrelated images together and biases every region mean towards 0.

    Vectorised: one ``unique`` over (image, label) pairs and scatter-adds; no loop over regions.

    Args:
        images: ``(B, C, H, W)`` float, nominally ``[0, 1]``.
        regions: ``(B, H, W)`` integer labels (any non-negative values, need not be contiguous).
        ignore_index: label of pixels to leave out (e.g. 255 for "void" in segmentation maps).

    Returns:
        Scalar in ``[0, 0.25]`` for images in ``[0, 1]``; 0 when every region is uniformly lit.
        Images without any counted pixel contribute 0.

    Raises:
        ValueError: shapes that do not match, non-integer or negative labels.

    Example:
        >>> images = torch.tensor([0.0, 1.0, 0.5, 0.5]).view(1, 1, 1, 4).expand(1, 3, 1, 4)
        >>> region_brightness_loss(images, torch.tensor([[[0, 0, 1, 1]]])).item()  # (0.25 + 0.25 + 0 + 0) / 4
        0.125
    """
    if images.ndim != 4 or regions.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(f"regions must be (B, H, W) for images (B, C, H, W), got {tuple(regions.shape)} and {tuple(images.shape)}")
    if regions.is_floating_point() or regions.is_complex() or regions.dtype == torch.bool:
        raise ValueError(f"regions must be integer labels, got {regions.dtype}")
    labels = regions.long().flatten(1)  # (B, HW)
    batch = images.shape[0]
    brightness = images.mean(dim=1).flatten(1)  # (B, HW)
    image_index = torch.arange(batch, device=labels.device)[:, None].expand_as(labels)
    keep = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
    values, labels, image_index = brightness[keep], labels[keep], image_index[keep]
    if bool((labels < 0).any()):
        raise ValueError("region labels must be >= 0 (or equal to ignore_index)")
    if values.numel() == 0:
        return images.sum() * 0.0
    # one id per (image, label) pair, compacted so that sparse or huge labels cost nothing
    pair = image_index * (labels.max() + 1) + labels
    _, region = torch.unique(pair, return_inverse=True)
    n_regions = int(region.max()) + 1
    counts = torch.bincount(region, minlength=n_regions).to(values.dtype)
    sums = values.new_zeros(n_regions).index_add(0, region, values)
    deviation = values - (sums / counts)[region]
    squared = values.new_zeros(batch).index_add(0, image_index, deviation * deviation)
    pixels = torch.bincount(image_index, minlength=batch).to(values.dtype)
    return (squared / pixels.clamp(min=1)).mean()


class RegionBrightnessLoss(nn.Module):
    """Module form of :func:`region_brightness_loss`; ``forward(images, regions)``."""

    def __init__(self, ignore_index: int | None = None) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, images: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        return region_brightness_loss(images, regions, ignore_index=self.ignore_index)

    def extra_repr(self) -> str:
        return f"ignore_index={self.ignore_index}"
