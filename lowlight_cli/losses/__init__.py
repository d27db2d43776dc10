"""Losses: pure functions plus thin modules, registered by name (``create_loss``).

SSIM exists once, in :mod:`lowlight_cli.metrics.ssim`; the losses build on it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from ..errors import UsageError
from ..registry import Registry
from .adversarial import AdversarialDiscriminatorLoss, AdversarialGeneratorLoss, discriminator_loss, generator_loss
from .consistency import MultiConsistencyLoss, multi_consistency_loss
from .contrastive import (
    BrightnessContrastiveLoss,
    TextureContrastiveLoss,
    brightness_contrastive_loss,
    texture_contrastive_loss,
    texture_infonce_loss,
)
from .curves import CurveNegatives, bag_of_curves
from .features import FeaturePreservationLoss, FrozenFeatures, PerceptualLoss, feature_preservation_loss, gram_matrix
from .gradient import GradientMapL1Loss, gradient_map, gradient_map_l1_loss
from .histogram import SemanticHistogramLoss, semantic_histogram_loss
from .progressive import ProgressiveLoss, SSIMLoss, progressive_loss, ssim_loss
from .regions import RegionBrightnessLoss, region_brightness_loss
from .semantic_contrastive import SemanticContrastiveLoss, semantic_contrastive_loss
from .zero_reference import (
    ColourConstancyLoss,
    ExposureControlLoss,
    IlluminationSmoothnessLoss,
    colour_constancy_loss,
    exposure_control_loss,
    illumination_smoothness_loss,
)

LOSSES: Registry[Callable[..., nn.Module]] = Registry("loss")
LOSSES.register("ssim", SSIMLoss)
LOSSES.register("progressive", ProgressiveLoss)
LOSSES.register("multi_consistency", MultiConsistencyLoss)
LOSSES.register("illumination_smoothness", IlluminationSmoothnessLoss)
LOSSES.register("colour_constancy", ColourConstancyLoss)
LOSSES.register("exposure_control", ExposureControlLoss)
LOSSES.register("brightness_contrastive", BrightnessContrastiveLoss)
LOSSES.register("texture_contrastive", TextureContrastiveLoss)  # network=..., form="hinge" | "infonce"
LOSSES.register("feature_preservation", FeaturePreservationLoss)  # network=...
LOSSES.register("region_brightness", RegionBrightnessLoss)
LOSSES.register("gradient_map_l1", GradientMapL1Loss)  # Semi-LLIE
LOSSES.register("perceptual", PerceptualLoss)  # Semi-LLIE; network=..., layers=...; forward(output, target)
LOSSES.register("semantic_contrastive", SemanticContrastiveLoss)  # Semi-LLIE; network=... (recognition)
LOSSES.register("semantic_histogram", SemanticHistogramLoss)  # SKF; forward(output, target, regions)
LOSSES.register("adversarial_generator", AdversarialGeneratorLoss)  # SKF; forward(discriminator, output, regions)
LOSSES.register("adversarial_discriminator", AdversarialDiscriminatorLoss)  # SKF; forward(discriminator, output, target, regions)


def create_loss(name: str, **kwargs: object) -> nn.Module:
    """Build a registered loss module; unknown names raise with a "did you mean" hint.

    Raises:
        UnknownNameError: no loss of that name.
        UsageError: an option the loss does not take, or a required one missing (e.g. the frozen
            ``network`` of the feature losses); the message lists the options it takes.
    """
    factory = LOSSES.get(name)
    try:
        inspect.signature(factory).bind(**kwargs)
    except TypeError as exc:
        options = [p for p in inspect.signature(factory).parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD or p.kind is p.KEYWORD_ONLY]
        spelled = ", ".join(p.name if p.default is p.empty else f"{p.name}={p.default!r}" for p in options) or "no options"
        raise UsageError(f"loss {name!r}: {exc}", hint=f"it takes {spelled}"
                         + ("; network= is a frozen network: create_prior(NAME)" if any(p.name == "network" for p in options) else "")) from None
    return factory(**kwargs)


__all__ = [
    "LOSSES",
    "AdversarialDiscriminatorLoss",
    "AdversarialGeneratorLoss",
    "BrightnessContrastiveLoss",
    "ColourConstancyLoss",
    "CurveNegatives",
    "ExposureControlLoss",
    "FeaturePreservationLoss",
    "FrozenFeatures",
    "GradientMapL1Loss",
    "IlluminationSmoothnessLoss",
    "MultiConsistencyLoss",
    "PerceptualLoss",
    "ProgressiveLoss",
    "RegionBrightnessLoss",
    "SSIMLoss",
    "SemanticContrastiveLoss",
    "SemanticHistogramLoss",
    "TextureContrastiveLoss",
    "bag_of_curves",
    "brightness_contrastive_loss",
    "colour_constancy_loss",
    "create_loss",
    "discriminator_loss",
    "exposure_control_loss",
    "feature_preservation_loss",
    "generator_loss",
    "gradient_map",
    "gradient_map_l1_loss",
    "gram_matrix",
    "illumination_smoothness_loss",
    "multi_consistency_loss",
    "progressive_loss",
    "region_brightness_loss",
    "semantic_contrastive_loss",
    "semantic_histogram_loss",
    "ssim_loss",
    "texture_contrastive_loss",
    "texture_infonce_loss",
]
