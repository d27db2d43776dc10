"""SKF's semantic-guided colour histogram loss: each region's colour distribution should match the target's.

For every image ``b``, region ``r`` and RGB channel ``c``, soft 256-bin histograms of the output and
of the target are taken over that region's pixels, normalised to distributions, and compared with
the L1 distance. Bin membership is a difference of sigmoids (SKF, slope 400):
``m_j(x) = sigmoid(400 (x - e_j)) - sigmoid(400 (x - e_{j+1}))`` with edges ``e_j = j / 256``,
so a pixel inside ``[0, 1]`` spreads a total mass of ~1 over a few neighbouring bins (half of it at
exactly 0 or 1, where half the sigmoid lies outside the range).

**Our normalisation.** The authors' value is a sum of raw count differences divided by
``N K H W 3`` (``K`` = all 59 classes, present or not), which is
``2 / (256 K) = 1.3e-4`` times the area-weighted mean total variation below: their weights (1 in
DRBN, 1000 in LLFlow, up to 1e4) are 1.3e-4, 0.13 and 1.3 in our units. Ours:

- each histogram is divided by the region's pixel count (or probability mass), so a region's
  colour *distribution* is compared, whatever its size;
- the per-(region, channel) distance is half the L1 distance between those distributions, the
  total variation distance, in ``[0, 1]``;
- regions count equally: the mean over the regions *present* in an image (covering at least
  ``min_fraction`` of it; tinier ones are segmentation noise, and a few pixels make no
  distribution) and over the three channels, then the mean over the batch.

The value lies in ``[0, 1]`` and is large: 256 nearly hard bins notice small shifts. Measured
(``scripts/histogram_scale.py``: 16 seeded 256x256 crops of LOL training pairs, regions from
ESPNetv2-VOC on the low input, Felzenszwalb regions in brackets; "gradient" is the ratio of the
gradient norms with respect to the output, this term over the L1 loss's):

=========================  =====  ===============  ================
output                     L1     this term        gradient ratio
=========================  =====  ===============  ================
the low input              0.377  0.883 (0.940)    27 (27)
input scaled to ref. mean  0.103  0.535 (0.605)    43 (74)
reference, gamma 1/2.2     0.224  0.693 (0.807)    24 (37)
reference + noise 0.03     0.024  0.146 (0.191)    69 (102)
reference + 0.02           0.020  0.217 (0.282)    60 (96)
=========================  =====  ===============  ================

Hence :data:`RECOMMENDED_WEIGHT` = 0.05: the weighted term is 12-40% of the L1 loss in value
(54-70% for a uniform 0.02 colour cast, which is what it is for) and 1.2-5x in gradient norm
(a sparse gradient: large on the pixels that sit in the wrong bins), present throughout training
without drowning the reconstruction term; within the authors' range (1.3e-4 to 1.3). On these
LOL crops ESPNetv2 finds 1.6 classes per crop (mostly background): the term is then close to a
global colour-histogram loss; Felzenszwalb gives 11.5 regions per crop.

Vectorised over regions and channels; the bin axis is processed in chunks of ``bin_chunk`` bins,
each recomputed in the backward pass (activation checkpointing) so memory stays at one chunk's
``B x H W x 3 x bin_chunk`` membership tensor in training too. Cost: 3-5 s per 256x256 crop,
forward and backward, on one (shared) CPU thread, ~1-1.5 s forward only: meant for GPU training.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .region_masks import check_regions, compact_labels

BINS = 256
SLOPE = 400.0  # SKF's sigmoid slope
MIN_FRACTION = 0.01  # regions smaller than 1% of an image are segmentation noise, not a colour distribution
BIN_CHUNK = 32
RECOMMENDED_WEIGHT = 0.05  # next to an L1 image loss of ~0.05-0.15; measured in the module docstring


def _soft_cdf(values: torch.Tensor, edges: torch.Tensor, slope: float, regions: torch.Tensor, num_regions: int) -> torch.Tensor:
    """Soft "at least edge" counts ``G[b, r, c, j] = sum_p w[b, r, p] sigmoid(slope (x[b, p, c] - e_j))``.

    The histogram is ``G[..., j] - G[..., j + 1]`` (the sum over pixels commutes with the
    difference of sigmoids), so each edge's sigmoid is evaluated once, not twice.

    Args:
        values: ``(B, P, C)`` pixel values.
        edges: ``(n,)`` bin edges.
        regions: ``(B, P)`` int64 compact ids (labels) or ``(B, R, P)`` weights (probabilities).
        num_regions: ``R``.

    Returns:
        ``(B, R, C, n)``.
    """
    batch, pixels, channels = values.shape
    above = (values[..., None] - edges).mul_(slope).sigmoid_()  # (B, P, C, n), pixels outermost; in place: one temporary
    if regions.ndim == 3:
        return torch.einsum("brp,bpcn->brcn", regions, above)
    index = (torch.arange(batch, device=values.device)[:, None] * num_regions + regions).flatten()
    flat = above.reshape(batch * pixels, channels, -1)
    summed = flat.new_zeros(batch * num_regions, channels, flat.shape[-1]).index_add_(0, index, flat)
    return summed.view(batch, num_regions, channels, -1)


def _chunk_distance(
    output: torch.Tensor, target_cdf: torch.Tensor, edges: torch.Tensor, slope: float, regions: torch.Tensor, num_regions: int
) -> torch.Tensor:
    """``sum_j |h_out - h_target|`` over the bins between consecutive ``edges``: ``(B, R, C)``, unnormalised.

    ``target_cdf``: the target's :func:`_soft_cdf` at the same edges, ``(B, R, C, n)``.
    """
    difference = _soft_cdf(output, edges, slope, regions, num_regions) - target_cdf
    return (difference[..., :-1] - difference[..., 1:]).abs().sum(dim=-1)


def _check_settings(bins: int, slope: float, min_fraction: float, bin_chunk: int) -> None:
    if bins < 1 or slope <= 0 or bin_chunk < 1 or not 0.0 <= min_fraction <= 1.0:
        raise ValueError(
            f"need bins >= 1, slope > 0, 0 <= min_fraction <= 1, bin_chunk >= 1; got {bins}, {slope}, {min_fraction}, {bin_chunk}"
        )


def semantic_histogram_loss(
    output: torch.Tensor,
    target: torch.Tensor,
    regions: torch.Tensor,
    *,
    bins: int = BINS,
    slope: float = SLOPE,
    min_fraction: float = MIN_FRACTION,
    bin_chunk: int = BIN_CHUNK,
) -> torch.Tensor:
    """Per-region colour histogram distance between an enhanced image and its reference.

    See the module docstring for the definition and the normalisation. The target is a reference,
    not something to optimise: only ``output`` receives gradient (also through the soft bins).

    Args:
        output: ``(B, 3, H, W)`` enhanced RGB, nominally ``[0, 1]`` (values outside fall partly
            outside the histogram range).
        target: ``(B, 3, H, W)`` reference RGB in ``[0, 1]``.
        regions: ``(B, H, W)`` integer labels or ``(B, K, H, W)`` class probabilities (detached),
            e.g. from :class:`~lowlight_cli.priors.SemanticRegions` on the low-light input.
        bins: histogram bins over ``[0, 1]``.
        slope: sigmoid slope of the soft bin edges (SKF: 400 for 256 bins).
        min_fraction: a region counts in an image when its pixel count (or probability mass) is at
            least this fraction of the image's pixels (and > 0). Images with no region counting
            contribute 0.
        bin_chunk: bins per chunk (memory ``~ B * 3 * H * W * bin_chunk`` floats, forward and backward).

    Returns:
        Scalar in ``[0, 1]``; 0 when output and target agree on every counted region.

    Raises:
        ValueError: shapes that do not match, labels that are negative or not integer, bad settings.

    Example:
        >>> x = torch.rand(1, 3, 8, 8)
        >>> semantic_histogram_loss(x, x, torch.zeros(1, 8, 8, dtype=torch.long)).item()
        0.0
    """
    if output.ndim != 4 or output.shape[1] != 3 or output.shape != target.shape:
        raise ValueError(f"output and target must both be (B, 3, H, W), got {tuple(output.shape)} and {tuple(target.shape)}")
    _check_settings(bins, slope, min_fraction, bin_chunk)
    check_regions(regions, output)
    batch, channels, height, width = output.shape
    pixels = height * width
    if regions.ndim == 3:
        ids, counts = compact_labels(regions)
        weights, mass = ids.flatten(1), counts.to(output.dtype)
    else:
        weights = regions.detach().to(output.dtype).flatten(2)  # (B, K, P)
        mass = weights.sum(dim=2)
    num_regions = mass.shape[1]
    out_flat = output.flatten(2).transpose(1, 2)  # (B, P, 3)
    target_flat = target.detach().to(output.dtype).flatten(2).transpose(1, 2)
    edges = torch.linspace(0.0, 1.0, bins + 1, dtype=output.dtype, device=output.device)

    chunks = [edges[start : min(start + bin_chunk, bins) + 1] for start in range(0, bins, bin_chunk)]
    with torch.no_grad():  # the reference's histograms: once, small (B, R, 3, bins + 1)
        target_cdfs = [_soft_cdf(target_flat, chunk, slope, weights, num_regions) for chunk in chunks]
    distance = output.new_zeros(batch, num_regions, channels)
    for chunk, target_cdf in zip(chunks, target_cdfs):
        args = (out_flat, target_cdf, chunk, slope, weights, num_regions)
        if torch.is_grad_enabled() and output.requires_grad:  # recomputed in backward: one chunk in memory
            distance = distance + checkpoint(_chunk_distance, *args, use_reentrant=False)
        else:
            distance = distance + _chunk_distance(*args)

    present = (mass > 0) & (mass >= min_fraction * pixels)  # (B, R)
    per_region = 0.5 * distance.mean(dim=2) / mass.clamp(min=torch.finfo(mass.dtype).tiny)  # total variation, [0, 1]
    per_image = (per_region * present).sum(dim=1) / present.sum(dim=1).clamp(min=1)
    return per_image.mean()


class SemanticHistogramLoss(nn.Module):
    """Module form of :func:`semantic_histogram_loss`; ``forward(output, target, regions)``."""

    def __init__(self, bins: int = BINS, slope: float = SLOPE, min_fraction: float = MIN_FRACTION, bin_chunk: int = BIN_CHUNK) -> None:
        super().__init__()
        _check_settings(bins, slope, min_fraction, bin_chunk)
        self.bins, self.slope, self.min_fraction, self.bin_chunk = int(bins), float(slope), float(min_fraction), int(bin_chunk)

    def forward(self, output: torch.Tensor, target: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        return semantic_histogram_loss(
            output, target, regions, bins=self.bins, slope=self.slope, min_fraction=self.min_fraction, bin_chunk=self.bin_chunk
        )

    def extra_repr(self) -> str:
        return f"bins={self.bins}, slope={self.slope}, min_fraction={self.min_fraction}, bin_chunk={self.bin_chunk}"
