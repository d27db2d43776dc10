"""SKF (Wu et al., "Learning Semantic-Aware Knowledge Guidance for Low-Light Image Enhancement", CVPR 2023): the model side.

SKF is a plug-in for any enhancer, not an enhancer of its own. This module holds its two network
parts; its losses live in :mod:`lowlight_cli.losses.histogram` and :mod:`lowlight_cli.losses.adversarial`.

- :class:`SemanticPrior`: a frozen segmentation network (ESPNetv2 PASCAL VOC here, HRNet-W48
  PASCAL-Context in the paper) run on the **low-light input**, giving class probabilities and
  multi-scale encoder features (:class:`SemanticGuidance`).
- :class:`SemanticEmbedding` (SEM): cross-attention from semantic features (query) to an
  enhancer's decoder features (key and value), over channels, then a gated feed-forward; a
  residual block inserted at up to three decoder scales.

The prior lives here rather than in :mod:`lowlight_cli.priors`: that package holds the frozen
networks themselves and their one interface; which layers SKF reads, at which decoder scale, and
on which image are choices of this system, made in one place beside the module that consumes them.

Why the low-light input: it is the one image that exists at test time, so training and inference
see the same guidance. The authors' DRBN code segments an intermediate enhanced image, and one of
their training scripts segments the *ground truth* during training, which a test image does not
have (the network then learns from guidance it never gets again). We never do either. On LOL
training images ESPNetv2's argmax on the low input agrees with its argmax on the reference on 91%
of the pixels (12 images; mostly "background", with some bottles and chairs); brightening the
input to a mean of 0.4 first did not help (90%), so the input goes in as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import UsageError
from .products import long_inner_product

if TYPE_CHECKING:  # lowlight_cli.priors imports the models package (through the hub): no import at load time
    from ..priors import FrozenNetwork

# Decoder scale (1, 1/2, 1/4 of the image) -> semantic input, following the authors' pairing of each
# decoder scale with segmentation features one octave deeper (HRNet 1/4 and 1/8 features for DRBN's
# 1/2 and 1/4 decoder levels) and the class map at full resolution.
PYRAMID = ("probabilities", "level2", "level3")
MAX_SCALES = len(PYRAMID)
FFN_EXPANSION = 2.66  # Restormer's GDFN expansion, as the authors use it


@dataclass(frozen=True)
class SemanticGuidance:
    """What the frozen segmentation network says about a batch of low-light inputs (no gradient).

    Attributes:
        probabilities: ``(B, K, H, W)`` class probabilities at input size, summing to 1 over ``K``.
        features: encoder features by layer name, e.g. ESPNetv2's ``level1`` .. ``level4``:
            ``(B, 32 / 128 / 256 / 512, H/2 .. H/16, W/2 .. W/16)``, sizes rounded up.
    """

    probabilities: Tensor
    features: dict[str, Tensor]

    @property
    def labels(self) -> Tensor:
        """``(B, H, W)`` int64 most likely class per pixel (regions for the SKF losses)."""
        return self.probabilities.argmax(dim=1)

    def pyramid(self, scales: int = MAX_SCALES) -> tuple[Tensor, ...]:
        """Semantic inputs of the SEMs at decoder scales 1, 1/2, 1/4 (finest first), ``scales`` of them.

        Returns:
            ``(probabilities (B, K, H, W), level2 (B, C2, H/4, W/4), level3 (B, C3, H/8, W/8))[:scales]``;
            each SEM resizes its input to its own decoder size.
        """
        _check_scales(scales)
        maps = {"probabilities": self.probabilities, **self.features}
        return tuple(maps[name] for name in PYRAMID[:scales])


def _check_scales(scales: int) -> None:
    if not 1 <= scales <= MAX_SCALES:
        raise UsageError(f"SKF guides 1 to {MAX_SCALES} decoder scales, got {scales}")


class SemanticPrior(nn.Module):
    """Class probabilities and multi-scale features of a frozen segmentation network, on the low-light input.

    Args:
        network: a frozen network of kind ``segmentation``, e.g. ``create_prior("espnetv2-voc")``
            (or ``stand_in=True`` for tests). Its encoder must provide the layers in :data:`PYRAMID`.

    Raises:
        UsageError: the network does not segment or lacks those layers.

    Keep it beside the enhancer (owned by the training step, like the losses' networks), not inside
    it: as a submodule its frozen weights would land in every enhancer checkpoint.

    Example:
        >>> from lowlight_cli.priors import create_prior
        >>> prior = SemanticPrior(create_prior("espnetv2-voc", stand_in=True))
        >>> prior.pyramid_channels()
        (21, 128, 256)
    """

    def __init__(self, network: FrozenNetwork) -> None:
        super().__init__()
        if network.info.kind != "segmentation":
            raise UsageError(
                f"{network.info.name} is a {network.info.kind} network; SKF's semantic prior needs a segmentation network",
                hint="use espnetv2-voc (or a segmentation network of your own registered as a prior)",
            )
        missing = [name for name in PYRAMID[1:] if name not in network.info.layers]
        if missing:
            raise UsageError(f"{network.info.name} has no layer {', '.join(missing)} (layers: {', '.join(network.info.layers)})")
        self.network = network
        weight = next(network.parameters())
        with torch.no_grad():  # channel counts of the layers, from one small probe
            probe = self.network.features(weight.new_zeros(1, 3, 64, 64), layers=PYRAMID[1:])
        self._channels = (network.info.num_classes, *(probe[name].shape[1] for name in PYRAMID[1:]))

    def pyramid_channels(self, scales: int = MAX_SCALES) -> tuple[int, ...]:
        """Channels of :meth:`SemanticGuidance.pyramid` (the ``semantic_channels`` of each SEM), finest first."""
        _check_scales(scales)
        return self._channels[:scales]

    @torch.no_grad()
    def forward(self, low: Tensor) -> SemanticGuidance:
        """Segment low-light inputs once for the whole SKF step.

        Args:
            low: ``(B, 3, H, W)`` the enhancer's low-light input, RGB in ``[0, 1]``; never the
                reference or an enhanced image (see the module docstring).

        Returns:
            :class:`SemanticGuidance`, computed without gradient (the input is data and the network frozen).
        """
        both = getattr(self.network, "logits_and_features", None)
        if both is not None:  # one pass for logits and features (ESPNetv2)
            logits, features = both(low)
        else:
            logits, features = self.network.logits(low), self.network.features(low)
        return SemanticGuidance(probabilities=logits.softmax(dim=1), features=features)


class LayerNorm2d(nn.Module):
    """Layer norm over the channels of each pixel (Restormer's "WithBias" norm): ``(B, C, H, W)`` -> same."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-5)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _pointwise_then_depthwise(cin: int, cout: int, bias: bool) -> nn.Sequential:
    """1x1 conv then depthwise 3x3 conv, ``(B, cin, H, W)`` -> ``(B, cout, H, W)``."""
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=bias), nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=bias))


