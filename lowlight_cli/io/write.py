"""Writing :class:`ImageData` to a file atomically: a reader never sees a half-written image."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from pathlib import Path

from lowlight_cli.errors import DiskFullError, ImageWriteError, OutputExistsError, UsageError
from lowlight_cli.io.encode import encode_image
from lowlight_cli.io.formats import format_for_path
from lowlight_cli.io.image import ImageData

TEMP_SUFFIX = ".tmp"
# ".<name>.<8 hex digits>.tmp", as _temp_name makes them; nothing else is ever removed as stale
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX))
# a temporary file lives while one encoded image is written and synced; an older one was left by a
# killed run (a live one of a concurrent run is never this old)
STALE_TEMP_SECONDS = 60.0
_PROBE_BYTES = 64 * 1024


def write_image(path: str | Path, image: ImageData, *, quality: int = 95, overwrite: bool = True) -> list[str]:
    """Write ``image`` in the format its extension names, keeping as much as the format holds.

    Bit depth (16 bits in PNG and TIFF), alpha (PNG, TIFF, WebP; bit-identical), a single gray
    channel (PNG, JPEG, TIFF, BMP; gray+alpha is true gray+alpha in PNG, RGBA with equal channels in
    TIFF and WebP), EXIF and the ICC profile (PNG, JPEG, TIFF, WebP) are kept where possible; what is
    lost is reported in the returned notes. The file appears complete or not at all: bytes go to a
    hidden temporary file in the same folder, are flushed to disk, then renamed onto ``path``.
    Missing parent folders are created.

    Args:
        path: destination; its extension picks the format (see ``SUPPORTED_EXTENSIONS``).
        image: what to write.
        quality: 1..100, JPEG and WebP only; 100 makes WebP lossless.
        overwrite: replace an existing file (default). When False, an existing file is never
            replaced, even one created while encoding.

    Returns:
        Human-readable notes on what could not be kept, e.g.
        ``"JPEG holds 8 bits: 16-bit image written as 8-bit"``; ``[]`` when everything was kept.

    Raises:
        ImageWriteError: unsupported extension, encoder failure, or the file or its folder cannot be
            written (permissions, disk full); no partial file is left behind.
        OutputExistsError: ``overwrite`` is False and ``path`` exists.
        UsageError: ``quality`` is outside 1..100.
        TypeError: ``image`` is not an :class:`ImageData`.
    """
    if not isinstance(image, ImageData):
        raise TypeError(f"write_image takes an ImageData, got {type(image).__name__}: wrap pixels with "
                        "replace_rgb(read_image(source), pixels), or ImageData(rgb=array) for a plain RGB array")
    path = Path(path)
    fmt = format_for_path(path)
    if not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, got {quality}")
    if not overwrite and path.exists():
        raise _exists(path)
    data, notes = encode_image(path, image, fmt, quality)
    atomic_write(path, data, overwrite=overwrite)
    return notes


def atomic_write(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file ``.<name>.<random>.tmp`` in the same folder.

    Raises:
        ImageWriteError: the folder or file cannot be written; the temporary file is removed and an
            existing ``path`` is left as it was.
        OutputExistsError: ``overwrite`` is False and ``path`` exists.
    """
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageWriteError(path, f"cannot create folder {folder}: {error.strerror or error}") from None
    if path.is_dir():
        raise ImageWriteError(path, "is a folder", hint="give a file name with an image extension")
    temp, descriptor = _create_temp(path)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        _commit(temp, path, overwrite=overwrite)
    except BaseException as error:
        with contextlib.suppress(OSError):  # the original error is the one worth reporting
            temp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise DiskFullError(path, f"cannot write file: {error.strerror or error}",
                                hint=f"free space on the disk holding {folder}, then run the same command with "
                                     "--skip-existing: what was written is kept") from error
        if isinstance(error, OSError):
            raise ImageWriteError(path, f"cannot write file: {error.strerror or error}") from error
        raise
    _sync_folder(folder)


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new, exclusively created temporary file next to ``path`` (mode 0o666 minus the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(10):
        temp = path.with_name(_temp_name(path.name))
        try:
            return temp, os.open(temp, flags, 0o666)
        except FileExistsError:
            continue
        except OSError as error:
            raise ImageWriteError(path, f"cannot write in {path.parent}: {error.strerror or error}") from None
    raise ImageWriteError(path, f"cannot create a temporary file in {path.parent}")


def _temp_name(name: str) -> str:
    return f".{name[:100]}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def is_temp_file(path: str | Path) -> bool:
    """Whether ``path`` is named like this package's temporary files (``.<name>.<8 hex>.tmp``)."""
    return _TEMP_NAME.fullmatch(Path(path).name) is not None


def remove_stale_temps(folder: str | Path, *, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the temporary files a killed run left in ``folder`` (not in sub-folders).

    Only files named as :func:`is_temp_file` says and last modified more than ``older_than``
    seconds ago are removed; a missing or unreadable folder removes nothing.

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    deadline = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        with contextlib.suppress(OSError):
            if is_temp_file(entry.name) and entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < deadline:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def check_output_folder(folder: str | Path) -> None:
    """Make sure files can be written in ``folder`` before any work is done.

    Creates the folder (and its parents) if needed, writes, syncs and deletes a small probe file
    named like a temporary file; folders it created are removed again, so nothing is left behind.

    Raises:
        ImageWriteError: ``folder`` is a file, cannot be created, or a file cannot be written there
            (read-only, no permission, disk full); the message says which.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ImageWriteError(folder, "is a file, not a folder", hint="choose another output folder (--output)")
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ImageWriteError(
            folder, f"cannot create this folder: {error.strerror or error}", hint="check the path and its permissions, or choose another --output"
        ) from None
    try:
        probe = folder / _temp_name("probe")
        try:
            with open(probe, "xb") as file:
                file.write(b"\0" * _PROBE_BYTES)
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise ImageWriteError(
                folder, f"cannot write files here: {error.strerror or error}", hint="free disk space or fix the folder's permissions, or choose another --output"
            ) from None
        finally:
            with contextlib.suppress(OSError):
                probe.unlink()
    finally:
        for path in created:  # innermost first
            with contextlib.suppress(OSError):
                path.rmdir()


def _commit(temp: Path, path: Path, *, overwrite: bool) -> None:
    if overwrite:
        os.replace(temp, path)
        return
    try:
        # A hard link fails if the target exists, closing the gap between checking and renaming.
        os.link(temp, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError:
        # Some file systems have no hard links: fall back to check-then-rename.
        if path.exists():
            raise _exists(path) from None
        os.replace(temp, path)
        return
    temp.unlink()


def _exists(path: Path) -> OutputExistsError:
    return OutputExistsError(path, "file exists", hint="choose another output folder or allow overwriting")


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows syncing a directory."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
