"""Losses on the features of a frozen network: Gram-matrix distances (texture) and feature preservation.

The pure functions take feature maps; the modules take a frozen network
(:func:`lowlight_cli.priors.create_prior`) and the names of its layers. Reference images (the input
of feature preservation, the positives and negatives of the contrastive losses) are data, not
something to optimise: their features are computed without gradient. Gradients flow through the
network into the enhanced image only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..priors import FrozenNetwork
from .shapes import check_same_shape


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Gram matrices of feature maps, normalised by their size.

    Args:
        features: ``(B, C, h, w)``.

    Returns:
        ``(B, C, C)``: ``G[b, i, j] = sum_p f[b, i, p] f[b, j, p] / (C h w)``.

    Example:
        >>> gram_matrix(torch.ones(1, 2, 3, 3)).flatten().tolist()
        [0.5, 0.5, 0.5, 0.5]
    """
    if features.ndim != 4:
        raise ValueError(f"feature maps must be (B, C, h, w), got {tuple(features.shape)}")
    batch, channels, height, width = features.shape
    flat = features.reshape(batch, channels, height * width)
    return flat @ flat.transpose(1, 2) / (channels * height * width)


def gram_distances(anchor: Sequence[torch.Tensor], others: Sequence[torch.Tensor]) -> torch.Tensor:
    """Texture distance of every anchor to every other image: summed squared Gram differences.

    ``d[b, k] = sum_layers || G(anchor_l[b]) - G(others_l[k]) ||_F^2`` (SCL-LLE's and PIE's "MSE with
    sum reduction" of Gram matrices).

    Args:
        anchor: per layer ``(B, C_l, h_l, w_l)`` feature maps of the enhanced images.
        others: per layer, in the same order, ``(K, C_l, h'_l, w'_l)`` (sizes may differ from the
            anchor's: Gram matrices are ``C_l x C_l`` whatever the image size).

    Returns:
        ``(B, K)``, >= 0.
    """
    if len(anchor) != len(others) or not anchor:
        raise ValueError(f"need the same non-zero number of layers, got {len(anchor)} and {len(others)}")
    total = None
    for a, o in zip(anchor, others):
        diff = gram_matrix(a)[:, None] - gram_matrix(o)[None]  # (B, K, C, C)
        term = diff.pow(2).sum(dim=(2, 3))
        total = term if total is None else total + term
    return total


def feature_preservation_loss(input_features: Sequence[torch.Tensor], output_features: Sequence[torch.Tensor]) -> torch.Tensor:
    """Content kept through enhancement: mean over layers of the MSE between input and output features.

    Args:
        input_features: per layer ``(B, C_l, h_l, w_l)`` features of the low-light input
            (treated as constants: detached here).
        output_features: the same layers of the enhanced images, same shapes.

    Returns:
        Scalar >= 0 (units of the network's activations squared).
    """
    if len(input_features) != len(output_features) or not input_features:
        raise ValueError(f"need the same non-zero number of layers, got {len(input_features)} and {len(output_features)}")
    for k, (i, o) in enumerate(zip(input_features, output_features), 1):
        check_same_shape("feature_preservation_loss", **{f"input layer {k}": i, f"output layer {k}": o})
    terms = [F.mse_loss(o, i.detach()) for i, o in zip(input_features, output_features)]
    return torch.stack(terms).mean()


class FrozenFeatures(nn.Module):
    """Named layers of a frozen network, as lists in a fixed order; the base of the feature losses.

    Args:
        network: a frozen network (``create_prior(...)``); it is not trained.
        layers: names from ``network.info.layers``.

    Raises:
        UnknownNameError: a layer the network does not have (with "did you mean").
    """

    def __init__(self, network: FrozenNetwork, layers: Iterable[str]) -> None:
        super().__init__()
        self.network = network
        self.layers = network.check_layers(tuple(layers))

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``(B, 3, H, W)`` RGB ``[0, 1]`` -> one ``(B, C_l, h_l, w_l)`` map per layer, differentiable in ``images``."""
        found = self.network.features(images, layers=self.layers)
        return [found[name] for name in self.layers]

    def reference_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Like :meth:`features`, without gradient: for images that are data (inputs, positives, negatives)."""
        with torch.no_grad():
            return self.features(images.detach())

    def extra_repr(self) -> str:
        return f"layers={self.layers}"


class FeaturePreservationLoss(FrozenFeatures):
    """Module form of :func:`feature_preservation_loss`; ``forward(inputs, outputs)``, images in ``[0, 1]``.

    Args:
        network: frozen network.
        layers: default: its deepest layer (``relu4_3`` of ``vgg16`` as in SCL-LLE and PIE;
            ``relu3_1`` of ``vgg19-normalised``).
    """

    def __init__(self, network: FrozenNetwork, layers: Iterable[str] | None = None) -> None:
        super().__init__(network, layers if layers is not None else network.info.layers[-1:])

    def forward(self, inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        # pooling maps a 31 and a 32 px side to one feature size: compare images, not only features
        check_same_shape("feature_preservation", inputs=inputs, outputs=outputs)
        return feature_preservation_loss(self.reference_features(inputs), self.features(outputs))


class PerceptualLoss(FrozenFeatures):
    """Perceptual loss: mean over ``layers`` of the feature MSE of output and reference (Semi-LLIE's
    supervised ``0.3 perceptual`` term); ``forward(output, target)``, images ``(B, 3, H, W)`` in ``[0, 1]``.

    Args:
        network: frozen network (``create_prior("vgg19-normalised")``, which stands in for RAM / VGG).
        layers: names from ``network.info.layers`` (default: all of them).

    Example:
        >>> from lowlight_cli.priors import create_prior
        >>> loss = PerceptualLoss(create_prior("vgg19-normalised", stand_in=True), ["relu1_2"])
        >>> x = torch.rand(1, 3, 32, 32)
        >>> float(loss(x, x))
        0.0
    """

    def __init__(self, network: FrozenNetwork, layers: Iterable[str] | None = None) -> None:
        super().__init__(network, layers if layers is not None else network.info.layers)

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        check_same_shape("perceptual", output=output, target=target)
        return feature_preservation_loss(self.reference_features(target), self.features(output))
