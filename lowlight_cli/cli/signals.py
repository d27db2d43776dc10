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
  traceback from the interpreter's teardown. A command that ends in an unexpected error gets the
  process's own handlers back instead.

A signal the process was started with ignored (``SIG_IGN``: a shell's ``cmd &``, a supervisor) stays
ignored throughout. Only for the script (:func:`hold_while_starting` marks it): a program that runs
the CLI in its own process (tests, ``typer.testing.CliRunner``) keeps its handlers. Standard library
only: this runs before anything heavy is imported.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

HELD = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []
_original: dict[int, object] = {}  # the handlers the process started with, by signal (the script only)


def _record(signum: int, frame: object) -> None:
    if signum == signal.SIGINT and signal.SIGINT in _pending:  # pressed again: stop now, whatever it costs
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise KeyboardInterrupt
    _pending.append(signum)


def _ours() -> bool:
    return bool(_original) and threading.current_thread() is threading.main_thread()


def hold_while_starting() -> None:
    """Record SIGINT and SIGTERM instead of acting on them until :func:`take_pending` (the script's
    entry); one the process was started with ignored stays ignored."""
    for sig in HELD:
        previous = signal.getsignal(sig)
        _original[sig] = previous
        if previous is not signal.SIG_IGN:
            signal.signal(sig, _record)


def take_pending() -> int | None:
    """At the start of a command: the handlers the process started with are back (Ctrl-C raises
    ``KeyboardInterrupt`` again); returns the first signal recorded while starting, or None. None,
    and nothing changed, outside the script."""
    if not _ours():
        return None
    restore()
    return _pending[0] if _pending else None


def restore() -> None:
    """Put back the handlers the process started with (after an unexpected error: ``kill`` and
    ``timeout`` must be able to end a teardown that hangs). Nothing outside the script."""
    if not _ours():
        return
    for sig, handler in _original.items():
        if signal.getsignal(sig) is not handler and handler is not None:
            signal.signal(sig, handler)  # type: ignore[arg-type]


def final_status(status: int) -> None:
    """The command ended with ``status``: from now on SIGINT and SIGTERM end the process at once with
    it (standard streams flushed first); ignored ones stay ignored. Nothing outside the script."""
    if not _ours():
        return

    def leave(signum: int, frame: object) -> None:
        try:
            for stream in (sys.stdout, sys.stderr):
                try:
                    if stream is not None:
                        stream.flush()
                except Exception:  # a closed pipe, a flush already under way (reentrant call): leave anyway
                    pass
        finally:
            os._exit(status)

    for sig in HELD:
        if _original.get(sig) is not signal.SIG_IGN:
            signal.signal(sig, leave)
