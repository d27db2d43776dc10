"""Keeping a photo's own colour balance through enhancement.

Models trained on LOL-v1 pull colours towards neutral: LOL's references correct the casts of
their low images, and a regression trained under heavy noise shrinks the chroma it is unsure of.
On a photo whose camera already balanced its colours, the output then comes out desaturated (a
red saucer turns brown, a blue dusk sky grey). :func:`keep_input_colour` gives the output the
input's colour at low resolution and keeps everything else of the model's: each channel is
multiplied by a smooth map, the input's share of that channel over the output's, both measured on
thumbnails ``grid`` pixels on the long side and the ratio upsampled bilinearly. Brightness (the
Rec. 601 luma of a thumbnail cell), fine detail and denoising stay the model's; only colour that
varies over more than about ``1/grid`` of the photo is the input's. Where the corrected colour
would not fit under :data:`CEILING` (or a little above the model's own brightest channel), a pixel
gets only as much of the correction as fits (its hue moves part of the way), so no highlight is
clipped that the model left unclipped.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
DEFAULT_GRID = 64
EPS = 1e-4  # keeps the shares of black cells finite (and equal)
# input cells darker than this (luma) get only part of the correction, fading to none at black:
# within a few 8-bit levels of black a cell's colour is sensor noise and black level, not the scene's
FULL_CORRECTION_LUMA = 6 / 255
# the correction never lifts a pixel's largest channel above this (or a little above the model's
# own largest channel, if higher: HEADROOM, never past TOP), so it clips nothing the model left
# unclipped (the photo checks count an output pixel at 255 whose input was below 250 in every
# channel as newly clipped)
CEILING = 250 / 255
# room above the model's largest channel: without it a pixel whose brightest channel is at the
# ceiling could take none of a correction raising that channel by 0.1% and all of one lowering it
# by 0.1% (tests/test_colour.py: model [190, 195, 250.5] with gains [1.5, 0.8, 1 -/+ 0.001])
HEADROOM = 4 / 255
TOP = 254 / 255  # no channel is lifted above this, nor above the model's own value if higher
BAND_ROWS = 256


def full_scale(dtype: np.dtype) -> float:
    """The value of white in an image of ``dtype``: 255, 65535, or 1.0 for floats."""
    return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0


def store_rows(into: np.ndarray, top: int, values: np.ndarray, scale: float) -> None:
    """Write float32 ``values`` (rows from ``top``, in units where white is ``scale``) into ``into``,
    rescaled to its own white, rounded if it is an integer image and clipped; ``values`` is reused."""
    into_scale = full_scale(into.dtype)
    if into_scale != scale:
        values *= np.float32(into_scale / float(scale))
    if np.issubdtype(into.dtype, np.integer):
        np.rint(values, out=values)
    into[top : top + len(values)] = np.clip(values, 0.0, into_scale, out=values)


def thumbnail(pixels: np.ndarray, grid: int) -> np.ndarray:
    """``(H, W, 3)`` pixels (uint8, uint16 or float in [0, 1]) -> float32 in [0, 1], area-averaged to
    ``grid`` pixels on the long side (never enlarged).

    The averages are not rounded to whole levels (cv2 would round a uint8 average): 8-bit pixels
    are averaged as 16-bit (times 257), others as float32, so a dark cell averaging a few levels
    keeps its channel shares.
    """
    height, width = pixels.shape[:2]
    factor = min(1.0, grid / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    if pixels.dtype == np.uint8:
        source, scale = pixels.astype(np.uint16) * np.uint16(257), 65535.0
    else:
        source, scale = pixels.astype(np.float32, copy=False), full_scale(pixels.dtype)
    small = cv2.resize(source, size, interpolation=cv2.INTER_AREA) if size != (width, height) else source
    return small.astype(np.float32) / scale


def colour_gain(low_thumb: np.ndarray, out_thumb: np.ndarray) -> np.ndarray:
    """Per-cell, per-channel gain ``(h, w, 3)`` that gives ``out_thumb`` the channel shares of
    ``low_thumb`` (shares relative to luma) and leaves its luma unchanged; in input cells darker
    than :data:`FULL_CORRECTION_LUMA` the gain fades towards 1 (none at black)."""
    low = low_thumb + EPS
    out = out_thumb + EPS
    low_luma = low @ LUMA
    gain = (low / low_luma[..., None]) / (out / (out @ LUMA)[..., None])
    weight = np.clip(low_luma / FULL_CORRECTION_LUMA, 0.0, 1.0)[..., None]
    return (1.0 + weight * (gain - 1.0)).astype(np.float32)


def keep_input_colour(low: np.ndarray, out: np.ndarray, grid: int = DEFAULT_GRID, *, into: np.ndarray | None = None) -> None:
    """Give ``out`` (enhanced from ``low``) ``low``'s colour at low resolution, in place.

    ``low`` and ``out`` are ``(H, W, 3)`` RGB arrays of one size (uint8, uint16 or float in [0, 1];
    their dtypes may differ). ``out`` is rewritten in bands of rows, so memory beyond the two images
    is a few rows of floats. A grey input keeps a grey output; no pixel's largest channel rises above
    :data:`CEILING` or the model's own largest channel, whichever is higher. ``into``: an array of
    ``out``'s shape (any of those dtypes) that receives the result instead, rounded once to its own
    scale (an output kept at 16 bits, written out at 8), ``out`` then left as it was.

    Raises:
        ValueError: shapes differ, are not ``(H, W, 3)``, or ``grid`` < 1.
    """
    if low.shape != out.shape or low.ndim != 3 or low.shape[2] != 3 or (into is not None and into.shape != out.shape):
        shapes = ", ".join(str(a.shape) for a in (low, out, into) if a is not None)
        raise ValueError(f"expected (H, W, 3) images of one size, got {shapes}")
    if grid < 1:
        raise ValueError(f"grid must be >= 1, got {grid}")
    height, width = out.shape[:2]
    gain = colour_gain(thumbnail(low, grid), thumbnail(out, grid))  # one after the other: each makes a full-size copy
    with ThreadPoolExecutor(max_workers=band_workers(height * width)) as pool:  # numpy releases the GIL: bands side by side
        _correct_bands(out, gain, pool, out if into is None else into)


def band_workers(pixels: int) -> int:
    """Threads for the full-resolution passes: torch's intra-op count (the CLI's cores), one for small images."""
    return max(1, min(torch.get_num_threads(), 8)) if pixels >= 1 << 20 else 1


def _correct_bands(out: np.ndarray, gain: np.ndarray, pool: ThreadPoolExecutor, into: np.ndarray) -> None:
    """Multiply ``out`` by ``gain`` upsampled bilinearly, band by band (each band on its own in ``pool``),
    fitting every pixel under the ceiling (:func:`_fit_under_ceiling`); the result goes to ``into``
    (``out`` itself, or another array of its shape, in its own dtype's scale)."""
    height, width = out.shape[:2]
    rows_small = gain.shape[0]
    # separable bilinear upsampling with pixel centres aligned (as cv2.INTER_LINEAR): columns once,
    # rows band by band
    wide = cv2.resize(gain, (width, rows_small), interpolation=cv2.INTER_LINEAR) if gain.shape[1] != width else gain
    scale = full_scale(out.dtype)
    ceiling = CEILING * scale  # the band is worked on in the image's own units

    def band(top: int) -> None:
        rows = np.arange(top, min(height, top + BAND_ROWS))
        source = np.clip((rows + 0.5) * rows_small / height - 0.5, 0, rows_small - 1)
        first = np.floor(source).astype(np.int64)
        second = np.minimum(first + 1, rows_small - 1)
        weight = (source - first).astype(np.float32)[:, None, None]
        corrected = wide[second] - wide[first]
        corrected *= weight
        corrected += wide[first]  # the band's gain
        model = out[top : top + len(rows)].astype(np.float32)
        corrected *= model
        store_rows(into, top, _fit_under_ceiling(model, corrected, ceiling, scale), scale)

    for done in pool.map(band, range(0, height, BAND_ROWS)):
        del done  # pool.map raises here what a band raised


def _fit_under_ceiling(model: np.ndarray, corrected: np.ndarray, limit: float, scale: float = 1.0) -> np.ndarray:
    """``model + t (corrected - model)`` per pixel, with the largest ``t`` in ``[0, 1]`` that keeps
    every channel under ``max(limit, m + HEADROOM)`` (``m`` the model's largest channel), then each
    channel capped at ``max(TOP, m)``; ``corrected`` is reused, values in units where white is ``scale``.

    The result is continuous in the model's output and the correction: the first ceiling is always
    above every channel of the model, so a small correction is never cut to nothing, and only
    pixels the model itself left near white meet the cap.

    Channel maxima are taken channel by channel (a numpy reduction over a last axis of 3 is many
    times slower), and only the pixels over the ceiling, usually few, are fitted.
    """
    brightest = np.maximum(np.maximum(model[..., 0], model[..., 1]), model[..., 2])
    ceiling = np.maximum(brightest + np.float32(HEADROOM * scale), limit)
    over = corrected > np.minimum(ceiling, np.maximum(brightest, np.float32(TOP * scale)))[..., None]
    rows, cols = np.nonzero(over[..., 0] | over[..., 1] | over[..., 2])
    if rows.size == 0:
        return corrected
    start, end, top = model[rows, cols], corrected[rows, cols], ceiling[rows, cols][:, None]
    delta = end - start
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(end > top, (top - start) / delta, np.inf)  # only channels over the ceiling limit t
    t = np.clip(np.minimum(np.minimum(room[:, 0], room[:, 1]), room[:, 2]), 0.0, 1.0)[:, None]
    cap = np.maximum(brightest[rows, cols], np.float32(TOP * scale))[:, None]
    corrected[rows, cols] = np.minimum(start + t * delta, cap)
    return corrected
