"""The in-memory image: pixels at their stored bit depth plus the metadata worth carrying to the output."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

_MAX_VALUE = {8: 255, 16: 65535}
_DTYPE = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16)}


@dataclass(eq=False)  # arrays have no single truth value; compare fields explicitly
class ImageData:
    """One decoded image, upright, at the bit depth of its file.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 or uint16, RGB order, EXIF orientation already applied.
        alpha: ``(H, W)`` with the dtype of ``rgb``, oriented the same way, or None.
        gray: the file had one colour channel (gray or gray+alpha); ``rgb`` then holds three equal
            channels and writers store one channel where the format allows.
        exif: raw EXIF payload starting at the TIFF header (``II*\\0`` or ``MM\\0*``), without the
            ``Exif\\0\\0`` prefix, orientation tag reset to 1; None when the file had none.
        icc_profile: the embedded ICC profile, or None.
        source_format: ``"png" | "jpeg" | "tiff" | "webp" | "bmp"``; ``"png"`` for images made in memory.
        lossless_webp: the file was a lossless WebP (writing it back as WebP below quality 100 is
            lossy, and writers say so).
        frames: how many frames or pages the file holds (an animation, a multi-page TIFF); only
            the first is decoded, and writers say so.
        converted_from: the colour model the file stored when it was neither RGB nor gray
            (``"CMYK"``): its pixels were converted to RGB on reading, and writers say so.
        decoder_warnings: what the file's decoder warned of while it decoded the pixels anyway
            (libjpeg's "Corrupt JPEG data: ..." for a damaged JPEG): parts of the image may be
            missing or wrong, and writers say so.
        filler: ``(H, W)`` bool, oriented as ``rgb``, True where the decoder filled in what a
            truncated file lacks (a baseline JPEG's flat gray blocks), or None: not the photo, so
            enhancing leaves it as it is and does not let it steer the rest.

    Raises:
        ValueError: on construction, when the arrays do not have the shapes and dtypes above.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    gray: bool = False
    exif: bytes | None = None
    icc_profile: bytes | None = None
    source_format: str = "png"
    lossless_webp: bool = False
    frames: int = 1
    converted_from: str | None = None
    decoder_warnings: tuple[str, ...] = ()
    filler: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3:
            raise ValueError(f"rgb must have shape (H, W, 3), got {self.rgb.shape}")
        if self.rgb.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"rgb must be uint8 or uint16, got {self.rgb.dtype}")
        if self.alpha is not None:
            if self.alpha.shape != self.rgb.shape[:2]:
                raise ValueError(f"alpha must have shape {self.rgb.shape[:2]}, got {self.alpha.shape}")
            if self.alpha.dtype != self.rgb.dtype:
                raise ValueError(f"alpha dtype {self.alpha.dtype} differs from rgb dtype {self.rgb.dtype}")
        if self.filler is not None and (self.filler.shape != self.rgb.shape[:2] or self.filler.dtype != np.bool_):
            raise ValueError(f"filler must be a bool array of shape {self.rgb.shape[:2]}, got "
                             f"{self.filler.dtype} {self.filler.shape}")

    @property
    def photo_mask(self) -> np.ndarray | None:
        """``(H, W)`` bool, False where a pixel is not part of the photo (fully transparent, or a
        truncated file's filler): what whole-image statistics should count; None when every pixel is."""
        mask = None if self.alpha is None else self.alpha > 0
        if self.filler is not None:
            mask = ~self.filler if mask is None else mask & ~self.filler
        return None if mask is None or mask.all() else mask

    @property
    def damage_note(self) -> str | None:
        """What the decoder warned of, as one note (None when it decoded cleanly)."""
        if not self.decoder_warnings:
            return None
        return f"its decoder warned: {'; '.join(self.decoder_warnings)} (parts of the image may be damaged)"

    @property
    def bit_depth(self) -> int:
        """8 or 16, from the dtype of ``rgb`` (never from the pixel values: a dark 16-bit photo stays 16-bit)."""
        return 8 if self.rgb.dtype == np.uint8 else 16

    @property
    def height(self) -> int:
        """Rows of the upright image."""
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        """Columns of the upright image."""
        return int(self.rgb.shape[1])


def bit_depth_of(dtype: np.dtype) -> int:
    """8 for uint8 pixels, 16 for uint16; ``ValueError`` for any other dtype."""
    for depth, known in _DTYPE.items():
        if dtype == known:
            return depth
    raise ValueError(f"expected uint8 or uint16 pixels, got {dtype}")


def to_float(pixels: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """Integer pixels to float32 (or ``dtype``) in [0, 1]: uint8 divided by 255, uint16 by 65535.

    Args:
        pixels: any shape, typically ``(H, W, C)``; uint8 or uint16.
        dtype: ``np.float32`` (what models take) or ``np.float64`` (what scoring takes: a 16-bit
            value in float32 can land a rounding step away from its 0..255 value, and NIQE rounds).

    Returns:
        an array of ``dtype``, of the same shape, values in [0, 1].

    Raises:
        ValueError: for any other dtype, or for something that is not a numpy array.
    """
    if not isinstance(pixels, np.ndarray):
        raise ValueError(f"to_float takes a numpy array of uint8 or uint16 pixels, got {type(pixels).__name__}")
    values = pixels.astype(dtype)
    # in place (one float array), and a division: 8- and 16-bit copies of one image then give the
    # same floats (k / 255 and 257 k / 65535 are one number, each correctly rounded); a multiplication
    # by the rounded 1/255 missed by a float step, and scores of identical content differed
    values /= values.dtype.type(_MAX_VALUE[bit_depth_of(pixels.dtype)])
    return values


def from_float(values: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float values in [0, 1] to rounded integers at ``bit_depth``: the inverse of :func:`to_float`.

    Values outside [0, 1] are clipped; NaN becomes 0 (a model's NaN must not wrap around to white).

    Args:
        values: any shape, any float dtype.
        bit_depth: 8 (uint8, 0..255) or 16 (uint16, 0..65535).

    Returns:
        uint8 or uint16 array of the same shape.

    Raises:
        ValueError: if ``bit_depth`` is not 8 or 16.
    """
    if bit_depth not in _MAX_VALUE:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    # fmax / fmin return the number when one side is NaN: NaN -> 0, -inf -> 0, +inf -> 1, in two
    # passes where nan_to_num and clip took five (the whole command's A/B: README "Speed")
    work = np.asarray(np.fmax(np.asarray(values, dtype=np.float32), np.float32(0.0)))  # a new array, 0-d too
    np.fmin(work, np.float32(1.0), out=work)
    work *= np.float32(_MAX_VALUE[bit_depth])
    np.rint(work, out=work)
    return work.astype(_DTYPE[bit_depth])


def to_8bit(pixels: np.ndarray) -> np.ndarray:
    """uint16 pixels to uint8 with exact rounding (``round(v * 255 / 65535)``); uint8 is returned as is.

    Integer arithmetic, so no float copy of a large image is made.
    """
    if pixels.dtype == np.uint8:
        return pixels
    bit_depth_of(pixels.dtype)
    return ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def gray_plane(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` integer pixels to one ``(H, W)`` plane of the same dtype: the rounded channel mean.

    Exact for the three equal channels of a gray image; a gray image whose channels were made
    unequal by processing is stored as their mean rather than as one arbitrary channel.
    """
    total = rgb.astype(np.uint32).sum(axis=2)
    return ((total + 1) // 3).astype(rgb.dtype)


def replace_rgb(image: ImageData, rgb_float: np.ndarray) -> ImageData:
    """A new :class:`ImageData` whose pixels come from ``rgb_float``, at ``image``'s bit depth.

    Alpha, EXIF, ICC profile, ``gray`` and ``source_format`` are kept. For a gray image the three
    channels are averaged first, so that ``rgb`` keeps holding three equal channels.

    Args:
        image: the image the new pixels replace.
        rgb_float: ``(H, W, 3)`` float with the same H and W as ``image``; values in [0, 1] (clipped).

    Raises:
        ValueError: if the shape differs from ``image.rgb.shape``, the values are on another scale
            (above 1.5: 0..255 floats), or the pixels are integers
            (``dataclasses.replace(image, rgb=pixels)`` takes pixels at the image's bit depth, as
            :meth:`~lowlight_cli.inference.Enhancer.enhance_pixels` returns them).
    """
    if rgb_float.shape != image.rgb.shape:
        raise ValueError(f"new rgb has shape {rgb_float.shape}, expected {image.rgb.shape}")
    if not np.issubdtype(np.asarray(rgb_float).dtype, np.floating):
        raise ValueError(f"replace_rgb takes float RGB in [0, 1], got {np.asarray(rgb_float).dtype} pixels: "
                         "dataclasses.replace(image, rgb=pixels) keeps integer pixels as they are")
    high = float(np.nanmax(rgb_float)) if rgb_float.size else 0.0
    if high > 1.5:  # another scale (0..255 floats), which clipping would turn white
        raise ValueError(f"replace_rgb takes float RGB in [0, 1]; these values go up to {high:g}: "
                         f"divide by {255 if high <= 255 else 65535} first")
    if image.gray:
        rgb_float = gray_channels(rgb_float)
    return dataclasses.replace(image, rgb=from_float(rgb_float, image.bit_depth))


def gray_channels(rgb_float: np.ndarray) -> np.ndarray:
    """``(..., 3)`` float -> float32 of the same shape whose three channels are all the channel mean:
    what a gray photo's enhanced pixels are stored as, so it stays gray."""
    mean = np.asarray(rgb_float, dtype=np.float32).mean(axis=-1, keepdims=True)
    return np.repeat(mean, 3, axis=-1)
