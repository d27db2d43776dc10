"""What every model declares about itself, and the base class that enforces the forward contract."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class PretrainedWeights:
    """Where the trained weights of a registered model live.

    Attributes:
        hub_id: Hugging Face Hub repository, ``org/name``.
        revision: pinned revision (commit hash or tag).
        sha256: expected sha256 of ``model.safetensors`` (checked after download).
        licence: licence of the weights.
    """

    hub_id: str
    revision: str
    sha256: str | None = None
    licence: str = "Apache-2.0"


@dataclass(frozen=True)
class ModelInfo:
    """Facts about a registered model that tiling, padding, export and the CLI read.

    Attributes:
        name: registered name (``crnet``, ``crnet-s``, ``gamma`` ...).
        family: architecture family (``crnet``, ``classical``).
        description: one line for ``lowlight models``.
        input_multiple: height and width fed to ``forward`` must be multiples of this.
        tile_exact: True when the output at a pixel depends only on a bounded neighbourhood of
            ``receptive_radius`` pixels, so tiled inference reproduces whole-image inference.
            False for models with global operations (e.g. CRNet's layer attention).
        receptive_radius: pixels of context a tile-exact model needs; tiling blends overlaps
            outside this margin.
        default_tile: tile size on CPU (pixels, a multiple of ``input_multiple``); 0 = whole image.
        memory_per_pixel: approximate peak inference bytes per input pixel at fp32, used to size
            tiles from free GPU memory.
        needs_weights: False for models that work without trained weights (classical curves).
        exportable: whether ONNX export is supported; ``export_note`` says why not.
        paper: citation of the method.
        licence: licence of the code of this architecture.
        pretrained: where the default trained weights live on the Hub, if published.
        bundled_weights: name of the folder under ``weights/`` holding this model's default
            trained checkpoint (e.g. ``crnet-s-lol``); empty = the model's own name.
    """

    name: str
    family: str
    description: str
    input_multiple: int = 1
    tile_exact: bool = False
    receptive_radius: int = 0
    default_tile: int = 512
    memory_per_pixel: int = 2048
    needs_weights: bool = True
    exportable: bool = True
    export_note: str = ""
    paper: str = ""
    licence: str = "Apache-2.0"
    pretrained: PretrainedWeights | None = None
    bundled_weights: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


class EnhancementModel(nn.Module):
    """Base class: ``forward(x)`` maps a low-light batch to the enhanced batch.

    Subclasses set ``info`` (a :class:`ModelInfo`) and ``config`` (the constructor kwargs, so a
    checkpoint can rebuild the model) and implement :meth:`forward_train`.

    Shapes: ``x`` is ``(B, 3, H, W)`` float RGB in ``[0, 1]``; ``H`` and ``W`` multiples of
    ``info.input_multiple``.
    """

    info: ModelInfo
    config: dict

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Return ``{"output": (B,3,H,W) unclamped, "stages": [intermediate images]}`` for losses."""
        return {"output": self.forward(x), "stages": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
