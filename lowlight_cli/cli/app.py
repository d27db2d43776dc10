"""The `lowlight` command: assembles the sub-commands, nothing else."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from .. import __version__
from ..inference.allocator import keep_freed_memory
from .enhance import EPILOG as ENHANCE_EPILOG
from .enhance import enhance
from .evaluate import EPILOG as EVALUATE_EPILOG
from .evaluate import evaluate
from .export import EPILOG as EXPORT_EPILOG
from .export import export
from .import_ import EPILOG as IMPORT_EPILOG
from .import_ import import_checkpoint
from .models import models
from .priors import priors
from .train import EPILOG as TRAIN_EPILOG
from .train import train

app = typer.Typer(
    name="lowlight",
    help="Low-light image enhancement: enhance, train, evaluate, export.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lowlight {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Low-light image enhancement: enhance, train, evaluate, export."""


app.command(epilog=ENHANCE_EPILOG)(enhance)
app.command(
    epilog=EVALUATE_EPILOG,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(evaluate)
app.command(epilog=TRAIN_EPILOG)(train)
app.command(epilog=EXPORT_EPILOG)(export)
app.command()(models)
app.command()(priors)
app.command("import", epilog=IMPORT_EPILOG)(import_checkpoint)


def main() -> None:
    """Console-script entry point."""
    keep_freed_memory()  # large per-image temporaries: reuse freed memory (see inference.allocator)
    app()
