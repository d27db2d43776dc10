"""Contrastive losses of the unpaired curve methods: pull the enhanced image (anchor) towards
normal-light positives and push it away from badly exposed negatives.

- brightness (SCL-LLE, PIE): distance = mean absolute difference of the channel-mean maps
  ``g(x) = mean_c x``, hinge ``max(d(Y, P) - d(Y, N) + 0.3, 0)``;
- texture (SCL-LLE): distance = summed squared Gram-matrix differences of frozen features, same
  hinge with margin 0.04;
- texture (PIE): the InfoNCE form ``-log(e^{d_AN} / (e^{d_AN} + e^{d_AP})) = softplus(d_AP - d_AN)``.

Positives and negatives are unpaired with the anchors, so every anchor is compared with every
positive and every negative (``(B, K)`` distance matrices) and the results are averaged. The
authors' code instead pairs anchor ``b`` with positive ``b`` and sums distances over the batch
before one hinge; our terms do not grow with the batch and one image's slack cannot hide
another's violation. The weights of the papers (10, 5, 10) still apply up to that normalisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..priors import FrozenNetwork
from .features import FrozenFeatures, gram_distances

BRIGHTNESS_MARGIN = 0.3
TEXTURE_MARGIN = 0.04
TEXTURE_LAYERS = ("relu1_2", "relu2_2")  # SCL-LLE's Gram layers; PIE's InfoNCE adds relu3_3 (vgg16) / relu3_1


def brightness_distances(anchor: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """Brightness distance of every anchor to every other image.

    ``d[b, k] = mean_pixels | g(anchor[b]) - g(others[k]) |`` with ``g`` the mean over channels.

    Args:
        anchor: ``(B, C, H, W)`` images in ``[0, 1]``.
        others: ``(K, C, H, W)``, same size.

    Returns:
        ``(B, K)`` in ``[0, 1]``.

    Example:
        >>> brightness_distances(torch.zeros(1, 3, 2, 2), torch.full((2, 3, 2, 2), 0.5)).tolist()
        [[0.5, 0.5]]
    """
    if anchor.ndim != 4 or others.ndim != 4 or anchor.shape[1:] != others.shape[1:]:
        raise ValueError(f"brightness distances need images of one size, got {tuple(anchor.shape)} and {tuple(others.shape)}")
    a = anchor.mean(dim=1).flatten(1)  # (B, HW)
    o = others.mean(dim=1).flatten(1)  # (K, HW)
    return (a[:, None] - o[None]).abs().mean(dim=2)


def contrastive_hinge(positive_distances: torch.Tensor, negative_distances: torch.Tensor, margin: float) -> torch.Tensor:
    """Triplet hinge per anchor: ``max(mean_k d_AP - mean_k d_AN + margin, 0)``, averaged over anchors.

    Args:
        positive_distances: ``(B, K_p)`` anchor-positive distances.
        negative_distances: ``(B, K_n)`` anchor-negative distances.
        margin: how much closer to the positives than to the negatives an anchor must be, >= 0.

    Returns:
        Scalar >= 0; 0 once every anchor is ``margin`` closer to its positives.

    Example:
        >>> round(contrastive_hinge(torch.tensor([[0.1], [0.5]]), torch.tensor([[0.6], [0.6]]), 0.3).item(), 4)
        0.1
    """
    return F.relu(positive_distances.mean(dim=1) - negative_distances.mean(dim=1) + margin).mean()


def contrastive_softplus(positive_distances: torch.Tensor, negative_distances: torch.Tensor) -> torch.Tensor:
    """InfoNCE with one positive and one negative: ``softplus(d_AP - d_AN)`` over every (anchor,
    positive, negative) triple, averaged.

    Args:
        positive_distances: ``(B, K_p)``.
        negative_distances: ``(B, K_n)``.

    Returns:
        Scalar > 0; ``log 2`` when the distances are equal, towards 0 as negatives move away.

    Example:
        >>> round(contrastive_softplus(torch.zeros(1, 1), torch.zeros(1, 1)).item(), 4)
        0.6931
    """
    return F.softplus(positive_distances[:, :, None] - negative_distances[:, None, :]).mean()


def brightness_contrastive_loss(
    output: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor, *, margin: float = BRIGHTNESS_MARGIN
) -> torch.Tensor:
    """SCL-LLE's and PIE's brightness contrastive hinge ``max(|g(Y)-g(P)|_1 - |g(Y)-g(N)|_1 + margin, 0)``.

    Args:
        output: ``(B, 3, H, W)`` enhanced images (anchors), nominally ``[0, 1]``.
        positives: ``(K_p, 3, H, W)`` normal-light images in ``[0, 1]`` (constants: detached).
        negatives: ``(K_n, 3, H, W)`` under/over-exposed images in ``[0, 1]`` (constants: detached).
        margin: hinge margin (0.3 in both papers).

    Returns:
        Scalar in ``[0, 1 + margin]``.
    """
    return contrastive_hinge(
        brightness_distances(output, positives.detach()), brightness_distances(output, negatives.detach()), margin
    )


def texture_contrastive_loss(
    output_features: Sequence[torch.Tensor],
    positive_features: Sequence[torch.Tensor],
    negative_features: Sequence[torch.Tensor],
    *,
    margin: float = TEXTURE_MARGIN,
) -> torch.Tensor:
    """SCL-LLE's texture contrastive hinge on Gram-matrix distances of frozen features.

    Args:
        output_features: per layer ``(B, C_l, h_l, w_l)`` features of the enhanced images.
        positive_features: the same layers of the positives, ``(K_p, C_l, ., .)`` (detached here).
        negative_features: the same layers of the negatives, ``(K_n, C_l, ., .)`` (detached here).
        margin: hinge margin (0.04 in SCL-LLE).

    Returns:
        Scalar >= 0.
    """
    return contrastive_hinge(
        gram_distances(output_features, [f.detach() for f in positive_features]),
        gram_distances(output_features, [f.detach() for f in negative_features]),
        margin,
    )


def texture_infonce_loss(
    output_features: Sequence[torch.Tensor],
    positive_features: Sequence[torch.Tensor],
    negative_features: Sequence[torch.Tensor],
) -> torch.Tensor:
    """PIE's InfoNCE-style texture loss ``softplus(d_AP - d_AN)`` on Gram-matrix distances.

    Args: as :func:`texture_contrastive_loss` (no margin).

    Returns:
        Scalar > 0.
    """
    return contrastive_softplus(
        gram_distances(output_features, [f.detach() for f in positive_features]),
        gram_distances(output_features, [f.detach() for f in negative_features]),
    )


class BrightnessContrastiveLoss(nn.Module):
    """Module form of :func:`brightness_contrastive_loss`; ``forward(output, positives, negatives)``."""

    def __init__(self, margin: float = BRIGHTNESS_MARGIN) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = float(margin)

    def forward(self, output: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        return brightness_contrastive_loss(output, positives, negatives, margin=self.margin)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


class TextureContrastiveLoss(FrozenFeatures):
    """Texture contrast through a frozen network; ``forward(output, positives, negatives)``, images in ``[0, 1]``.

    Args:
        network: frozen feature network (``create_prior("vgg16")`` as in the papers, or
            ``vgg19-normalised``).
        layers: its layers whose Gram matrices are compared.
        form: ``hinge`` (SCL-LLE, :func:`texture_contrastive_loss`) or ``infonce`` (PIE,
            :func:`texture_infonce_loss`).
        margin: of the hinge (ignored by ``infonce``).
    """

    def __init__(
        self,
        network: FrozenNetwork,
        layers: Iterable[str] = TEXTURE_LAYERS,
        form: Literal["hinge", "infonce"] = "hinge",
        margin: float = TEXTURE_MARGIN,
    ) -> None:
        super().__init__(network, layers)
        if form not in ("hinge", "infonce"):
            raise ValueError(f"form must be 'hinge' or 'infonce', got {form!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.form, self.margin = form, float(margin)

    def forward(self, output: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
        anchor = self.features(output)
        pos, neg = self.reference_features(positives), self.reference_features(negatives)
        if self.form == "infonce":
            return texture_infonce_loss(anchor, pos, neg)
        return texture_contrastive_loss(anchor, pos, neg, margin=self.margin)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, form={self.form!r}, margin={self.margin}"
