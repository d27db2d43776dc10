"""Reading one image file into :class:`ImageData`: bit depth, alpha, gray, orientation and metadata kept."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
from PIL import Image, ImageOps

from lowlight_cli.errors import ImageReadError, ImageTooLargeError
from lowlight_cli.io.formats import FORMATS, format_for_pillow_name
from lowlight_cli.io.image import ImageData
from lowlight_cli.io.memory import DECODE_MARGIN, decoded_bytes, memory_shortfall
from lowlight_cli.io.metadata import apply_orientation, read_metadata
from lowlight_cli.io import tiff
from lowlight_cli.io.quiet import decoder_messages, opencv_silenced, pillow_guarded

DEFAULT_MAX_PIXELS: int = 250_000_000

_SUPPORTED_LIST = ", ".join(info.label for info in FORMATS.values())
_CONVERTED_MODES = frozenset({"CMYK"})  # decoded to RGB (Pillow reports CMYK and YCCK JPEGs as CMYK)
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_PNG_BIT_DEPTH_OFFSET = 24  # signature 8, IHDR length and type 8, width and height 8
_PNG_COLOR_TYPE_OFFSET = 25  # then the bit depth, 1 byte
_PNG_GRAY_TYPES = (0, 4)
# OpenCV's TIFF decoder (even with IMREAD_UNCHANGED) and Pillow's both turn TIFF pixels upright.
_DECODER_APPLIES_ORIENTATION = frozenset({"tiff"})
TOO_LARGE_HINT = "raise the pixel limit (max_pixels) if you trust this file, or downscale it first"
_NO_MEMORY_HINT = "free memory (close other programs), or downscale the image first"
_CORRUPT_HINT = "re-export or re-copy the file"


def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS, strict: bool = False) -> ImageData:
    """Read a PNG, JPEG, TIFF, WebP or BMP file, upright, at its own bit depth.

    The header is read first and its pixel count checked against ``max_pixels`` before anything is
    decoded, and the decoded size (width x height x channels x bytes per sample, from the header)
    against the memory available (:mod:`lowlight_cli.io.memory`, Linux only). Pixels are decoded
    by OpenCV from the file's bytes (so non-ASCII paths work everywhere);
    EXIF orientation is applied, and EXIF (orientation reset to 1) and the ICC profile are kept.
    Of an animation or a multi-page TIFF, the first frame is read (``frames`` counts them).

    Args:
        path: the image file.
        max_pixels: largest width x height accepted (decompression-bomb guard).
        strict: refuse a file the decoder decoded only with a warning (a damaged JPEG) instead of
            returning it with ``decoder_warnings`` set (training data must decode cleanly).

    Returns:
        :class:`ImageData` with ``rgb`` ``(H, W, 3)`` uint8 or uint16 (from the file's sample type,
        never from the values), ``alpha`` ``(H, W)`` or None, ``gray`` True for one-channel files.

    Raises:
        ImageReadError: the file is missing, a folder, unreadable, empty, not an image, of an
            unsupported format or sample type, corrupt or truncated (with ``strict``: or damaged).
        ImageTooLargeError: the image has more than ``max_pixels`` pixels, or its decoded pixels
            would not fit in the memory available.
        ValueError: ``max_pixels`` is not positive.
        TypeError: ``path`` is not a path (a string, ``Path`` or ``os.PathLike``).
    """
    if max_pixels < 1:
        raise ValueError(f"max_pixels must be positive, got {max_pixels}")
    if not isinstance(path, (str, Path)):  # os.PathLike too, but not pixels: those are already read
        if not hasattr(path, "__fspath__"):
            raise TypeError(f"read_image takes a file path, got {type(path).__name__}"
                            + (" (pixels are already an image: to_float(array) gives floats)" if isinstance(path, np.ndarray) else ""))
    path = Path(path)
    with _opened(path) as file:
        with pillow_guarded(max_pixels):
            header = _open_header(path, file, max_pixels)
            fmt = format_for_pillow_name(header.format)
            if fmt is None:
                raise ImageReadError(
                    path, f"{header.format} images are not supported", hint=f"convert it to {_SUPPORTED_LIST}"
                )
            _check_size(path, header.size, max_pixels)
            file.seek(0)
            data = file.read()
            _check_memory(path, header, data, fmt)
            metadata = read_metadata(header, data, fmt)
            gray_source = _is_gray_source(header, data, fmt)
            frames = _frame_count(header)
            converted_from = header.mode if header.mode in _CONVERTED_MODES else None
        decoder_warnings: tuple[str, ...] = ()
        filler = None
        if fmt == "tiff" and header.mode == "CMYK" and _tiff_bits(header, 8) > 8:  # neither decoder converts it
            raise ImageReadError(path, f"{_tiff_bits(header, 8)}-bit CMYK TIFFs are not supported",
                                 hint="convert it to RGB (8 or 16 bits), or to 8-bit CMYK")
        if _pillow_decodes(header, fmt):
            with pillow_guarded(max_pixels):
                pixels = _decode_pillow(path, header)
        else:
            pixels, decoder_warnings, filler = _decode_opencv(path, data, FORMATS[fmt].label)
            if strict and decoder_warnings:
                raise ImageReadError(
                    path, f"damaged: its decoder warned: {'; '.join(decoder_warnings)}",
                    hint="re-export or re-copy the file, or move it out of the folder",
                )
        if fmt == "tiff":
            pixels = _tiff_samples(header, pixels)
        elif fmt == "png":
            pixels = _gray_png_transparency(header, data, pixels)
        if _declares_alpha(header) and _channels(pixels) not in (2, 4):
            raise ImageReadError(
                path, "its alpha channel cannot be decoded", hint="convert it to PNG, or to RGBA TIFF"
            )

    rgb, alpha, gray = _split_channels(path, pixels, gray_source)
    if fmt not in _DECODER_APPLIES_ORIENTATION:
        rgb = apply_orientation(rgb, metadata.orientation)
        alpha = None if alpha is None else apply_orientation(alpha, metadata.orientation)
        filler = None if filler is None else apply_orientation(filler, metadata.orientation)
    return ImageData(
        rgb=np.ascontiguousarray(rgb),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        gray=gray,
        exif=metadata.exif,
        icc_profile=metadata.icc_profile,
        source_format=fmt,
        lossless_webp=fmt == "webp" and webp_is_lossless(data),
        frames=frames,
        converted_from=converted_from,
        decoder_warnings=decoder_warnings,
        filler=None if filler is None else np.ascontiguousarray(filler),
    )


def webp_is_lossless(data: bytes) -> bool:
    """Whether a WebP file's image is lossless (a ``VP8L`` chunk, not ``VP8 ``): its chunks are read
    in order from the RIFF header until the first image chunk."""
    at = 12  # "RIFF", size, "WEBP"
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], int.from_bytes(data[at + 4:at + 8], "little")
        if kind in (b"VP8L", b"VP8 "):
            return kind == b"VP8L"
        at += 8 + size + (size & 1)  # chunks are padded to an even size
    return False


@contextmanager
def _opened(path: Path) -> Iterator[BinaryIO]:
    try:
        file = open(path, "rb")  # not a with-block here: open errors get their own messages
    except FileNotFoundError:
        raise ImageReadError(path, "file not found", hint="check the path") from None
    except IsADirectoryError:
        raise ImageReadError(path, "is a folder, not an image file") from None
    except PermissionError as error:
        raise ImageReadError(path, f"cannot open file: {error.strerror or error}",
                             hint="check the file's permissions (ls -l): this user may not read it") from None
    except OSError as error:
        raise ImageReadError(path, f"cannot open file: {error.strerror or error}") from None
    with file:
        if os.fstat(file.fileno()).st_size == 0:
            raise ImageReadError(path, "file is empty (0 bytes)", hint="it may be an interrupted copy or download")
        yield file


def _frame_count(header: Image.Image) -> int:
    """Frames of an animation or pages of a TIFF; 1 for a camera JPEG's previews (MPO) and when
    counting fails (a broken next-page pointer must not cost the first page, which reads fine)."""
    if header.format == "MPO":
        return 1
    try:
        return max(1, int(getattr(header, "n_frames", 1) or 1))
    except Exception:  # Pillow walks every page: TypeError, OSError, ... on a corrupt chain
        return 1


def _open_header(path: Path, file: BinaryIO, max_pixels: int) -> Image.Image:
    try:
        return Image.open(file)
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            path, f"image has far more than the limit of {max_pixels:,} pixels", hint=TOO_LARGE_HINT
        ) from None
    except (OSError, ValueError):
        file.seek(0)
        if file.read(4) in tiff.CLASSIC_MAGIC + tiff.BIGTIFF_MAGIC:  # a TIFF whose samples Pillow cannot take (float, 32-bit, ...)
            raise _unsupported_tiff(path, file) from None
        raise ImageReadError(
            path, "not a readable image (unknown format or corrupt header)", hint=f"expected {_SUPPORTED_LIST}"
        ) from None


_PHOTOMETRIC = {0: "gray", 1: "gray", 2: "RGB", 3: "palette", 5: "CMYK", 6: "YCbCr", 8: "Lab"}
_SAMPLE_KINDS = {1: "integer", 2: "signed integer", 3: "float"}
_TIFF_HINT = "save it as an 8- or 16-bit integer TIFF or PNG"


def _unsupported_tiff(path: Path, file: BinaryIO) -> ImageReadError:
    """The error for a TIFF Pillow would not open, naming what its first page holds (read from
    its tags, :func:`~lowlight_cli.io.tiff.first_directory`): bits, kind and number of samples,
    colour model, alpha."""
    try:
        tags = tiff.first_directory(file)
        bits = max(tiff.as_tuple(tags.get(tiff.BITS_PER_SAMPLE, 1)))
        samples = tiff.as_tuple(tags.get(tiff.SAMPLES_PER_PIXEL, 1))[0]
        kind = _SAMPLE_KINDS.get(tiff.as_tuple(tags.get(tiff.SAMPLE_FORMAT, 1))[0], "unknown")
        model = _PHOTOMETRIC.get(tiff.as_tuple(tags.get(tiff.PHOTOMETRIC, -1))[0], "unknown colour model")
        extra = tiff.as_tuple(tags.get(tiff.EXTRA_SAMPLES, ()))
        if not (1 <= bits <= 64 and 1 <= samples <= 64):
            raise ValueError(f"{samples} samples of {bits} bits")
    except Exception:  # a header this parser cannot read either: corrupt
        return ImageReadError(path, "a TIFF whose header cannot be read (corrupt?)", hint=_CORRUPT_HINT)
    # ExtraSamples 1 (associated) or 2 (unassociated) is alpha; 0 is an unspecified extra channel
    alpha = " + alpha" if any(v in (1, 2) for v in extra) else ""
    what = f"a TIFF of {samples} {bits}-bit {kind} sample{'s' if samples != 1 else ''} per pixel ({model}{alpha})"
    if kind == "integer" and bits in (8, 16) and model == "gray" and alpha:
        return ImageReadError(path, f"{what}: gray with alpha at {bits} bits is a layout the decoders here do not read",
                              hint="save it as a 16-bit RGBA TIFF, or as PNG")
    if kind == "integer" and bits in (8, 16):
        return ImageReadError(path, f"{what}: not a layout the decoders here read, or a corrupt file", hint=_TIFF_HINT)
    return ImageReadError(path, f"{what}, which is not supported", hint=_TIFF_HINT)


def _check_size(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            path,
            f"{width}x{height} is {width * height:,} pixels, more than the limit of {max_pixels:,}",
            hint=TOO_LARGE_HINT,
        )


def _check_memory(path: Path, header: Image.Image, data: bytes, fmt: str) -> None:
    width, height = header.size
    channels = 4 if _declares_alpha(header) else 3  # gray is widened to RGB after decoding
    needed = decoded_bytes(width, height, channels, _sample_bytes(header, data, fmt))
    free = memory_shortfall(needed)
    if free is not None:
        raise ImageTooLargeError(
            path,
            f"{width}x{height} would take {needed / 1e6:,.0f} MB decoded (about {DECODE_MARGIN:g}x that while "
            f"processing), but only {free / 1e6:,.0f} MB of memory is available",
            hint=_NO_MEMORY_HINT,
        )


def _tiff_bits(header: Image.Image, default: int) -> int:
    return max(tiff.as_tuple(header.tag_v2.get(tiff.BITS_PER_SAMPLE, (default,))))


def _sample_bytes(header: Image.Image, data: bytes, fmt: str) -> int:
    """Bytes per decoded sample, from the header (Pillow reports 16-bit RGB PNGs as 8-bit ``RGB``)."""
    if fmt == "png":
        return 2 if len(data) > _PNG_BIT_DEPTH_OFFSET and data[_PNG_BIT_DEPTH_OFFSET] == 16 else 1
    if fmt == "tiff":
        return max(1, (_tiff_bits(header, 8) + 7) // 8)
    return 1


def read_size(path: str | Path) -> tuple[int, int] | None:
    """``(width, height)`` as stored in an image file's header, nothing decoded; None when it cannot be
    read. EXIF orientation is not applied: :func:`read_image` turns a photo stored sideways upright,
    so its width and height are these swapped."""
    try:
        with pillow_guarded(DEFAULT_MAX_PIXELS), Image.open(path) as header:
            return header.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"  # SOI and EOI markers


def jpeg_filler(pixels: np.ndarray) -> np.ndarray | None:
    """Where libjpeg filled in a truncated baseline JPEG: ``(H, W)`` bool, or None when none is found.

    Past the end of the data every block decodes flat at mid-gray (128 in every channel), in the
    file's block order, so the filler is the region of exact mid-gray that holds the last pixel:
    whole rows at the bottom and the right end of the last, partly decoded row of blocks. A
    progressive JPEG's missing detail is blurred, not flat, and is not found here.
    """
    if pixels.dtype != np.uint8:
        return None
    mid = pixels == 128 if pixels.ndim == 2 else (pixels[..., :3] == 128).all(axis=2)
    if not mid[-1, -1]:
        return None
    _, labels = cv2.connectedComponents(mid.view(np.uint8), connectivity=4)
    return labels == labels[-1, -1]


def _decode_opencv(path: Path, data: bytes, label: str) -> tuple[np.ndarray, tuple[str, ...], np.ndarray | None]:
    """Pixels, what the C decoder warned of on the way (libjpeg decodes a damaged JPEG with a
    warning instead of failing) and a truncated JPEG's filler (:func:`jpeg_filler`, stored
    orientation); a failed decode raises with the decoder's own message."""
    with opencv_silenced(), decoder_messages() as messages:
        try:
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        except cv2.error:
            pixels = None
        truncated = (pixels is None or pixels.size == 0) and data[:2] == _JPEG_START and not data.endswith(_JPEG_END)
        if truncated:  # a JPEG cut short (an interrupted copy or download): libjpeg decodes what is there
            try:       # once the file ends with an end marker, and fills in the rest with a warning
                pixels = cv2.imdecode(np.frombuffer(data + _JPEG_END, np.uint8), cv2.IMREAD_UNCHANGED)
            except cv2.error:
                pixels = None
    filler = None
    if truncated and pixels is not None and pixels.size:
        messages.insert(0, "the file ends early (truncated): what is missing is filled in (gray, or blurred in a progressive JPEG)")
        filler = jpeg_filler(pixels)
        if filler is not None:
            messages.insert(1, f"its gray filler ({100 * filler.mean():.0f}% of the pixels) is left as it is and not counted in the photo's statistics")
    if pixels is None or pixels.size == 0:
        detail = f" ({'; '.join(messages)})" if messages else ""
        raise ImageReadError(path, f"{label} data is corrupt or truncated{detail}", hint=_CORRUPT_HINT)
    if pixels.dtype not in (np.uint8, np.uint16):
        kind = ("signed integer" if pixels.dtype.kind == "i" else "floating-point" if pixels.dtype.kind == "f"
                else str(pixels.dtype))
        raise ImageReadError(
            path, f"{kind} samples ({pixels.dtype}) are not supported",
            hint="convert it to unsigned 8 or 16 bits per channel",
        )
    # libpng's warnings are about metadata ("iCCP: known incorrect sRGB profile"): the pixels are whole
    return pixels, tuple(m for m in messages if not m.startswith("libpng warning")), filler


