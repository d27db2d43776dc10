"""Parity of an exported model with the PyTorch original: same inputs, compare outputs, judge.

Every export runs :func:`check_parity` before the file is put in place; the export fails (and
nothing is left behind) when the exported model disagrees beyond the :class:`Tolerance` of its
precision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ExportError, LowlightError, UsageError
from ..inference.padding import round_up
from ..metrics import psnr
from ..models.base import ModelInfo

BatchFn = Callable[[torch.Tensor], torch.Tensor]
StageFn = Callable[[str], None]  # told what an export does next, in words (progress)
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((64, 96), (96, 128))  # non-square, small enough for a CPU
PARITY_BATCH = 2  # two images per size: the batch axis is dynamic too
PARITY_SEED = 0


@dataclass(frozen=True)
class Tolerance:
    """How close an exported model must stay to PyTorch (float32 reference, outputs in [0, 1]).

    Attributes:
        max_abs_error: largest allowed absolute difference of any output value (``None``: unchecked).
        min_psnr_db: smallest allowed PSNR in dB of the exported output against the reference,
            worst image of the batch (``None``: unchecked).
    """

    max_abs_error: float | None = None
    min_psnr_db: float | None = None

    def accepts(self, max_abs_error: float, psnr_db: float) -> bool:
        """True when both measured values are within the limits (NaN never is)."""
        ok_abs = self.max_abs_error is None or max_abs_error <= self.max_abs_error
        ok_psnr = self.min_psnr_db is None or psnr_db >= self.min_psnr_db
        return ok_abs and ok_psnr

    def describe(self) -> str:
        """E.g. ``max abs error <= 0.0001`` or ``PSNR >= 40 dB``."""
        parts = []
        if self.max_abs_error is not None:
            parts.append(f"max abs error <= {self.max_abs_error:g}")
        if self.min_psnr_db is not None:
            parts.append(f"PSNR >= {self.min_psnr_db:g} dB")
        return " and ".join(parts) or "none"


FP32_TOLERANCE = Tolerance(max_abs_error=1e-4)
FP16_TOLERANCE = Tolerance(min_psnr_db=40.0)


def check_fits_float16(model: nn.Module, name: str) -> None:
    """Refuse an fp16 export of weights beyond float16's range (65504), naming the tensor.

    Raises:
        ExportError: some finite floating-point tensor of ``model`` overflows in float16.
    """
    state = model.state_dict()
    overflowed = [k for k, v in state.items() if v.is_floating_point() and bool(torch.isfinite(v).all())
                  and not bool(torch.isfinite(v.half()).all())]
    if overflowed:
        largest = float(state[overflowed[0]].abs().max())
        more = "" if len(overflowed) == 1 else f"; {len(overflowed)} tensors"
        raise ExportError(f"{name}'s weights do not fit float16: {overflowed[0]} holds {largest:.3g} (float16 reaches 65504){more}",
                          hint="export fp32 instead (drop --fp16)")


def tolerance_for(fp16: bool) -> Tolerance:
    """The parity tolerance of an export: max abs 1e-4 for fp32, PSNR >= 40 dB for fp16."""
    return FP16_TOLERANCE if fp16 else FP32_TOLERANCE


@dataclass(frozen=True)
class ParityCheck:
    """Exported model vs PyTorch on one input size.

    Attributes:
        height, width: input size in pixels.
        batch: images compared at this size.
        max_abs_error: largest absolute output difference (outputs in [0, 1]).
        psnr_db: PSNR of the exported output against PyTorch's, worst image; ``inf`` if identical.
        passed: within the tolerance, and every output value finite.
    """

    height: int
    width: int
    batch: int
    max_abs_error: float
    psnr_db: float
    passed: bool

    def describe(self) -> str:
        """E.g. ``64x96: max abs 3.6e-07, PSNR 131.2 dB``."""
        return f"{self.height}x{self.width}: max abs {self.max_abs_error:.2g}, PSNR {self.psnr_db:.1f} dB"


TRACE_SIZE = (32, 48)  # the ONNX graph is traced at this size rounded up to the input multiple, never a parity size


def trace_size(multiple: int) -> tuple[int, int]:
    """The ``(H, W)`` an ONNX export traces its graph at: :data:`TRACE_SIZE` rounded up to ``multiple``."""
    return round_up(TRACE_SIZE[0], multiple), round_up(TRACE_SIZE[1], multiple)


def default_parity_sizes(multiple: int) -> list[tuple[int, int]]:
    """Two or more sizes ``(H, W)``, multiples of ``multiple``, none the :func:`trace_size`: 64x96 and
    96x128 rounded up, and where a large multiple (a curve model at ``--curve-scale 16``) folds those
    into one another or into the trace size, larger non-square ones."""
    traced = trace_size(multiple)
    sizes = [size for size in dict.fromkeys((round_up(h, multiple), round_up(w, multiple)) for h, w in DEFAULT_SIZES)
             if size != traced]
    step = 1
    while len(sizes) < 2:
        size = (traced[0] + step * multiple, traced[1] + (step + 1) * multiple)
        if size not in sizes:
            sizes.append(size)
        step += 1
    return sizes


def parity_sizes(info: ModelInfo, sizes: Sequence[tuple[int, int]] | None = None) -> tuple[tuple[int, int], ...]:
    """Input sizes ``(H, W)`` of the parity check of a model.

    Default: :func:`default_parity_sizes`.

    Raises:
        UsageError: fewer than two distinct sizes, or a side that is not a positive multiple of
            the model's input multiple.
    """
    multiple = info.input_multiple
    if sizes is None:
        sizes = default_parity_sizes(multiple)
    checked = tuple(dict.fromkeys((int(h), int(w)) for h, w in sizes))
    if len(checked) < 2:
        raise UsageError("the parity check needs at least two distinct input sizes", hint="e.g. 64x96 and 96x128")
    for h, w in checked:
        if h < multiple or w < multiple or h % multiple or w % multiple:
            raise UsageError(f"parity size {h}x{w} is not a multiple of {info.name}'s input multiple {multiple}")
    return checked


def parity_input(batch: int, height: int, width: int, *, seed: int = PARITY_SEED) -> torch.Tensor:
    """Reproducible test batch ``(batch, 3, height, width)`` float32 in ``[0, 1]``: a dark scene.

    Smooth coloured shading at about a tenth of full scale with sensor noise, light sources (1% of
    the pixels near 1) and scattered values over the whole range (4%): what the models are made
    for, so that they change it as a real low-light photo. (Uniform noise squared, the input
    before session 27, has a mean of 0.33: the photo models passed it through nearly unchanged, so
    the check could not see an export that got the brightening wrong; tests/test_export.py checks
    that this one is brightened and shows a perturbation of the weights.)
    """
    generator = torch.Generator().manual_seed(seed + 7919 * height + width)
    grid = (max(2, height // 16), max(2, width // 16))
    colour = torch.rand((batch, 3, *grid), generator=generator)
    shade = torch.rand((batch, 1, *grid), generator=generator)
    scene = F.interpolate(0.5 * (colour + shade), size=(height, width), mode="bilinear", align_corners=False)
    scene = 0.3 * scene.square() + 0.02 * torch.randn((batch, 3, height, width), generator=generator)
    pick = torch.rand((batch, 1, height, width), generator=generator)
    lights = 0.9 + 0.1 * torch.rand((batch, 3, height, width), generator=generator)
    anywhere = torch.rand((batch, 3, height, width), generator=generator)
    scene = torch.where(pick < 0.01, lights, torch.where(pick < 0.05, anywhere, scene))
    return scene.clamp(0.0, 1.0)


def compare(reference: torch.Tensor, candidate: torch.Tensor, tolerance: Tolerance) -> ParityCheck:
    """Measure ``candidate`` against ``reference``, both ``(B, 3, H, W)`` in ``[0, 1]``.

    Raises:
        ExportError: the shapes differ.
    """
    if candidate.shape != reference.shape:
        raise ExportError(f"the exported model returns shape {tuple(candidate.shape)} for an input whose PyTorch output is {tuple(reference.shape)}")
    ref, got = reference.detach().cpu().double(), candidate.detach().cpu().double()
    finite = bool(torch.isfinite(got).all())
    max_abs = float((got - ref).abs().max()) if finite else math.nan
    worst_psnr = float(psnr(got.clamp(0, 1), ref.clamp(0, 1)).min()) if finite else math.nan
    b, _, h, w = reference.shape
    return ParityCheck(h, w, b, max_abs, worst_psnr, finite and tolerance.accepts(max_abs, worst_psnr))


def check_parity(
    reference: BatchFn,
    candidate: BatchFn,
    sizes: Sequence[tuple[int, int]],
    tolerance: Tolerance,
    *,
    what: str,
    batch: int = PARITY_BATCH,
    on_stage: StageFn | None = None,
) -> tuple[ParityCheck, ...]:
    """Run both models on the same :func:`parity_input` at every size and compare.

    Args:
        reference: the PyTorch model (float32), batch ``(B, 3, H, W)`` in [0, 1] -> same shape.
        candidate: the exported model, same contract.
        sizes: input sizes ``(H, W)``, multiples of the model's input multiple.
        tolerance: limits every size must meet.
        what: names the exported artefact in the error message.
        batch: images per size.
        on_stage: told ``"comparing with PyTorch at BxHxW"`` before each size (progress).

    Returns:
        One :class:`ParityCheck` per size, all passed.

    Raises:
        ExportError: a size is beyond the tolerance (the message lists every size's numbers), or
            the candidate fails to run at a size.
    """
    checks = []
    for height, width in sizes:
        if on_stage is not None:
            on_stage(f"comparing with PyTorch at {batch}x{height}x{width}")
        x = parity_input(batch, height, width)
        with torch.inference_mode():
            expected = reference(x)
            try:
                got = candidate(x)
            except LowlightError as exc:
                raise ExportError(f"parity check failed: {what} cannot run a {batch}x3x{height}x{width} input ({exc}); nothing was written") from None
            checks.append(compare(expected, got, tolerance))
    if not all(c.passed for c in checks):
        raise ExportError(
            f"parity check failed: {what} disagrees with PyTorch beyond {tolerance.describe()} ("
            + "; ".join(c.describe() for c in checks)
            + "); nothing was written",
            hint="in fp16 the model loses too much precision: export fp32 instead (drop --fp16)" if tolerance == FP16_TOLERANCE
            else "in fp32 the two should agree: this is a bug in the export of this model, please report it with the command",
        )
    return tuple(checks)
