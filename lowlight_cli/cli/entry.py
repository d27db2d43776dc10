"""The console script ``lowlight``: imports the app (torch takes about a second) with Ctrl-C and
SIGTERM held (:mod:`lowlight_cli.cli.signals`): one that comes while starting stops the command as
it starts, with the interrupt's exit status and nothing read or written. A second Ctrl-C stops the
import itself, quietly."""

from __future__ import annotations

import gc
import sys

from .cores import note_start
from .heap import warm_heap_while_starting
from .signals import hold_while_starting

EXIT_INTERRUPTED = 130  # as lowlight_cli.cli.errors.EXIT_INTERRUPTED (not imported: that would import the app's stack)


def main() -> None:
    """Console-script entry point."""
    note_start(sys.argv[1:])  # the CPU time other programs use while torch loads (cli.cores)
    warm_heap_while_starting(sys.argv[1:])  # the first photo's pages, faulted in on the idle core (cli.heap)
    hold_while_starting()  # a Ctrl-C while torch loads is acted on when the command starts (cli.signals)
    # importing torch makes hundreds of thousands of objects and no garbage: the collector's passes
    # over them are wasted start-up time (docs/performance.md); the app resumes it once the command is built
    gc.disable()
    try:
        from .app import main as run_app

        run_app(quick_exit=True, gc_paused=True)  # building the command imports its module: still starting
    except KeyboardInterrupt:  # a second Ctrl-C before the command started (the command reports its own)
        print("interrupted while starting: nothing was done", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED) from None
    finally:  # whatever stopped the start (the app has resumed it otherwise)
        gc.enable()
