"""VGG feature extractors: VGG19-normalised up to relu3_1 (bundled for development) and torchvision VGG16.

Both are stacks of 3x3 convolutions with ReLU and 2x2 max-pools, described by a plan of steps whose
indices are the parameter names of the weights file, so the module's ``state_dict`` is the file's.

- ``vgg19-normalised``: Gatys et al.'s rescaled VGG19 (mean activations ~1 on ImageNet) as used by
  the style-transfer literature: a leading 1x1 convolution turns RGB ``[0, 1]`` into the Caffe
  input (BGR x 255 minus mean), reflection padding, ceil-mode pooling. It stops at relu3_1, so a
  paper's relu3_3 / relu4_3 becomes relu3_1 here.
- ``vgg16``: torchvision's layout (``features.0`` .. ``features.21``), zero padding, ImageNet
  mean/std, relu1_1 .. relu4_3; deeper layers and classifier heads in the file are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .base import IMAGENET_RGB, FrozenNetwork, InputConvention, PriorInfo, WeightsSource
from .registry import register_prior

POOL = "pool"
Conv = tuple[int, int, int, int, "str | None"]  # (index in the file, in, out, kernel, name of its ReLU or None)
Step = Conv | str


class VGGFeatures(FrozenNetwork):
    """Named ReLU outputs of a VGG-style stack.

    Args:
        info: registered facts (``info.layers`` are the ReLU names of ``steps``).
        steps: convolutions ``(index, in, out, kernel, relu name or None)`` and :data:`POOL`, in order.
        padding_mode: of the 3x3 convolutions (``reflect`` or ``zeros``; padding 1).
        ceil_mode: of the 2x2 / stride 2 max-pools.
        file_prefix: prefix of the convolutions' names in the weights file (``features.`` for
            torchvision, "" for bare indices); they live in ``self.convs`` under their index.
    """

    def __init__(
        self, info: PriorInfo, steps: Sequence[Step], *, padding_mode: str, ceil_mode: bool, file_prefix: str = ""
    ) -> None:
        super().__init__(info)
        self.steps = tuple(steps)
        self.ceil_mode = ceil_mode
        self.file_prefix = file_prefix
        self.convs = nn.ModuleDict(
            (str(index), nn.Conv2d(cin, cout, kernel, padding=kernel // 2, padding_mode=padding_mode))
            for index, cin, cout, kernel, _ in (step for step in self.steps if step != POOL)
        )

    def _features(self, x: Tensor, wanted: frozenset[str]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for step in self.steps:
            if step == POOL:
                x = F.max_pool2d(x, 2, 2, ceil_mode=self.ceil_mode)
                continue
            index, _, _, _, relu = step
            x = self.convs[str(index)](x)
            if relu is not None:
                x = F.relu(x)
                if relu in wanted:
                    out[relu] = x
                    if len(out) == len(wanted):
                        break
        return out

    def module_key(self, file_key: str) -> str | None:
        """``<file_prefix>N.weight`` -> ``convs.N.weight``.

        In torchvision / timm files (``file_prefix`` set), convolutions deeper than the last one built
        and the classifier heads are unused; any other name is kept, so strict loading reports it.
        """
        if self.file_prefix and file_key.partition(".")[0] in _HEADS:
            return None
        if not file_key.startswith(self.file_prefix):
            return file_key
        index, dot, param = file_key[len(self.file_prefix) :].partition(".")
        if not (index.isdigit() and dot):
            return file_key
        if self.file_prefix and int(index) > max(map(int, self.convs)):
            return None
        return f"convs.{index}.{param}"


_HEADS = ("classifier", "pre_logits", "head")  # classifier tensors of torchvision / timm VGG files


def torchvision_steps(blocks: Sequence[int], widths: Sequence[int], last_relu: str) -> list[Step]:
    """The steps of torchvision's VGG ``features`` (conv, ReLU, ..., max-pool per block) up to ``last_relu``.

    Args:
        blocks: convolutions per block (VGG16: 2, 2, 3, 3, 3).
        widths: output channels per block.
        last_relu: the deepest ReLU to build (e.g. ``relu4_3``).
    """
    steps: list[Step] = []
    index, cin = 0, 3
    for block, (count, width) in enumerate(zip(blocks, widths), start=1):
        if block > 1:
            steps.append(POOL)
            index += 1
        for conv in range(1, count + 1):
            name = f"relu{block}_{conv}"
            steps.append((index, cin, width, 3, name))
            index, cin = index + 2, width
            if name == last_relu:
                return steps
    raise ValueError(f"{last_relu} is not in this VGG")


def _relus(steps: Sequence[Step]) -> tuple[str, ...]:
    return tuple(step[4] for step in steps if step != POOL and step[4] is not None)


VGG19_NORMALISED_STEPS: tuple[Step, ...] = (
    (0, 3, 3, 1, None),  # RGB [0,1] -> Caffe BGR x255 - mean, learned as a 1x1 convolution
    (2, 3, 64, 3, "relu1_1"),
    (5, 64, 64, 3, "relu1_2"),
    POOL,
    (9, 64, 128, 3, "relu2_1"),
    (12, 128, 128, 3, "relu2_2"),
    POOL,
    (16, 128, 256, 3, "relu3_1"),
)
VGG16_STEPS = tuple(torchvision_steps((2, 2, 3, 3, 3), (64, 128, 256, 512, 512), "relu4_3"))

VGG19_NORMALISED = PriorInfo(
    name="vgg19-normalised",
    kind="features",
    description="VGG19 conv1_1..conv3_1, 'normalised' weights (mean activation ~1 on ImageNet), reflection padding",
    layers=_relus(VGG19_NORMALISED_STEPS),
    input_convention=InputConvention(note="its first 1x1 conv makes the Caffe BGR x255 - mean input"),
    weights=WeightsSource(
        filename="vgg19-normalised-to-relu3_1.safetensors",
        origin="pietrocarbo/deep-transfer @ e87e72f9, models/autoencoder_vgg19/vgg19_3/vgg_normalised_conv3_1.pth",
        sha256="ab01bff1ad697f7c67d601c07e77cfc398c379dfab7d5971eedf750078665aa6",
    ),
    licence="CC BY 4.0 (VGG weights)",
    replaces="VGG16 relu1_2/relu2_2/relu3_3/relu4_3 (SCL-LLE, PIE, Semi-LLIE): relu3_3 and relu4_3 become "
    "relu3_1; activations are ~1 on average, so loss weights need retuning",
    native_size=224,
)

VGG16 = PriorInfo(
    name="vgg16",
    kind="features",
    description="VGG16 ImageNet, torchvision layout (features.*), relu1_1..relu4_3",
    layers=_relus(VGG16_STEPS),
    input_convention=IMAGENET_RGB,
    weights=WeightsSource(
        filename="vgg16-torchvision.safetensors",
        origin="torchvision VGG16 IMAGENET1K_V1 (safetensors with features.* keys; timm's vgg16.tv_in1k)",
        hub_id="timm/vgg16.tv_in1k",
    ),
    licence="BSD-3-Clause (torchvision release)",
    replaces="itself: the network SCL-LLE, PIE and Semi-LLIE use (relu1_2, relu2_2, relu3_3, relu4_3)",
    native_size=224,
)

register_prior(
    VGG19_NORMALISED,
    lambda info: VGGFeatures(info, VGG19_NORMALISED_STEPS, padding_mode="reflect", ceil_mode=True),
)
register_prior(
    VGG16,
    lambda info: VGGFeatures(info, VGG16_STEPS, padding_mode="zeros", ceil_mode=False, file_prefix="features."),
)
