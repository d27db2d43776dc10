"""EXIF, ICC profile and orientation: what to take from a file, and how to turn its pixels upright."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from PIL import Image

from lowlight_cli.io.containers import find_png_chunk
from lowlight_cli.io.tiff import IMAGE_STRUCTURE_TAGS, ORIENTATION

_EXIF_PREFIX = b"Exif\x00\x00"
_TIFF_HEADERS = (b"II*\x00", b"MM\x00*")
_SHORT, _LONG = 3, 4
# orientation -> (transpose, flip rows, flip columns), applied in that order to the stored pixels.
_UPRIGHT = {
    1: (False, False, False),
    2: (False, False, True),
    3: (False, True, True),
    4: (False, True, False),
    5: (True, False, False),
    6: (True, False, True),
    7: (True, True, True),
    8: (True, True, False),
}
# Malformed metadata in an untrusted file must not stop its pixels from being read.
_BAD_METADATA = (OSError, ValueError, TypeError, KeyError, IndexError, struct.error)


@dataclass(frozen=True)
class FileMetadata:
    """Metadata taken from one file.

    Attributes:
        exif: raw EXIF from the TIFF header on, orientation reset to 1, or None.
        icc_profile: ICC profile bytes, or None.
        orientation: the EXIF orientation the file declared, 1..8 (1 when absent or invalid).
    """

    exif: bytes | None
    icc_profile: bytes | None
    orientation: int


def apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright according to an EXIF orientation value.

    Args:
        pixels: ``(H, W)`` or ``(H, W, C)``, any dtype, as stored in the file.
        orientation: EXIF orientation 1..8; any other value is treated as 1.

    Returns:
        A C-contiguous array; H and W are swapped for orientations 5 to 8.
    """
    transpose, flip_rows, flip_columns = _UPRIGHT.get(orientation, _UPRIGHT[1])
    if transpose:
        pixels = pixels.swapaxes(0, 1)
    if flip_rows:
        pixels = pixels[::-1]
    if flip_columns:
        pixels = pixels[:, ::-1]
    return np.ascontiguousarray(pixels)


def normalise_exif(raw: bytes | None) -> bytes | None:
    """EXIF payload from the TIFF header on: drop an ``Exif\\0\\0`` prefix; None unless a TIFF header follows."""
    if raw and raw.startswith(_EXIF_PREFIX):
        raw = raw[len(_EXIF_PREFIX) :]
    return raw if raw and raw[:4] in _TIFF_HEADERS else None


EXIF_IFD, PIXEL_X_DIMENSION, PIXEL_Y_DIMENSION = 0x8769, 0xA002, 0xA003


def _ifd_values(exif: bytes, order: str, ifd: int, tags: tuple[int, ...]) -> dict[int, tuple[str, int]]:
    """``{tag: (struct format, offset of the value)}`` of single SHORT / LONG ``tags`` in the IFD at
    ``ifd``; raises ``struct.error`` when the directory runs past the data before they are found."""
    found = {}
    (count,) = struct.unpack_from(order + "H", exif, ifd)
    for index in range(count):
        entry = ifd + 2 + 12 * index
        tag, kind, number = struct.unpack_from(order + "HHI", exif, entry)
        if tag in tags and number == 1 and kind in (_SHORT, _LONG):
            value_format = order + ("H" if kind == _SHORT else "I")
            struct.unpack_from(value_format, exif, entry + 8)  # the value must lie inside the data
            found[tag] = (value_format, entry + 8)
            if len(found) == len(tags):  # the rest of the directory is not read
                break
    return found


def _orientation_entry(exif: bytes) -> tuple[str, int] | None:
    """(struct format, offset of the value) of the orientation tag in IFD0, or None."""
    order = "<" if exif[:2] == b"II" else ">"
    try:
        (ifd,) = struct.unpack_from(order + "I", exif, 4)
        return _ifd_values(exif, order, ifd, (ORIENTATION,)).get(ORIENTATION)
    except struct.error:
        return None


def exif_orientation(exif: bytes | None) -> int:
    """The orientation tag of raw EXIF (TIFF header first), 1..8; 1 when absent or invalid."""
    found = _orientation_entry(exif) if exif else None
    if found is None:
        return 1
    value = struct.unpack_from(found[0], exif, found[1])[0]
    return value if value in _UPRIGHT else 1


