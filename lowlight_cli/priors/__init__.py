"""Frozen networks (priors) for perceptual, semantic and recognition losses, and region providers.

``create_prior(name)`` builds a registered network with its trained weights (a path, ``hf-hub:``,
or the default lookup: ``$LOWLIGHT_NETS``, the cache, ``../shared/nets``), frozen and in eval
mode; ``create_prior(name, stand_in=True)`` builds the same architecture with seeded random
weights for fast tests, and says so. Every network takes RGB ``(B, 3, H, W)`` in ``[0, 1]`` and
returns named features (``net.features(x, layers=("relu1_2", "relu2_2"))``); segmentation
networks add per-pixel ``logits``, recognition networks ``embedding`` and ``probabilities``.

Each family module registers its networks; this file only imports them.
"""

from __future__ import annotations

from . import espnetv2, squeezenet, vgg  # noqa: F401 - registration
from .base import CAFFE_BGR, IMAGENET_RGB, FrozenNetwork, InputConvention, PriorInfo, WeightsSource, apply_input_convention
from .espnetv2 import VOC_CLASSES, ESPNetv2Segmentation
from .regions import FelzenszwalbRegions, RegionProvider, SemanticRegions
from .registry import PRIORS, STAND_IN_SEED, PriorEntry, create_prior, list_priors, prior_info, register_prior
from .squeezenet import SqueezeNet
from .vgg import VGGFeatures
from .weights import NETS_ENV, FoundWeights, locate_weights, nets_folders, resolve_weights

__all__ = [
    "CAFFE_BGR",
    "ESPNetv2Segmentation",
    "FelzenszwalbRegions",
    "FoundWeights",
    "FrozenNetwork",
    "IMAGENET_RGB",
    "InputConvention",
    "NETS_ENV",
    "PRIORS",
    "PriorEntry",
    "PriorInfo",
    "RegionProvider",
    "STAND_IN_SEED",
    "SemanticRegions",
    "SqueezeNet",
    "VGGFeatures",
    "VOC_CLASSES",
    "WeightsSource",
    "apply_input_convention",
    "create_prior",
    "list_priors",
    "locate_weights",
    "nets_folders",
    "prior_info",
    "register_prior",
    "resolve_weights",
]
