"""`lowlight priors`: the frozen networks the semantic and perceptual losses read, and whether their weights are here."""

from __future__ import annotations

import json
from typing import Annotated

import torch
import typer
from rich.markup import escape
from rich.table import Table

from ..errors import LowlightError
from ..priors import NETS_ENV, PRIORS, create_prior, list_priors, locate_weights
from .console import err, out, print_table
from .errors import EXIT_FAILURE, handle_errors
from .options import JsonOpt

WIDE_TABLE = 120  # every column readable from about this width
CAPTION = (
    f"Weights are looked up in ${NETS_ENV}, then lowlight's cache (nets/), then ../shared/nets beside the checkout; "
    "code passes another file or hf-hub:org/repo explicitly."
)


def _parameters(name: str) -> int:
    with torch.device("meta"):  # count without allocating or initialising
        network = PRIORS.get(name).build()
    return sum(p.numel() for p in network.parameters())


def _check(name: str) -> str:
    """Load the network as a loss would (sha256 of default files, strict tensor match): ``ok`` or the error."""
    try:
        create_prior(name)
    except LowlightError as exc:
        return f"error: {exc.message}"
    return "ok"


@handle_errors
def priors(
    json_output: JsonOpt = False,
    check: Annotated[
        bool, typer.Option("--check", help="Load each network found: verify its sha256 and that every tensor fits.")
    ] = False,
) -> None:
    """List the frozen networks (priors) of the semantic, perceptual and recognition losses: what each provides, its size, and where its real weights were found.

    Tests use seeded random stand-ins of the same architectures when the weights are absent; training never does.
    """
    rows = []
    for name in list_priors():
        info = PRIORS.get(name).info
        found = locate_weights(info)
        row = {
            "name": name,
            "kind": info.kind,
            "provides": info.provides,
            "layers": list(info.layers),
            "num_classes": info.num_classes,
            "parameters": _parameters(name),
            "input": info.input_convention.describe(),
            "weights_found": found is not None,
            "weights_path": str(found.path) if found else None,
            "weights_place": found.place if found else None,
            "weights_file": info.weights.filename,
            "weights_origin": info.weights.origin,
            "hub_id": info.weights.hub_id,
            "licence": info.licence,
            "replaces": info.replaces,
            "description": info.description,
        }
        if check:
            row["check"] = _check(name) if found else "not found"
        rows.append(row)
    failed = [r["name"] for r in rows if r.get("check", "ok") not in ("ok", "not found")]
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        if failed:  # a script checking the weights must see it in the exit code
            raise typer.Exit(EXIT_FAILURE)
        return
    wide = out.width >= WIDE_TABLE or not out.is_terminal  # a narrower terminal gets the name, size and where the weights are
    columns = ("network", "provides", "params", "input", "weights", "licence", "stands in for") if wide else ("network", "params", "weights")
    table = Table(title="lowlight priors (frozen networks)",
                  caption=CAPTION + ("" if wide else f"; more columns in a terminal {WIDE_TABLE} wide or with --json"))
    for col in columns:
        if col in ("network", "params"):  # names and numbers on one line: split, they read as others
            table.add_column(col, justify="right" if col == "params" else "left", no_wrap=True)
        else:
            table.add_column(col, overflow="fold")
    for r in rows:
        if r["weights_found"]:
            weights = f"{r['weights_path']} ({r['weights_place']})"
        else:
            weights = f"not found: {r['weights_file']}" + (f" or hf-hub:{r['hub_id']}" if r["hub_id"] else "")
        if "check" in r:
            weights += f"\n{r['check']}"
        cells = {"network": r["name"], "provides": r["provides"], "params": f"{r['parameters']:,}", "input": r["input"],
                 "weights": weights, "licence": r["licence"], "stands in for": r["replaces"]}
        table.add_row(*(escape(cells[col]) for col in columns))  # paths and names as text, not markup
    print_table(out, table)
    if failed:
        err.print(f"[bold red]error:[/] {len(failed)} network(s) failed the check: {', '.join(failed)}")
        err.print("[dim]hint:[/] replace the files named above (their sha256 or tensors do not match what lowlight expects)")
        raise typer.Exit(EXIT_FAILURE)
