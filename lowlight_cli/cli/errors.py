"""Map library exceptions to one-line messages and exit codes; unknown exceptions stay loud."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer

from ..errors import LowlightError
from .console import err

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


def debug_enabled() -> bool:
    """``LOWLIGHT_DEBUG=1`` shows full tracebacks instead of one-line messages."""
    return os.environ.get("LOWLIGHT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def report_error(exc: LowlightError) -> None:
    """Print ``error: message`` and ``hint: ...`` on stderr."""
    err.print(f"[bold red]error:[/] {exc.message}", markup=True, highlight=False)
    if exc.hint:
        err.print(f"[dim]hint:[/] {exc.hint}", markup=True, highlight=False)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: :class:`LowlightError` -> message + its exit code; Ctrl-C -> exit 130."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except LowlightError as exc:
            if debug_enabled():
                raise
            report_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]")
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper
