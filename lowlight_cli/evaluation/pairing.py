"""Pair predictions with references by file stem, never by sort order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DataError
from ..io import InputFile
from ..io.discovery import SUBFOLDER_REASON, Discovery, scan_inputs


@dataclass(frozen=True)
class ImagePair:
    """A prediction and its reference (None for no-reference scoring); ``name`` is the shared stem."""

    name: str
    prediction: Path
    reference: Path | None


@dataclass
class Pairing:
    """The pairs found, and the files that had no partner (reported, never silently dropped)."""

    pairs: list[ImagePair]
    unpaired_predictions: list[Path] = field(default_factory=list)
    unpaired_references: list[Path] = field(default_factory=list)
    # sub-folders passed over (not ``recursive``): their images are neither paired nor scored
    unsearched_folders: list[Path] = field(default_factory=list)


_NO_IMAGES_HINT = ("check the folder; images are found by their extension (png, jpg, webp, tif, bmp, ...), "
                   "and sub-folders are searched only with -r")


def _by_stem(items: Sequence[InputFile], role: str) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for item in items:
        stem = item.relative.with_suffix("").as_posix()
        if stem in stems:
            raise DataError(
                f"two {role} files share the stem {stem!r}: {stems[stem]} and {item.path}",
                hint="pairing is by file stem; keep one of them",
            )
        stems[stem] = item.path
    return stems


def _unpaired(items: Sequence[InputFile]) -> list[ImagePair]:
    """No-reference pairs named by stem; files sharing a stem (``1.png``, ``1.jpg``) keep their extension."""
    stems = Counter(item.relative.with_suffix("").as_posix() for item in items)

    def name(item: InputFile) -> str:
        stem = item.relative.with_suffix("").as_posix()
        return stem if stems[stem] == 1 else item.relative.as_posix()

    return sorted((ImagePair(name(item), item.path, None) for item in items), key=lambda pair: pair.name)


def pair_by_stem(predictions: Path, references: Path | None, *, recursive: bool = False) -> Pairing:
    """Pair the images under ``predictions`` with those under ``references`` by stem.

    ``1.png`` pairs with ``1.jpg``; with ``recursive`` the stem includes the sub-folder path.
    Without ``references`` every prediction is a pair with reference None, named by its stem (by
    its file name where two files share a stem: no pairing is needed then).

    Raises:
        DataError: a folder holds no images, or two files in one folder share a stem (with references).
    """
    scanned = scan_inputs([predictions], recursive=recursive)
    found = scanned.files
    if not found:
        raise DataError(f"no images found in {predictions}", hint=_NO_IMAGES_HINT)
    unsearched = _subfolders(scanned)
    if references is None:
        return Pairing(_unpaired(found), unsearched_folders=unsearched)
    preds = _by_stem(found, "prediction")
    scanned = scan_inputs([references], recursive=recursive)
    refs = _by_stem(scanned.files, "reference")
    if not refs:
        raise DataError(f"no images found in {references}", hint=_NO_IMAGES_HINT)
    pairs = [ImagePair(stem, preds[stem], refs[stem]) for stem in sorted(preds) if stem in refs]
    return Pairing(
        pairs,
        unpaired_predictions=[preds[s] for s in sorted(preds) if s not in refs],
        unpaired_references=[refs[s] for s in sorted(refs) if s not in preds],
        unsearched_folders=unsearched + _subfolders(scanned),
    )


def _subfolders(scanned: Discovery) -> list[Path]:
    """The sub-folders a scan without ``recursive`` passed over (hidden ones are not counted)."""
    return [item.path for item in scanned.skipped if item.reason == SUBFOLDER_REASON]
