"""Encoding :class:`ImageData` to the bytes of one file format, metadata included where it fits.

OpenCV encodes PNG, JPEG, TIFF and BMP (it handles 16 bits and is fast); EXIF and ICC are then
added to its output at byte level. WebP goes through Pillow, which embeds both itself.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from lowlight_cli.errors import ImageWriteError
from lowlight_cli.io.containers import embed_jpeg, embed_png, encode_png
from lowlight_cli.io.formats import FORMATS, can_hold
from lowlight_cli.io.image import ImageData, gray_plane, to_8bit
from lowlight_cli.io.quiet import opencv_silenced
from lowlight_cli.io.tiff import rewrite_tiff

# From this JPEG quality on, colour is not subsampled: asking for high quality means colour detail too.
_FULL_CHROMA_QUALITY = 90


@dataclass(frozen=True)
class _Pixels:
    """What is actually written: colour planes and alpha at the output bit depth."""

    color: np.ndarray  # (H, W) when written as one gray channel, (H, W, 3) RGB otherwise
    alpha: np.ndarray | None  # (H, W) or None

    def stacked(self) -> np.ndarray:
        """``(H, W, C)`` in file order: gray, gray+alpha, RGB or RGBA."""
        planes = [self.color if self.color.ndim == 3 else self.color[..., None]]
        if self.alpha is not None:
            planes.append(self.alpha[..., None])
        return np.ascontiguousarray(np.concatenate(planes, axis=2))

    def opencv_order(self) -> np.ndarray:
        """Gray ``(H, W)``, BGR or BGRA: OpenCV's channel order (it cannot write gray+alpha)."""
        if self.color.ndim == 2:
            if self.alpha is not None:
                raise ValueError("OpenCV cannot write gray+alpha")
            return self.color
        # planes merged in OpenCV's order in one pass (a fancy-indexed copy of the stacked array
        # took two); each plane is contiguous when the colour is a channel-first view
        planes = [self.color[..., 2], self.color[..., 1], self.color[..., 0]]
        return cv2.merge(planes if self.alpha is None else [*planes, self.alpha])


def encode_image(path: Path, image: ImageData, fmt: str, quality: int) -> tuple[bytes, list[str]]:
    """The bytes of ``image`` as a ``fmt`` file, and notes on what the format could not keep.

    Args:
        path: the destination, named in errors only.
        image: what to encode.
        fmt: ``"png" | "jpeg" | "tiff" | "webp" | "bmp"``.
        quality: 1..100 for JPEG and WebP (100 makes WebP lossless); ignored by the others.

    Raises:
        ImageWriteError: the encoder failed.
    """
    info = FORMATS[fmt]
    notes = can_hold(
        fmt,
        image.bit_depth,
        image.alpha is not None,
        has_exif=image.exif is not None,
        has_icc=image.icc_profile is not None,
    )
    pixels = _prepare(image, fmt)
    exif = image.exif if info.exif else None
    icc, icc_notes = _fitting_profile(image.icc_profile if info.icc else None, pixels, info.label)
    notes += icc_notes
    if image.frames > 1:
        notes.append(f"only the first of its {image.frames} frames or pages was enhanced and written")
    if image.converted_from:
        notes.append(f"its {image.converted_from} colours were converted to RGB and are written as RGB")
    if image.damage_note:
        notes.append(image.damage_note)
    if fmt == "webp" and image.lossless_webp and quality < 100:
        notes.append(f"the input was a lossless WebP, written lossy at quality {quality} (quality 100 keeps it lossless)")
    try:
        if fmt == "webp":
            return _encode_webp(pixels, quality, exif, icc), notes
        if fmt == "png" and pixels.color.ndim == 2 and pixels.alpha is not None:
            return embed_png(encode_png(pixels.stacked()), exif=exif, icc=icc), notes
        encoded = _encode_opencv(pixels.opencv_order(), fmt, quality)
        if fmt == "png":
            encoded = embed_png(encoded, exif=exif, icc=icc)
        elif fmt == "jpeg":
            encoded, size_notes = embed_jpeg(encoded, exif=exif, icc=icc)
            notes += size_notes
        elif fmt == "tiff":
            encoded, tiff_notes = _finish_tiff(encoded, exif, icc, alpha=pixels.alpha is not None)
            notes += tiff_notes
        return encoded, notes
    except (cv2.error, OSError, ValueError) as error:
        raise ImageWriteError(path, f"could not encode as {info.label}: {error}") from error


def _prepare(image: ImageData, fmt: str) -> _Pixels:
    """Pixels cut down to what ``fmt`` holds: 8 bits, no alpha, one gray channel, as the format needs."""
    info = FORMATS[fmt]
    keep_depth = image.bit_depth in info.bit_depths
    color = image.rgb if keep_depth else to_8bit(image.rgb)
    alpha = None
    if image.alpha is not None and info.alpha:
        alpha = image.alpha if keep_depth else to_8bit(image.alpha)
    if image.gray and info.single_channel and (alpha is None or info.gray_alpha):
        color = gray_plane(color)
    return _Pixels(color=color, alpha=alpha)


def _fitting_profile(icc: bytes | None, pixels: _Pixels, label: str) -> tuple[bytes | None, list[str]]:
    """The ICC profile if its colour space matches the written channels (GRAY or RGB), else a note.

    A mismatched profile is invalid (libpng rejects an RGB profile on a gray PNG) and would make
    colour-managed viewers ignore it or render wrongly.
    """
    if not icc:
        return None, []
    written = b"GRAY" if pixels.color.ndim == 2 else b"RGB "
    space = icc[16:20]
    if space == written:
        return icc, []
    stored = "gray" if written == b"GRAY" else "RGB"
    declared = space.decode("latin-1").strip() or "unknown"
    return None, [f"colour profile is for {declared} data but the {label} file stores {stored}: colour profile dropped"]


def _encode_opencv(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
    params = []
    if fmt == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
        if quality >= _FULL_CHROMA_QUALITY:
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    with opencv_silenced():
        ok, encoded = cv2.imencode(FORMATS[fmt].extensions[0], pixels, params)
    if not ok:
        raise ValueError("OpenCV refused the image")
    return encoded.tobytes()


def _finish_tiff(tiff: bytes, exif: bytes | None, icc: bytes | None, *, alpha: bool) -> tuple[bytes, list[str]]:
    if not (exif or icc or alpha):
        return tiff, []
    try:
        return rewrite_tiff(tiff, exif=exif, icc=icc, alpha=alpha), []
    except (ValueError, KeyError, TypeError, OSError, struct.error) as error:
        # Pixels are worth more than metadata: keep OpenCV's file and say what was lost.
        lost = [name for name, present in (("EXIF", exif), ("colour profile", icc)) if present]
        return tiff, [f"TIFF metadata could not be written ({error}): {' and '.join(lost) or 'alpha flag'} dropped"]


def _encode_webp(pixels: _Pixels, quality: int, exif: bytes | None, icc: bytes | None) -> bytes:
    buffer = io.BytesIO()
    options: dict[str, object] = {"quality": quality, "lossless": quality == 100, "exact": True}
    if exif:
        options["exif"] = exif
    if icc:
        options["icc_profile"] = icc
    Image.fromarray(pixels.stacked()).save(buffer, format="WEBP", **options)
    return buffer.getvalue()
