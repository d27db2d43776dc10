"""The registry of frozen networks and ``create_prior``, the one way to build one.

Each family module (``vgg``, ``squeezenet``, ``espnetv2``) registers its networks beside their
definition; ``lowlight_cli.priors`` imports those modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UsageError
from ..registry import Registry
from .base import FrozenNetwork, PriorInfo
from .weights import load_weights, resolve_weights

STAND_IN_SEED = 0  # default seed of stand-ins, so random-weight tests are reproducible


@dataclass(frozen=True)
class PriorEntry:
    """A registered frozen network: its facts and the builder of its (untrained) architecture."""

    info: PriorInfo
    builder: Callable[[PriorInfo], FrozenNetwork]

    def build(self) -> FrozenNetwork:
        """The architecture with its framework-default initialisation, not frozen, not loaded."""
        return self.builder(self.info)


PRIORS: Registry[PriorEntry] = Registry("prior", listing="lowlight priors")


def register_prior(info: PriorInfo, builder: Callable[[PriorInfo], FrozenNetwork]) -> None:
    """Register a frozen network (called by its family module at import)."""
    PRIORS.register(info.name, PriorEntry(info, builder))


def prior_info(name: str) -> PriorInfo:
    """The :class:`PriorInfo` of a registered network; :class:`UnknownNameError` otherwise."""
    return PRIORS.get(name).info


def list_priors() -> list[str]:
    """Registered frozen-network names, in registration order."""
    return PRIORS.names()


def create_prior(
    name: str,
    *,
    weights: str | Path | None = None,
    stand_in: bool = False,
    seed: int = STAND_IN_SEED,
) -> FrozenNetwork:
    """Build a frozen network: trained weights, eval mode, parameters frozen, on the CPU.

    Args:
        name: registered name (``lowlight priors`` lists them), e.g. ``vgg19-normalised``.
        weights: a safetensors file, a folder holding it, or ``hf-hub:org/repo[@rev]``; default:
            the network's file in ``$LOWLIGHT_NETS``, the cache or ``../shared/nets``.
        stand_in: build the same architecture with seeded random weights instead (fast tests only).
            The result says so (``is_stand_in``, its repr); it is never substituted for missing
            real weights.
        seed: seed of a stand-in's initialisation.

    Returns:
        The network; its features are differentiable in the input, never in its weights.

    Raises:
        UnknownNameError: unknown name (with "did you mean").
        UsageError: ``weights`` together with ``stand_in``.
        WeightsNotFoundError, WeightsIntegrityError, CheckpointError: see
            :func:`~lowlight_cli.priors.weights.resolve_weights` and
            :func:`~lowlight_cli.priors.weights.load_weights`.
    """
    entry = PRIORS.get(name)
    if stand_in:
        if weights is not None:
            raise UsageError("weights and stand_in=True contradict each other", hint="drop one of them")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = entry.build()
        network.is_stand_in = True
        return network.freeze()
    found = resolve_weights(entry.info, weights)
    with torch.random.fork_rng(devices=[]):  # the random init the weights replace leaves the caller's seed alone
        network = entry.build()
    return load_weights(network, found).freeze()
