"""The console script ``lowlight``: imports the app (torch takes about a second) under a Ctrl-C
guard, so that an interrupt while starting ends quietly with the interrupt's exit status instead
of an import traceback; nothing has been read or written by then."""

from __future__ import annotations

import sys

EXIT_INTERRUPTED = 130  # as lowlight_cli.cli.errors.EXIT_INTERRUPTED (not imported: that would import the app's stack)


def main() -> None:
    """Console-script entry point."""
    try:
        from .app import main as run_app
    except KeyboardInterrupt:
        print("interrupted while starting: nothing was done", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    run_app(quick_exit=True)
