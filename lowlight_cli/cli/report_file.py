"""Where a command writes a report file (``evaluate --csv``): checked before the work, written
through links, pipes and a redirected standard output, atomically into a regular file."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from ..io.formats import SUPPORTED_EXTENSIONS
from ..errors import UsageError
from ..models.checkpoint import atomic_write_bytes


def check_report_destination(path: Path, option: str, *, json_output: bool = False) -> None:
    """Refuse, before any work, a report path that cannot be written: a folder, a read-only folder
    to put it in (folders that do not exist yet are made when writing), a file where a folder
    should be; ``-`` (it would be a file named ``-``); an image file name (a
    later run would take the report for an image); standard output when ``json_output`` (the
    report would be mixed into the JSON); an existing file that is not a report of this tool (an
    earlier run's report is replaced). A link is followed; a special file (``/dev/stdout``, a
    pipe) and this process's own standard output or error (``/dev/stdout`` redirected to a file)
    are written as they are."""
    if str(path) == "-":
        raise UsageError(f"{option} - would write a file named '-'",
                         hint=f"give a file name; for standard output: {option} /dev/stdout" + (" without --json" if json_output else ""))
    if path.suffix.lower() in SUPPORTED_EXTENSIONS:
        raise UsageError(f"{option} {path} has an image file's extension: a later run would take the report for an image",
                         hint=f"name it like {path.with_suffix('.csv').name}")
    if json_output and _standard_stream(path) == 1:
        raise UsageError(f"{option} {path} is standard output, where --json writes: the two would be mixed",
                         hint=f"give {option} a file name, or drop --json")
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder", hint=f"give a file name, e.g. {option} {path / 'scores.csv'}")
    if _special_file(path) or _standard_stream(path) is not None:
        return  # a device, a pipe, or where this process's output goes: written straight through
    if path.is_file() and not _is_report(path):
        raise UsageError(f"{option} {path} exists and is not a lowlight report: writing the scores would replace it",
                         hint=f"give a new file name (a report of an earlier run, which starts with '{REPORT_MARK}', is replaced)")
    folder = Path(os.path.realpath(path)).parent
    existing = next(p for p in (folder, *folder.parents) if p.exists())  # the folders below it are made when writing
    if not existing.is_dir():
        raise UsageError(f"{option} {path}: {existing} is a file, not a folder", hint="give another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: folder {existing} is not writable", hint="give a path in a folder you can write to")


REPORT_MARK = "# lowlight "  # how the CSV reports of evaluate and compare begin


def _is_report(path: Path) -> bool:
    """``path`` is empty or begins as a report of this tool does: a file that may be replaced."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(REPORT_MARK))
    except OSError:
        return True  # unreadable: the write that follows reports why
    return not head or head == REPORT_MARK.encode()


def _special_file(path: Path) -> bool:
    """``path`` (links followed) exists and is neither a regular file nor a folder: a device, a pipe."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _standard_stream(path: Path) -> int | None:
    """1 or 2 when ``path`` is the file this process's standard output or error goes to (``--csv
    /dev/stdout > scores.txt``): it must be written through that descriptor, never replaced."""
    try:
        target = os.stat(path)
    except OSError:
        return None
    for fd in (1, 2):
        try:
            stream = os.fstat(fd)
        except OSError:
            continue
        if (stream.st_dev, stream.st_ino) == (target.st_dev, target.st_ino):
            return fd
    return None


def write_report(path: Path, data: bytes) -> None:
    """Write a report: through this process's own standard output or error when the path is
    where one goes, through a link to its target, straight into a special file (a pipe), and
    atomically into a regular file (a reader never sees half of it)."""
    fd = _standard_stream(path)
    if fd is not None:
        (sys.stdout if fd == 1 else sys.stderr).flush()
        pending = memoryview(data)
        while pending:
            pending = pending[os.write(fd, pending):]
        return
    if _special_file(path):
        with open(path, "wb") as stream:
            stream.write(data)
        return
    try:
        target = Path(os.path.realpath(path))
        target.parent.mkdir(parents=True, exist_ok=True)  # like enhance's -o and export's --output
        atomic_write_bytes(target, data)
    except OSError as exc:  # name the user's path, not the temporary file beside it
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from exc
