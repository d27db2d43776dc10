"""Training methods: what ``lowlight train --method NAME`` trains, registered by name.

A :class:`Method` ties together the model families it trains, the data it needs, whether it keeps
an EMA teacher, its typed loss section and the factory of the step object the one fit loop
(:class:`~lowlight_cli.training.engine.Trainer`) drives. Each system registers its methods in its own
module (``training/steps.py``: ``crnet``, ``mcmt``; ``training/unpaired_curves.py``: ``scl-lle``,
``pie``); ``lowlight_cli.training`` imports those modules, so the registry is full once the package is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

import torch
from torch import nn

from ..priors import FrozenNetwork, create_prior
from ..registry import Registry

if TYPE_CHECKING:
    from .config import TrainConfig
    from .ema import EMA
    from .steps import StepOutput

DataKind = Literal["paired", "paired+unlabeled", "unpaired"]
DATA_KINDS: dict[str, str] = {
    "paired": "low-light images with their references",
    "paired+unlabeled": "a labeled share of the pairs plus low-light images without references",
    "unpaired": "low-light inputs with unpaired normal-light positives and optional negatives",
}


class TrainingStep(Protocol):
    """What the fit loop calls once per optimiser step: the loss to back-propagate and its terms.

    A step that owns trainable state of its own (SKF's discriminator and its optimiser) also has
    ``after_step()`` (called after each optimiser step of the model: the step updates its state
    there, with interrupts held), optionally ``before_update()`` (called before the model's update,
    outside the held section: gradients of its own, all-reduced under torchrun), ``state_dict()`` and ``load_state_dict(state)`` (saved with and restored from the run's
    resumable state; tensors and plain values only).
    """

    def __call__(self, student: nn.Module, batch: dict[str, torch.Tensor]) -> StepOutput: ...


@dataclass
class StepContext:
    """What a method's step factory may use.

    Attributes:
        losses: the method's loss section (an instance of :attr:`Method.losses`), validated.
        config: the whole validated configuration (read it; do not change it).
        device: where the student trains; frozen networks go there too.
        ema: the EMA teacher when the run keeps one, else None.
        teacher_forward: the teacher's ``forward_train`` (possibly compiled) when the method reads
            a teacher, else None.
        networks: filled by :meth:`frozen_network`: what each frozen network was loaded from
            (a weights file, or ``stand-in``); the run's provenance records it.
        distributed: the run is one of several DDP processes (under torchrun), and the process
            group is joined: trainable state a step owns must be kept in step across them.
    """

    losses: Any
    config: TrainConfig
    device: torch.device
    ema: EMA | None = None
    teacher_forward: Callable[[torch.Tensor], dict] | None = None
    networks: dict[str, str] = field(default_factory=dict)
    distributed: bool = False

    def frozen_network(self, name: str, weights: str = "") -> FrozenNetwork:
        """A frozen network on :attr:`device`: ``weights`` (path or ``hf-hub:``), else the default lookup.

        With ``run.stand_in_priors`` (tests, smoke runs) a seeded random stand-in of the same
        architecture instead. The step owns it; it is never part of a checkpoint.

        Raises:
            UnknownNameError, WeightsNotFoundError, WeightsIntegrityError, CheckpointError: as
            :func:`~lowlight_cli.priors.create_prior`.
        """
        stand_in = self.config.run.stand_in_priors
        network = create_prior(name, weights=None if stand_in else (weights or None), stand_in=stand_in)
        self.networks[name] = "stand-in: seeded random weights" if stand_in else str(network.weights_path)
        return network.to(self.device)


@dataclass(frozen=True)
class Method:
    """A registered training method.

    Attributes:
        name: what ``--method`` takes (``crnet``, ``mcmt``, ``scl-lle``, ``pie``).
        summary: one line for listings.
        doc: what it trains and how, for ``lowlight train --method NAME --explain``.
        families: model families it can train (``ModelInfo.family``).
        default_model: the model trained when ``--model`` is not given.
        data: ``paired``, ``paired+unlabeled`` or ``unpaired`` (see :data:`DATA_KINDS`).
        teacher: the step reads an EMA teacher (mean teacher methods); the run keeps one and
            exports it by default.
        losses: dataclass of its loss section; its fields are the section's keys.
        section: the config section holding :attr:`losses` (YAML ``section: {...}``,
            ``--set section.key=value``); the method's name with ``_`` for ``-`` unless given.
        build_step: factory of the step object, from a :class:`StepContext`.
        defaults: config values (``"optim.lr": 1e-4``) that differ from the generic defaults for
            this method; a config file, flags and ``--set`` still override them.
        variants: for a plug-in method, the model it trains when given a plain enhancer
            (``{"crnet-s": "crnet-s-skf"}``: ``--method skf --model crnet-s`` trains ``crnet-s-skf``).
        unread: keys of a loss section shared with other methods that this one does not read
            (``crnet`` shares ``loss`` with ``mcmt``); ``--explain`` marks them.
        title: the method's name as its paper spells it, for messages (default: ``name`` upper-cased).
    """

    name: str
    summary: str
    doc: str
    families: tuple[str, ...]
    default_model: str
    data: DataKind
    teacher: bool
    losses: type
    build_step: Callable[[StepContext], TrainingStep]
    section: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    variants: Mapping[str, str] = field(default_factory=dict)
    unread: tuple[str, ...] = ()
    title: str = ""

    def __post_init__(self) -> None:
        if not self.section:
            object.__setattr__(self, "section", self.name.replace("-", "_"))
        if not self.title:
            object.__setattr__(self, "title", self.name.upper())
        if self.data not in DATA_KINDS:
            raise ValueError(f"method {self.name!r}: data must be one of {', '.join(DATA_KINDS)}, got {self.data!r}")

    @property
    def uses_unlabeled(self) -> bool:
        """Trains on low-light images without references beside the labeled pairs."""
        return self.data == "paired+unlabeled"

    @property
    def unpaired(self) -> bool:
        """Trains without any pixel-aligned reference."""
        return self.data == "unpaired"


METHODS: Registry[Method] = Registry("method", listing="lowlight train --list-methods")


def register_method(method: Method) -> Method:
    """Register ``method`` (called by its system's module at import).

    Raises:
        ValueError: the name is taken, or its section is already another loss dataclass's.
    """
    for other in METHODS:
        known = METHODS.get(other)
        if known.section == method.section and known.losses is not method.losses:
            raise ValueError(f"section {method.section!r} of method {method.name!r} already holds {known.losses.__name__}")
    return METHODS.register(method.name, method)


def loss_sections() -> dict[str, type]:
    """Every registered method's config section and its loss dataclass."""
    return {METHODS.get(name).section: METHODS.get(name).losses for name in METHODS}


def methods_of_section(section: str) -> list[str]:
    """Names of the methods whose losses live in ``section``."""
    return [name for name in METHODS if METHODS.get(name).section == section]
