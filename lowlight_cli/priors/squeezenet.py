"""SqueezeNet v1.0 (Iandola et al. 2016), ImageNet-1k, in the Caffe convention of its release.

An AlexNet-level recogniser of 1.25 M parameters (the Deep Compression release: pruned to 33.9 %
non-zero weights, 8-bit codebooks, decoded to float32). It stands in for RAM (Swin-L, 5.6 GB) in
Semi-LLIE's semantic-aware contrastive loss: its pooled fire9 features (512-d) or its 1000 class
probabilities are the embedding space.

Layout as in ``SqueezeNet_deploy.prototxt``: conv1 7x7/2 (96) + ReLU, 3x3/2 max-pool, fire2-fire4,
max-pool, fire5-fire8, max-pool, fire9, then ``conv_final`` 1x1 to 1000 classes **with padding 1**
(so its 15x15 map at 227 input has a border of ``ReLU(bias)``), ReLU and a global average.
Caffe pools round up (``ceil_mode``). Input: BGR, 0..255, minus (104, 117, 123), trained at 227x227
(the network is fully convolutional; other sizes work).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import CAFFE_BGR, FrozenNetwork, PriorInfo, WeightsSource
from .registry import register_prior

# (name, input channels, squeeze channels, expand channels per branch)
FIRES = (
    ("fire2", 96, 16, 64),
    ("fire3", 128, 16, 64),
    ("fire4", 128, 32, 128),
    ("fire5", 256, 32, 128),
    ("fire6", 256, 48, 192),
    ("fire7", 384, 48, 192),
    ("fire8", 384, 64, 256),
    ("fire9", 512, 64, 256),
)
POOL_AFTER = ("conv1", "fire4", "fire8")
NUM_CLASSES = 1000


class Fire(nn.Module):
    """Squeeze 1x1 + ReLU, then 1x1 and 3x3 expansions (+ ReLU) concatenated: ``(B, 2 * expand, H, W)``."""

    def __init__(self, cin: int, squeeze: int, expand: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(cin, squeeze, 1)
        self.expand1x1 = nn.Conv2d(squeeze, expand, 1)
        self.expand3x3 = nn.Conv2d(squeeze, expand, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        s = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.expand1x1(s)), F.relu(self.expand3x3(s))], dim=1)


class SqueezeNet(FrozenNetwork):
    """SqueezeNet v1.0 with named stage outputs, a pooled fire9 embedding and class probabilities.

    Layers (all after their ReLU): ``conv1`` (96 ch, ~1/2), ``fire2`` .. ``fire9`` (fire9: 512 ch,
    ~1/16), ``conv_final`` (1000 ch, the class map before pooling).
    """

    def __init__(self, info: PriorInfo) -> None:
        super().__init__(info)
        self.conv1 = nn.Conv2d(3, 96, 7, stride=2)
        for name, cin, squeeze, expand in FIRES:
            self.add_module(name, Fire(cin, squeeze, expand))
        self.conv_final = nn.Conv2d(512, NUM_CLASSES, 1, padding=1)  # padding 1, as in the prototxt

    def _features(self, x: Tensor, wanted: frozenset[str]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for name in self.info.layers:
            x = F.relu(self.conv1(x)) if name == "conv1" else getattr(self, name)(x)
            if name == "conv_final":
                x = F.relu(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
            if name in POOL_AFTER:
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        return out

    def embedding(self, x: Tensor) -> Tensor:
        """Global average of fire9: ``(B, 3, H, W)`` RGB ``[0, 1]`` -> ``(B, 512)``, values >= 0."""
        return self.features(x, ("fire9",))["fire9"].mean(dim=(2, 3))

    def embedding_and_probabilities(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`embedding` and :meth:`probabilities` from one pass: ``(B, 512)`` and ``(B, 1000)``."""
        found = self.features(x, ("fire9", "conv_final"))
        return found["fire9"].mean(dim=(2, 3)), found["conv_final"].mean(dim=(2, 3)).softmax(dim=1)

    def logits(self, x: Tensor) -> Tensor:
        """Pooled class scores (the input of the softmax): ``(B, 3, H, W)`` -> ``(B, 1000)``, values >= 0."""
        return self.features(x, ("conv_final",))["conv_final"].mean(dim=(2, 3))

    def probabilities(self, x: Tensor) -> Tensor:
        """ImageNet-1k class probabilities: ``(B, 3, H, W)`` RGB ``[0, 1]`` -> ``(B, 1000)``, rows sum to 1."""
        return self.logits(x).softmax(dim=1)


SQUEEZENET = PriorInfo(
    name="squeezenet",
    kind="recognition",
    description="SqueezeNet v1.0 ImageNet-1k (Deep Compression release, Caffe convention): an AlexNet-level recogniser",
    layers=("conv1", *(name for name, *_ in FIRES), "conv_final"),
    input_convention=CAFFE_BGR,
    weights=WeightsSource(
        filename="squeezenet1.0-imagenet.safetensors",
        origin="songhan/SqueezeNet-Deep-Compression @ fb13faa2, compressed_SqueezeNet.net (decoded to float32)",
        sha256="19a690bb4e24bef01716bd153a8984f264fc365ff70bc605a4447646aa0cd2ed",
    ),
    licence="BSD",
    replaces="RAM Swin-L (Semi-LLIE, 5.6 GB): embeddings are pooled fire9 (512-d), tags are the 1000 ImageNet classes",
    num_classes=NUM_CLASSES,
    native_size=227,
)

register_prior(SQUEEZENET, SqueezeNet)
