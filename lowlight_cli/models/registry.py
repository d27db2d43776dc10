"""The model registry: named sizes of each family, each a small factory with its ModelInfo."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..registry import Registry
from .base import EnhancementModel, ModelInfo


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its facts, its class and the keyword arguments of this named size."""

    info: ModelInfo
    builder: Callable[..., EnhancementModel]
    kwargs: dict = field(default_factory=dict)

    def build(self, **overrides: object) -> EnhancementModel:
        """Instantiate with this size's kwargs, updated by ``overrides``.

        Raises:
            ConfigError: an override the architecture has no option for.
        """
        try:
            return self.builder(self.info, **{**self.kwargs, **overrides})
        except TypeError as exc:  # the architecture's config dataclass refused a keyword
            unknown = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
            if unknown is None or unknown.group(1) not in {**self.kwargs, **overrides}:
                raise  # not about an option this call passed: a fault inside the constructor
            name = unknown.group(1)
            slip = (f"; YAML reads {{{name}}} as one key: write {{{name.replace(':', ': ', 1)}}}, with a space after the colon"
                    if ":" in name else "")
            raise ConfigError(f"{self.info.name} has no architecture option {name!r} (model.kwargs)",
                              hint="see the architecture's config class in lowlight_cli.models for its options" + slip) from None


MODELS: Registry[ModelEntry] = Registry("model", listing="lowlight models",
                                        listed=lambda entry: "test" not in entry.info.tags)


def register_model(info: ModelInfo, builder: Callable[..., EnhancementModel], **kwargs: object) -> None:
    """Register a named model size (called from ``lowlight_cli.models.__init__``)."""
    MODELS.register(info.name, ModelEntry(info, builder, dict(kwargs)))


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` of a registered model; :class:`UnknownNameError` otherwise."""
    return MODELS.get(name).info


def list_models(*, include_test: bool = False) -> list[str]:
    """Registered model names; test-size variants only when asked."""
    return [n for n in MODELS.names() if include_test or "test" not in MODELS.get(n).info.tags]


def curve_model_names() -> tuple[str, ...]:
    """Registered models (test sizes left out) whose curve maps can be estimated at reduced resolution
    (``supports_curve_scale``), from their classes and registered kwargs, without building them."""
    names = []
    for name in list_models():
        entry = MODELS.get(name)
        capable = getattr(entry.builder, "curve_capable", None)
        if capable is not None and capable(entry.kwargs):
            names.append(name)
    return tuple(names)
