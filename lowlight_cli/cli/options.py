"""Option aliases shared by several commands, so each is spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Registered model name (see `lowlight models`) or an exported .onnx file.")
]
WeightsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--weights",
        "-w",
        help="Checkpoint folder (config.json + model.safetensors) or hf-hub:org/repo@revision.",
    ),
]
NoPretrainedOpt = Annotated[
    bool,
    typer.Option("--no-pretrained", help="Seeded random initialisation (tests and benchmarks only)."),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
PrecisionOpt = Annotated[
    str, typer.Option("--precision", help="auto, fp32, fp16 or bf16 (auto: bf16/fp16 on CUDA, fp32 on CPU; bf16 also on CPUs with AVX512-BF16 or AMX).")
]
TileOpt = Annotated[
    Optional[int],
    typer.Option("--tile", help="Tile side in pixels; 0 = whole image; default: from GPU memory / model."),
]
OverlapOpt = Annotated[int, typer.Option("--overlap", help="Overlap between tiles in pixels.")]
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="torch.compile the model: the first image waits for the compilation, the rest run faster (tiled); CPU: needs a C++ compiler."),
]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", "-b", help="Tiles per forward pass.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Write a machine-readable summary on stdout.")]
OutDirOpt = Annotated[Path, typer.Option("--output", "-o", help="Output folder.")]
