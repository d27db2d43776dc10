"""`lowlight models`: what is available, how big, how costly, with which weights."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from ..hub import bundled_weights_dir
from ..models import MODELS, list_models
from ..models.complexity import measure_complexity
from .console import out
from .errors import handle_errors
from .options import JsonOpt


def _bundled(name: str) -> bool:
    root = bundled_weights_dir()
    return bool(root and (root / name / "config.json").is_file())


@handle_errors
def models(
    json_output: JsonOpt = False,
    all_models: Annotated[bool, typer.Option("--all", help="Include test-size variants.")] = False,
) -> None:
    """List registered models: parameters, MACs per pixel (measured at 256x256), weights, licence."""
    rows = []
    for name in list_models(include_test=all_models):
        entry = MODELS.get(name)
        cx = measure_complexity(entry.build(), size=256)
        rows.append(
            {
                "name": name,
                "family": entry.info.family,
                "parameters": cx.parameters,
                "macs_per_pixel": round(cx.macs_per_pixel),
                "needs_weights": entry.info.needs_weights,
                "bundled_weights": _bundled(name) if entry.info.needs_weights else None,
                "tile_exact": entry.info.tile_exact,
                "exportable": entry.info.exportable,
                "licence": entry.info.licence,
                "description": entry.info.description,
            }
        )
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="lowlight models (MACs measured on a 256x256 input)")
    for col in ("model", "params", "MACs/pixel", "weights", "tile-exact", "ONNX", "licence"):
        table.add_column(col, justify="right" if col in ("params", "MACs/pixel") else "left")
    for r in rows:
        weights = "not needed" if not r["needs_weights"] else ("bundled" if r["bundled_weights"] else "none bundled")
        table.add_row(
            r["name"],
            f"{r['parameters']:,}",
            f"{r['macs_per_pixel']:,}",
            weights,
            "yes" if r["tile_exact"] else "no",
            "yes" if r["exportable"] else "no",
            r["licence"],
        )
    out.print(table)
