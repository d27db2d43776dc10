"""Put export outputs in place only once they passed their checks.

An export is written under a temporary name next to its destination, checked there, and renamed
into place on success. On any failure the temporary output is deleted, so a failed export leaves
nothing behind and never clobbers an earlier good file. A checkpoint folder's files are renamed in
all together or not at all (the files they replace are put back if a rename fails), and Ctrl-C
and SIGTERM are held meanwhile; one that came then is raised after, saying that the export was
written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..errors import UsageError
from ..interrupts import deferred_interrupts
from ..permissions import DIR_MODE, FILE_MODE

_OVERWRITE_HINT = "pass --overwrite to replace it, or choose another --output"


@contextmanager
def _publishing(what: Path) -> Iterator[None]:
    """Hold interrupts while ``what`` is put in place; one that came meanwhile is raised after,
    saying that ``what`` was written (it was checked before)."""
    try:
        with deferred_interrupts():
            yield
    except KeyboardInterrupt as exc:
        raise type(exc)(f"after {what} was written (it passed its checks)") from None


def check_file_destination(path: Path, *, overwrite: bool = False) -> None:
    """Refuse a one-file export's destination now (before any work): a folder, or a file that exists
    without ``overwrite``. :func:`staged_file` checks again when it writes."""
    if path.is_dir():
        raise UsageError(f"{path} is a folder; the ONNX export is one file", hint="give a file name ending in .onnx")
    if path.name.lower() == ".onnx":  # Path(".onnx").suffix is "": a name of its own is missing
        raise UsageError(f"{path}: the file needs a name before .onnx", hint="e.g. -o model.onnx")
    if path.suffix.lower() != ".onnx":
        raise UsageError(f"{path}: an ONNX export's name ends in .onnx", hint="`lowlight enhance --model` recognises ONNX files by that suffix")
    if (path.exists() or path.is_symlink()) and not overwrite:  # a broken link too: it names a file somewhere
        raise UsageError(f"{path} exists", hint=_OVERWRITE_HINT)
    _check_ancestors(path)


def check_folder_destination(folder: Path, names: Sequence[str], *, overwrite: bool = False) -> None:
    """Refuse a checkpoint export's destination now: a file, a folder holding other files but none of
    ``names`` (no checkpoint), or one already holding one of ``names`` without ``overwrite``.
    :func:`staged_folder` checks again when it writes."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file; a checkpoint export is a folder", hint="choose another --output")
    clashes = [n for n in names if (folder / n).exists()]
    if folder.is_dir() and not clashes and any(folder.iterdir()):  # photos, say: not mixed in with them
        raise UsageError(f"{folder} is not empty and holds no checkpoint (no {' or '.join(names)})", hint="choose a new folder")
    if clashes and not overwrite:
        raise UsageError(f"{folder} already holds {', '.join(clashes)}", hint=_OVERWRITE_HINT)
    _check_ancestors(folder)


def _check_ancestors(path: Path) -> None:
    """Refuse now a path under a file, or in a folder that cannot be written (read-only, a read-only
    file system): the folders it needs could not be made, and the export would fail after its work."""
    target = path if path.is_dir() else None  # a checkpoint folder that exists is written into
    for parent in ([target] if target is not None else []) + list(path.absolute().parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{path}: {parent} is a file, not a folder", hint="choose another --output")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{path}: folder {parent} cannot be written", hint="choose another --output")
            return


@contextmanager
def staged_file(path: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` when the block succeeds.

    Raises:
        UsageError: ``path`` exists and ``overwrite`` is False, or it is a folder.
    """
    check_file_destination(path, overwrite=overwrite)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # named by the destination, not by a temporary name
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with _publishing(path):
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged_folder(folder: Path, names: Sequence[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder next to ``folder``; move the files ``names`` into ``folder`` on success.

    Other files already in ``folder`` are left alone.

    Raises:
        UsageError: ``folder`` is a file, or already holds one of ``names`` and ``overwrite`` is False.
    """
    check_folder_destination(folder, names, overwrite=overwrite)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        with _publishing(folder):
            for name in names:
                os.chmod(tmp / name, FILE_MODE)
            if not folder.exists():
                os.chmod(tmp, DIR_MODE)
                os.replace(tmp, folder)
            else:
                _replace_all(tmp, folder, names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace_all(tmp: Path, folder: Path, names: Sequence[str]) -> None:
    """Move the files ``names`` from ``tmp`` into ``folder``, all or none: the files they replace are
    first moved aside into ``tmp`` (same file system), and put back if a later rename fails."""
    done: list[tuple[str, Path | None]] = []  # (name, where the file it replaced went)
    try:
        for name in names:
            target, previous = folder / name, tmp / f"{name}.previous"
            if target.exists() or target.is_symlink():
                os.replace(target, previous)
                done.append((name, previous))
            else:
                done.append((name, None))
            os.replace(tmp / name, target)
    except BaseException:
        for name, previous in reversed(done):
            target = folder / name
            if previous is None:
                if not (tmp / name).exists():  # it was moved in: take it out again
                    target.unlink(missing_ok=True)
            elif previous.exists() or previous.is_symlink():
                os.replace(previous, target)
        raise