class TransposedCrossAttention(nn.Module):
    """Channel-wise ("transposed", Restormer's MDTA) cross-attention: query from one map, key and value from another.

    Per head, the ``C/heads x C/heads`` attention is ``softmax(T * q_n k_n^T)`` with ``q_n``, ``k_n``
    the query and key channels L2-normalised over the pixels and ``T`` a learnable temperature per
    head; it mixes the value's channels. The cost is linear in the pixels, but the attention is a
    global statistic of the image (not tile-exact).

    Args:
        channels: ``C`` of both inputs; divisible by ``heads``.
        heads: attention heads.
        bias: biases of the projections (Restormer: none).
    """

    def __init__(self, channels: int, heads: int = 2, bias: bool = False) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.query = _pointwise_then_depthwise(channels, channels, bias)
        self.key_value = _pointwise_then_depthwise(channels, 2 * channels, bias)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=bias)

    def forward(self, image: Tensor, semantic: Tensor) -> Tensor:
        """``image`` (key, value) and ``semantic`` (query), both ``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        batch, channels, height, width = image.shape
        key, value = self.key_value(image).chunk(2, dim=1)

        def per_head(x: Tensor) -> Tensor:
            return x.reshape(batch, self.heads, channels // self.heads, height * width)

        query = F.normalize(per_head(self.query(semantic)), dim=-1)
        key = F.normalize(per_head(key), dim=-1)
        # (B, heads, c, c), summed over every pixel: in float32 (see long_inner_product)
        attention = (long_inner_product(query, key.transpose(-2, -1)) * self.temperature).softmax(dim=-1)
        value = per_head(value)
        return self.project_out((attention.to(value.dtype) @ value).reshape(batch, channels, height, width))


class GatedFeedForward(nn.Module):
    """Restormer's gated-dconv feed-forward (GDFN): 1x1 expand, depthwise 3x3, ``GELU(a) * b``, 1x1 project.

    Args:
        channels: ``C`` in and out.
        expansion: hidden width ``int(C * expansion)``.
        bias: biases of the convolutions.
    """

    def __init__(self, channels: int, expansion: float = FFN_EXPANSION, bias: bool = False) -> None:
        super().__init__()
        hidden = max(1, int(channels * expansion))
        self.expand = _pointwise_then_depthwise(channels, 2 * hidden, bias)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, C, H, W)``."""
        gate, value = self.expand(x).chunk(2, dim=1)
        return self.project_out(F.gelu(gate) * value)


