"""The `lowlight` command: assembles the sub-commands, nothing else."""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import inspect
import os
import sys
from typing import Annotated, NoReturn, Optional

import typer

from .. import __version__
from .heap import keep_freed_memory

# name: (module of this package, function, the module's epilog attribute, extra command settings);
# in the order `lowlight --help` lists them. Modules are imported when their command is built, so
# `lowlight enhance` does not import the training, evaluation and export stacks.
COMMANDS: dict[str, tuple[str, str, str | None, dict]] = {
    "enhance": ("enhance", "enhance", "EPILOG", {}),
    "evaluate": ("evaluate", "evaluate", "EPILOG", {"context_settings": {"allow_extra_args": True, "ignore_unknown_options": True}}),
    "compare": ("compare", "compare", "EPILOG", {}),
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
    """Low-light image enhancement: enhance, train, evaluate, compare, export."""


def _suggestion_settings() -> dict:
    """Typer's own "Did you mean" for a mistyped command, only where click does not give one: with
    click 8.2 or later both did, and the message said it twice."""
    import click

    click_suggests = "possibilities" in inspect.signature(getattr(click.exceptions, "NoSuchCommand", object)).parameters
    typer_suggests = "suggest_commands" in inspect.signature(typer.Typer).parameters
    return {"suggest_commands": False} if click_suggests and typer_suggests else {}


def build_app(only: str | None = None) -> typer.Typer:
    """The ``lowlight`` app: every command, or only the one named ``only`` (what a run of that command needs)."""
    built = typer.Typer(
        name="lowlight",
        help="Low-light image enhancement: enhance, train, evaluate, compare, export.",
        no_args_is_help=True,
        pretty_exceptions_show_locals=False,
        add_completion=False,
        rich_markup_mode="rich",
        **_suggestion_settings(),
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


# Commands that leave nothing open when they return (their files are written whole and closed, their
# thread pools joined): these end with :func:`exit_now` instead of the interpreter's teardown.
QUICK_EXIT = frozenset({"enhance", "evaluate", "compare", "export", "import", "models", "priors"})


def main(*, quick_exit: bool = False, gc_paused: bool = False) -> None:
    """Console-script entry point: builds only the command asked for when the first argument names one.

    ``quick_exit`` (the ``lowlight`` script and ``python -m lowlight_cli``): the commands of
    :data:`QUICK_EXIT` end the process with :func:`exit_now` instead of raising ``SystemExit``.
    Without it (a caller running the CLI in its own process) every command raises ``SystemExit``.
    ``gc_paused``: the caller paused the garbage collector for the imports (:mod:`.entry`); it is
    resumed once the command is built, with everything made so far frozen out of its passes
    (``gc.freeze``: modules, classes and functions live as long as the process anyway).
    """
    keep_freed_memory()  # large per-image temporaries: reuse freed memory (see cli.heap)
    asked = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] in COMMANDS else None
    command = build_app(asked)
    if gc_paused:
        gc.freeze()
        gc.enable()
    if not (quick_exit and asked in QUICK_EXIT):
        command()
        return
    try:
        command()
    except SystemExit as done:  # a Typer app ends with SystemExit, success included
        exit_now(done.code)
    exit_now(0)


def exit_now(code: object) -> NoReturn:
    """End the process with ``code`` (as ``SystemExit(code)`` would) without the interpreter's teardown.

    After ``lowlight enhance`` has written its last file, tearing the interpreter down (modules,
    torch's and oneDNN's C++ objects, the freed heap) is time a user waits for nothing: the whole
    command on a 12 MP JPEG is about 0.3 s faster without it (docs/performance.md). What a normal exit does
    that matters is done here: ``atexit`` handlers (logging, finalizers) run, Python's standard
    streams and C's stdio buffers are flushed (a failed flush turns success into status 120, as
    Python's own exit does); then ``os._exit``, whatever happens on the way (a Ctrl-C included).
    """
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code
    else:  # SystemExit("message"): printed, status 1, as Python does
        status = 1
    try:
        if not isinstance(code, (int, type(None))):
            print(code, file=sys.stderr)
        run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
        if run_exit_handlers is not None:
            run_exit_handlers()
        for stream in (sys.stdout, sys.stderr):
            if stream is None:  # the descriptor was closed before start (`>&-`)
                continue
            try:
                stream.flush()
            except (OSError, ValueError):  # a full disk, a closed pipe (| head): as Python's exit says it
                if status == 0:
                    status = 120
        _flush_c_stdio()
    finally:
        os._exit(status)


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: output that native libraries wrote through C's stdio (``ONEDNN_VERBOSE``) and
    that ``os._exit`` would drop."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to ask (not Linux or macOS)
        pass
