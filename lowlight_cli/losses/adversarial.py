"""SKF's semantic-guided adversarial loss: least-squares GAN terms on the whole image and on its worst region.

A patch discriminator (:class:`~lowlight_cli.models.discriminator.PatchDiscriminator`) scores every
patch of an image; one pass serves both terms:

- **global**: the LSGAN error averaged over all patch scores;
- **local**: the candidates are the ``candidates`` largest regions of each image (semantic
  classes from the low-light input, or unsupervised regions); a region's error is the mean of the
  patch errors inside it, weighted by how much of each patch it covers; the *worst* region is used.
  For the generator that is the region the discriminator finds least real (largest
  ``(D - 1)^2``); for the discriminator, the fake and the real region it currently gets most
  wrong (largest ``D^2`` on fakes, largest ``(D - 1)^2`` on references).

Each loss is ``(1 - local_share) * global + local_share * local`` per image, averaged over the
batch (``local_share = 0.1``: the authors' ``lamda = 0.9``). LSGAN (Mao et al. 2017): the
discriminator minimises ``((D(real) - 1)^2 + D(fake)^2) / 2``, the generator ``(D(fake) - 1)^2``,
on raw scores.

Bugs of the authors' code (``D_Net.py``), fixed here:

(a) ``max_2_seg = max_1_seg`` makes the two region masks one tensor, so writing the second class's
    mask overwrites the first: both "regions" are the second-largest class. Here the candidates
    are distinct regions (:func:`~lowlight_cli.losses.region_masks.largest_region_masks`).
(b) the generator is judged through ``model_D(cat(out, seg_map))``: 62 channels entering a first
    conv (``conv0``) that the discriminator never trains, since it only ever sees 3-channel images
    through ``conv1``; the generator's adversarial gradient came from a random, frozen layer.
    Here the discriminator has one input path, 3-channel images, and both losses run it on
    exactly the images being judged, with the same region scoring.

Other differences: their generator loss has no local term (the method describes one; we add it);
they re-run the discriminator on images multiplied by each mask (so the blacked-out rest of the
image is part of what is judged) where we pool one score map; their scores go through a sigmoid
before the squared error (a saturating LSGAN) where ours are raw.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from .region_masks import check_regions, largest_region_masks, pool_masks

CANDIDATES = 2  # the authors' two largest classes
LOCAL_SHARE = 0.1  # the authors' 1 - lamda


def region_errors(errors: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mean patch error inside each region.

    Args:
        errors: ``(B, 1, h, w)`` per-patch LSGAN errors, ``>= 0``.
        masks: ``(B, k, h, w)`` fraction of each patch covered by each region, in ``[0, 1]``.

    Returns:
        ``(B, k)`` covered-fraction-weighted means; NaN for a region covering no patch.

    Example:
        >>> errors = torch.tensor([[[[1.0, 3.0]]]])
        >>> region_errors(errors, torch.tensor([[[[1.0, 0.0]], [[0.5, 1.0]]]])).tolist()
        [[1.0, 2.3333332538604736]]
    """
    matching = masks.ndim == 4 and masks.shape[0] == errors.shape[0] and masks.shape[2:] == errors.shape[2:]
    if errors.ndim != 4 or errors.shape[1] != 1 or not matching:
        raise ValueError(
            f"need errors (B, 1, h, w) and masks (B, k, h, w) of one size, got {tuple(errors.shape)} and {tuple(masks.shape)}"
        )
    covered = masks.sum(dim=(2, 3))
    means = (masks * errors).sum(dim=(2, 3)) / covered.clamp(min=torch.finfo(covered.dtype).tiny)
    # NaN marks an empty region without entering the graph: dividing by NaN would give NaN gradients
    # (0 * NaN) to every patch error, even with the empty region never chosen
    return means.where(covered > 0, torch.nan)


