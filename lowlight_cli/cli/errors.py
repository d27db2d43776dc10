"""Map library exceptions to one-line messages and exit codes; unknown exceptions stay loud.

Ctrl-C and SIGTERM (``kill``, a job scheduler) stop a command the same way: as a
``KeyboardInterrupt`` that commands may catch to clean up or report, then exit code 130.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

import typer
from rich.markup import escape

from ..errors import LowlightError
from .console import err
from .cores import fit_threads
from .heap import stop_warming
from .signals import final_status, restore, take_pending

P = ParamSpec("P")
R = TypeVar("R")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_INTERRUPTED = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP: the terminal closed), raised where the program was, so that it stops like
    after Ctrl-C."""

    signal_name = "SIGTERM"


class HungUp(Terminated):
    """SIGHUP: the terminal or the ssh session the command ran in closed."""

    signal_name = "SIGHUP"


def interrupt_text(exc: KeyboardInterrupt) -> str:
    """``terminated (SIGTERM)``, ``terminated (SIGHUP)`` or ``interrupted (Ctrl-C)``, and what the
    exception says of where (``interrupted (Ctrl-C) after model.onnx was written ...``)."""
    text = f"terminated ({exc.signal_name})" if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
    return f"{text} {exc}" if str(exc) else text


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` and SIGHUP :class:`HungUp` (both a
    ``KeyboardInterrupt``: a training saves its state); main thread only. A SIGHUP the process was
    started with ignored (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise HungUp if signum == getattr(signal, "SIGHUP", None) else Terminated

    previous = {signal.SIGTERM: signal.signal(signal.SIGTERM, stop)}
    hangup = getattr(signal, "SIGHUP", None)  # not on Windows
    if hangup is not None and signal.getsignal(hangup) is signal.SIG_DFL:
        previous[hangup] = signal.signal(hangup, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def debug_enabled() -> bool:
    """``LOWLIGHT_DEBUG=1`` shows full tracebacks instead of one-line messages."""
    return os.environ.get("LOWLIGHT_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


# file-system failures a user can act on (permissions, a read-only or full disk): one line, not a traceback
_FILE_SYSTEM_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
                       errno.ENAMETOOLONG, errno.EIO, errno.ENOTDIR, errno.EISDIR, errno.ENOENT, errno.EEXIST}


FILE_SYSTEM_HINT = "check the path's permissions and that its disk is writable and has room"
_PATH_HINTS = {
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EISDIR: "the path is a folder: give a file name",
    errno.EEXIST: "a file stands where the path needs a folder: choose another path",
    errno.ENOENT: "the file, or a folder on its path, does not exist (or cannot be made there): check the path",
    errno.ENAMETOOLONG: "shorten the path or the file name",
}


def file_system_hint(exc: OSError) -> str:
    """What to do about a file-system ``OSError``: about the path where it is the path that is wrong."""
    return _PATH_HINTS.get(exc.errno, FILE_SYSTEM_HINT)


def file_system_message(exc: OSError) -> str:
    """``PATH: reason`` of a file-system ``OSError``."""
    return (f"{exc.filename}: " if exc.filename else "") + str(exc.strerror or exc)


def report_file_system_error(exc: OSError) -> None:
    """``error: PATH: reason`` and a hint, for an ``OSError`` of :data:`_FILE_SYSTEM_ERRNOS`."""
    err.print(f"[bold red]error:[/] {escape(file_system_message(exc))}", markup=True, highlight=False)
    err.print(f"[dim]hint:[/] {file_system_hint(exc)}", markup=True, highlight=False)


def report_error(exc: LowlightError) -> None:
    """Print ``error: message`` and ``hint: ...`` on stderr."""
    # escaped: a message may hold brackets ("[lowest, highest]", a path) that are not markup
    err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True, highlight=False)
    if exc.hint:
        err.print(f"[dim]hint:[/] {escape(exc.hint)}", markup=True, highlight=False)


def json_error(message: str, hint: str | None, exit_code: int) -> None:
    """The ``--json`` answer of a command that failed before it had anything to summarise (stdout)."""
    typer.echo(json.dumps({"error": message, "hint": hint, "exit_code": exit_code}, indent=2))


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorate a command: :class:`LowlightError` -> message + its exit code; Ctrl-C or SIGTERM -> exit 130;
    an ``OSError`` of the file system (permissions, a read-only or full disk) -> message, exit 1.

    A command called with ``--json`` (its ``json_output`` argument) also gets the failure as a JSON
    object on stdout, so that a script reading stdout is never left with nothing to parse."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        stop_warming()  # the command's own allocations start now: the heap warmed so far is theirs (cli.heap)
        note = fit_threads()  # the arguments are parsed: threads fitted to the quota and the free CPUs (cli.cores)
        if note:
            err.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
        try:
            result = _reported(command, *args, **kwargs)
        except typer.Exit as done:
            final_status(done.exit_code)  # a signal from here on cannot change it (cli.signals)
            raise
        except BaseException:  # an unexpected error: the process's own handlers, so that kill can end it
            restore()
            raise
        final_status(EXIT_OK)
        return result

    return wrapper


def _reported(command: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run ``command``; what :func:`handle_errors` reports becomes its message and ``typer.Exit``."""
    as_json = bool(kwargs.get("json_output"))
    try:
        pending = take_pending()  # a signal that came while the program started (cli.signals); handlers back
        with sigterm_as_interrupt():
            if pending is not None:
                raise Terminated("before the command started: nothing was done") if pending == signal.SIGTERM \
                    else KeyboardInterrupt("before the command started: nothing was done")
            return command(*args, **kwargs)
    except LowlightError as exc:
        if debug_enabled():
            raise
        report_error(exc)
        if as_json:
            json_error(exc.message, exc.hint, exc.exit_code)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt as exc:
        err.print(f"[yellow]{escape(interrupt_text(exc))}[/]")
        if as_json:
            json_error(interrupt_text(exc), None, EXIT_INTERRUPTED)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OSError as exc:
        if debug_enabled() or exc.errno not in _FILE_SYSTEM_ERRNOS:
            raise
        report_file_system_error(exc)
        if as_json:
            json_error(file_system_message(exc), file_system_hint(exc), EXIT_FAILURE)
        raise typer.Exit(EXIT_FAILURE) from None
