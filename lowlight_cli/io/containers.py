"""Byte-level PNG and JPEG container edits: walking PNG chunks, inserting metadata, and a small PNG encoder.

OpenCV encodes pixels well but writes no EXIF or ICC profile; these helpers add them to its output
without re-encoding anything.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
_JPEG_APP0 = b"\xff\xe0"
_JPEG_MAX_PAYLOAD = 65533  # segment length field is 16 bits and counts itself
_ICC_MARKER = b"ICC_PROFILE\x00"
_ICC_CHUNK = _JPEG_MAX_PAYLOAD - len(_ICC_MARKER) - 2  # 2 bytes: sequence number, chunk count
_PNG_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> gray, gray+alpha, RGB, RGBA
_REPLACED_PNG_CHUNKS = {b"iCCP", b"sRGB", b"eXIf"}  # a PNG may hold only one colour space statement


def png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, start, end)`` for each chunk of a PNG, ``data[start:end]`` being the whole chunk.

    Stops after IEND or at the first chunk that does not fit in ``data`` (truncated file).

    Raises:
        ValueError: ``data`` does not start with the PNG signature.
    """
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG stream")
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            return
        yield kind, pos, end
        if kind == b"IEND":
            return
        pos = end


def find_png_chunk(data: bytes, kind: bytes) -> bytes | None:
    """Payload of the first ``kind`` chunk of a PNG (anywhere in the file), or None."""
    for found, start, end in png_chunks(data):
        if found == kind:
            return data[start + 8 : end - 4]
    return None


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload and the CRC-32 of type + payload."""
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def embed_png(png: bytes, *, exif: bytes | None, icc: bytes | None) -> bytes:
    """Insert ``iCCP`` and ``eXIf`` chunks right after IHDR (so before PLTE and the first IDAT).

    Any iCCP, sRGB or eXIf chunk already present is dropped, since a PNG may hold only one.

    Args:
        png: a complete PNG stream.
        exif: raw EXIF starting at the TIFF header, or None.
        icc: ICC profile bytes, or None.

    Raises:
        ValueError: ``png`` is not a PNG stream.
    """
    if not exif and not icc:
        return png
    added = b""
    if icc:
        added += png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))
    if exif:
        added += png_chunk(b"eXIf", exif)
    parts = [PNG_SIGNATURE]
    for kind, start, end in png_chunks(png):
        if kind in _REPLACED_PNG_CHUNKS:
            continue
        parts.append(png[start:end])
        if kind == b"IHDR":
            parts.append(added)
    return b"".join(parts)


def encode_png(pixels: np.ndarray) -> bytes:
    """Encode ``(H, W, C)`` uint8/uint16 pixels, C in 1..4, as a PNG with the matching colour type.

    Used for gray+alpha, which OpenCV cannot write. Every row uses the "Up" filter, which numpy does
    in one subtraction and which compresses smooth photos far better than no filter.
    """
    height, width, channels = pixels.shape
    depth = 8 if pixels.dtype == np.uint8 else 16
    rows = pixels.astype(">u2" if depth == 16 else np.uint8, copy=False).reshape(height, -1).view(np.uint8)
    filtered = rows.copy()
    filtered[1:] -= rows[:-1]  # wraps modulo 256, as the Up filter is defined
    scanlines = np.empty((height, filtered.shape[1] + 1), np.uint8)
    scanlines[:, 0] = 2
    scanlines[:, 1:] = filtered
    header = struct.pack(">IIBBBBB", width, height, depth, _PNG_COLOR_TYPE[channels], 0, 0, 0)
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(scanlines.tobytes(), 6))
        + png_chunk(b"IEND", b"")
    )


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def embed_jpeg(jpeg: bytes, *, exif: bytes | None, icc: bytes | None) -> tuple[bytes, list[str]]:
    """Insert an APP1 Exif segment and APP2 ICC_PROFILE segments after SOI (and after a JFIF APP0).

    Args:
        jpeg: a complete JPEG stream.
        exif: raw EXIF starting at the TIFF header, or None.
        icc: ICC profile bytes, or None; split over as many APP2 segments as needed.

    Returns:
        The new stream and notes on anything that did not fit (EXIF over 64 KiB).

    Raises:
        ValueError: ``jpeg`` does not start with SOI.
    """
    if not jpeg.startswith(_JPEG_SOI):
        raise ValueError("not a JPEG stream")
    notes: list[str] = []
    segments = []
    if exif:
        payload = b"Exif\x00\x00" + exif
        if len(payload) > _JPEG_MAX_PAYLOAD:
            notes.append(f"EXIF is {len(exif)} bytes, more than a JPEG segment holds: EXIF dropped")
        else:
            segments.append(_jpeg_segment(0xE1, payload))
    if icc:
        chunks = [icc[i : i + _ICC_CHUNK] for i in range(0, len(icc), _ICC_CHUNK)]
        if len(chunks) > 255:
            notes.append(f"ICC profile is {len(icc)} bytes, too large for JPEG: colour profile dropped")
        else:
            for number, chunk in enumerate(chunks, start=1):
                segments.append(_jpeg_segment(0xE2, _ICC_MARKER + bytes([number, len(chunks)]) + chunk))
    pos = len(_JPEG_SOI)
    # JFIF readers expect APP0 right after SOI; Exif readers accept APP1 after it.
    if jpeg[pos : pos + 2] == _JPEG_APP0:
        pos += 2 + struct.unpack_from(">H", jpeg, pos + 2)[0]
    return jpeg[:pos] + b"".join(segments) + jpeg[pos:], notes
