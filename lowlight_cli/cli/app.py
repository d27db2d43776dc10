"""The `lowlight` command: assembles the sub-commands, nothing else."""

from __future__ import annotations

import importlib
import sys
from typing import Annotated, Optional

import typer

from .. import __version__
from ..inference.allocator import keep_freed_memory

# name: (module of this package, function, the module's epilog attribute, extra command settings);
# in the order `lowlight --help` lists them. Modules are imported when their command is built, so
# `lowlight enhance` does not import the training, evaluation and export stacks.
COMMANDS: dict[str, tuple[str, str, str | None, dict]] = {
    "enhance": ("enhance", "enhance", "EPILOG", {}),
    "evaluate": ("evaluate", "evaluate", "EPILOG", {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True}}),
    "train": ("train", "train", "EPILOG", {}),
    "export": ("export", "export", "EPILOG", {}),
    "models": ("models", "models", None, {}),
    "priors": ("priors", "priors", None, {}),
    "import": ("import_", "import_checkpoint", "EPILOG", {}),
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"lowlight {__version__}")
        raise typer.Exit()


def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    """Low-light image enhancement: enhance, train, evaluate, export."""


def build_app(only: str | None = None) -> typer.Typer:
    """The ``lowlight`` app: every command, or only the one named ``only`` (what a run of that command needs)."""
    built = typer.Typer(
        name="lowlight",
        help="Low-light image enhancement: enhance, train, evaluate, export.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        add_completion=False,
        rich_markup_mode="rich",
    )
    built.callback()(root)
    for name, (module_name, function, epilog, settings) in COMMANDS.items():
        if only is not None and name != only:
            continue
        module = importlib.import_module(f".{module_name}", __package__)
        built.command(name, epilog=getattr(module, epilog) if epilog else None, **settings)(getattr(module, function))
    return built


def __getattr__(name: str) -> typer.Typer:
    """``app``: the whole app, built on first use (``from lowlight_cli.cli.app import app``)."""
    if name == "app":
        globals()["app"] = whole = build_app()
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """Console-script entry point: builds only the command asked for when the first argument names one."""
    keep_freed_memory()  # large per-image temporaries: reuse freed memory (see inference.allocator)
    asked = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else None
    build_app(asked)()
