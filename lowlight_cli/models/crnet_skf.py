"""CRNet with SKF's semantic guidance (Wu et al., CVPR 2023): registers ``crnet-s-skf`` and a test size.

SKF plugs into an enhancer's decoder (:mod:`lowlight_cli.models.skf`). CRNet's decoder is the end
of each group, where its stage head turns the group's features into an image; its small variants
run the whole body at one resolution (1/4 of the image for ``crnet-s``). A semantic embedding
module (SEM) sits after each of the last ``semantic_scales`` groups, rewriting the features both
the stage head and the next group read. Their semantic inputs follow the authors' order in DRBN
(deepest semantic features furthest from the output, class probabilities next to it): with two
SEMs, ESPNetv2's ``level2`` features (1/4 of the image: the body's own resolution) after the first
group and the class probabilities (resized to the body) after the last.

The semantic prior is a frozen segmentation network run on the low-light input inside
``forward`` (so ``lowlight enhance`` needs nothing else). It is a submodule (``.to()`` moves it)
but never part of the checkpoint (:func:`~lowlight_cli.models.base.keep_out_of_checkpoints`): a
model is built with a seeded stand-in and ``create_model`` / ``load_checkpoint`` / the trainer
attach the trained network, found as ``lowlight priors`` finds it (``$LOWLIGHT_NETS``, the cache,
``../shared/nets``). Every SEM is zero-initialised, so ``crnet-s-skf`` starts as ``crnet-s`` and
can warm-start from its weights.

Not tile-exact twice over: the SEMs' attention is a statistic of the whole input, and the
segmentation network sees only the tile. Measured (``benchmarks/skf_tiling.py``, :data:`TILING_NOTE`),
tiles of 512 px differ from the whole image about as much as crnet-s's own tiles do, so it tiles
as crnet-s does: 1024 px tiles by default, which run LOL-size photos (and anything up to 1024 px)
whole and give the segmentation network a view 2.7x its 384 px training size.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, UsageError
from .base import ModelInfo, keep_out_of_checkpoints
from .crnet import PAPER as CRNET_PAPER
from .crnet import CRNet
from .registry import register_model
from .skf import MAX_SCALES, SemanticEmbedding, SemanticGuidance, SemanticPrior

SKF_PAPER = (
    "Wu, Pan, Zhang, Qiu, Peng, Liu, Luo, Learning Semantic-Aware Knowledge Guidance for Low-Light Image "
    f"Enhancement, CVPR 2023 (enhancer: {CRNET_PAPER})"
)
SEGMENTATION_SLOT = "segmentation"
# benchmarks/skf_tiling.py, 3 LOL test photos resized to 1024x768, trained ESPNetv2, one CPU thread
TILING_NOTE = (
    "tiled (512 px, overlap 32) vs whole: PSNR 45.9-51.4 dB, mean abs 0.002-0.003 with random SEMs "
    "(SEM effect 0.011 mean abs); 49.2-51.5 dB after 200 training steps (SEM effect 0.002); crnet-s alone "
    "47.8-55.8 dB; ESPNetv2's argmax on 512 px tiles agrees with the whole photo's on 97.3-100% of the pixels "
    "(94-99% on 256 px tiles)"
)
# torch.onnx refuses it: "ONNX export of operator adaptive pooling, since output_size is not constant"
EXPORT_NOTE = (
    "the segmentation network it runs, ESPNetv2, uses adaptive average pooling to sizes computed from "
    "the input size, which ONNX cannot express: a graph would be right at one input size only"
)


class CRNetSKF(CRNet):
    """CRNet whose last groups are guided by a frozen segmentation network's view of the input.

    Args:
        info: the registered :class:`ModelInfo`.
        semantic_scales: SEMs, after the last ``semantic_scales`` groups (1 to ``min(3, groups)``).
        segmentation_net: registered frozen segmentation network (``lowlight priors``) providing
            class probabilities and the encoder layers ``level2``, ``level3``.
        semantic_heads: attention heads of each SEM (SKF: 2); must divide ``channels``.
        kwargs: :class:`~lowlight_cli.models.crnet.CRNetConfig` fields.

    Raises:
        ConfigError: a scale count out of range, or heads that do not divide the channels.
        UsageError, UnknownNameError: a network that is not a segmentation network, or unknown.

    Shapes: as :class:`CRNet`; ``forward_train`` adds ``"probabilities"``, the prior's
    ``(B, K, H, W)`` class probabilities of the input (no gradient), for the SKF losses.
    """

    warm_start_additions = ("context.", "semantic.")

    def __init__(
        self,
        info: ModelInfo,
        *,
        semantic_scales: int = 2,
        segmentation_net: str = "espnetv2-voc",
        semantic_heads: int = 2,
        **kwargs: object,
    ) -> None:
        super().__init__(info, **kwargs)
        groups, channels = self.cfg.groups, self.cfg.channels
        if not 1 <= semantic_scales <= min(MAX_SCALES, groups):
            raise ConfigError(
                f"{info.name}: semantic_scales must be 1 to {min(MAX_SCALES, groups)} ({groups} groups), got {semantic_scales}"
            )
        if semantic_heads < 1 or channels % semantic_heads:
            raise ConfigError(f"{info.name}: semantic_heads must divide channels ({channels}), got {semantic_heads}")
        self.semantic_scales = int(semantic_scales)
        self.config = {**self.config, "semantic_scales": self.semantic_scales, "segmentation_net": segmentation_net,
                       "semantic_heads": int(semantic_heads)}
        from ..priors import create_prior  # not at import: lowlight_cli.priors imports this package (through the hub)

        self.prior = keep_out_of_checkpoints(SemanticPrior(create_prior(segmentation_net, stand_in=True)))
        # deepest semantic input first: SEM j follows group (groups - semantic_scales + j)
        inputs = self.prior.pyramid_channels(self.semantic_scales)[::-1]
        self.semantic = nn.ModuleList(SemanticEmbedding(channels, s, heads=semantic_heads) for s in inputs)

    # ---- the frozen network ------------------------------------------------------------------
    def frozen_networks(self) -> dict[str, nn.Module]:
        """``{"segmentation": the frozen segmentation network}`` (a seeded stand-in until one is attached)."""
        return {SEGMENTATION_SLOT: self.prior.network}

    def attach_frozen_network(self, slot: str, network: nn.Module) -> None:
        """Use ``network`` as the segmentation network; it moves to the model's device.

        Raises:
            KeyError: ``slot`` is not ``"segmentation"``.
            UsageError: ``network`` is not a segmentation network with the layers and channels
                the SEMs were built for.
        """
        if slot != SEGMENTATION_SLOT:
            super().attach_frozen_network(slot, network)
        from ..priors import FrozenNetwork

        if not isinstance(network, FrozenNetwork):
            raise UsageError(f"the segmentation slot takes a frozen network (lowlight priors), got {type(network).__name__}")
        weight = next(self.semantic.parameters())
        prior = SemanticPrior(network.to(weight.device))
        wanted = self.prior.pyramid_channels(self.semantic_scales)
        if prior.pyramid_channels(self.semantic_scales) != wanted:
            raise UsageError(
                f"{network.info.name} gives semantic inputs of {prior.pyramid_channels(self.semantic_scales)} channels; "
                f"this model's SEMs take {wanted}",
                hint=f"use the network the model was built for ({self.config['segmentation_net']})",
            )
        self.prior = keep_out_of_checkpoints(prior)

    # ---- forward -----------------------------------------------------------------------------
    def _guided(
        self, x: torch.Tensor, context: torch.Tensor | None, *, all_stages: bool
    ) -> tuple[list[torch.Tensor], SemanticGuidance]:
        guidance = self.prior(x)
        maps = guidance.pyramid(self.semantic_scales)[::-1]
        first = self.cfg.groups - self.semantic_scales

        def after_group(k: int, h: torch.Tensor) -> torch.Tensor:
            return h if k < first else self.semantic[k - first](h, maps[k - first])

        return self._stages(x, context, all_stages=all_stages, after_group=after_group), guidance

    def forward_train(self, x: torch.Tensor, context: torch.Tensor | None = None) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``{"output": y_G, "stages": [y_1 .. y_{G-1}], "probabilities": (B, K, H, W)}``, images unclamped."""
        stages, guidance = self._guided(x, context, all_stages=True)
        return {"output": stages[-1], "stages": stages[:-1], "probabilities": guidance.probabilities}

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Enhance ``x`` ``(B, 3, H, W)`` in ``[0, 1]``; clamped to ``[0, 1]`` in eval mode (``context``: see :class:`CRNet`)."""
        y = self._guided(x, context, all_stages=False)[0][-1]
        return y if self.training else y.clamp(0.0, 1.0)


def register() -> None:
    """Register ``crnet-s-skf`` (crnet-s + two SEMs) and ``crnet-tiny-skf`` (tests)."""
    # a family of its own: these models need a segmentation network, so they never stand in for
    # plain CRNet weights (``crnet`` runs the best bundled weights of the crnet family)
    common = dict(family="crnet-skf", tile_exact=False, default_tile=1024, paper=SKF_PAPER, exportable=False, export_note=EXPORT_NOTE)
    register_model(
        ModelInfo(
            name="crnet-s-skf",
            listed_macs=180_521_300,
            description="crnet-s with SKF semantic guidance (two SEMs; the frozen espnetv2-voc it runs on the "
            "input is counted in params and MACs)",
            input_multiple=4,
            memory_per_pixel=900,  # measured: 445 B per pixel of working memory, whole 3 MP image, fp32 CPU
            bundled_weights="crnet-s-skf-lol",
            **common,
        ),
        CRNetSKF,
        groups=2,
        blocks=3,
        downscale=4,
        global_context=True,
        semantic_scales=2,
    )
    register_model(
        ModelInfo(
            name="crnet-tiny-skf",
            listed_macs=99_517_588,
            description="CRNet test size with SKF semantic guidance (two SEMs)",
            memory_per_pixel=900,
            tags=("test",),
            **common,
        ),
        CRNetSKF,
        channels=8,
        groups=2,
        blocks=2,
        recurrences=1,
        semantic_scales=2,
    )


register()
