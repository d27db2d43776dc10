"""Ctrl-C and SIGTERM around a command run as the ``lowlight`` script: held while it starts, and
final once it has its exit status.

- **Starting.** Python cannot stop an import safely: a Ctrl-C inside torch's or numpy's import
  leaves a C extension half-loaded, and what imports it next fails with a long traceback
  (``RecursionError``, "cannot load module more than once"), or the interrupt is lost. So from the
  script's first line until the command starts, SIGINT and SIGTERM are only recorded; the command
  (:func:`~lowlight_cli.cli.errors.handle_errors`) raises the first one recorded as soon as it
  starts, and it ends like any interrupt: one line, exit 130, nothing read or written. A second
  Ctrl-C while starting stops at once (for an import that hangs).
- **Ending.** Once the command has its exit status (its files written), a signal ends the process
  at once with that status, so it cannot turn a finished export into exit 130 or 143, or print a
  traceback from the interpreter's teardown.

Only for the script (:func:`hold_while_starting` marks it): a program that runs the CLI in its own
process (tests, ``typer.testing.CliRunner``) keeps its handlers. Standard library only: this runs
before anything heavy is imported.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

HELD = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []
_as_script = False


def _record(signum: int, frame: object) -> None:
    if signum == signal.SIGINT and signal.SIGINT in _pending:  # pressed again: stop now, whatever it costs
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt
    _pending.append(signum)


def hold_while_starting() -> None:
    """Record SIGINT and SIGTERM instead of acting on them until :func:`take_pending` (the script's entry)."""
    global _as_script
    _as_script = True
    for sig in HELD:
        signal.signal(sig, _record)


def take_pending() -> int | None:
    """At the start of a command: Ctrl-C acts again (Python's ``KeyboardInterrupt``); returns the first
    signal recorded while starting, or None. SIGTERM keeps whatever handler the caller has set over
    the recorder (the command's own); None outside the script."""
    if not _as_script or threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGINT) is _record:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return _pending[0] if _pending else None


def final_status(status: int) -> None:
    """The command ended with ``status``: from now on SIGINT and SIGTERM end the process at once with
    it (standard streams flushed first). Nothing outside the script."""
    if not _as_script or threading.current_thread() is not threading.main_thread():
        return

    def leave(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)

    for sig in HELD:
        signal.signal(sig, leave)
