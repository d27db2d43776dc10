"""Finding the images named on a command line, and where each one's result goes."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from lowlight_cli.errors import ImageReadError
from lowlight_cli.io.formats import SUPPORTED_EXTENSIONS


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


def find_images(inputs: Sequence[str | Path], *, recursive: bool = False) -> list[InputFile]:
    """The image files named by ``inputs``: files as given, folders scanned for image extensions.

    A file argument is taken whatever its extension (reading it raises if it is not an image). A
    folder contributes its files whose extension is in ``SUPPORTED_EXTENSIONS`` (any case), including
    sub-folders when ``recursive``. Hidden files and folders (name starting with ".") inside a scanned
    folder are skipped; symbolic links to folders are not followed.

    Returns:
        Sorted by path; a file reached twice (same resolved path) appears once, with the
        ``relative`` of its first mention. Empty when the folders hold no images.

    Raises:
        ImageReadError: an input does not exist, or a folder cannot be listed.
    """
    found: dict[Path, InputFile] = {}
    for argument in inputs:
        root = Path(argument)
        if root.is_dir():
            items: Iterator[InputFile] = _scan(root, recursive=recursive)
        elif root.exists():
            items = iter([InputFile(root, Path(root.name))])
        else:
            raise ImageReadError(root, "no such file or folder", hint="check the path")
        for item in items:
            found.setdefault(item.path.resolve(), item)
    return sorted(found.values(), key=lambda item: item.path)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in SUPPORTED_EXTENSIONS


def _scan(root: Path, *, recursive: bool) -> Iterator[InputFile]:
    def fail(error: OSError) -> None:
        raise ImageReadError(error.filename or root, f"cannot list folder: {error.strerror or error}") from None

    for folder, subfolders, names in os.walk(root, onerror=fail):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")] if recursive else []
        for name in names:
            path = Path(folder) / name
            if _is_image_name(name) and path.is_file():
                yield InputFile(path, path.relative_to(root))


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