class SemanticEmbedding(nn.Module):
    """SKF's semantic-aware embedding module (SEM): image features attend to semantic features.

    ``s = LN_s(conv1x1(resize(semantic)))``; ``y = x + Attn(q = s, k, v = LN_x(x))``;
    ``out = y + GDFN(LN_y(y))``. Both residual branches end in zero-initialised 1x1 projections,
    so an enhancer with SEMs inserted starts out computing exactly what it computed without them;
    the projections receive gradient from the first step, and through them the semantic features.

    Differences from the authors' ``TransformerBlock`` (on purpose):

    - the residual adds to the block's *input*; theirs adds to the layer-normalised input, so a
      block with silent branches still rescales the decoder's features;
    - image and semantic features get their own layer norms (theirs share one across two different
      kinds of features);
    - the query's 3x3 conv is depthwise as in MDTA (theirs is a full 3x3 conv, ``groups`` missing);
    - semantic maps are resized bilinearly (``align_corners=False``), not by nearest neighbour.

    Args:
        channels: ``C`` of the decoder features at the insertion point; divisible by ``heads``.
        semantic_channels: ``S`` of the semantic input (:meth:`SemanticPrior.pyramid_channels`).
        heads: attention heads (SKF: 2).
        expansion: GDFN hidden expansion.
        bias: biases inside attention and GDFN (Restormer: none).

    Example:
        >>> sem = SemanticEmbedding(16, 21)
        >>> x = torch.rand(1, 16, 32, 32)
        >>> torch.equal(sem(x, torch.rand(1, 21, 64, 64)), x)  # zero-initialised: the identity
        True
    """

    def __init__(
        self, channels: int, semantic_channels: int, heads: int = 2, expansion: float = FFN_EXPANSION, bias: bool = False
    ) -> None:
        super().__init__()
        if channels < 1 or semantic_channels < 1:
            raise ValueError(f"need channels >= 1 and semantic_channels >= 1, got {channels} and {semantic_channels}")
        self.channels, self.semantic_channels = channels, semantic_channels
        self.semantic_in = nn.Conv2d(semantic_channels, channels, 1)
        self.norm_image = LayerNorm2d(channels)
        self.norm_semantic = LayerNorm2d(channels)
        self.attention = TransposedCrossAttention(channels, heads, bias)
        self.norm_ffn = LayerNorm2d(channels)
        self.ffn = GatedFeedForward(channels, expansion, bias)
        for projection in (self.attention.project_out, self.ffn.project_out):
            nn.init.zeros_(projection.weight)
            if projection.bias is not None:
                nn.init.zeros_(projection.bias)

    def forward(self, image: Tensor, semantic: Tensor) -> Tensor:
        """Guide decoder features by semantic features.

        Args:
            image: ``(B, C, H, W)`` decoder features (any range).
            semantic: ``(B, S, h, w)`` semantic features or class probabilities of the same images,
                any ``h, w`` (resized to ``H, W`` inside).

        Returns:
            ``(B, C, H, W)``; equal to ``image`` at initialisation.

        Raises:
            ValueError: channel counts or batch sizes that do not match.
        """
        if image.ndim != 4 or image.shape[1] != self.channels:
            raise ValueError(f"image features must be (B, {self.channels}, H, W), got {tuple(image.shape)}")
        if semantic.ndim != 4 or semantic.shape[1] != self.semantic_channels or semantic.shape[0] != image.shape[0]:
            wanted = f"({image.shape[0]}, {self.semantic_channels}, h, w)"
            raise ValueError(f"semantic features must be {wanted}, got {tuple(semantic.shape)}")
        if semantic.shape[2:] != image.shape[2:]:
            semantic = F.interpolate(semantic, size=image.shape[2:], mode="bilinear", align_corners=False)
        semantic = self.norm_semantic(self.semantic_in(semantic.to(image.dtype)))
        x = image + self.attention(self.norm_image(image), semantic)
        return x + self.ffn(self.norm_ffn(x))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, semantic_channels={self.semantic_channels}, heads={self.attention.heads}"
