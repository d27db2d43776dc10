"""SCL-LLE and PIE: unpaired contrastive training of the curve model (DCE-Net); registers both methods.

Both train Zero-DCE's DCE-Net (``lowlight_cli.models.dce``) on low-light patches with normal-light
positives that are not their references (:mod:`lowlight_cli.data.unpaired`) and badly exposed
negatives, with the zero-reference, contrastive, feature and region losses of
:mod:`lowlight_cli.losses`. One step class serves both; the methods differ in their negatives
(SCL-LLE: the inputs and over-exposed curve versions of the positives; PIE: Bag of Curves from
the positives), their texture contrast (hinge, InfoNCE), their regions (semantic, unsupervised) and
their defaults.

Frozen networks: the papers' VGG16 relu4_3 (feature preservation) and relu3_3 (PIE's texture)
are not available offline; the defaults use ``vgg19-normalised`` up to relu3_1 instead (its
activations are ~1 on average, so the papers' weights may need retuning). ``features_net``,
``feature_layers`` and ``texture_layers`` take the papers' network (``vgg16`` with weights from a
path or ``hf-hub:``) and layers unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..losses import (
    bag_of_curves,
    brightness_contrastive_loss,
    colour_constancy_loss,
    feature_preservation_loss,
    illumination_smoothness_loss,
    region_brightness_loss,
    texture_contrastive_loss,
    texture_infonce_loss,
)
from ..losses.contrastive import BRIGHTNESS_MARGIN, TEXTURE_LAYERS, TEXTURE_MARGIN
from ..losses.curves import CURVES, GAMMA_RANGE, LOG_GAIN, TONE_EXPONENT, gamma_curve, log_curve, tone_curve
from ..priors import FelzenszwalbRegions, SemanticRegions
from .methods import Method, StepContext, register_method
from .steps import StepOutput

WEIGHTS = ("tv", "colour", "region", "feature", "brightness", "texture")
REGION_SOURCES = ("semantic", "felzenszwalb")
TextureLoss = Callable[[Sequence[Tensor], Sequence[Tensor], Sequence[Tensor]], Tensor]


@dataclass
class CurveLosses:
    """Loss weights, frozen networks and regions of the unpaired curve methods (SCL-LLE, PIE).

    Attributes:
        tv: illumination smoothness (total variation of the curve maps), 200 in both papers.
        colour: colour constancy of the output, 8.
        region: region brightness consistency (within-region brightness variance), 1.
        feature: feature preservation (MSE of input and output features), 1.
        brightness: brightness contrastive hinge, 10.
        texture: texture contrast (Gram distances), SCL-LLE 5 (hinge), PIE 10 (InfoNCE).
        brightness_margin: margin of the brightness hinge, 0.3.
        features_net: frozen feature network (``lowlight priors``); ``vgg16`` is the papers'.
        features_weights: its weights (file, folder or ``hf-hub:``); empty: the default lookup.
        texture_layers: layers whose Gram matrices are contrasted (papers: VGG16 relu1_2,
            relu2_2, PIE also relu3_3).
        feature_layers: layers of feature preservation (papers: VGG16 relu4_3).
        regions: ``semantic`` (argmax of ``segmentation_net`` on the enhanced output) or
            ``felzenszwalb`` (unsupervised, on the detached enhanced output).
        segmentation_net, segmentation_weights: the segmentation network of semantic regions.
        felzenszwalb_scale, felzenszwalb_sigma, felzenszwalb_min_size: of unsupervised regions
            (PIE's code: 100, 0.5, 300).
    A weight of 0 drops the term, and with it any frozen network only that term needs.
    """

    tv: float = 200.0
    colour: float = 8.0
    region: float = 1.0
    feature: float = 1.0
    brightness: float = 10.0
    texture: float = 5.0
    brightness_margin: float = BRIGHTNESS_MARGIN
    features_net: str = "vgg19-normalised"
    features_weights: str = ""
    texture_layers: tuple[str, ...] = TEXTURE_LAYERS
    feature_layers: tuple[str, ...] = ("relu3_1",)
    regions: str = "felzenszwalb"
    segmentation_net: str = "espnetv2-voc"
    segmentation_weights: str = ""
    felzenszwalb_scale: float = 100.0
    felzenszwalb_sigma: float = 0.5
    felzenszwalb_min_size: int = 300

    def validate(self, section: str) -> None:
        """Raise :class:`ConfigError` naming ``section.key`` for a value out of range."""
        for name in (*WEIGHTS, "brightness_margin", *self._margins()):
            if getattr(self, name) < 0:
                raise ConfigError(f"{section}.{name} must be >= 0")
        if not any(getattr(self, name) for name in WEIGHTS):
            raise ConfigError(f"{section}: every loss weight is 0, nothing to train")
        if self.regions not in REGION_SOURCES:
            raise ConfigError(f"{section}.regions must be one of {', '.join(REGION_SOURCES)}, got {self.regions!r}")
        for weight, layers in (("texture", "texture_layers"), ("feature", "feature_layers")):
            if getattr(self, weight) and not getattr(self, layers):
                raise ConfigError(f"{section}.{layers} is empty while {section}.{weight} is not 0")

    def _margins(self) -> tuple[str, ...]:
        return ()


@dataclass
class SclLleLosses(CurveLosses):
    """SCL-LLE's loss section (``scl_lle``): :class:`CurveLosses` with semantic regions and the
    texture hinge's ``texture_margin`` (0.04)."""

    regions: str = "semantic"
    texture_margin: float = TEXTURE_MARGIN

    def _margins(self) -> tuple[str, ...]:
        return ("texture_margin",)


@dataclass
class PieLosses(CurveLosses):
    """PIE's loss section (``pie``): :class:`CurveLosses` with the InfoNCE texture term at weight 10
    over three layers (the papers' relu3_3 is relu3_1 here)."""

    texture: float = 10.0
    texture_layers: tuple[str, ...] = (*TEXTURE_LAYERS, "relu3_1")


def over_exposed(images: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Over-exposed versions of ``images`` by the Bag of Curves' bright settings, a curve drawn per image.

    Each image gets, uniformly at random, the tone curve ``V^0.1``, an RGB gamma drawn in
    ``U(0, 0.2)``, or the log curve with gain 40 (see :mod:`lowlight_cli.losses.curves`).

    Args:
        images: ``(B, 3, H, W)`` in ``[0, 1]``.
        generator: a CPU generator for the draws; None uses the global RNG.

    Returns:
        ``(B, 3, H, W)`` in ``[0, 1]``, same device and dtype, no gradient.
    """
    batch = images.shape[0]
    curve = torch.randint(0, len(CURVES), (batch,), generator=generator)
    low, high = GAMMA_RANGE["bright"]
    parameters = (
        torch.full((batch,), TONE_EXPONENT["bright"], dtype=torch.float64),
        low + (high - low) * torch.rand(batch, generator=generator, dtype=torch.float64),
        torch.full((batch,), LOG_GAIN["bright"], dtype=torch.float64),
    )
    out = torch.empty_like(images)
    with torch.no_grad():
        for index, apply in enumerate((tone_curve, gamma_curve, log_curve)):
            chosen = (curve == index).nonzero().squeeze(1)
            if chosen.numel():
                picked = chosen.to(images.device)
                out[picked] = apply(images[picked], parameters[index][chosen])
    return out


def scl_lle_negatives(low: Tensor, positives: Tensor) -> Tensor:
    """SCL-LLE's negatives, under- and over-exposed: the low-light inputs and an over-exposed curve
    version of each positive, ``(B + K, 3, H, W)``.

    Over-exposing the positives rather than the inputs (ours): a curve that over-exposes a dark
    input multiplies its noise (up to x255 near black), so its Gram distance to any output is ~3x
    that of a positive (measured with vgg19-normalised on LOL patches) and the texture hinge is
    met from the first step, teaching nothing; over-exposed positives keep it active.
    """
    return torch.cat([low, over_exposed(positives)])


def pie_negatives(low: Tensor, positives: Tensor) -> Tensor:
    """PIE's negatives: one Bag-of-Curves image per positive, half dark and half bright, ``(B, 3, H, W)``."""
    return bag_of_curves(positives).images


def region_provider(losses: CurveLosses, context: StepContext) -> nn.Module:
    """Semantic regions of ``losses.segmentation_net``, or Felzenszwalb regions, as ``losses.regions`` says."""
    if losses.regions == "semantic":
        return SemanticRegions(context.frozen_network(losses.segmentation_net, losses.segmentation_weights))
    return FelzenszwalbRegions(losses.felzenszwalb_scale, losses.felzenszwalb_sigma, losses.felzenszwalb_min_size)


class CurveContrastiveStep:
    """One unpaired step of a curve method on a batch ``{"low", "positive"[, "negative"]}``.

    The student (DCE-Net's ``forward_train``: output and curves) runs once on the low patches;
    the frozen feature network runs once on the output (with gradient) and without gradient on
    the inputs, positives and negatives. Negatives come from the batch when the data has them
    (``--negatives DIR``), else from ``make_negatives(low, positives)``.

    Args:
        losses: the method's validated loss section.
        context: builds the frozen networks on the training device.
        texture_loss: ``(anchor, positive, negative feature lists) -> scalar``.
        make_negatives: ``(low, positives) -> negatives`` images in ``[0, 1]``.

    Raises:
        UnknownNameError: a layer the feature network does not have.
    """

    def __init__(self, losses: CurveLosses, context: StepContext, *, texture_loss: TextureLoss,
                 make_negatives: Callable[[Tensor, Tensor], Tensor]) -> None:
        self.losses, self.texture_loss, self.make_negatives = losses, texture_loss, make_negatives
        self.texture_layers = tuple(losses.texture_layers) if losses.texture else ()
        self.feature_layers = tuple(losses.feature_layers) if losses.feature else ()
        self.layers = tuple(dict.fromkeys(self.texture_layers + self.feature_layers))
        self.network = context.frozen_network(losses.features_net, losses.features_weights) if self.layers else None
        if self.network is not None:
            self.network.check_layers(self.layers)
        self.regions = region_provider(losses, context) if losses.region else None

    def _reference(self, images: Tensor, layers: tuple[str, ...]) -> list[Tensor]:
        with torch.no_grad():
            found = self.network.features(images, layers=layers)
        return [found[name] for name in layers]

    def loss_terms(self, student: nn.Module, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """The unweighted terms with a non-zero weight, by name (``tv``, ``colour``, ``brightness``,
        ``region``, ``feature``, ``texture``), each differentiable in the student."""
        w = self.losses
        low, positives = batch["low"], batch["positive"]
        negatives = batch["negative"] if "negative" in batch else self.make_negatives(low, positives)
        out = student(low)
        output = out["output"]
        terms: dict[str, Tensor] = {}
        if w.tv:
            terms["tv"] = illumination_smoothness_loss(out["curves"])
        if w.colour:
            terms["colour"] = colour_constancy_loss(output)
        if w.brightness:
            terms["brightness"] = brightness_contrastive_loss(output, positives, negatives, margin=w.brightness_margin)
        if self.regions is not None:
            terms["region"] = region_brightness_loss(output, self.regions(output))
        if self.network is not None:
            found = self.network.features(output, layers=self.layers)
            if self.feature_layers:
                terms["feature"] = feature_preservation_loss(
                    self._reference(low, self.feature_layers), [found[n] for n in self.feature_layers])
            if self.texture_layers:
                terms["texture"] = self.texture_loss([found[n] for n in self.texture_layers],
                                                     self._reference(positives, self.texture_layers),
                                                     self._reference(negatives, self.texture_layers))
        return terms

    def __call__(self, student: nn.Module, batch: dict[str, Tensor]) -> StepOutput:
        terms = self.loss_terms(student, batch)
        total = sum(getattr(self.losses, name) * term for name, term in terms.items())
        return StepOutput(total, {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}})


def _scl_lle_step(context: StepContext) -> CurveContrastiveStep:
    losses: SclLleLosses = context.losses

    def hinge(anchor: Sequence[Tensor], positive: Sequence[Tensor], negative: Sequence[Tensor]) -> Tensor:
        return texture_contrastive_loss(anchor, positive, negative, margin=losses.texture_margin)

    return CurveContrastiveStep(losses, context, texture_loss=hinge, make_negatives=scl_lle_negatives)


def _pie_step(context: StepContext) -> CurveContrastiveStep:
    return CurveContrastiveStep(context.losses, context, texture_loss=texture_infonce_loss, make_negatives=pie_negatives)


# The papers' crop and batch, one 384 px patch per image and epoch: 231 steps per epoch on the 463
# inputs LOL leaves for training, so 60 epochs ~ PIE's 14k iterations.
_UNPAIRED_DEFAULTS = {"data.batch_size": 2, "data.patch_size": 384, "data.patches_per_image": 1,
                      "optim.lr": 1e-4, "optim.epochs": 60, "optim.milestones": ()}

COMMON_DOC = """\
Data (unpaired): every training low image (minus the held-out validation pairs) is an input; each
patch gets a positive drawn at random from the normal-light references of the training pairs
(never the input's own reference, nor a byte-identical copy: LOL shares references between
exposures; never a validation reference), or from --positives DIR. Validation: PSNR on the
held-out pairs. Data without references (a folder of low images only: --data DIR/ holding low/,
or the images themselves, with --positives DIR) trains without validation: the final weights
are last/. Frozen networks: vgg19-normalised relu3_1 stands in for the papers' VGG16
relu4_3 / relu3_3 ({section}.features_net, .feature_layers, .texture_layers take vgg16 and
its layers when you have its weights); they are never saved with the model.
"""

SCL_LLE_DOC = """\
SCL-LLE (Liang et al., AAAI 2022): semantically contrastive learning of DCE-Net, unpaired.
Loss: 200 TV(curves) + 8 colour constancy + region brightness consistency + feature preservation
+ 10 brightness contrastive (hinge on channel-mean maps, margin 0.3) + 5 texture contrastive
(hinge on VGG Gram distances of relu1_2, relu2_2, margin 0.04). Regions: semantic, the argmax of
espnetv2-voc on the enhanced output (scl_lle.regions=felzenszwalb for unsupervised ones).
Negatives: the low inputs and an over-exposed curve version of each positive (tone, gamma or log
curve, the Bag of Curves' bright settings), or --negatives DIR.
Adam 1e-4, weight decay 1e-4, grad-norm clip 0.1, batch 2, crop 384 (method defaults).
""" + COMMON_DOC.format(section="scl_lle")

PIE_DOC = """\
PIE (Liang et al., IJCV 2024): physics-inspired contrastive learning of DCE-Net, unpaired.
Loss: 200 TV(curves) + 8 colour constancy + feature preservation + regional brightness + 10
InfoNCE texture contrast (softplus(d_AP - d_AN) on VGG Gram distances of relu1_2, relu2_2 and
relu3_1 for the paper's relu3_3) + 10 brightness contrastive (hinge, margin 0.3). Regions:
Felzenszwalb segmentation (scale 100, sigma 0.5, min size 300) of the detached enhanced output.
Negatives: Bag of Curves made from the positives (tone, gamma, log curves; half dark, half
bright), or --negatives DIR. Adam 1e-4, batch 2, crop 384; 60 epochs ~ the paper's 14k iterations.
""" + COMMON_DOC.format(section="pie")

register_method(Method(
    name="scl-lle", summary="SCL-LLE: DCE-Net, unpaired, semantic regions, brightness + texture contrast (hinge)",
    doc=SCL_LLE_DOC, families=("dce",), default_model="scl-lle", data="unpaired", teacher=False,
    losses=SclLleLosses, build_step=_scl_lle_step,
    defaults={**_UNPAIRED_DEFAULTS, "optim.weight_decay": 1e-4, "optim.grad_clip": 0.1},
))
register_method(Method(
    name="pie", summary="PIE: DCE-Net, unpaired, Bag-of-Curves negatives, unsupervised regions, InfoNCE texture",
    doc=PIE_DOC, families=("dce",), default_model="pie", data="unpaired", teacher=False,
    losses=PieLosses, build_step=_pie_step, defaults=_UNPAIRED_DEFAULTS,
))
