"""Semi-LLIE's semantic-aware contrastive loss: the student's enhancement should look, to a frozen
recogniser, like the teacher's and unlike the un-enhanced input.

``L = d(a, p) / (d(a, n) + eps)`` with ``d`` the mean absolute difference, computed twice and
summed: in the recogniser's image embedding and in its class probabilities (RAM's embedding and tag
logits in the paper; SqueezeNet's pooled fire9 features and its 1000 ImageNet class probabilities
here). As in the authors' code the distances are averaged over the batch before the ratio (anchor
``b`` is compared with its own positive and negative only), so one image whose enhancement barely
differs from its input cannot blow the ratio up.

The authors compute the anchor's embedding under ``no_grad``, so their loss trains nothing; here
the anchor's embedding is differentiable through the frozen recogniser into the enhanced image.
Positives and negatives are data: computed without gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..priors import FrozenNetwork
from .shapes import check_same_shape

CONTRAST_EPS = 1e-7  # the authors'


def semantic_contrastive_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                              eps: float = CONTRAST_EPS) -> torch.Tensor:
    """``mean|anchor - positive| / (mean|anchor - negative| + eps)`` over the batch and the feature axis.

    Args:
        anchor: ``(B, D)`` embeddings (or probabilities) of the student's enhanced images.
        positive: ``(B, D)`` of the teacher's (detached here).
        negative: ``(B, D)`` of the low-light inputs (detached here).
        eps: keeps the ratio finite when the anchor equals the negative.

    Returns:
        Scalar >= 0, unitless: 0 when the anchor matches the positive, 1 when it is as far from
        the positive as from the negative.

    Example:
        >>> a, p, n = torch.zeros(1, 2), torch.full((1, 2), 1.0), torch.full((1, 2), 4.0)
        >>> float(semantic_contrastive_loss(a, p, n, eps=0.0))
        0.25
    """
    if not (anchor.shape == positive.shape == negative.shape):
        raise ValueError(f"anchor {tuple(anchor.shape)}, positive {tuple(positive.shape)} and negative "
                         f"{tuple(negative.shape)} must have the same shape")
    dtype = torch.promote_types(anchor.dtype, torch.float32)  # bf16 / fp16 embeddings are compared in float32
    anchor = anchor.to(dtype)
    d_ap = F.l1_loss(anchor, positive.detach().to(dtype))
    d_an = F.l1_loss(anchor, negative.detach().to(dtype))
    return d_ap / (d_an + eps)


class SemanticContrastiveLoss(nn.Module):
    """The loss on images: ``forward(anchor, positive, negative)`` images ``(B, 3, H, W)`` in ``[0, 1]``.

    Sum of :func:`semantic_contrastive_loss` on the recogniser's embeddings and on its class
    probabilities.

    Args:
        network: a frozen recognition network (``create_prior("squeezenet")``); not trained.
        size: resize (bilinear) every image to ``size`` x ``size`` before the recogniser (RAM's
            code resizes to 384); 0 feeds the images as they are.
        eps: of the ratio.

    Raises:
        ValueError: ``network`` is not a recognition network.
    """

    def __init__(self, network: FrozenNetwork, *, size: int = 0, eps: float = CONTRAST_EPS) -> None:
        super().__init__()
        if network.info.kind != "recognition":
            raise ValueError(f"{network.info.name} is a {network.info.kind} network, not a recognition network")
        self.network, self.size, self.eps = network, size, eps

    def recognise(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings ``(B, D)`` and class probabilities ``(B, K)`` of images, differentiable in them."""
        if self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.network.embedding_and_probabilities(images)

    def terms(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> dict[str, torch.Tensor]:
        """The two ratios by name (``embedding``, ``probabilities``), each a differentiable scalar.

        Raises:
            ValueError: anchor, positive and negative differ in shape (the positives and negatives
                go through the network as one batch and are split in two).
        """
        check_same_shape("semantic_contrastive", anchor=anchor, positive=positive, negative=negative)
        a_embedding, a_probabilities = self.recognise(anchor)
        with torch.no_grad():  # positives and negatives in one pass
            embedding, probabilities = self.recognise(torch.cat([positive.detach(), negative.detach()]))
        p_embedding, n_embedding = embedding.chunk(2)
        p_probabilities, n_probabilities = probabilities.chunk(2)
        return {
            "embedding": semantic_contrastive_loss(a_embedding, p_embedding, n_embedding, self.eps),
            "probabilities": semantic_contrastive_loss(a_probabilities, p_probabilities, n_probabilities, self.eps),
        }

    def forward(self, anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
        terms = self.terms(anchor, positive, negative)
        return terms["embedding"] + terms["probabilities"]

    def extra_repr(self) -> str:
        return f"size={self.size}, eps={self.eps:g}"
