"""`lowlight import`: convert an authors' published checkpoint (.pth) into a lowlight checkpoint folder."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..models.checkpoint import read_config
from ..models.official import import_official_checkpoint, importable_architectures
from .console import out
from .errors import handle_errors
from .options import JsonOpt

EPILOG = """
Examples:\n
  lowlight import SCL-LLE.pth --arch scl-lle -o weights-scl-lle/\n
  lowlight import PiLLE.pth --arch pie -o weights-pie/\n
  lowlight import Epoch99.pth --arch zero-dce -o weights-zero-dce/\n
  lowlight enhance photos/ --model scl-lle --weights weights-scl-lle/ -o out/
"""


@handle_errors
def import_checkpoint(
    source: Annotated[Path, typer.Argument(help="The authors' checkpoint file (.pth state dict, zip or legacy PyTorch format).", show_default=False)],
    arch: Annotated[str, typer.Option("--arch", "-a", help=f"Registered architecture it belongs to ({', '.join(importable_architectures())}).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="Checkpoint folder to create.", show_default=False)],
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the checkpoint the folder already holds.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Convert an official checkpoint (e.g. SCL-LLE's or PIE's .pth) to config.json + model.safetensors.

    The file is read with torch.load(weights_only=True): tensors and plain containers only, anything else is refused and never unpickled. Every tensor must fit the architecture; the source's sha256 is recorded in config.json.
    """
    folder = import_official_checkpoint(source, arch, output, overwrite=overwrite)
    config = read_config(folder)
    source_facts = config["provenance"]["imported_from"]
    if json_output:
        typer.echo(json.dumps({"folder": str(folder), "architecture": arch, "source": str(source), **source_facts}, indent=2))
        return
    out.print(f"imported {escape(str(source))} ({source_facts['format']} format, sha256 {source_facts['sha256']}) as {arch} into {escape(str(folder))}")
    if source_facts["dtypes"] != ["float32"]:
        out.print(f"its {', '.join(source_facts['dtypes'])} tensors are stored as float32, values unchanged")
    out.print(f"run it: lowlight enhance PHOTOS --model {arch} --weights {escape(shlex.quote(str(folder)))}")  # pasteable

