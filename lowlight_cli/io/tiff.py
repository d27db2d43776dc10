"""TIFF directory rewriting: add EXIF, an ICC profile and the alpha declaration to a TIFF from OpenCV.

OpenCV writes 8- and 16-bit TIFFs of any channel count but no metadata, and declares no
ExtraSamples for a fourth channel (readers then warn and guess). Pillow can serialise a TIFF
directory, EXIF sub-directories included, but cannot write 16-bit RGB pixels. So the pixels stay
as OpenCV compressed them and only the directory is rebuilt, the way Pillow lays out its own
files: header, directory, then the strips.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO

from PIL import Image, TiffTags
from PIL.TiffImagePlugin import ImageFileDirectory_v2

ORIENTATION = 0x0112
ICC_PROFILE = 34675
IMAGE_WIDTH, BITS_PER_SAMPLE, PHOTOMETRIC, SAMPLES_PER_PIXEL, EXTRA_SAMPLES, SAMPLE_FORMAT = 256, 258, 262, 277, 338, 339
_STRIP_OFFSETS, _STRIP_BYTE_COUNTS, _TILE_OFFSETS = 273, 279, 324
CLASSIC_MAGIC = (b"II*\x00", b"MM\x00*")
BIGTIFF_MAGIC = (b"II+\x00", b"MM\x00+")
_UNASSOCIATED_ALPHA = 2
ASSOCIATED_ALPHA = 1
MIN_IS_WHITE = 0  # PhotometricInterpretation
_FIRST_IFD = 8  # the directory follows the 8-byte header

# Tags that describe how pixels are stored, not the photo: they belong to the file being written
# and must never be copied from a source's EXIF. The ICC profile is carried separately.
IMAGE_STRUCTURE_TAGS = frozenset(
    {254, 255, 256, 257, 258, 259, 262, 263, 266, 273, 277, 278, 279, 280, 281, 284, 317, 320}
    | {322, 323, 324, 325, 330, 338, 339, 340, 341, 347, 529, 530, 531, 532, ICC_PROFILE}
    | set(range(512, 522))  # old-style JPEG compression
)


def rewrite_tiff(tiff: bytes, *, exif: bytes | None, icc: bytes | None, alpha: bool) -> bytes:
    """A copy of a single-image, stripped, classic TIFF with metadata added to its directory.

    Args:
        tiff: the TIFF bytes (as OpenCV writes them).
        exif: raw EXIF starting at the TIFF header, or None. Its IFD0 tags (minus image-structure
            tags) join the image directory; its Exif and GPS sub-directories are carried.
        icc: ICC profile bytes, or None.
        alpha: the fourth channel is unassociated alpha (writes ExtraSamples = 2).

    Raises:
        ValueError: the file is BigTIFF, tiled, multi-page, or its directory cannot be parsed.
    """
    if tiff[:4] not in CLASSIC_MAGIC:
        raise ValueError("not a classic TIFF (BigTIFF is not rewritten)")
    source = first_directory(io.BytesIO(tiff))
    if source.next or _TILE_OFFSETS in source or _STRIP_OFFSETS not in source:
        raise ValueError("only single-image, stripped TIFFs are rewritten")

    offsets = as_tuple(source[_STRIP_OFFSETS])
    counts = as_tuple(source[_STRIP_BYTE_COUNTS])
    strips = b"".join(tiff[start : start + size] for start, size in zip(offsets, counts, strict=True))

    out = ImageFileDirectory_v2(prefix=tiff[:2])
    if exif:
        _add_exif(out, exif)
    for tag in source:
        out[tag] = source[tag]
        out.tagtype[tag] = source.tagtype[tag]
    # Offsets are relative to the strip data here; Pillow's tobytes adds where that data starts.
    relative, position = [], 0
    for size in counts:
        relative.append(position)
        position += size
    out[_STRIP_OFFSETS] = tuple(relative)
    out[_STRIP_BYTE_COUNTS] = counts
    out.tagtype[_STRIP_OFFSETS] = out.tagtype[_STRIP_BYTE_COUNTS] = TiffTags.LONG
    if alpha:
        out[EXTRA_SAMPLES] = _UNASSOCIATED_ALPHA
        out.tagtype[EXTRA_SAMPLES] = TiffTags.SHORT
    if icc:
        out[ICC_PROFILE] = icc
        out.tagtype[ICC_PROFILE] = TiffTags.UNDEFINED
    header = tiff[:4] + struct.pack("<I" if tiff[:2] == b"II" else ">I", _FIRST_IFD)
    return header + out.tobytes(offset=_FIRST_IFD) + strips


def as_tuple(value: int | tuple[int, ...]) -> tuple[int, ...]:
    """A tag's value as a tuple (Pillow gives a single value as it is)."""
    return value if isinstance(value, tuple) else (value,)


def first_directory(stream: BinaryIO) -> ImageFileDirectory_v2:
    """The first image directory of the TIFF (classic or BigTIFF) in ``stream``, read with Pillow's
    tag parser (which bounds what it reads by the file's size); its ``next`` is the following
    directory's offset, 0 for none.

    Raises:
        ValueError: not a TIFF, or no image directory where the header points (a corrupt file).
    """
    stream.seek(0)
    header = stream.read(8)
    if header[:4] in BIGTIFF_MAGIC:  # 16 bytes: an 8-byte offset
        header += stream.read(8)
    elif header[:4] not in CLASSIC_MAGIC:
        raise ValueError("not a TIFF")
    directory = ImageFileDirectory_v2(header)
    stream.seek(directory.next)
    directory.load(stream)
    if IMAGE_WIDTH not in directory:
        raise ValueError("no image directory where the header points")
    return directory


def _add_exif(out: ImageFileDirectory_v2, exif: bytes) -> None:
    parsed = Image.Exif()
    parsed.load(exif)
    for tag in parsed:
        if tag in IMAGE_STRUCTURE_TAGS:
            continue
        if tag in TiffTags.TAGS_V2_GROUPS:
            # A dict value makes Pillow write the sub-directory and point to it. Pointers inside it
            # (Interop, in the Exif directory) must become dicts too, or they keep stale offsets.
            directory = dict(parsed.get_ifd(tag))
            for inner in directory.keys() & TiffTags.TAGS_V2_GROUPS.keys():
                directory[inner] = parsed.get_ifd(inner)
            out[tag] = directory
            out.tagtype[tag] = TiffTags.LONG
        else:
            out[tag] = parsed[tag]
