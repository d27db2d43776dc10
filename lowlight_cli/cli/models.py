"""`lowlight models`: what is available, how big, how costly, with which weights and scores."""

from __future__ import annotations

import functools
import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ..hub import bundled_weights_dir
from ..models import MODELS, list_models
from ..models.checkpoint import read_config
from ..models.complexity import Complexity, measure_complexity
from .console import out, print_table
from .errors import handle_errors
from .options import JsonOpt

NARROW_TABLE = 100  # below this, the default weights' names would be squeezed to nothing
WIDE_TABLE = 150  # terminal columns from which `lowlight models` shows every column


def _bundled_configs() -> dict[str, dict]:
    """``config.json`` of every bundled checkpoint, by folder name, read once per listing."""
    root = bundled_weights_dir()
    if root is None:
        return {}
    return {f.parent.name: read_config(f.parent) for f in sorted(root.glob("*/config.json"))}


def _bundled(name: str, folder_name: str, configs: dict[str, dict]) -> dict | None:
    """The model's default bundled checkpoint: name, architecture, its parameters and LOL test
    scores, or None."""
    folder = folder_name or name
    if folder not in configs:
        return None
    config = configs[folder]
    scores = config.get("provenance", {}).get("lol_test", {})
    architecture = config.get("architecture", name)
    net = MODELS.get(architecture).build(**config.get("kwargs", {}))
    return {"name": folder, "architecture": architecture, "parameters": sum(p.numel() for p in net.parameters()),
            "lol_psnr": scores.get("psnr"), "lol_ssim": scores.get("ssim")}


def _also_bundled(name: str, default: str | None, configs: dict[str, dict]) -> list[str]:
    """Other bundled checkpoints of architecture ``name`` (picked with ``--weights NAME``)."""
    return [n for n, c in configs.items() if n != default and c.get("architecture") == name]


LISTED_SIZE = 64  # the side of the square input the listing's MACs per pixel are counted on


@functools.cache
def listed_complexity(name: str) -> Complexity:
    """The size and cost of registered model ``name`` as built by default: its parameters counted,
    its MACs at 64x64 as registered (``ModelInfo.listed_macs``, which a test checks against a
    count) or, where none are, counted once per process. Counting took about 7 s of ``lowlight
    models``'s 10 s on 2 cores of an AMD EPYC Zen 3 (the paper-size ``crnet`` 2.6 s, ``semi-llie``
    4.8 s: ``time lowlight models``).

    64 px keeps a count fast; per-image parts (a global context's MLP, SKF's attention) make a
    few MACs per pixel more at 64 px than at the 256 px the README's tables are measured at.
    """
    entry = MODELS.get(name)
    model = entry.build()
    if entry.info.listed_macs is None:
        return measure_complexity(model, size=LISTED_SIZE)
    return Complexity(parameters=sum(p.numel() for p in model.parameters()), macs=entry.info.listed_macs, size=LISTED_SIZE)