def _decode_pillow(path: Path, header: Image.Image) -> np.ndarray:
    """Upright pixels decoded by Pillow, in OpenCV's channel order (gray+alpha, or BGRA)."""
    try:
        # Recent Pillow turns TIFFs upright while loading and then drops the tag; this is a no-op then.
        upright = ImageOps.exif_transpose(header)
        if upright.mode == "LA":
            return np.asarray(upright)
        rgba = np.asarray(upright.convert("RGBA"))
    except (OSError, ValueError):
        raise ImageReadError(path, "image data is corrupt or truncated", hint=_CORRUPT_HINT) from None
    return rgba[..., [2, 1, 0, 3]]


def _tiff_samples(header: Image.Image, pixels: np.ndarray) -> np.ndarray:
    """What OpenCV leaves undone in a TIFF's samples: a fourth channel that is not alpha (a CMYK
    file decoded to BGRA, an extra sample declared unspecified) dropped; 16-bit MinIsWhite samples
    inverted (OpenCV inverts 8-bit ones only); 16-bit colour premultiplied by an associated alpha
    divided back (8-bit alpha TIFFs go to Pillow, which does it)."""
    if _channels(pixels) == 4 and not _declares_alpha(header):
        pixels = pixels[..., :3]
    if pixels.dtype != np.uint16:
        return pixels
    tags = header.tag_v2
    if tags.get(tiff.PHOTOMETRIC) == tiff.MIN_IS_WHITE:
        pixels = pixels.copy()
        if pixels.ndim == 2:
            np.subtract(65535, pixels, out=pixels)
        else:
            np.subtract(65535, pixels[..., :1], out=pixels[..., :1])  # gray + alpha: the alpha stays
    extra = tiff.as_tuple(tags.get(tiff.EXTRA_SAMPLES, ()))
    if _channels(pixels) in (2, 4) and extra and extra[0] == tiff.ASSOCIATED_ALPHA:
        alpha = pixels[..., -1:].astype(np.float64)
        colour = pixels[..., :-1] * (65535.0 / np.maximum(alpha, 1.0))
        colour = np.where(alpha > 0, np.clip(np.rint(colour), 0, 65535), 0)
        pixels = np.concatenate([colour.astype(np.uint16), pixels[..., -1:]], axis=2)
    return pixels


