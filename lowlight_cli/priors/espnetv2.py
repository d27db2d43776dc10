"""ESPNetv2 semantic segmentation (Mehta et al., CVPR 2019), width s=2.0, PASCAL VOC 2012 (21 classes).

Encoder (EESPNet without its last level): a strided 3x3 conv, then strided EESP units at 1/4, 1/8
and 1/16 followed by plain EESP units (3 at 1/8, 7 at 1/16).

- An **EESP unit** reduces with a grouped 1x1 conv (4 groups), runs four depthwise 3x3 branches with
  growing dilation whose outputs are added hierarchically (branch k += branch k-1), concatenates
  them, normalises + PReLU, and expands with a grouped 1x1 conv; a residual and a PReLU follow.
- A **strided unit** concatenates a 3x3/2 average pool of its input with a stride-2 EESP unit, adds
  the input image (average-pooled to the same size, through a 3x3 and a 1x1 conv: "input
  reinforcement"), then applies a PReLU.

Decoder: an efficient pyramid pooling module per scale (depthwise 3x3 convs at 2, 1.5, 1, 0.5 and
0.1 times the size, channel-shuffled and merged by a grouped 3x3 conv), bilinear x2 upsampling with
``align_corners=True``, and encoder skips gated by a global-pooled sigmoid. Logits come out at input
resolution (bilinear, ``align_corners=True``).

Parameter names are those of sacmehta/EdgeNets, so the module's ``state_dict`` is the file's. One
change: the decoder upsamples to the size of the encoder skip rather than by exactly 2, which is the
same for sides divisible by 16 and lets every other size run.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import IMAGENET_RGB, FrozenNetwork, PriorInfo, WeightsSource, check_images
from .registry import register_prior

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
WIDTHS = (32, 128, 256, 512)  # s=2.0: channels at 1/2, 1/4, 1/8, 1/16
REPEATS = (3, 7)  # plain EESP units at 1/8 and 1/16
RECEPTIVE_LIMITS = (13, 11, 9, 7)  # largest effective kernel of the branches, per level
BRANCHES = 4
PYRAMID_SCALES = (2.0, 1.5, 1.0, 0.5, 0.1)


class Named(nn.Module):
    """One child under the name the weights file uses (``conv``, ``cbr``, ``br``), applied as is."""

    def __init__(self, name: str, module: nn.Module) -> None:
        super().__init__()
        self.add_module(name, module)
        self.child = name

    def forward(self, x: Tensor) -> Tensor:
        return self._modules[self.child](x)


class ConvBN(nn.Module):
    """Conv (no bias) + batch norm (+ PReLU); ``padding = (k - 1) / 2 * dilation`` keeps the size at stride 1."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.PReLU(cout) if act else None

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return x if self.act is None else self.act(x)


