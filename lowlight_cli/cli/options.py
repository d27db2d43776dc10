"""Option aliases shared by several commands, so each is spelled and documented once.

Numeric options are checked when the command line is parsed (ranges and the callbacks below), so a
bad value is a usage error (exit 2) before any model is loaded or any file is touched.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Optional

import click
import typer

from ..inference.engine import AUTO_CURVE_MAX_PIXELS, BLACKS_MODES, COLOUR_MODES, MIN_TILE, auto_curve_scale
from ..models.base import MAX_CURVE_SCALE
from ..models.registry import curve_model_names


def check_positive(value: float | None) -> float | None:
    """Option callback: the value must be > 0 (and finite)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value} is not a number > 0")
    return value


def check_fraction(value: float | None) -> float | None:
    """Option callback: the value must be in (0, 1]."""
    if value is not None and not 0 < value <= 1:
        raise typer.BadParameter(f"{value} is not in (0, 1]")
    return value


def check_tile(value: int | None) -> int | None:
    """Option callback: a tile side is 0 (whole image) or at least :data:`MIN_TILE` pixels."""
    if value is not None and value != 0 and value < MIN_TILE:
        raise typer.BadParameter(f"{value} is neither 0 (whole image) nor >= {MIN_TILE}")
    return value


def check_curve_scale(value: str | None) -> str | None:
    """Option callback: ``--curve-scale`` is ``auto`` or an integer from 1 to ``MAX_CURVE_SCALE``."""
    if value is None or value == "auto":
        return value
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= MAX_CURVE_SCALE:
        raise typer.BadParameter(f"{value!r} is neither auto nor an integer from 1 to {MAX_CURVE_SCALE}")
    return value


def parse_curve_scale(value: str | None) -> int | str | None:
    """``None``, ``"auto"`` or the integer of a checked ``--curve-scale`` value."""
    return value if value in (None, "auto") else int(value)  # type: ignore[arg-type]


ModelOpt = Annotated[
    Optional[str], typer.Option("--model", "-m", show_default=False,
                                help="Registered model name to export (see `lowlight models`); --weights picks its weights. "
                                     "Default: the architecture that --weights' checkpoint names.")
]
EnhanceModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        "-m",
        help="Registered model name (see `lowlight models`) or an exported .onnx file. Default: the architecture "
        "that --weights' checkpoint names, else crnet-curve-dn.",
        show_default=False,
    ),
]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--weights",
        "-w",
        help="Checkpoint folder (config.json + model.safetensors), a bundled weights name (`lowlight models`) or hf-hub:org/repo@revision.",
    ),
]
NoPretrainedOpt = Annotated[
    bool,
    typer.Option("--no-pretrained", help="Seeded random initialisation (tests and benchmarks only)."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]


def _lower(value: object) -> object:
    """Names taken in any case (``--precision FP32``), as ``--ext`` and ``--format`` are."""
    return value.lower() if isinstance(value, str) else value


PrecisionOpt = Annotated[
    str, typer.Option("--precision", callback=_lower, help="auto, fp32, fp16 or bf16 (auto: bf16/fp16 on CUDA, fp32 on the CPU; ask for bf16 on CPUs with AVX512-BF16 or AMX).")
]
EnhancePrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        callback=_lower,
        help="auto, fp32, fp16 or bf16 (auto: bf16/fp16 on CUDA; on the CPU bf16 for the models measured in it "
        "(crnet-curve, crnet-curve-dn: as fast or faster, outputs within a few hundredths of a dB) where the CPU "
        "has AVX512-BF16 or AMX, else fp32).",
    ),
]
TileOpt = Annotated[
    Optional[int],
    typer.Option("--tile", callback=check_tile, help=f"Tile side in pixels (0 = whole image, else >= {MIN_TILE}); default: from GPU memory / model."),
]
OverlapOpt = Annotated[Optional[int], typer.Option("--overlap", min=0, help="Overlap between tiles in pixels, less than half the tile; default: 32 (31 for --tile 64).")]
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the model: the first image waits for the compilation, the rest run faster (tiled); CPU: needs a C++ compiler."),
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Tiles per forward pass.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Write a machine-readable summary on stdout.")]
OutDirOpt = Annotated[Path, typer.Option("--output", "-o", help="Output folder.")]
CurveScaleOpt = Annotated[
    Optional[int],
    typer.Option(
        "--curve-scale",
        min=1,
        max=MAX_CURVE_SCALE,
        help=f"Curve models ({', '.join(curve_model_names())}): estimate the curve maps at 1/N resolution and apply "
        f"them at full resolution (Zero-DCE++'s speed-up, docs/performance.md; N at most {MAX_CURVE_SCALE}); default: the checkpoint's (1).",
    ),
]
EnhanceCurveScaleOpt = Annotated[
    Optional[str],
    typer.Option(
        "--curve-scale",
        callback=check_curve_scale,
        metavar="auto|N",
        help=f"Curve models ({', '.join(curve_model_names())}): estimate the curve maps at 1/N resolution and "
        "apply them at full resolution (Zero-DCE++'s speed-up; faster, a little noisier: docs/performance.md). auto (the "
        f"default for crnet-curve and crnet-curve-dn; the others keep their checkpoint's scale): full resolution up to {AUTO_CURVE_MAX_PIXELS / 1e6:g} MP, 1/{auto_curve_scale(3000, 4000)} for a 12 MP "
        f"photo, 1/{auto_curve_scale(6000, 8000)} for 48 MP, never finer than the checkpoint's own scale; 1: full "
        "resolution at any size.",
    ),
]
def _mode_options(flag: str, modes: tuple[str, ...], help: str, enhance_default: str) -> tuple[object, object]:
    """A mode option twice: as ``evaluate`` and ``compare`` take it (their protocol's default) and as
    ``enhance`` does (no default of its own: the model's, said in ``enhance_default``)."""
    choice = click.Choice(list(modes), case_sensitive=False)
    return (Annotated[str, typer.Option(flag, click_type=choice, help=help)],
            Annotated[Optional[str], typer.Option(flag, click_type=choice, show_default=False,
                                                  help=f"{help} Default: {enhance_default}")])


ColourOpt, EnhanceColourOpt = _mode_options(
    "--colour", COLOUR_MODES,
    "model: the model's colours (LOL-trained models neutralise casts and desaturate); input: the photo's own "
    "colour balance at low resolution, with the model's brightness, detail and denoising (docs/photo-quality.md).",
    "input for crnet-curve-dn (the default model; photos from cameras and phones are balanced already), model for "
    "the others.")
BlacksOpt, EnhanceBlacksOpt = _mode_options(
    "--blacks", BLACKS_MODES,
    "model: the model's blacks (LOL-trained models lift a dark photo's blacks into a grey veil); keep: a toe on the "
    "output's brightness brings them down to a photo's, with grain scaled with its surroundings and mid-tones, "
    "highlights and lights as the model left them (docs/photo-quality.md).",
    "keep for crnet-curve-dn (the default model), model for the others.")
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="List every file passed over, not just the count.")]
