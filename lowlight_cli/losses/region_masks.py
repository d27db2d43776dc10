"""Regions as the region-wise losses take them (SKF's histogram and adversarial terms).

A loss receives regions in one of two forms and never the network or segmentation that made them:

- **labels** ``(B, H, W)`` integer, ``>= 0``: a hard partition per image, from
  :class:`~lowlight_cli.priors.SemanticRegions` (class indices) or
  :class:`~lowlight_cli.priors.FelzenszwalbRegions` (``0 .. n_b - 1``). Labels are per image:
  label 3 in image 0 and label 3 in image 1 are different regions; values need not be contiguous.
- **probabilities** ``(B, K, H, W)`` float, ``>= 0``: soft class memberships (e.g. a segmentation
  network's softmax). Region ``k`` of image ``b`` weighs pixel ``p`` by ``regions[b, k, p]``.

Regions are a fixed partition for the loss, never something to optimise: probabilities are
detached here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def check_regions(regions: torch.Tensor, images: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``regions`` are labels or probabilities for ``images``.

    Args:
        regions: ``(B, H, W)`` integer labels ``>= 0`` or ``(B, K, H, W)`` float weights ``>= 0``.
        images: ``(B, C, H, W)``.
    """
    batch, _, height, width = images.shape
    if regions.ndim == 3:
        if regions.is_floating_point() or regions.is_complex() or regions.dtype == torch.bool:
            raise ValueError(f"(B, H, W) regions must be integer labels, got {regions.dtype}")
        if regions.shape != (batch, height, width):
            raise ValueError(f"labels must be (B, H, W) = {(batch, height, width)}, got {tuple(regions.shape)}")
        if regions.numel() and bool((regions < 0).any()):
            raise ValueError("region labels must be >= 0")
    elif regions.ndim == 4:
        if not regions.is_floating_point():
            raise ValueError(f"(B, K, H, W) regions must be float probabilities, got {regions.dtype}")
        if regions.shape[0] != batch or regions.shape[2:] != (height, width) or regions.shape[1] < 1:
            wanted = (batch, height, width)
            raise ValueError(f"probabilities must be (B, K, H, W) with (B, H, W) = {wanted}, got {tuple(regions.shape)}")
        if bool((regions < 0).any()):
            raise ValueError("region probabilities must be >= 0")
    else:
        raise ValueError(f"regions must be (B, H, W) labels or (B, K, H, W) probabilities, got {tuple(regions.shape)}")


def compact_labels(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Renumber each image's labels ``0 .. n_b - 1`` (in increasing label order) and count them.

    One ``unique`` over (image, label) pairs; no loop over images or labels.

    Args:
        labels: ``(B, H, W)`` integer labels ``>= 0``.

    Returns:
        ``ids`` ``(B, H, W)`` int64 in ``[0, n_b)`` and ``counts`` ``(B, R)`` int64 pixels per
        region, ``R = max_b n_b``; ``counts[b, r] = 0`` for ``r >= n_b``.

    Example:
        >>> ids, counts = compact_labels(torch.tensor([[[7, 7, 2]], [[5, 5, 5]]]))
        >>> ids.tolist(), counts.tolist()
        ([[[1, 1, 0]], [[0, 0, 0]]], [[1, 2], [3, 0]])
    """
    batch = labels.shape[0]
    flat = labels.long().flatten(1)  # (B, P)
    image = torch.arange(batch, device=flat.device)[:, None].expand_as(flat)
    span = int(flat.max()) + 1 if flat.numel() else 1
    pairs, inverse = torch.unique(image * span + flat, return_inverse=True)  # sorted: grouped by image
    per_image = torch.bincount(pairs // span, minlength=batch)
    first = torch.cumsum(per_image, 0) - per_image
    ids = inverse - first[image]
    regions = int(per_image.max()) if batch else 0
    counts = torch.bincount((image * regions + ids).flatten(), minlength=batch * regions).view(batch, regions)
    return ids.view_as(labels), counts


def largest_region_masks(regions: torch.Tensor, k: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks of the ``k`` largest regions of each image, largest first, all distinct.

    Args:
        regions: ``(B, H, W)`` labels or ``(B, K, H, W)`` probabilities (see :func:`check_regions`).
        k: how many regions per image, ``>= 1``.
        dtype: float dtype of the masks.

    Returns:
        ``masks`` ``(B, k', H, W)`` in ``[0, 1]`` and ``areas`` ``(B, k')`` in pixels (float), with
        ``k' = min(k, R)`` (``R``: most regions in an image of the batch, or ``K``). An image with
        fewer than ``k'`` regions gets all-zero masks of area 0 in the remaining places.

    Example:
        >>> masks, areas = largest_region_masks(torch.tensor([[[4, 4, 4, 9]]]), 5)
        >>> masks[0, :, 0].tolist(), areas.tolist()
        ([[1.0, 1.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], [[3.0, 1.0]])
    """
    if k < 1:
        raise ValueError(f"need at least one region per image, got k={k}")
    if regions.ndim == 3:
        ids, counts = compact_labels(regions)
        areas, order = counts.topk(min(k, counts.shape[1]), dim=1)  # topk of distinct ids: never one region twice
        masks = (ids[:, None] == order[:, :, None, None]) & (areas > 0)[:, :, None, None]
        return masks.to(dtype), areas.to(dtype)
    weights = regions.detach().to(dtype)
    areas, order = weights.sum(dim=(2, 3)).topk(min(k, weights.shape[1]), dim=1)
    index = order[:, :, None, None].expand(-1, -1, *weights.shape[2:])
    return weights.gather(1, index), areas


def pool_masks(masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Area-average masks to a coarser grid (e.g. a discriminator's patch map).

    Args:
        masks: ``(B, k, H, W)`` in ``[0, 1]``.
        size: ``(h, w)`` of the grid.

    Returns:
        ``(B, k, h, w)``: the fraction of each cell covered by each region (adaptive average pooling:
        exact ``H/h x W/w`` blocks when the sizes divide).
    """
    if tuple(masks.shape[2:]) == tuple(size):
        return masks
    return F.adaptive_avg_pool2d(masks, size)
