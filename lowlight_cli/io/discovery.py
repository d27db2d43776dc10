"""Finding the images named on a command line, and where each one's result goes."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lowlight_cli.errors import ImageReadError
from lowlight_cli.io.formats import SUPPORTED_EXTENSIONS
from lowlight_cli.io.write import is_temp_file


@dataclass(frozen=True)
class InputFile:
    """One image to process.

    Attributes:
        path: the file to read.
        relative: its path relative to the input argument it came from; just the file name when the
            argument was the file itself. Used to mirror the input tree under an output folder.
    """

    path: Path
    relative: Path


@dataclass(frozen=True)
class SkippedFile:
    """A file found in an input folder (or named) that is not processed, and why (one short phrase)."""

    path: Path
    reason: str
    quiet: bool = False  # hidden files and folders: listed with --verbose, not counted in the summary line
    detail: str = ""  # said after the reason with --verbose; the summary counts files by reason alone


SUBFOLDER_REASON = "sub-folder (--recursive enters it)"  # why a scan without recursive passed a folder over


@dataclass
class Discovery:
    """The images to process, sorted by path, and the files passed over (reported, never silently)."""

    files: list[InputFile]
    skipped: list[SkippedFile] = field(default_factory=list)


def scan_inputs(inputs: Sequence[str | Path], *, recursive: bool = False, exclude: Sequence[str | Path] = ()) -> Discovery:
    """The image files named by ``inputs``, and the files passed over on the way.

    A file argument is taken whatever its extension (reading it raises if it is not an image),
    except a temporary file of this package (``.<name>.<8 hex>.tmp``, left by a killed run). A
    folder contributes its files whose extension is in ``SUPPORTED_EXTENSIONS`` (any case),
    including sub-folders when ``recursive``. Inside a scanned folder, hidden files and folders
    (name starting with "."), files of other formats, broken symbolic links, symbolic-link loops,
    symbolic links to folders (not followed) and, without ``recursive``, sub-folders are passed
    over and listed in ``skipped`` with the reason; a temporary file of this package is passed
    over without a word (a run removes those in its output folder).
    A sub-folder named in ``exclude`` (the output folder of a run, so that a rerun does not enhance
    the last run's outputs again) is not entered and is listed in ``skipped``.

    Returns:
        ``files`` sorted by path; a file reached twice (same resolved path) appears once, under its
        own name rather than a symbolic link's, else its first mention's (folders are listed in
        sorted order), and the other names are in ``skipped``. Empty when the folders hold no images.

    Raises:
        ImageReadError: an input does not exist, or a folder cannot be listed.
    """
    if isinstance(inputs, (str, Path)):  # one path, not the characters of one
        inputs = [inputs]
    found: dict[Path, InputFile] = {}
    skipped: list[SkippedFile] = []
    excluded = {Path(folder).resolve() for folder in exclude}
    for argument in inputs:
        root = Path(argument)
        if root.is_dir():
            items: Iterator[InputFile] = _scan(root, recursive=recursive, skipped=skipped, excluded=excluded)
        elif is_temp_file(root) and root.exists():
            skipped.append(SkippedFile(root, "temporary file of an interrupted write"))
            continue
        elif root.exists() and not root.is_file():  # a FIFO or a device: reading it would wait for a writer
            skipped.append(SkippedFile(root, "not a regular file"))
            continue
        elif root.exists():
            items = iter([InputFile(root, Path(root.name))])
        else:
            raise ImageReadError(root, "no such file or folder", hint="check the path")
        for item in items:
            key = item.path.resolve()
            first = found.setdefault(key, item)
            if first is item or first.path == item.path:  # the same path named twice: once, without a word
                continue
            if first.path.is_symlink() and not item.path.is_symlink():  # the file's own name wins over a link's
                found[key], item = item, first
            skipped.append(SkippedFile(item.path, "another name of an input", detail=f"the same file as {found[key].path}"))
    return Discovery(sorted(found.values(), key=lambda item: item.path), sorted(skipped, key=lambda s: s.path))


def find_images(inputs: Sequence[str | Path], *, recursive: bool = False) -> list[InputFile]:
    """The image files named by ``inputs`` (see :func:`scan_inputs`; one path alone is taken as a
    list of one), without the skipped ones."""
    return scan_inputs(inputs, recursive=recursive).files


def _skip_reason(path: Path) -> str | None:
    """Why a non-hidden folder entry is not an input, or None when it is an image file."""
    if path.is_symlink() and not path.exists():
        try:
            os.stat(path)
        except OSError as error:
            return "symbolic link loop" if error.errno == errno.ELOOP else "broken symbolic link"
    extension = os.path.splitext(path.name)[1].lower()
    if extension not in SUPPORTED_EXTENSIONS:
        return f"unsupported format ({extension or 'no extension'})"
    if not path.is_file():
        return "not a regular file"
    return None


def _scan(root: Path, *, recursive: bool, skipped: list[SkippedFile], excluded: set[Path]) -> Iterator[InputFile]:
    def fail(error: OSError) -> None:
        raise ImageReadError(error.filename or root, f"cannot list folder: {error.strerror or error}") from None

    def entered(folder: str, name: str) -> bool:
        path = Path(folder) / name
        if name.startswith("."):
            skipped.append(SkippedFile(path, "hidden folder", quiet=True))
            return False
        if path.is_symlink():
            skipped.append(SkippedFile(path, "symbolic link to a folder (not followed; name it to enhance it)"))
            return False
        if excluded and path.resolve() in excluded:
            if recursive:
                skipped.append(SkippedFile(path, "the output folder"))
            return False
        if not recursive:
            skipped.append(SkippedFile(path, SUBFOLDER_REASON))
            return False
        return True

    for folder, subfolders, names in os.walk(root, onerror=fail):
        subfolders[:] = [name for name in sorted(subfolders) if entered(folder, name)]  # sorted: the same order everywhere
        for name in sorted(names):
            path = Path(folder) / name
            if name.startswith("."):
                if not is_temp_file(path):  # a killed run's temporary file is removed, not listed
                    skipped.append(SkippedFile(path, "hidden file", quiet=True))
                continue
            reason = _skip_reason(path)
            if reason is None:
                yield InputFile(path, path.relative_to(root))
            else:
                skipped.append(SkippedFile(path, reason))


def output_path(
    item: InputFile, out_dir: Path, *, suffix: str = "", ext: str | None = None, mirror_tree: bool = True
) -> Path:
    """Where the result for ``item`` is written.

    ``out_dir / item.relative.parent / (stem + suffix + extension)``, or ``out_dir / (...)`` when
    ``mirror_tree`` is False (sub-folders flattened; names from different folders may then collide).

    Args:
        item: the input.
        out_dir: the output folder.
        suffix: appended to the file stem, e.g. ``"_enhanced"``.
        ext: new extension, with or without the dot (``".png"`` or ``"png"``); None keeps the input's.
    """
    if ext and not ext.startswith("."):
        ext = "." + ext
    name = item.relative.stem + suffix + (item.relative.suffix if ext is None else ext)
    folder = Path(out_dir) / item.relative.parent if mirror_tree else Path(out_dir)
    return folder / name