class NormAct(nn.Module):
    """Batch norm + PReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.act = nn.PReLU(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.bn(x))


def _cbr(cin: int, cout: int, k: int, groups: int = 1) -> Named:
    """Decoder conv + BN + PReLU, stored as ``cbr.0/1/2``."""
    conv = nn.Conv2d(cin, cout, k, padding=(k - 1) // 2, groups=groups, bias=False)
    return Named("cbr", nn.Sequential(conv, nn.BatchNorm2d(cout), nn.PReLU(cout)))


def _bn_prelu(channels: int) -> nn.Sequential:
    """Decoder BN + PReLU, stored as ``0/1``."""
    return nn.Sequential(nn.BatchNorm2d(channels), nn.PReLU(channels))


def _br(channels: int) -> Named:
    """Decoder BN + PReLU, stored as ``br.0/1``."""
    return Named("br", _bn_prelu(channels))


class EESP(nn.Module):
    """Extremely efficient spatial pyramid unit: ``(B, cin, H, W)`` -> ``(B, cout, H/stride, W/stride)``.

    Args:
        strided: stride 2 and no residual or activation (the :class:`StridedEESP` adds both).
        receptive_limit: branches whose effective kernel (3, 5, 7, 9) would exceed it use 3 (dilation 1).
    """

    def __init__(self, cin: int, cout: int, *, receptive_limit: int, strided: bool = False) -> None:
        super().__init__()
        width = cout // BRANCHES
        if width * BRANCHES != cout:
            raise ValueError(f"EESP output width {cout} is not divisible by {BRANCHES}")
        self.strided = strided
        self.proj_1x1 = ConvBN(cin, width, 1, groups=BRANCHES)
        kernels = sorted(k if k <= receptive_limit else 3 for k in range(3, 3 + 2 * BRANCHES, 2))
        stride = 2 if strided else 1
        dilations = [(k - 1) // 2 for k in kernels]  # a 3x3 kernel dilated by d covers 2d + 1 pixels
        self.spp_dw = nn.ModuleList(
            Named("conv", nn.Conv2d(width, width, 3, stride, padding=d, dilation=d, groups=width, bias=False))
            for d in dilations
        )
        self.conv_1x1_exp = ConvBN(cout, cout, 1, groups=BRANCHES, act=False)
        self.br_after_cat = NormAct(cout)
        self.module_act = nn.PReLU(cout)

    def forward(self, x: Tensor) -> Tensor:
        reduced = self.proj_1x1(x)
        branches: list[Tensor] = []
        for conv in self.spp_dw:
            y = conv(reduced)
            branches.append(y + branches[-1] if branches else y)  # hierarchical feature fusion
        expanded = self.conv_1x1_exp(self.br_after_cat(torch.cat(branches, dim=1)))
        if self.strided:
            return expanded
        if expanded.shape == x.shape:
            expanded = expanded + x
        return self.module_act(expanded)


def halve(x: Tensor) -> Tensor:
    """3x3 / stride 2 / padding 1 average pool (zeros counted): ``(B, C, H, W)`` -> ``(B, C, ceil(H/2), ceil(W/2))``."""
    return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1)


class StridedEESP(nn.Module):
    """Down-sampling unit: ``[avgpool(x), EESP/2(x)] + reinforce(image)``, PReLU; ``cin`` -> ``cout`` channels."""

    def __init__(self, cin: int, cout: int, *, receptive_limit: int) -> None:
        super().__init__()
        self.eesp = EESP(cin, cout - cin, receptive_limit=receptive_limit, strided=True)
        self.inp_reinf = nn.Sequential(ConvBN(3, 3, 3), ConvBN(3, cout, 1, act=False))
        self.act = nn.PReLU(cout)

    def forward(self, x: Tensor, image: Tensor) -> Tensor:
        """``image``: the network input average-pooled (:func:`halve`) to the output size."""
        out = torch.cat([halve(x), self.eesp(x)], dim=1)
        return self.act(out + self.inp_reinf(image))


class PyramidPooling(nn.Module):
    """Efficient pyramid pooling: ``(B, cin, H, W)`` -> ``(B, cout, H, W)``.

    The projection is resampled to each of :data:`PYRAMID_SCALES` times its size (at least 5 pixels),
    filtered by a depthwise 3x3 conv and resampled back; the five maps are normalised, shuffled so
    each channel's scales sit together, and merged per channel.
    """

    def __init__(self, cin: int, proj: int, cout: int, *, last: bool = False) -> None:
        super().__init__()
        n = len(PYRAMID_SCALES)
        self.projection_layer = _cbr(cin, proj, 1)
        self.stages = nn.ModuleList(nn.Conv2d(proj, proj, 3, padding=1, groups=proj, bias=False) for _ in range(n))
        self.merge_layer = nn.Sequential(
            _br(proj * n),
            nn.ChannelShuffle(n),
            _cbr(proj * n, proj, 3, groups=proj),
            nn.Conv2d(proj, cout, 1, bias=last),
        )
        self.br = None if last else _br(cout)

    def forward(self, x: Tensor) -> Tensor:
        x = self.projection_layer(x)
        height, width = x.shape[2:]
        maps = []
        for scale, stage in zip(PYRAMID_SCALES, self.stages):
            size = (max(5, math.ceil(height * scale)), max(5, math.ceil(width * scale)))
            if scale < 1.0:
                y = F.interpolate(stage(F.adaptive_avg_pool2d(x, size)), (height, width), mode="bilinear", align_corners=True)
            elif scale > 1.0:
                y = F.adaptive_avg_pool2d(stage(F.interpolate(x, size, mode="bilinear", align_corners=True)), (height, width))
            else:
                y = stage(x)
            maps.append(y)
        out = self.merge_layer(torch.cat(maps, dim=1))
        return out if self.br is None else self.br(out)


class GatedSkip(nn.Module):
    """Encoder skip: grouped 3x3 CBR to ``cout`` channels times a sigmoid gate from the global average."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.wt_layer = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.Sigmoid())
        self.expansion_layer = _cbr(cin, cout, 3, groups=math.gcd(cin, cout))

    def forward(self, x: Tensor) -> Tensor:
        return self.expansion_layer(x) * self.wt_layer(x)


def _upsample_to(x: Tensor, like: Tensor) -> Tensor:
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=True)