@handle_errors
def models(
    json_output: JsonOpt = False,
    all_models: Annotated[bool, typer.Option("--all", help="Include test-size variants.")] = False,
) -> None:
    """List registered models: parameters, MACs per pixel (measured at 64x64), the weights each runs by default, LOL scores, licence.

    A name may run the weights of another architecture of its family by default (the best trained ones): the "runs by default" column says which, with their size.
    """
    rows = []
    configs = _bundled_configs()
    for name in list_models(include_test=all_models):
        entry = MODELS.get(name)
        cx = listed_complexity(name)
        bundled = _bundled(name, entry.info.bundled_weights, configs) if entry.info.needs_weights else None
        rows.append(
            {
                "name": name,
                "family": entry.info.family,
                "parameters": cx.parameters,
                "macs_per_pixel": round(cx.macs_per_pixel),
                "needs_weights": entry.info.needs_weights,
                "bundled_weights": bundled["name"] if bundled else None,
                "bundled_architecture": bundled["architecture"] if bundled else None,
                "bundled_parameters": bundled["parameters"] if bundled else None,
                "also_bundled": _also_bundled(name, bundled["name"] if bundled else None, configs)
                if entry.info.needs_weights else [],
                "lol_test_psnr": bundled["lol_psnr"] if bundled else None,
                "lol_test_ssim": bundled["lol_ssim"] if bundled else None,
                "tile_exact": entry.info.tile_exact,
                "onnx_exportable": entry.info.exportable,  # safetensors export needs a checkpoint, not the format
                "onnx_note": entry.info.export_note or None,
                "licence": entry.info.licence,
                "description": entry.info.description,
            }
        )
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    # the full table needs about 150 columns; a narrower terminal gets the columns that tell models apart
    wide = out.width >= WIDE_TABLE or not out.is_terminal  # piped: every column, at its natural width
    # where a name runs another architecture's weights, its scores are not of the params beside them:
    # the wide table says so in its row, a narrower one in the caption
    borrowed = "" if wide else "".join(
        f"; {r['name']} runs {r['bundled_weights']} ({r['bundled_architecture']}, {r['bundled_parameters']:,} params), whose scores these are"
        for r in rows if r["bundled_architecture"] and r["bundled_architecture"] != r["name"])
    table = Table(title="lowlight models", caption="params and MACs per pixel of the named architecture; LOL-v1 test scores of the weights it runs by default, RGB, no GT-mean"
                  + borrowed + ("" if wide else f"; more columns in a terminal {WIDE_TABLE} wide or with --json"))
    columns = ("model", "params", "MACs/pixel", "runs by default", "LOL PSNR/SSIM", "other weights (--weights NAME)",
               "tile-exact", "ONNX", "licence")
    table_rows = []
    for r in rows:
        default = "no weights needed" if not r["needs_weights"] else (r["bundled_weights"] or "none bundled")
        if wide and r["bundled_architecture"] and r["bundled_architecture"] != r["name"]:
            default += f" ({r['bundled_architecture']}, {r['bundled_parameters']:,} params: best of the family)"
        scores = f"{r['lol_test_psnr']:.2f} / {r['lol_test_ssim']:.4f}" if r["lol_test_psnr"] is not None else "-"
        table_rows.append(dict(zip(columns, (r["name"], f"{r['parameters']:,}", f"{r['macs_per_pixel']:,}", default, scores,
                                             ", ".join(r["also_bundled"]) or "-", "yes" if r["tile_exact"] else "no",
                                             "yes" if r["onnx_exportable"] else "no", r["licence"]))))
    if not wide:  # the default weights' column only where it has room; below that (a terminal), the numbers alone
        narrow = out.width < NARROW_TABLE
        columns = ("model", "params", "MACs/pixel", "LOL PSNR/SSIM") if narrow else columns[:5]
        if narrow:  # and only as many of them as fit whole: a cut number reads as another number
            columns = _fitting(columns, table_rows, out.width)
    for col in columns:
        if col == "model":  # never cut: crnet-s, crnet-curve and crnet-curve-dn must stay apart
            table.add_column(col, no_wrap=True, min_width=max(len(r["name"]) for r in rows))
        elif col in ("params", "MACs/pixel", "LOL PSNR/SSIM"):  # a number split over two lines reads as another number
            table.add_column(col, justify="right", no_wrap=True)
        else:
            table.add_column(col, overflow="fold")
    for cells in table_rows:
        table.add_row(*(escape(cells[col]) for col in columns))  # paths and names as text, not markup
    print_table(out, table)


def _fitting(columns: tuple[str, ...], rows: list[dict[str, str]], width: int) -> tuple[str, ...]:
    """The leading ``columns`` whose widest cells fit in ``width`` terminal columns side by side
    (the first always: the model names)."""
    kept, used = [], 1  # the table's left border
    for col in columns:
        need = max(len(col), *(len(r[col]) for r in rows)) + 3  # a space each side and a border
        if kept and used + need > width:
            break
        kept.append(col)
        used += need
    return tuple(kept)
