"""The enhancement engine: one model, one device, one precision, tiled and batched.

``Enhancer.enhance`` takes a float RGB array, returns one, and reports progress and notable events
through a callback; it never prints. GPU specifics live here: autocast, an fp32 redo of any tile
batch whose output is not finite, and halving the tile on CUDA out-of-memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, InputError, ModelOutputError, UsageError
from ..io.image import ImageData, bit_depth_of, from_float, gray_channels, to_float
from ..models.base import MAX_CURVE_SCALE, EnhancementModel, check_curve_scale
from ..models.registry import curve_model_names
from .blacks import keep_blacks
from .colour import keep_input_colour
from .compilation import check_compile_toolchain, compile_module
from .device import resolve_device
from .padding import pad_to, round_up
from .precision import autocast, resolve_precision
from .tiling import DEFAULT_OVERLAP, RowsFn, TileReader, float_output, tensor_reader, tiled_rows
from .transparency import fill_hidden

MIN_TILE = 64
# InferenceConfig.colour: the model's colours, or the input's at low resolution (inference.colour)
COLOUR_MODES = ("model", "input")
# InferenceConfig.blacks: the model's blacks, or lowered to a photo's where the model lifted them (inference.blacks)
BLACKS_MODES = ("model", "keep")
# curve models under curve_scale="auto": the body sees at most this many pixels (photos above it
# get their curve maps at 1/2, 1/4, ... resolution; README "Speed" gives the cost and the gain)
AUTO_CURVE_MAX_PIXELS = 8_000_000
# curve_scale="auto" on the CPU with the default tile: a photo whose curves run at full resolution
# gets tiles of at most this side (docs/performance.md "The price of `--curve-scale auto`": 4 and
# 8 MP faster and at about half the peak memory than with 2048-px tiles, which stay the faster at 1/2)
FULL_RESOLUTION_CURVE_TILE = 1024
# ... unless the photo is at most one such tile in area (Enhancer.whole_photo_pixels): then it runs
# as one tile, which is faster up to 1 MP and slower from 1.5 MP (benchmarks/tile_choice.py)
# an input tile spanning at least this much (4 levels of 8 bits) must not come out as one flat colour
FLAT_CHECK_MIN_RANGE = 4 / 255
_BROKEN_WEIGHTS_HINT = ("the weights are probably broken (e.g. from a diverged training run): use another checkpoint "
                        "(a training run's best/ when it has one, or an earlier one)")


@dataclass(frozen=True)
class InferenceConfig:
    """How to run a model.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda[:i]`` or ``mps``.
        precision: ``auto``, ``fp32``, ``fp16`` or ``bf16`` (see :func:`resolve_precision`).
        tile: tile side in pixels; ``None`` chooses from free GPU memory (CPU: the model's
            default, and with ``curve_scale="auto"`` at most ``FULL_RESOLUTION_CURVE_TILE`` for a
            photo whose curves run at full resolution and that is larger than one such tile: see
            ``Enhancer.photo_tile``); ``0`` runs whole images.
        overlap: pixels shared by neighbouring tiles; None: 32 (31 for tiles of 64 px).
        batch_size: tiles per forward pass.
        compile: run the model through ``torch.compile`` (PyTorch models only). The first image
            pays for the compilation (about 20 s for ``crnet-s`` on the 2-core development CPU,
            README "Measured performance"); tiled inference then reuses one graph for
            every tile, while whole-image inference compiles again for new image sizes.
        curve_scale: curve models only (``supports_curve_scale``): ``None`` runs the model as it
            is set, ``N`` estimates its curve maps at ``1/N`` resolution, ``"auto"`` chooses per
            photo with :func:`auto_curve_scale` (1 up to 8 MP), never finer than the scale the
            model was built with (``built_curve_scale``: its checkpoint's). The enhancer sets the model's
            scale (``set_curve_scale``) for each photo and puts the model's back after it, so
            enhancers sharing one model each run at their own scale, and one with ``None`` runs
            the scale the model is set to (by its checkpoint, or by the caller). One photo at a
            time: enhancers sharing a model across threads would set its scale under each other.
        cpu_bf16: ``precision="auto"`` runs bf16 on a CPU with native bf16 (AVX512-BF16 or AMX) for
            models measured to keep their outputs there (``ModelInfo.cpu_bf16``): ``lowlight
            enhance`` sets it (faster, README "Speed"); off, ``auto`` is fp32 on the CPU, so that
            ``lowlight evaluate``'s scores do not depend on the machine.
        colour: ``"model"`` keeps the model's colours; ``"input"`` gives the output the input's
            colour at low resolution (:func:`~lowlight_cli.inference.colour.keep_input_colour`):
            the photo's own white balance and saturation, the model's brightness, detail and
            denoising.
        blacks: ``"model"`` keeps the model's blacks; ``"keep"`` lowers the blacks a model lifted
            to a photo's, with a toe on the output's brightness after the colour step
            (:func:`~lowlight_cli.inference.blacks.keep_blacks`; RGB photos only).
    """

    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    overlap: int | None = None
    batch_size: int = 4
    compile: bool = False
    curve_scale: int | str | None = None
    cpu_bf16: bool = False
    colour: str = "model"
    blacks: str = "model"

    def __post_init__(self) -> None:
        for name, optional in (("tile", True), ("overlap", True), ("batch_size", False)):
            value = getattr(self, name)
            if (value is None and not optional) or (value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)))):
                raise ConfigError(f"{name} must be a whole number{' or None' if optional else ''}, got {value!r}")
            if value is not None:
                object.__setattr__(self, name, int(value))
        for name in ("compile", "cpu_bf16"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.colour not in COLOUR_MODES:
            raise ConfigError(f"colour must be one of {', '.join(COLOUR_MODES)}, got {self.colour!r}")
        if self.blacks not in BLACKS_MODES:
            raise ConfigError(f"blacks must be one of {', '.join(BLACKS_MODES)}, got {self.blacks!r}")
        if self.curve_scale is not None and self.curve_scale != "auto":
            if isinstance(self.curve_scale, str):
                raise ConfigError(f"curve_scale must be an integer from 1 to {MAX_CURVE_SCALE}, 'auto' or None, got {self.curve_scale!r}")
            object.__setattr__(self, "curve_scale", check_curve_scale(self.curve_scale))
        if self.tile is not None and self.tile < 0:
            raise ConfigError(f"tile must be >= 0, got {self.tile}")
        if self.tile and self.tile < MIN_TILE:
            raise ConfigError(f"tile must be 0 (whole image) or >= {MIN_TILE}, got {self.tile}")
        if self.overlap is None:
            object.__setattr__(self, "overlap", min(DEFAULT_OVERLAP, (self.tile - 1) // 2) if self.tile else DEFAULT_OVERLAP)
        check_overlap(self.overlap, self.tile or 0)
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")


def check_overlap(overlap: int, tile: int, *, tiles: str = "tiles") -> None:
    """Refuse an overlap below 0 or of half a tile or more (``tile`` 0: whole images, any overlap)."""
    if overlap < 0 or (tile and 2 * overlap >= tile):
        raise ConfigError(f"overlap must be >= 0 and less than half the tile, got {overlap} for {tiles} of {tile} px",
                          hint=f"use --overlap {max(0, (tile - 1) // 2)} or less, or a larger --tile" if tile else None)


def auto_curve_scale(height: int, width: int, max_pixels: int = AUTO_CURVE_MAX_PIXELS) -> int:
    """The smallest power of two ``s`` with ``height * width / s**2 <= max_pixels``: 1 up to
    8 MP, 2 for a 12 or 24 MP photo, 4 above 32 MP."""
    scale = 1
    while height * width > max_pixels * scale * scale:
        scale *= 2
    return scale


def require_curve_model(model: object) -> None:
    """Refuse a curve scale for a model without curve maps (``supports_curve_scale``).

    Raises:
        UsageError: ``model`` is not a curve model; the hint lists the registered ones.
    """
    if not getattr(model, "supports_curve_scale", False):
        name = getattr(getattr(model, "info", None), "name", type(model).__name__)
        raise UsageError(f"curve_scale (--curve-scale) applies to curve models, and {name} is not one",
                         hint=f"curve models estimate per-pixel curves: {', '.join(curve_model_names())} (see `lowlight models`)")


@dataclass(frozen=True)
class TileProgress:
    """``done`` of ``total`` tiles of the current image are finished."""

    done: int
    total: int


@dataclass(frozen=True)
class Notice:
    """Something the user should hear about (tile halved after OOM, fp32 redo, ...)."""

    message: str


Event = TileProgress | Notice
EventFn = Callable[[Event], None]


def auto_tile_size(model: EnhancementModel, device: torch.device, batch_size: int, precision: str) -> int:
    """Tile side for ``model`` on ``device``: from free GPU memory on CUDA, the model's default elsewhere.

    On CUDA, aims for 60% of the currently free memory using the model's declared bytes per pixel
    (halved for 16-bit precisions), rounded down to a multiple of 64 and kept in [128, 4096].
    """
    info = model.info
    if info.default_tile == 0:
        return 0
    if device.type != "cuda":
        return info.default_tile
    free, _ = torch.cuda.mem_get_info(device)
    bytes_per_pixel = info.memory_per_pixel * (0.5 if precision != "fp32" else 1.0)
    side = math.sqrt(0.6 * free / (bytes_per_pixel * batch_size))
    side = int(min(4096, max(128, side // 64 * 64)))
    return round_up(side, info.input_multiple)


def guarded_forward(
    model: Callable[[torch.Tensor], torch.Tensor],
    batch: torch.Tensor,
    precision: str,
    device: torch.device,
    on_event: EventFn | None = None,
) -> torch.Tensor:
    """Run ``model`` on ``batch`` under ``precision`` autocast; redo in fp32 if the output is not finite.

    Half precision overflows on some inputs (very bright tiles, large activations); the redo
    costs one extra pass for that tile batch only, and a :class:`Notice` reports it.

    Returns:
        float32 output clamped to ``[0, 1]``, same shape as ``batch``.

    Raises:
        ModelOutputError: the output is still unusable after the fp32 redo (:func:`check_output`).
    """
    with torch.inference_mode():
        with autocast(precision, device):
            out = model(batch)
        out = out.float()
        if precision != "fp32" and not torch.isfinite(out).all():
            if on_event:
                on_event(Notice(f"non-finite {precision} output: redoing the tile batch in fp32"))
            out = model(batch.float()).float()
        check_output(batch, out)
        # in place on the model's own output; out of place if the model handed back its input
        return out.clamp(0.0, 1.0) if out is batch else out.clamp_(0.0, 1.0)


def check_output(batch: torch.Tensor, out: torch.Tensor) -> None:
    """Refuse an output no enhancer gives: non-finite values, or one flat colour for a varied input.

    Both come from broken weights; clamped and written they would be black or flat images that
    look like a success. ``batch`` and ``out`` are ``(B, 3, H, W)``, ``out`` before clamping; a
    tile is checked for flatness only when its input spans at least :data:`FLAT_CHECK_MIN_RANGE`.

    Raises:
        ModelOutputError: NaN or inf anywhere, or a tile whose every channel is constant.
    """
    # NaN and inf surface in the per-channel extremes; amin and amax as two reductions, which on
    # CPU are several times faster together than the fused aminmax (benchmarks/inference_ops.py)
    channels = out.flatten(2)
    low, high = channels.amin(dim=2), channels.amax(dim=2)
    if not bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
        raise ModelOutputError("the model's output is not finite (NaN or inf), even in fp32", hint=_BROKEN_WEIGHTS_HINT)
    flat = (high == low).all(1)
    # varied in space, channel by channel: a one-coloured input (a single pixel, a solid colour) is
    # flat however different its channels, and its output may be flat too
    pixels = batch.flatten(2)
    in_low, in_high = pixels.amin(dim=2), pixels.amax(dim=2)
    varied = (in_high.float() - in_low.float() >= FLAT_CHECK_MIN_RANGE).any(1)
    if bool((flat & varied).any()):
        raise ModelOutputError("the model's output is one flat colour for an input that is not flat", hint=_BROKEN_WEIGHTS_HINT)


def run_with_tile_fallback(
    run: Callable[[int], torch.Tensor],
    tile: int,
    image_side: int,
    multiple: int,
    on_event: EventFn | None = None,
) -> tuple[torch.Tensor, int]:
    """Call ``run(tile)``; on out-of-memory halve the tile (not below 64 px) and try again.

    A whole-image request (``tile == 0``) that runs out of memory continues with tiles of half
    the image's longer side. Returns the result and the tile that worked.

    Raises:
        torch.OutOfMemoryError: even the smallest tile does not fit.
    """
    while True:
        try:
            return run(tile), tile
        except torch.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            current = tile or image_side
            smaller = max(MIN_TILE, round_up(current // 2, multiple))
            if smaller >= current:
                raise
            if on_event:
                on_event(Notice(f"out of memory at tile {current}: retrying with tile {smaller}"))
            tile = smaller


def banded_context(model: torch.nn.Module, read: TileReader, height: int, width: int, multiple: int,
                   band: int = 256, visible: TileReader | None = None) -> torch.Tensor:
    """The whole-image context ``(1, D)`` of a model with ``image_context``, from row bands of the image
    ``read`` gives, padded to ``multiple`` as the whole-image path pads it.

    Each band's context is a mean over its pixels; the bands' means are weighted by their pixel
    counts. A last band shorter than ``2 * multiple`` rows joins the one before it, so the
    padding rows it reflects lie inside it, as they lie inside the whole padded image.
    ``visible`` reads ``(1, 1, rows, cols)`` pixel weights the same way (0: a fully transparent
    pixel): the context is then the mean over the visible pixels only, and the bands are weighted
    by how much of them they hold.
    """
    padded_h, padded_w = round_up(height, multiple), round_up(width, multiple)
    band = max(multiple, band - band % multiple)
    starts = list(range(0, padded_h, band))
    if len(starts) > 1 and padded_h - starts[-1] < 2 * multiple:
        starts.pop()
    total, counted = None, 0.0
    with torch.inference_mode():
        for index, top in enumerate(starts):
            rows = (starts[index + 1] if index + 1 < len(starts) else padded_h) - top
            weights = None if visible is None else visible(top, 0, rows, padded_w)
            share = float(rows * padded_w) if weights is None else float(weights.sum())
            if share <= 0:
                continue  # a band with nothing visible tells nothing
            part = model.image_context(read(top, 0, rows, padded_w), band=rows, weights=weights)  # type: ignore[attr-defined]
            weighted = part.double() * share
            total = weighted if total is None else total + weighted
            counted += share
    if total is None:  # nothing visible at all: the plain mean
        if visible is None:
            raise ValueError(f"no pixels to take a context from ({height} x {width})")
        return banded_context(model, read, height, width, multiple, band)
    return (total / counted).float()


# float inputs may stray this far outside [0, 1] (resampling overshoot) and are clipped; further is refused
RANGE_TOLERANCE = 0.01


def _range_problem(low: float, high: float) -> str | None:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "holds NaN or infinite values"
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        scale = " (it looks like 0..255: divide by 255, or use to_float on the integer pixels)" if high > 1.5 else ""
        return f"has values from {low:.4g} to {high:.4g}, outside [0, 1]{scale}"
    return None


def check_float_image(rgb: np.ndarray) -> torch.Tensor:
    """``rgb`` ``(H, W, 3)`` float RGB in ``[0, 1]`` as a ``(1, 3, H, W)`` float32 tensor, checked and
    clipped by :func:`check_float_tensor` (the caller's array is never changed).

    Raises:
        InputError: another shape, an integer or boolean dtype (:meth:`Enhancer.enhance_pixels` takes
            integer pixels, or :func:`~lowlight_cli.io.to_float` converts them), and what
            :func:`check_float_tensor` refuses.
    """
    if not isinstance(rgb, np.ndarray):
        raise InputError(f"expected a numpy array, got {type(rgb).__name__}",
                         hint="enhance_tensor takes torch tensors (1, 3, H, W)")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}",
                         hint="gray: np.repeat(gray[..., None], 3, axis=2); RGBA: enhance_pixels(rgb, visible=alpha > 0)")
    if not np.issubdtype(rgb.dtype, np.floating):
        raise InputError(f"expected float RGB in [0, 1], got {rgb.dtype} pixels",
                         hint="enhance_pixels takes uint8/uint16 pixels as they are; or enhance(to_float(pixels))")
    rgb = np.ascontiguousarray(rgb)
    if not rgb.flags.writeable:  # torch.from_numpy warns on read-only memory (a memory map, a broadcast view)
        rgb = rgb.copy()
    return check_float_tensor(torch.from_numpy(rgb).permute(2, 0, 1)[None])


def check_float_tensor(image: torch.Tensor) -> torch.Tensor:
    """``image`` ``(1, 3, H, W)`` float in ``[0, 1]``, as float32; values within :data:`RANGE_TOLERANCE`
    outside the range are clipped, on a copy.

    Raises:
        InputError: another shape or batch size, a non-float dtype, an empty image, NaN or
            infinite values, or values outside ``[0, 1]``.
    """
    if not isinstance(image, torch.Tensor):
        raise InputError(f"expected a torch tensor, got {type(image).__name__}", hint="enhance takes numpy (H, W, 3) arrays")
    if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
        raise InputError(f"expected a (1, 3, H, W) image, got {tuple(image.shape)}",
                         hint="one RGB image at a time: image[None] adds the batch dimension; enhance each image of a batch")
    if not image.is_floating_point():
        raise InputError(f"expected a float tensor in [0, 1], got {image.dtype}", hint="image.float() / 255 for 8-bit pixels")
    if image.numel() == 0:
        raise InputError(f"the image is empty ({tuple(image.shape)})")
    low, high = (float(v) for v in torch.aminmax(image.detach()))
    problem = _range_problem(low, high)
    if problem:
        raise InputError(f"the image {problem}", hint="enhance and enhance_tensor take float RGB in [0, 1]")
    image = image.float()
    return image.clamp(0.0, 1.0) if (low < 0 or high > 1) else image


def model_label(model: object) -> str:
    """How messages name ``model``: its own ``label`` (an exported file names itself), else its architecture."""
    label = getattr(model, "label", None)
    return label if isinstance(label, str) else model.info.name  # type: ignore[attr-defined]


def exported_precision(model: object) -> str | None:
    """The precision a model brings with it (an exported graph, whose arithmetic was fixed at export),
    or None for a PyTorch model, which runs at the precision the :class:`InferenceConfig` asks for."""
    precision = getattr(model, "graph_precision", None)
    return precision if isinstance(precision, str) else None


class Enhancer:
    """Runs an enhancement model on images of any size.

    Args:
        model: an :class:`EnhancementModel` (or anything with ``info`` and ``__call__``). A PyTorch
            model is moved to the config's device and put in eval mode, and stays so: to go on
            training it, call ``model.train()`` again.
        config: device, precision, tiling.

    Raises:
        TypeError: ``model`` is not a model (a name, say: ``create_model(name)`` makes one) or
            ``config`` is not an :class:`InferenceConfig`.

    Example:
        >>> from lowlight_cli.models import create_model
        >>> enhancer = Enhancer(create_model("gamma"), InferenceConfig(device="cpu"))
        >>> bool(enhancer.enhance(np.full((8, 8, 3), 0.25, np.float32)).max() > 0.5)
        True
    """

    def __init__(self, model: EnhancementModel, config: InferenceConfig | None = None) -> None:
        if isinstance(model, (str, Path)) or not (hasattr(model, "info") and callable(model)):
            made = f"create_model({str(model)!r})" if isinstance(model, str) else "create_model(NAME) or load_checkpoint(FOLDER)"
            raise TypeError(f"Enhancer takes a model, got {type(model).__name__}: {made} makes one")
        if config is not None and not isinstance(config, InferenceConfig):
            raise TypeError(f"Enhancer's config is an InferenceConfig, got {type(config).__name__}"
                            + (": InferenceConfig(**settings)" if isinstance(config, dict) else ""))
        self.config = config or InferenceConfig()
        self.device = resolve_device(self.config.device)
        exported = exported_precision(model)
        if exported is None:
            self.precision = resolve_precision(self.config.precision, self.device,
                                               cpu_bf16=self.config.cpu_bf16 and getattr(model.info, "cpu_bf16", False))
            self._autocast = self.precision
        else:  # the graph computes in its own precision: an explicit other one is refused, never silently dropped
            if self.config.precision not in ("auto", exported):
                raise UsageError(f"{model_label(model)} runs in the precision it was exported with ({exported}): "
                                 f"--precision {self.config.precision} does not apply to it",
                                 hint="drop --precision (`lowlight export --fp16` makes a float16 ONNX file)")
            self.precision = exported
            self._autocast = "fp32"  # torch's autocast does not reach into the graph
        self.model = model.to(self.device).eval() if isinstance(model, torch.nn.Module) else model
        self.info = model.info
        if getattr(model, "whole_image_context", False):  # an ONNX graph that computes whole-photo statistics
            model.check_tile(self.config.tile)  # type: ignore[attr-defined]
            self.tile = 0  # per tile they would differ: whole images only (no tiles, so no overlap to check)
        elif self.config.tile is not None:  # an explicit tile was checked with the config
            self.tile = self.config.tile
        else:
            self.tile = auto_tile_size(model, self.device, self.config.batch_size, self.precision)
            check_overlap(self.config.overlap, self.tile, tiles="the default tiles")
        if self.config.curve_scale is not None:
            require_curve_model(self.model)
        self._last_curve_scale: int | None = None  # the scale of the last photo (see curve_scale)
        self.last_tile: int | None = None  # the tile the last photo ran with, 0 if it ran whole (see photo_tile)
        self._call: Callable[..., torch.Tensor] = self.model
        if self.config.compile:
            if not isinstance(self.model, torch.nn.Module) or not self.info.needs_weights:
                raise UsageError(f"compile (--compile) applies to trained PyTorch models, not to {model_label(model)}",
                                 hint="drop it" + (" (onnxruntime optimises the graph itself)" if exported else ""))
            check_compile_toolchain(self.device)
            self._call = compile_module(self.model, fixed_shapes=self.tile > 0)

    @property
    def curve_scale(self) -> int:
        """The curve scale the last photo ran at (before any, the model's now; 1 for models without curves)."""
        return self._last_curve_scale if self._last_curve_scale is not None else int(getattr(self.model, "curve_scale", 1))

    @property
    def curves_ran_at(self) -> int | None:
        """The curve scale to report for the last photo: :attr:`curve_scale` for a curve model, the
        scale an exported graph was exported with, None for a model without curves."""
        if getattr(self.model, "supports_curve_scale", False):
            return self.curve_scale
        return getattr(self.model, "exported_curve_scale", None)

    def _apply_curve_scale(self, height: int, width: int) -> int | None:
        """Set the model's curve scale for a ``height`` x ``width`` image (see ``InferenceConfig.curve_scale``)
        and read its ``info`` again: the model may be shared with other enhancers. Returns the
        scale the model had before, for :meth:`_run` to put back, or None when it was not changed."""
        scale = self.config.curve_scale
        current = int(getattr(self.model, "curve_scale", 1))
        if scale == "auto":  # never finer than the scale the model was built with (its checkpoint's)
            built = int(getattr(self.model, "built_curve_scale", 1))
            scale = max(built, auto_curve_scale(height, width, AUTO_CURVE_MAX_PIXELS))
        changed = scale is not None and scale != current
        if changed:
            self.model.set_curve_scale(int(scale))  # type: ignore[union-attr]
        self._last_curve_scale = int(getattr(self.model, "curve_scale", 1))
        self.info = self.model.info
        return current if changed else None

    def full_resolution_tile(self) -> int:
        """The tile of a photo whose curves run at full resolution: at most
        ``FULL_RESOLUTION_CURVE_TILE`` on the CPU when the tiles are the default ones and the curve
        scale is chosen per photo (``"auto"``, on a model built at full resolution); else the
        enhancer's."""
        if (self.config.tile is None and self.device.type == "cpu" and self.config.curve_scale == "auto"
                and int(getattr(self.model, "built_curve_scale", 1)) == 1 and self.tile > FULL_RESOLUTION_CURVE_TILE
                and 2 * self.config.overlap < FULL_RESOLUTION_CURVE_TILE):  # a larger --overlap keeps its tiles
            return FULL_RESOLUTION_CURVE_TILE
        return self.tile

    def whole_photo_pixels(self) -> int:
        """Photos whose curves run at full resolution and that have at most this many pixels run
        as one of the enhancer's tiles (when they fit it), not on :meth:`full_resolution_tile`'s
        smaller ones: one of those tiles' area (0 when they are not smaller). A 1154x865 photo split
        into two 1024-px tiles ran 10% slower than whole (``benchmarks/tile_choice.py``)."""
        small = self.full_resolution_tile()
        return small * small if 0 < small < self.tile else 0

    def tile_exactness_note(self) -> str | None:
        """What to tell a user whose ``overlap`` is too small for a tile-exact model to stay exact:
        each tile needs ``receptive_radius`` pixels of context on every side (None when it has them,
        when the model is not tile-exact, or when photos run whole)."""
        info = self.info
        needed = 2 * info.receptive_radius + 1
        if not info.tile_exact or not self.tile or self.config.overlap >= needed:
            return None
        return (f"{info.name} reproduces whole-image output in tiles with --overlap {needed} or more; "
                f"at {self.config.overlap}, tile borders may differ by a few levels")

    def photo_tile(self, height: int, width: int) -> int:
        """The tile for a ``height`` x ``width`` photo at the model's current curve scale: the
        enhancer's, or :meth:`full_resolution_tile` for a photo at full resolution larger than
        :meth:`whole_photo_pixels`."""
        small = self.full_resolution_tile()
        if int(getattr(self.model, "curve_scale", 1)) != 1 or small == self.tile:
            return self.tile
        fits = height * width <= self.whole_photo_pixels() and max(height, width) <= self.tile
        return self.tile if fits else small

    def _context_forward(self, read: TileReader, height: int, width: int,
                         visible: TileReader | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """The model, bound to the whole-image context of the image ``read`` gives, when it uses one.

        Models with image-level statistics (CRNet with ``global_context``) get the statistics of
        the whole photo, padded as the whole-image path pads it, so every tile agrees with the
        others and with whole-image inference. The statistics are gathered band by band
        (:func:`banded_context`): the photo is never held in float as a whole.
        """
        model, call = self.model, self._call
        if not getattr(model, "uses_image_context", False):
            return call
        context = banded_context(model, read, height, width, self.info.input_multiple, visible=visible)
        return lambda batch: call(batch, context=context.expand(batch.shape[0], -1))

    def _run(self, read: TileReader, height: int, width: int, emit: RowsFn, on_event: EventFn | None,
             visible: TileReader | None = None) -> None:
        """Enhance the ``height`` x ``width`` image ``read`` gives, handing the output on in row bands
        (:func:`~lowlight_cli.inference.tiling.tiled_rows`); the tile fallback of :meth:`enhance_tensor`.
        A curve scale of this enhancer's own is set on the model for the photo and taken back after
        it, so enhancers sharing a model do not change each other's (or the caller's) setting."""
        previous = self._apply_curve_scale(height, width)
        try:
            self._run_at_scale(read, height, width, emit, on_event, visible)
        finally:
            if previous is not None:
                self.model.set_curve_scale(previous)  # type: ignore[union-attr]

    def _run_at_scale(self, read: TileReader, height: int, width: int, emit: RowsFn, on_event: EventFn | None,
                      visible: TileReader | None) -> None:
        info = self.info
        margin = info.receptive_radius if info.tile_exact else 0
        margin = min(margin, max(0, (self.config.overlap - 1) // 2))

        def progress(done: int, total: int) -> None:
            if on_event:
                on_event(TileProgress(done, total))

        forward = self._context_forward(read, height, width, visible)

        def run(tile: int) -> None:
            tiled_rows(
                lambda b: guarded_forward(forward, b, self._autocast, self.device, on_event),
                read,
                height,
                width,
                emit,
                tile=tile,
                overlap=self.config.overlap,
                batch_size=self.config.batch_size,
                multiple=info.input_multiple,
                margin=margin,
                device=self.device,
                on_progress=progress,
            )

        tile = self.photo_tile(height, width)
        _, used = run_with_tile_fallback(run, tile, max(height, width), info.input_multiple, on_event)
        if used != tile:  # out of memory: later photos keep the smaller tile
            self.tile = min(self.tile, used) if self.tile else used
        self.last_tile = 0 if used >= height and used >= width else used  # 0: it ran whole (tiled_rows' rule)

    def enhance_tensor(self, image: torch.Tensor, on_event: EventFn | None = None) -> torch.Tensor:
        """Enhance ``image`` ``(1, 3, H, W)`` float in ``[0, 1]`` (host memory) -> same shape, float32.

        On CUDA out-of-memory the tile is halved (down to 64 px) and the image retried; a
        :class:`Notice` says so and the smaller tile is kept for later images.
        """
        return self._enhance_float32(check_float_tensor(image), on_event)

    def _enhance_float32(self, image: torch.Tensor, on_event: EventFn | None) -> torch.Tensor:
        """:meth:`enhance_tensor` of an image already checked (float32, in [0, 1])."""
        out, keep = float_output(image)
        self._run(tensor_reader(image), *image.shape[-2:], keep, on_event)
        if image.shape[1] == 3 and (self.config.colour == "input" or self.config.blacks == "keep"):
            low, result = image[0].detach().permute(1, 2, 0).float().numpy(), out[0].permute(1, 2, 0).numpy()
            if self.config.colour == "input":
                keep_input_colour(low, result)
            if self.config.blacks == "keep":
                keep_blacks(low, result)
        return out.clamp_(0.0, 1.0)  # blended tile edges may round a hair past 1 (1.0000001)

    def enhance_pixels(self, pixels: np.ndarray, on_event: EventFn | None = None, *, gray: bool = False,
                       visible: np.ndarray | None = None) -> np.ndarray:
        """Enhance integer pixels ``(H, W, 3)`` uint8 or uint16 -> the same shape and dtype.

        The same result as ``from_float(enhance(to_float(pixels)), bit_depth)`` (with ``colour="input"``
        to within a level: in rare pixels of an 8-bit photo, whose output waits for the colour step at 16 bits, and in about
        a quarter of a 16-bit photo's, corrected after rounding; tests/test_colour.py), without a float copy
        of the whole photo in or out: tiles are converted as they are read and the output is
        rounded band by band as the tiles finish it, so memory beyond the two integer images stays
        about one strip of tiles, whatever the photo's size. ``gray``: the output's three channels
        are averaged before rounding (a gray photo stays gray, as ``io.replace_rgb`` keeps it).
        ``visible``: ``(H, W)`` bool, False where the photo is fully transparent: those pixels take
        the colour of the nearest visible one (:func:`~lowlight_cli.inference.transparency.fill_hidden`)
        and a model's whole-image statistics count the visible pixels only, so the colour hidden
        under transparency does not change how the visible part is enhanced.
        """
        if not isinstance(pixels, np.ndarray):
            raise InputError(f"expected a numpy array, got {type(pixels).__name__}")
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise InputError(f"expected (H, W, 3) pixels, got shape {pixels.shape}",
                             hint="gray: np.repeat(gray[..., None], 3, axis=2) and gray=True; RGBA: rgb and visible=alpha > 0")
        if pixels.dtype not in (np.uint8, np.uint16):
            raise InputError(f"expected uint8 or uint16 pixels, got {pixels.dtype}", hint="enhance takes float RGB in [0, 1]")
        if pixels.size == 0:
            raise InputError(f"the image is empty (shape {pixels.shape})")
        if visible is not None and (not isinstance(visible, np.ndarray) or visible.shape != pixels.shape[:2]):
            raise InputError(f"visible must be a numpy array of shape {pixels.shape[:2]}, got "
                             f"{getattr(visible, 'shape', type(visible).__name__)}")
        if visible is not None and visible.dtype != np.bool_:  # 0/255 alpha would count 1..254 as visible, others as hidden
            raise InputError(f"visible is a bool mask, got {visible.dtype}", hint="visible=alpha > 0")
        if visible is not None and visible.all():
            visible = None
        if visible is not None:
            pixels = fill_hidden(pixels, visible)
        bit_depth = bit_depth_of(pixels.dtype)
        height, width = pixels.shape[:2]
        colour = self.config.colour == "input" and not gray
        blacks = self.config.blacks == "keep"
        # the colour and blacks steps correct the whole output once it is there: an 8-bit photo's
        # output waits for them at 16 bits, so that it is rounded to 8 bits once, as from the float path
        work_depth = 16 if colour or blacks else bit_depth

        def read(top: int, left: int, rows: int, cols: int) -> torch.Tensor:
            region = torch.from_numpy(to_float(pixels[top : top + rows, left : left + cols])).permute(2, 0, 1)[None]
            return pad_to(region, rows, cols)

        out = np.empty(pixels.shape, dtype=np.uint16 if work_depth == 16 else pixels.dtype)

        def write(top: int, rows: torch.Tensor) -> None:
            block = rows[0].permute(1, 2, 0).numpy()
            if gray:
                block = gray_channels(block)
            out[top : top + block.shape[0]] = from_float(block, work_depth)

        seen = None
        if visible is not None:
            def seen(top: int, left: int, rows: int, cols: int) -> torch.Tensor:
                region = torch.from_numpy(visible[top : top + rows, left : left + cols].astype(np.float32))[None, None]
                return pad_to(region, rows, cols)

        self._run(read, height, width, write, on_event, visible=seen)
        if not (colour or blacks):
            return out
        final = out if bit_depth == 16 else np.empty_like(pixels)  # corrected and rounded to 8 bits band by band
        if colour:
            keep_input_colour(pixels, out, into=out if blacks else final)
        if blacks:
            keep_blacks(pixels, out, visible=visible, into=final)
        return final

    def enhance_image(self, image: ImageData, on_event: EventFn | None = None) -> np.ndarray:
        """The pixels ``lowlight enhance`` saves for a read image: :meth:`enhance_pixels` of its
        ``rgb``, kept gray for a gray photo, with only the photo's own pixels steering whole-image
        statistics (not fully transparent ones, nor a truncated file's filler:
        :attr:`~lowlight_cli.io.ImageData.photo_mask`), and that filler left as the decoder gave it."""
        enhanced = self.enhance_pixels(image.rgb, on_event, gray=image.gray, visible=image.photo_mask)
        if image.filler is not None:
            enhanced[image.filler] = image.rgb[image.filler]
        return enhanced

    def enhance(self, rgb: np.ndarray, on_event: EventFn | None = None) -> np.ndarray:
        """Enhance one image: ``(H, W, 3)`` float32 RGB in ``[0, 1]`` -> same shape and range."""
        out = self._enhance_float32(check_float_image(rgb), on_event)
        return out[0].permute(1, 2, 0).numpy()
