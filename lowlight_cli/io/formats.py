"""What each supported file format can hold, and which format a path asks for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lowlight_cli.errors import ImageWriteError


@dataclass(frozen=True)
class FormatInfo:
    """Capabilities of one file format as this package writes it.

    Attributes:
        name: short name used across the package (``"png"``, ``"jpeg"``, ...).
        label: name shown to users in notes and errors.
        extensions: lower-case file extensions, with the dot.
        pillow_names: values of Pillow's ``Image.format`` that mean this format.
        bit_depths: bit depths per channel that can be written.
        alpha: an alpha channel can be written.
        single_channel: a gray image can be written as one channel.
        gray_alpha: a gray image with alpha can be written as two channels.
        exif: EXIF can be embedded.
        icc: an ICC profile can be embedded.
    """

    name: str
    label: str
    extensions: tuple[str, ...]
    pillow_names: tuple[str, ...]
    bit_depths: tuple[int, ...]
    alpha: bool
    single_channel: bool
    gray_alpha: bool
    exif: bool
    icc: bool


FORMATS: dict[str, FormatInfo] = {
    info.name: info
    for info in (
        FormatInfo(
            "png", "PNG", (".png",), ("PNG",), bit_depths=(8, 16),
            alpha=True, single_channel=True, gray_alpha=True, exif=True, icc=True,
        ),
        # MPO is what Pillow calls camera JPEGs that carry extra preview images.
        FormatInfo(
            "jpeg", "JPEG", (".jpg", ".jpeg"), ("JPEG", "MPO"), bit_depths=(8,),
            alpha=False, single_channel=True, gray_alpha=False, exif=True, icc=True,
        ),
        FormatInfo(
            "tiff", "TIFF", (".tif", ".tiff"), ("TIFF",), bit_depths=(8, 16),
            alpha=True, single_channel=True, gray_alpha=False, exif=True, icc=True,
        ),
        FormatInfo(
            "webp", "WebP", (".webp",), ("WEBP",), bit_depths=(8,),
            alpha=True, single_channel=False, gray_alpha=False, exif=True, icc=True,
        ),
        FormatInfo(
            "bmp", "BMP", (".bmp",), ("BMP", "DIB"), bit_depths=(8,),
            alpha=False, single_channel=True, gray_alpha=False, exif=False, icc=False,
        ),
    )
}

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(ext for info in FORMATS.values() for ext in info.extensions)

_BY_EXTENSION = {ext: info.name for info in FORMATS.values() for ext in info.extensions}
_BY_PILLOW_NAME = {pil: info.name for info in FORMATS.values() for pil in info.pillow_names}


def format_for_path(path: str | Path) -> str:
    """The format a file name asks for, from its extension (case-insensitive).

    Returns:
        ``"png" | "jpeg" | "tiff" | "webp" | "bmp"``.

    Raises:
        ImageWriteError: the extension is not one of :data:`SUPPORTED_EXTENSIONS`.
    """
    path = Path(path)
    try:
        return _BY_EXTENSION[path.suffix.lower()]
    except KeyError:
        raise ImageWriteError(
            path,
            f"unsupported extension {path.suffix or '(none)'!r}",
            hint=f"use one of {', '.join(sorted(SUPPORTED_EXTENSIONS))}",
        ) from None


def format_for_pillow_name(pillow_name: str | None) -> str | None:
    """Our format name for Pillow's ``Image.format`` value, or None when it is not supported."""
    return _BY_PILLOW_NAME.get(pillow_name or "")


def can_hold(
    fmt: str, bit_depth: int, has_alpha: bool, *, has_exif: bool = False, has_icc: bool = False
) -> list[str]:
    """Notes on what writing an image with these properties as ``fmt`` would lose.

    The same notes :func:`lowlight_cli.io.write_image` returns, computed without writing.

    Args:
        fmt: ``"png" | "jpeg" | "tiff" | "webp" | "bmp"``.
        bit_depth: 8 or 16.
        has_alpha: the image has an alpha channel.
        has_exif: the image carries EXIF (keyword only; default False).
        has_icc: the image carries an ICC profile (keyword only; default False).

    Returns:
        Human-readable notes, e.g. ``"JPEG holds 8 bits: 16-bit image written as 8-bit"``;
        ``[]`` when everything is kept.

    Raises:
        ValueError: unknown ``fmt`` or a bit depth other than 8 or 16.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {sorted(FORMATS)}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    info = FORMATS[fmt]
    notes = []
    if bit_depth not in info.bit_depths:
        notes.append(f"{info.label} holds {max(info.bit_depths)} bits: {bit_depth}-bit image written as 8-bit")
    if has_alpha and not info.alpha:
        notes.append(f"{info.label} has no alpha: alpha dropped")
    if has_exif and not info.exif:
        notes.append(f"{info.label} has no EXIF: EXIF dropped")
    if has_icc and not info.icc:
        notes.append(f"{info.label} has no ICC profile: colour profile dropped")
    return notes
