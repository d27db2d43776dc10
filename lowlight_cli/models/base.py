"""What every model declares about itself, and the base class that enforces the forward contract."""

from __future__ import annotations

import operator
import sys
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError


def needs_graph(*tensors: torch.Tensor) -> bool:
    """True when an operation on ``tensors`` must keep the differentiable, exportable form: autograd
    records it (grad mode on and some tensor requires grad), or a model is being traced or compiled
    (ONNX export, ``torch.jit.trace``, ``torch.compile``). Otherwise inference code may write into
    fresh tensors in place, which graphs cannot capture."""
    # torch.onnx is imported by an export, not here (importing it costs a command 0.1 s)
    if "torch.onnx" in sys.modules and torch.onnx.is_in_onnx_export():
        return True
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return True
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def area_mean(x: torch.Tensor, factor: int, *, ceil_mode: bool = False) -> torch.Tensor:
    """``avg_pool2d(x, factor, ceil_mode=ceil_mode)`` of ``(B, C, H, W)``: the mean of each
    ``factor`` x ``factor`` cell.

    For inference on a float32 or float64 ``x`` (half types keep the pooling's float accumulation) whose sides are multiples of ``factor``, a power of 2, the cells
    are halved in turn, each halving two additions of whole rows and then of neighbouring columns:
    the same means to within float rounding (the sum's order differs), faster than ``avg_pool2d``'s
    loop on the CPU (the whole command's A/B: docs/performance.md). Otherwise (autograd, tracing, export,
    other sizes) ``avg_pool2d`` itself.
    """
    height, width = x.shape[-2:]
    power_of_two = factor > 0 and factor & (factor - 1) == 0
    if (factor == 1 or not power_of_two or height % factor or width % factor or x.dtype not in (torch.float32, torch.float64)
            or x.dim() != 4 or not x.is_contiguous() or needs_graph(x)):
        return F.avg_pool2d(x, factor, ceil_mode=ceil_mode)
    while factor > 1:
        b, c, height, width = x.shape
        rows = x.view(b, c, height // 2, 2 * width)  # each pair of rows side by side
        summed = rows[..., :width] + rows[..., width:]
        pairs = summed.view(b, c, height // 2, width // 2, 2)
        x = torch.add(pairs[..., 0], pairs[..., 1]).mul_(0.25)
        factor //= 2
    return x


# The coarsest curve scale: curve maps from 1/64 of the photo's side. Coarser would mean a few
# curve values for a whole photo and, for CRNet, padding every photo to a multiple of 512 x scale
# (a scale of 100000 asked for terabytes).
MAX_CURVE_SCALE = 64


def check_curve_scale(value: object, what: str = "curve_scale") -> int:
    """The curve-scale rule every curve model and the engine share: an integer from 1 to
    :data:`MAX_CURVE_SCALE` (numpy integers too; bools, floats and strings refused), returned as a
    plain ``int`` (for JSON).

    Raises:
        ConfigError: anything else, naming ``what``.
    """
    try:
        scale = 0 if isinstance(value, bool) else operator.index(value)  # type: ignore[call-overload]
    except TypeError:
        scale = 0
    if not 1 <= scale <= MAX_CURVE_SCALE:
        raise ConfigError(f"{what} must be an integer from 1 to {MAX_CURVE_SCALE}, got {value!r}")
    return int(scale)


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
        cpu_bf16: bf16 on a CPU with native bf16 was measured to keep this model's outputs within a
            few hundredths of a dB of fp32, so ``lowlight enhance --precision auto`` runs it in bf16
            there (README "Speed"); others stay fp32 unless ``--precision bf16`` is given.
        enhance_auto_curve_scale: ``lowlight enhance`` estimates this curve model's curves at
            reduced resolution above 8 MP unless told otherwise (``--curve-scale auto``), its
            quality cost having been measured on enlarged photos (README "Speed"); others run at
            their checkpoint's scale unless ``--curve-scale`` is given.
        enhance_colour: ``lowlight enhance``'s ``--colour`` when none is given: ``"input"`` keeps a
            photo's own colour balance (:func:`~lowlight_cli.inference.colour.keep_input_colour`),
            measured better on every photo set for this model (docs/photo-quality.md); ``"model"``
            (the default) keeps the model's. ``lowlight evaluate`` always defaults to ``"model"``.
        enhance_blacks: ``lowlight enhance``'s ``--blacks`` when none is given: ``"keep"`` lowers
            the blacks the model lifts (:func:`~lowlight_cli.inference.blacks.keep_blacks`), chosen
            for this model on the photo sets (docs/photo-quality.md); ``"model"`` (the default)
            keeps the model's. ``lowlight evaluate`` always defaults to ``"model"``.
        listed_macs: multiply-accumulates of one forward pass of the model as built by default on a
            64x64 input (:func:`~lowlight_cli.models.complexity.measure_complexity`), which
            ``lowlight models`` lists per pixel instead of counting them again: counting takes
            seconds for the paper-size models on a CPU. A test counts every registered model and
            checks this; None: counted when listed.
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
    cpu_bf16: bool = False
    listed_macs: int | None = None
    enhance_auto_curve_scale: bool = False
    enhance_colour: str = "model"
    enhance_blacks: str = "model"


class EnhancementModel(nn.Module):
    """Base class: ``forward(x)`` maps a low-light batch to the enhanced batch.

    Subclasses set ``info`` (a :class:`ModelInfo`) and ``config`` (the constructor kwargs, so a
    checkpoint can rebuild the model) and implement :meth:`forward_train`.

    Shapes: ``x`` is ``(B, 3, H, W)`` float RGB in ``[0, 1]``; ``H`` and ``W`` multiples of
    ``info.input_multiple``.
    """

    info: ModelInfo
    config: dict
    # state-dict key prefixes of zero-initialised modules that a warm-start checkpoint may lack
    warm_start_additions: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.register_forward_pre_hook(_check_input_size)

    @classmethod
    def curve_capable(cls, kwargs: dict) -> bool:
        """Whether a model built with ``kwargs`` would have ``supports_curve_scale`` (curve maps it
        can estimate at reduced resolution), answered without building it; False by default."""
        return False

    def frozen_networks(self) -> dict[str, nn.Module]:
        """The frozen networks this model runs inside ``forward``, by slot (none by default).

        They are part of the computation (``.to()`` moves them, ONNX export traces them) but not of
        the model's checkpoint (:func:`keep_out_of_checkpoints`): whoever builds the model gives them
        their trained weights with :meth:`attach_frozen_network` (``create_model``,
        ``load_checkpoint`` and the trainer do, see :func:`lowlight_cli.models.load_frozen_networks`).
        """
        return {}

    def attach_frozen_network(self, slot: str, network: nn.Module) -> None:
        """Put ``network`` (a frozen network, see :meth:`frozen_networks`) in ``slot``.

        Raises:
            KeyError: the model has no such slot.
        """
        raise KeyError(f"{type(self).__name__} has no frozen network slot {slot!r}")

    def forward_train(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Return ``{"output": (B,3,H,W) unclamped, "stages": [intermediate images]}`` for losses."""
        return {"output": self.forward(x), "stages": []}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _check_input_size(model: EnhancementModel, args: tuple) -> None:
    """Refuse, before the model's reshapes fail on it, an image whose sides are not multiples of
    ``info.input_multiple`` (a clear error instead of "shape '[1, 3, 7, 4, 8, 4]' is invalid").
    Skipped while tracing, exporting or compiling, where shapes are symbolic."""
    multiple = getattr(getattr(model, "info", None), "input_multiple", 1)
    if multiple <= 1 or not args or not isinstance(args[0], torch.Tensor) or args[0].ndim < 2:
        return
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_compiling():
        return
    height, width = args[0].shape[-2:]
    if height % multiple or width % multiple:
        raise ValueError(
            f"{model.info.name} takes images whose sides are multiples of {multiple}, got {height}x{width}: "
            "pad them first (lowlight_cli.inference.pad_to_multiple, or an Enhancer, which pads and crops back)")


def _drop_own_tensors(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    if getattr(module, "_listing_own_tensors", False):
        return
    for key in [k for k in state_dict if k.startswith(prefix)]:
        del state_dict[key]


def _supply_own_tensors(module: nn.Module, state_dict: dict, prefix: str, *_: object) -> None:
    module._listing_own_tensors = True
    try:
        own = module.state_dict(keep_vars=True)
    finally:
        module._listing_own_tensors = False
    state_dict.update({prefix + key: value for key, value in own.items()})


def keep_out_of_checkpoints(module: nn.Module) -> nn.Module:
    """Leave ``module``'s parameters and buffers out of every ``state_dict`` that contains it, and let
    a strict ``load_state_dict`` of its parent succeed without them (they keep their values).

    For a frozen network an enhancer runs inside its forward: its weights come from its own file,
    so they are neither written into the enhancer's checkpoint nor read from it. Returns ``module``.

    Example:
        >>> parent = nn.Sequential(nn.Linear(2, 2), keep_out_of_checkpoints(nn.Linear(2, 2)))
        >>> sorted(parent.state_dict())
        ['0.bias', '0.weight']
        >>> parent.load_state_dict(parent.state_dict())
        <All keys matched successfully>
    """
    module.register_state_dict_post_hook(_drop_own_tensors)
    module.register_load_state_dict_pre_hook(_supply_own_tensors)
    return module