def _gray_png_transparency(header: Image.Image, data: bytes, pixels: np.ndarray) -> np.ndarray:
    """A gray PNG's ``tRNS`` (one gray value that is transparent) as an alpha channel: OpenCV
    returns the gray alone (it keeps an RGB or palette PNG's ``tRNS`` as alpha)."""
    value = header.info.get("transparency")
    if _channels(pixels) != 1 or not isinstance(value, int) or len(data) <= _PNG_BIT_DEPTH_OFFSET:
        return pixels
    depth = data[_PNG_BIT_DEPTH_OFFSET]
    if depth < 8:  # decoded scaled to 8 bits: 1, 2 and 4-bit values spread over 0..255
        value = value * 255 // (2 ** depth - 1)
    opaque = np.iinfo(pixels.dtype).max
    alpha = np.where(pixels == value, 0, opaque).astype(pixels.dtype)
    return np.dstack([pixels, alpha])


def _declares_alpha(header: Image.Image) -> bool:
    return any(band in ("A", "a") for band in header.getbands())


def _pillow_decodes(header: Image.Image, fmt: str) -> bool:
    """8-bit TIFFs with alpha go to Pillow: OpenCV premultiplies their colours by alpha and drops
    the alpha of gray+alpha."""
    if fmt != "tiff" or not _declares_alpha(header):
        return False
    return _tiff_bits(header, 1) <= 8


