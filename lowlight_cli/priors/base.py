"""What every frozen network is: its metadata (:class:`PriorInfo`) and the module contract (:class:`FrozenNetwork`).

A frozen network takes RGB images in ``[0, 1]``, ``(B, 3, H, W)``, applies its own input convention
(channel order, scale, mean/std) inside, and returns named feature maps. It is always in eval mode
(batch norm uses running statistics even when a parent calls ``.train()``), its parameters never
require gradients, and gradients flow through it to its input.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from ..errors import UnknownNameError, UsageError

Kind = Literal["features", "segmentation", "recognition"]


@dataclass(frozen=True)
class InputConvention:
    """How a network wants its input, starting from RGB in ``[0, 1]``.

    The network sees ``(x[:, order] * scale - mean) / std`` where ``order`` flips RGB to BGR when
    ``channel_order == "BGR"``; ``mean`` and ``std`` are in the network's channel order and units.

    Attributes:
        channel_order: "RGB" or "BGR".
        scale: multiplies ``[0, 1]`` values first (255 for Caffe-trained networks).
        mean: subtracted after scaling, per channel.
        std: divides after subtracting, per channel.
        note: anything done inside the network itself (e.g. a conversion baked into its first layer).
    """

    channel_order: Literal["RGB", "BGR"] = "RGB"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    note: str = ""

    @property
    def is_identity(self) -> bool:
        """Whether the input goes in unchanged."""
        return self.channel_order == "RGB" and self.scale == 1.0 and self.mean == (0.0,) * 3 and self.std == (1.0,) * 3

    def describe(self) -> str:
        """One line for listings, e.g. ``BGR x255 - (104, 117, 123)``."""
        if self.is_identity:
            return f"RGB [0,1]{'; ' + self.note if self.note else ''}"
        parts = [self.channel_order]
        if self.scale != 1.0:
            parts.append(f"x{self.scale:g}")
        if self.mean != (0.0,) * 3:
            parts.append(f"- ({', '.join(f'{m:g}' for m in self.mean)})")
        if self.std != (1.0,) * 3:
            parts.append(f"/ ({', '.join(f'{s:g}' for s in self.std)})")
        return " ".join(parts) + (f"; {self.note}" if self.note else "")


IMAGENET_RGB = InputConvention(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
CAFFE_BGR = InputConvention(channel_order="BGR", scale=255.0, mean=(104.0, 117.0, 123.0))


def apply_input_convention(x: Tensor, convention: InputConvention) -> Tensor:
    """Map RGB images in ``[0, 1]`` to what a network expects.

    Args:
        x: ``(B, 3, H, W)`` float RGB in ``[0, 1]``.
        convention: the network's :class:`InputConvention`.

    Returns:
        ``(B, 3, H, W)`` in the network's channel order and units; differentiable in ``x``.
    """
    if convention.is_identity:
        return x
    if convention.channel_order == "BGR":
        x = x.flip(1)
    mean = torch.tensor(convention.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(convention.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * convention.scale - mean) / std


@dataclass(frozen=True)
class WeightsSource:
    """Where a frozen network's real weights come from.

    Attributes:
        filename: safetensors file looked up in the nets folders (``$LOWLIGHT_NETS``, the cache,
            ``../shared/nets``).
        origin: the public file it was converted from (repository @ commit, path), or the publisher.
        sha256: digest of ``filename`` as published here; files found by the default lookup must
            match it (explicit paths are checked by strict loading only).
        hub_id: a Hugging Face Hub repository holding compatible weights (``hf-hub:`` + this); never
            downloaded unless asked for.
    """

    filename: str
    origin: str
    sha256: str | None = None
    hub_id: str | None = None


@dataclass(frozen=True)
class PriorInfo:
    """Facts about a registered frozen network, read by the CLI and by the losses.

    Attributes:
        name: registered name (``vgg19-normalised``).
        kind: ``features``, ``segmentation`` (adds per-pixel class logits) or ``recognition``
            (adds an image embedding and class probabilities).
        description: one line: the architecture and its training.
        layers: names accepted by :meth:`FrozenNetwork.features`, shallow to deep.
        input_convention: applied inside the module.
        weights: where real weights come from.
        licence: of the weights.
        replaces: which network of the papers it stands in for, and what changes.
        num_classes: length of the class axis of the logits (0 for feature networks).
        classes: class names in index order, when known (may be empty even if ``num_classes > 0``).
        native_size: input side the network was trained at (pixels), for documentation.
    """

    name: str
    kind: Kind
    description: str
    layers: tuple[str, ...]
    input_convention: InputConvention
    weights: WeightsSource
    licence: str
    replaces: str = ""
    num_classes: int = 0
    classes: tuple[str, ...] = field(default=(), repr=False)
    native_size: int | None = None

    @property
    def provides(self) -> str:
        """What a loss can read from it, in a few words."""
        extra = {
            "features": "",
            "segmentation": f"; {self.num_classes}-class logits per pixel",
            "recognition": f"; pooled embedding, {self.num_classes}-class probabilities",
        }[self.kind]
        return f"features {self.layers[0]}..{self.layers[-1]}{extra}"


def check_images(x: Tensor) -> None:
    """Raise :class:`UsageError` unless ``x`` is a float ``(B, 3, H, W)`` batch."""
    if x.ndim != 4 or x.shape[1] != 3 or not x.is_floating_point():
        raise UsageError(f"frozen networks take float (B, 3, H, W) RGB images in [0, 1], got {tuple(x.shape)} {x.dtype}")


class FrozenNetwork(nn.Module):
    """Base of the frozen networks: input convention, named features, frozen eval mode.

    Subclasses build their layers with the parameter names of their weights file (or translate them
    in :meth:`module_key`) and implement :meth:`_features` (and, by kind, ``logits`` and
    ``probabilities``, plus ``embedding`` for recognition networks).

    Attributes:
        info: the registered :class:`PriorInfo`.
        is_stand_in: True when the weights are seeded random numbers, not the trained ones.
        weights_path: the file the weights were loaded from (None for stand-ins).
    """

    def __init__(self, info: PriorInfo) -> None:
        super().__init__()
        self.info = info
        self.is_stand_in = False
        self.weights_path: Path | None = None

    # --- the contract ------------------------------------------------------------------------

    def features(self, x: Tensor, layers: Iterable[str] | None = None) -> dict[str, Tensor]:
        """Named feature maps of RGB images.

        Args:
            x: ``(B, 3, H, W)`` float RGB in ``[0, 1]``.
            layers: names from ``info.layers`` (default: all); computation stops at the deepest.

        Returns:
            ``{name: (B, C, h, w)}`` in the order asked, each differentiable in ``x``.

        Raises:
            UnknownNameError: a layer name the network does not have (with close matches).
            UsageError: ``x`` is not a ``(B, 3, H, W)`` float batch.
        """
        wanted = self.check_layers(layers)
        check_images(x)
        out = self._features(self.prepare(x), frozenset(wanted))
        return {name: out[name] for name in wanted}

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """All named feature maps; see :meth:`features`."""
        return self.features(x)

    def embedding_and_probabilities(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Recognition networks: the image embedding ``(B, D)`` and class probabilities ``(B, K)`` of
        ``x`` ``(B, 3, H, W)`` RGB ``[0, 1]``, both differentiable in ``x``.

        This default calls ``embedding`` and ``probabilities`` (two passes); networks override it
        with one pass.

        Raises:
            UsageError: the network is not a recognition network.
        """
        if self.info.kind != "recognition":
            raise UsageError(f"{self.info.name} is a {self.info.kind} network: it has no embedding or class probabilities")
        return self.embedding(x), self.probabilities(x)  # type: ignore[attr-defined]

    def prepare(self, x: Tensor) -> Tensor:
        """RGB ``[0, 1]`` -> the network's input convention, same shape; a float64 (or other full
        precision) batch is converted to the network's dtype, so losses built on it take float64
        inputs (gradients flow back in the inputs' dtype); half types are left to autocast."""
        weight = next(self.parameters(), None)
        if weight is not None and x.dtype != weight.dtype and x.dtype not in (torch.float16, torch.bfloat16):
            x = x.to(weight.dtype)
        return apply_input_convention(x, self.info.input_convention)

    def _features(self, x: Tensor, wanted: frozenset[str]) -> dict[str, Tensor]:
        """Compute at least the ``wanted`` layers from an already prepared input."""
        raise NotImplementedError

    def check_layers(self, layers: Iterable[str] | None) -> tuple[str, ...]:
        """Validate layer names; :class:`UnknownNameError` with a "did you mean" hint otherwise."""
        if layers is None:
            return self.info.layers
        wanted = (layers,) if isinstance(layers, str) else tuple(layers)
        for name in wanted:
            if name not in self.info.layers:
                close = difflib.get_close_matches(name, self.info.layers, n=3, cutoff=0.5)
                raise UnknownNameError(
                    f"{self.info.name} has no layer {name!r} (layers: {', '.join(self.info.layers)})",
                    hint=f"did you mean {', '.join(close)}?" if close else None,
                )
        if not wanted:
            raise UsageError("ask for at least one layer")
        return wanted

    # --- frozen ------------------------------------------------------------------------------

    def freeze(self) -> FrozenNetwork:
        """Eval mode and ``requires_grad=False`` on every parameter; returns self."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> FrozenNetwork:
        """Stay in eval mode whatever is asked: a frozen network never updates its batch-norm statistics."""
        return super().train(False)

    def module_key(self, file_key: str) -> str | None:
        """The parameter or buffer name a tensor of the weights file loads into; None if unused.

        Default: the same name. Every tensor that maps must match by name and shape, and every
        parameter and buffer must be filled.
        """
        return file_key

    def extra_repr(self) -> str:
        if self.is_stand_in:
            return f"name={self.info.name!r}, STAND-IN (seeded random weights, not the trained network)"
        return f"name={self.info.name!r}, weights={str(self.weights_path) if self.weights_path else 'not loaded'!r}"