def reset_orientation(exif: bytes) -> bytes:
    """Raw EXIF with the orientation tag set to 1, every other byte unchanged (no re-serialisation)."""
    found = _orientation_entry(exif)
    if found is None:
        return exif
    patched = bytearray(exif)
    struct.pack_into(found[0], patched, found[1], 1)
    return bytes(patched)


def drop_thumbnail(exif: bytes) -> bytes:
    """Raw EXIF without its thumbnail: IFD0's link to the next directory (IFD1, the thumbnail's) set
    to 0, every other byte unchanged. The thumbnail shows the photo as it was (dark, as stored):
    viewers that show it would show the original for the enhanced photo. Unchanged when IFD0 is
    malformed."""
    order = "<" if exif[:2] == b"II" else ">"
    try:
        (ifd0,) = struct.unpack_from(order + "I", exif, 4)
        (count,) = struct.unpack_from(order + "H", exif, ifd0)
        link = ifd0 + 2 + 12 * count
        (following,) = struct.unpack_from(order + "I", exif, link)
    except struct.error:
        return exif
    if following == 0:
        return exif
    patched = bytearray(exif)
    struct.pack_into(order + "I", patched, link, 0)
    return bytes(patched)


def swap_pixel_dimensions(exif: bytes) -> bytes:
    """Raw EXIF with PixelXDimension and PixelYDimension exchanged (the photo was turned a quarter
    turn upright: its width is the stored height), every other byte unchanged. Unchanged when
    either tag is missing or malformed, or a value does not fit the other's type."""
    order = "<" if exif[:2] == b"II" else ">"
    try:
        (ifd0,) = struct.unpack_from(order + "I", exif, 4)
        pointer = _ifd_values(exif, order, ifd0, (EXIF_IFD,)).get(EXIF_IFD)
        if pointer is None:
            return exif
        (sub_ifd,) = struct.unpack_from(pointer[0], exif, pointer[1])
        tags = _ifd_values(exif, order, sub_ifd, (PIXEL_X_DIMENSION, PIXEL_Y_DIMENSION))
        if len(tags) != 2:
            return exif
        (x_format, x_at), (y_format, y_at) = tags[PIXEL_X_DIMENSION], tags[PIXEL_Y_DIMENSION]
        width, height = struct.unpack_from(x_format, exif, x_at)[0], struct.unpack_from(y_format, exif, y_at)[0]
        patched = bytearray(exif)
        struct.pack_into(x_format, patched, x_at, height)
        struct.pack_into(y_format, patched, y_at, width)
        return bytes(patched)
    except struct.error:
        return exif


def read_metadata(header: Image.Image, data: bytes, fmt: str) -> FileMetadata:
    """EXIF, ICC profile and orientation of a file, without decoding its pixels.

    Args:
        header: the file opened lazily with Pillow (only its header has been read).
        data: the whole file.
        fmt: our format name (``"png"``, ``"jpeg"``, ``"tiff"``, ``"webp"``, ``"bmp"``).

    Malformed EXIF is dropped (exif None, orientation 1) rather than failing the read.
    """
    icc = header.info.get("icc_profile") or None
    if fmt == "tiff":
        exif, orientation = _tiff_exif(header)
    else:
        # Pillow only sees a PNG eXIf chunk placed before the pixels; look through the whole file.
        raw = find_png_chunk(data, b"eXIf") if fmt == "png" else header.info.get("exif")
        exif = normalise_exif(raw)
        orientation = exif_orientation(exif)
    if exif is not None:
        exif = drop_thumbnail(reset_orientation(exif))
        if orientation >= 5:  # turned a quarter turn: the upright photo's width is its stored height
            exif = swap_pixel_dimensions(exif)
    return FileMetadata(exif=exif, icc_profile=icc, orientation=orientation)


def _tiff_exif(header: Image.Image) -> tuple[bytes | None, int]:
    """A TIFF's photo tags as an EXIF payload, and its orientation.

    In a TIFF the EXIF tags live in the image directory itself, next to the tags describing pixel
    storage, which would be wrong in any other file and are left out.
    """
    try:
        exif = header.getexif()  # Pillow's cached copy: editing it leaves the pixel decoding alone
        orientation = exif.get(ORIENTATION, 1)
        for tag in IMAGE_STRUCTURE_TAGS & set(exif):
            del exif[tag]
        payload = normalise_exif(exif.tobytes()) if len(exif) else None
    except _BAD_METADATA:
        return None, 1
    return payload, orientation if orientation in _UPRIGHT else 1
