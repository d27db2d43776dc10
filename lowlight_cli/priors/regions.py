"""Region providers: per-pixel region labels for region-wise losses (histogram, adversarial, contrastive).

Losses take label maps, not networks. A provider maps RGB images ``(B, 3, H, W)`` in ``[0, 1]`` to
``(B, H, W)`` int64 labels on the images' device; labels are computed without gradient (regions are
a fixed partition for the loss, not something to optimise).

- :class:`SemanticRegions`: the argmax class of a segmentation network (labels are class indices,
  e.g. PASCAL VOC 0..20), as SCL-LLE and SKF use semantic maps.
- :class:`FelzenszwalbRegions`: unsupervised graph-based segmentation (labels 0..n-1 per image),
  as PIE uses; the offline default, since it needs no trained network.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import LowlightError, UsageError
from .base import FrozenNetwork, check_images


class RegionProvider(Protocol):
    """Anything that maps ``(B, 3, H, W)`` RGB ``[0, 1]`` images to ``(B, H, W)`` int64 region labels."""

    def __call__(self, images: Tensor) -> Tensor: ...


class SemanticRegions(nn.Module):
    """Regions = the most likely class of a frozen segmentation network, per pixel.

    Args:
        network: a frozen network of kind ``segmentation`` (e.g. ``create_prior("espnetv2-voc")``).

    Raises:
        UsageError: the network does not segment.
    """

    def __init__(self, network: FrozenNetwork) -> None:
        super().__init__()
        if network.info.kind != "segmentation":
            raise UsageError(
                f"{network.info.name} is a {network.info.kind} network; semantic regions need a segmentation network",
                hint="use espnetv2-voc, or FelzenszwalbRegions for unsupervised regions",
            )
        self.network = network

    @property
    def classes(self) -> tuple[str, ...]:
        """Class name of each label value (empty if the network does not name them)."""
        return self.network.info.classes

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` RGB ``[0, 1]`` -> ``(B, H, W)`` int64 class indices in ``[0, num_classes)``."""
        return self.network.logits(images.detach()).argmax(dim=1)


class FelzenszwalbRegions(nn.Module):
    """Regions from Felzenszwalb & Huttenlocher's graph segmentation (scikit-image), per image, on the CPU.

    Args:
        scale: larger means larger regions (scikit-image's ``scale``, for 8-bit-range images).
        sigma: Gaussian smoothing before segmenting, pixels.
        min_size: smallest region, pixels (merged into a neighbour otherwise).

    Raises:
        LowlightError: scikit-image is not installed.
    """

    def __init__(self, scale: float = 100.0, sigma: float = 0.5, min_size: int = 300) -> None:
        super().__init__()
        try:
            from skimage.segmentation import felzenszwalb
        except ImportError:  # optional dependency
            raise LowlightError(
                "unsupervised regions need scikit-image", hint="pip install 'lowlight-cli[synthetic]' (or scikit-image)"
            ) from None
        self._segment = felzenszwalb
        self.scale, self.sigma, self.min_size = scale, sigma, min_size

    def forward(self, images: Tensor) -> Tensor:
        """``(B, 3, H, W)`` RGB ``[0, 1]`` -> ``(B, H, W)`` int64 labels ``0 .. n_b - 1`` for image ``b``."""
        check_images(images)
        pixels = images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
        labels = [
            self._segment(image, scale=self.scale, sigma=self.sigma, min_size=self.min_size, channel_axis=-1)
            for image in pixels
        ]
        return torch.from_numpy(np.stack(labels).astype(np.int64)).to(images.device)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, sigma={self.sigma}, min_size={self.min_size}"