def _is_gray_source(header: Image.Image, data: bytes, fmt: str) -> bool:
    """The file stores one colour channel. Pillow opens 16-bit gray+alpha PNGs as RGBA, so PNGs are
    asked directly (IHDR colour type)."""
    if fmt == "png":
        return len(data) > _PNG_COLOR_TYPE_OFFSET and data[_PNG_COLOR_TYPE_OFFSET] in _PNG_GRAY_TYPES
    return header.mode in _GRAY_MODES


def _channels(pixels: np.ndarray) -> int:
    return 1 if pixels.ndim == 2 else int(pixels.shape[2])


def _split_channels(path: Path, pixels: np.ndarray, gray_source: bool) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """Decoder output (gray, gray+alpha, BGR or BGRA) to ``(rgb, alpha or None, gray)``.

    OpenCV returns gray+alpha PNGs as BGRA with equal colour channels, hence ``gray_source``.
    """
    channels = _channels(pixels)
    if channels not in (1, 2, 3, 4):
        raise ImageReadError(path, f"{channels} channels are not supported", hint="convert it to RGB or RGBA")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    gray = channels in (1, 2) or (channels == 4 and gray_source)
    alpha = pixels[..., -1] if channels in (2, 4) else None
    if gray:
        rgb = np.repeat(pixels[..., :1], 3, axis=2)
    else:  # one contiguous RGB array in one pass (a reversed view costs a slow strided copy later)
        rgb = cv2.cvtColor(np.ascontiguousarray(pixels), cv2.COLOR_BGRA2RGB if channels == 4 else cv2.COLOR_BGR2RGB)
    return rgb, alpha, gray