def worst_region(errors: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The region with the largest mean error, per image.

    Args:
        errors: ``(B, 1, h, w)`` per-patch errors.
        masks: ``(B, k, h, w)`` candidate regions (see :func:`region_errors`); each image needs at
            least one region covering a patch.

    Returns:
        ``(values, index)``: ``(B,)`` the worst region's mean error (differentiable in ``errors``)
        and ``(B,)`` int64 its position among the candidates.

    Raises:
        ValueError: an image without any region covering a patch.
    """
    per_region = region_errors(errors, masks)
    valid = ~per_region.isnan()
    if not bool(valid.any(dim=1).all()):
        raise ValueError("every image needs at least one region covering a patch of the score map")
    index = per_region.detach().masked_fill(~valid, -torch.inf).argmax(dim=1)
    return per_region.gather(1, index[:, None])[:, 0], index


def _candidate_masks(regions: torch.Tensor, candidates: int, scores: torch.Tensor) -> torch.Tensor:
    """The ``candidates`` largest regions, as patch-coverage fractions on the score map: ``(B, k, h, w)``."""
    masks, _ = largest_region_masks(regions, candidates, dtype=scores.dtype)
    return pool_masks(masks, tuple(scores.shape[2:]))


def _check_settings(candidates: int, local_share: float) -> None:
    if candidates < 1 or not 0.0 <= local_share <= 1.0:
        raise ValueError(f"need candidates >= 1 and 0 <= local_share <= 1, got {candidates} and {local_share}")


def _check(images: torch.Tensor, regions: torch.Tensor, candidates: int, local_share: float) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    _check_settings(candidates, local_share)
    check_regions(regions, images)


def generator_loss(
    discriminator: nn.Module,
    output: torch.Tensor,
    regions: torch.Tensor,
    *,
    candidates: int = CANDIDATES,
    local_share: float = LOCAL_SHARE,
) -> torch.Tensor:
    """The generator's LSGAN term: its output should look real, globally and in its least real region.

    The discriminator runs with its parameters detached: gradient flows through it into
    ``output`` but none accumulates in the discriminator's parameters.

    Args:
        discriminator: maps ``(B, 3, H, W)`` images to ``(B, 1, h, w)`` patch scores.
        output: ``(B, 3, H, W)`` enhanced images in ``[0, 1]``.
        regions: ``(B, H, W)`` integer labels or ``(B, K, H, W)`` class probabilities of the same
            images (e.g. from the low-light input).
        candidates: the largest regions considered per image.
        local_share: weight of the worst-region term; the global term gets ``1 - local_share``.

    Returns:
        Scalar ``>= 0``; 0 when every patch scores 1.

    Raises:
        ValueError: bad shapes or settings.
    """
    _check(output, regions, candidates, local_share)
    frozen = {name: parameter.detach() for name, parameter in discriminator.named_parameters()}
    errors = (functional_call(discriminator, frozen, (output,)) - 1.0).pow(2)
    local, _ = worst_region(errors, _candidate_masks(regions, candidates, errors))
    return ((1.0 - local_share) * errors.mean(dim=(1, 2, 3)) + local_share * local).mean()


def discriminator_loss(
    discriminator: nn.Module,
    output: torch.Tensor,
    target: torch.Tensor,
    regions: torch.Tensor,
    *,
    candidates: int = CANDIDATES,
    local_share: float = LOCAL_SHARE,
) -> torch.Tensor:
    """The discriminator's LSGAN term: references score 1, enhanced images 0, globally and in the worst regions.

    ``output`` is detached: this loss trains the discriminator only.

    Args:
        discriminator: as for :func:`generator_loss`.
        output: ``(B, 3, H, W)`` enhanced images in ``[0, 1]`` (fake).
        target: ``(B, 3, H, W)`` references in ``[0, 1]`` (real), pixel-aligned with ``output``.
        regions: regions of those images, as for :func:`generator_loss` (one map serves both).
        candidates: the largest regions considered per image.
        local_share: weight of the worst-region terms.

    Returns:
        Scalar ``>= 0``: ``(1 - s) (mean D(fake)^2 + mean (D(real) - 1)^2) / 2
        + s (worst fake region + worst real region) / 2`` averaged over images.

    Raises:
        ValueError: bad shapes or settings.
    """
    _check(output, regions, candidates, local_share)
    if target.shape != output.shape:
        raise ValueError(f"output and target must have one shape, got {tuple(output.shape)} and {tuple(target.shape)}")
    fake_errors = discriminator(output.detach()).pow(2)
    real_errors = (discriminator(target) - 1.0).pow(2)
    masks = _candidate_masks(regions, candidates, fake_errors)
    global_term = (fake_errors.mean(dim=(1, 2, 3)) + real_errors.mean(dim=(1, 2, 3))) / 2
    local_term = (worst_region(fake_errors, masks)[0] + worst_region(real_errors, masks)[0]) / 2
    return ((1.0 - local_share) * global_term + local_share * local_term).mean()


class _Settings(nn.Module):
    def __init__(self, candidates: int = CANDIDATES, local_share: float = LOCAL_SHARE) -> None:
        super().__init__()
        _check_settings(candidates, local_share)
        self.candidates, self.local_share = int(candidates), float(local_share)

    def extra_repr(self) -> str:
        return f"candidates={self.candidates}, local_share={self.local_share}"


class AdversarialGeneratorLoss(_Settings):
    """Module form of :func:`generator_loss`; ``forward(discriminator, output, regions)``.

    The discriminator is an argument, not a submodule: the training step owns it and its optimiser.
    """

    def forward(self, discriminator: nn.Module, output: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        return generator_loss(discriminator, output, regions, candidates=self.candidates, local_share=self.local_share)


class AdversarialDiscriminatorLoss(_Settings):
    """Module form of :func:`discriminator_loss`; ``forward(discriminator, output, target, regions)``."""

    def forward(self, discriminator: nn.Module, output: torch.Tensor, target: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
        return discriminator_loss(
            discriminator, output, target, regions, candidates=self.candidates, local_share=self.local_share
        )