class ESPNetv2Segmentation(FrozenNetwork):
    """ESPNetv2 (s=2.0) PASCAL VOC: encoder features and 21-class logits.

    Layers: ``level1`` (32 ch, 1/2), ``level2`` (128, 1/4), ``level3`` (256, 1/8), ``level4`` (512, 1/16),
    sizes rounded up.
    """

    def __init__(self, info: PriorInfo) -> None:
        super().__init__(info)
        c1, c2, c3, c4 = WIDTHS
        r2, r3, r4, r5 = RECEPTIVE_LIMITS
        base = nn.Module()
        base.level1 = ConvBN(3, c1, 3, stride=2)
        base.level2_0 = StridedEESP(c1, c2, receptive_limit=r2)
        base.level3_0 = StridedEESP(c2, c3, receptive_limit=r3)
        base.level3 = nn.ModuleList(EESP(c3, c3, receptive_limit=r4) for _ in range(REPEATS[0]))
        base.level4_0 = StridedEESP(c3, c4, receptive_limit=r4)
        base.level4 = nn.ModuleList(EESP(c4, c4, receptive_limit=r5) for _ in range(REPEATS[1]))
        self.base_net = base

        classes = info.num_classes
        proj = min(classes // 2, 16)
        d1, d2, d3 = 64, 48, 32
        self.bu_dec_l1 = PyramidPooling(c4, proj, d1)
        self.bu_dec_l2 = PyramidPooling(d1, proj, d2)
        self.bu_dec_l3 = PyramidPooling(d2, proj, d3)
        self.bu_dec_l4 = PyramidPooling(d3, proj, classes, last=True)
        self.merge_enc_dec_l2 = GatedSkip(c3, d1)
        self.merge_enc_dec_l3 = GatedSkip(c2, d2)
        self.merge_enc_dec_l4 = GatedSkip(c1, d3)
        self.bu_br_l2 = _bn_prelu(d1)
        self.bu_br_l3 = _bn_prelu(d2)
        self.bu_br_l4 = _bn_prelu(d3)

    def _encode(self, x: Tensor, deepest: int) -> list[Tensor]:
        """Encoder outputs ``level1`` .. ``level<deepest>`` of a prepared input."""
        base = self.base_net
        levels = [base.level1(x)]
        pooled = [x]  # pooled[i]: the input halved i times

        def image_of_size(height: int, width: int) -> Tensor:
            # As in EdgeNets: halve the input at least once, until its size matches. EdgeNets
            # compares heights only, which picks a too-wide image once a short photo's height has
            # reached 1 pixel (1 halves to 1) while its width still halves.
            i = 1
            while True:
                if len(pooled) <= i:
                    pooled.append(halve(pooled[-1]))
                if pooled[i].shape[2] <= height and pooled[i].shape[3] <= width:  # equal, unless inconsistent
                    return pooled[i]
                i += 1

        stages = ((base.level2_0, ()), (base.level3_0, base.level3), (base.level4_0, base.level4))
        for strided, units in stages[: deepest - 1]:
            y = strided(levels[-1], image_of_size((levels[-1].shape[2] + 1) // 2, (levels[-1].shape[3] + 1) // 2))
            for unit in units:
                y = unit(y)
            levels.append(y)
        return levels

    def _features(self, x: Tensor, wanted: frozenset[str]) -> dict[str, Tensor]:
        deepest = max(self.info.layers.index(name) for name in wanted) + 1
        return dict(zip(self.info.layers, self._encode(x, deepest)))

    def _decode(self, levels: list[Tensor], size: tuple[int, int]) -> Tensor:
        l1, l2, l3, l4 = levels
        out = self.bu_dec_l1(l4)
        out = self.bu_dec_l2(self.bu_br_l2(self.merge_enc_dec_l2(l3) + _upsample_to(out, l3)))
        out = self.bu_dec_l3(self.bu_br_l3(self.merge_enc_dec_l3(l2) + _upsample_to(out, l2)))
        out = self.bu_dec_l4(self.bu_br_l4(self.merge_enc_dec_l4(l1) + _upsample_to(out, l1)))
        return F.interpolate(out, size=size, mode="bilinear", align_corners=True)

    def logits_and_features(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """One pass for both: ``(B, 3, H, W)`` RGB ``[0, 1]`` -> logits ``(B, 21, H, W)`` and all encoder levels."""
        check_images(x)
        levels = self._encode(self.prepare(x), len(self.info.layers))
        return self._decode(levels, (x.shape[2], x.shape[3])), dict(zip(self.info.layers, levels))

    def logits(self, x: Tensor) -> Tensor:
        """Per-pixel class scores: ``(B, 3, H, W)`` RGB ``[0, 1]`` -> ``(B, 21, H, W)`` (unbounded)."""
        return self.logits_and_features(x)[0]

    def probabilities(self, x: Tensor) -> Tensor:
        """Per-pixel class probabilities: ``(B, 21, H, W)``, summing to 1 over the class axis."""
        return self.logits(x).softmax(dim=1)


ESPNETV2_VOC = PriorInfo(
    name="espnetv2-voc",
    kind="segmentation",
    description="ESPNetv2 s=2.0 semantic segmentation, PASCAL VOC 2012 (+SBD) at 384x384, 67.0 mIoU reported",
    layers=("level1", "level2", "level3", "level4"),
    input_convention=IMAGENET_RGB,
    weights=WeightsSource(
        filename="espnetv2-s2.0-pascal-voc.safetensors",
        origin="sacmehta/EdgeNets @ 2b232d3f, model/segmentation/model_zoo/espnetv2/espnetv2_s_2.0_pascal_384x384.pth",
        sha256="ee8932327d9a088b34785a88e314e2f956f9b671918e40c48208ee3be91bd6ba",
    ),
    licence="MIT",
    replaces="DeepLabv3+ Cityscapes (SCL-LLE), HRNet-W48 PASCAL-Context (SKF): 21 VOC classes, 4-scale encoder features",
    num_classes=len(VOC_CLASSES),
    classes=VOC_CLASSES,
    native_size=384,
)

register_prior(ESPNETV2_VOC, ESPNetv2Segmentation)
