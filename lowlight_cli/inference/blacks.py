"""Keeping a dark photo's blacks through enhancement (``lowlight enhance --blacks keep``).

Models trained on LOL-v1 lift a dark photo's blacks into a grey veil: LOL's references keep lifted
shadows, and the curve stage's correction holds the shadows where its noise is amplified least
(docs/photo-quality.md, "Where the lift lives"). :func:`keep_blacks` lowers them after the model,
with no retraining, by a toe on the output's brightness:

- the photo's black ``b`` is the 1st-percentile luma of the output, and the toe moves it to
  :data:`REFERENCE_BLACK`, the median black of LOL-v1's training references;
- the toe ``f(B) = B (1 - c (1 - B / p)^2)`` acts below the pivot ``p`` (:data:`PIVOT` times the
  output's mean luma) and is the identity above it, so mid-tones and highlights keep their level;
- each pixel is scaled by ``f(B) / B`` of its *base* ``B``, an edge-preserving smoothing of the
  luma (a guided filter of the luma on itself): grain is scaled with its surroundings, never made
  more contrasty, while edges, lamps and window frames keep their own base. Hue is kept;
- the toe is blended in by how much the model brightened the photo (none on a photo it passed
  unchanged), and no pixel ends below its input.

Chosen by ``scripts/black_point_trial.py`` (round 3, its rule written before the candidates were
scored); the numbers are in docs/photo-quality.md. Memory beyond the two images is a few bands of
rows, whatever the photo's size.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .colour import LUMA, full_scale, store_rows

REFERENCE_BLACK = 0.0978  # median 1st-percentile luma of LOL-v1's 484 training references
PIVOT = 1.5  # the toe acts below this many times the output's mean luma
MAX_TOE = 0.9  # the toe never takes more than this share of a black pixel's level
BASE_EPS = 0.01  # the base's guided filter: luma steps of about sqrt(eps) = 0.1 are edges, kept
PERCENTILE = 1.0
HISTOGRAM_BINS = 1 << 14
BAND_ROWS = 256


@dataclass(frozen=True)
class Toe:
    """One photo's toe: ``gain(B) = 1 - strength (1 - min(B / pivot, 1))^2`` of the luma base ``B``,
    which is a guided filter of radius ``radius`` px."""

    strength: float
    pivot: float
    radius: int

    def gain(self, base: np.ndarray) -> np.ndarray:
        shortfall = 1.0 - np.clip(base / np.float32(self.pivot), 0.0, 1.0)
        shortfall *= shortfall
        return 1.0 - np.float32(self.strength) * shortfall


def base_radius(height: int, width: int) -> int:
    """The base's radius: a hundredth of the short side, at least 4 px."""
    return max(4, round(min(height, width) / 100))


def luma_base(luma: np.ndarray, radius: int, eps: float = BASE_EPS) -> np.ndarray:
    """An edge-preserving base of ``luma`` ``(H, W)`` float32: a guided filter of it on itself
    (He et al. 2013) with box windows of ``radius``, edges mirrored."""
    size = (2 * radius + 1, 2 * radius + 1)
    box = lambda x: cv2.boxFilter(x, -1, size, borderType=cv2.BORDER_REFLECT)  # noqa: E731
    mean = box(luma)
    variance = np.maximum(box(luma * luma) - mean * mean, 0.0)
    a = variance / (variance + np.float32(eps))
    b = mean - a * mean
    return box(a) * luma + box(b)


def _luma(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) @ LUMA) / np.float32(full_scale(pixels.dtype))


def plan_toe(low: np.ndarray, out: np.ndarray, *, visible: np.ndarray | None = None,
             target: float = REFERENCE_BLACK, pivot: float = PIVOT) -> Toe | None:
    """The toe that brings ``out``'s black (enhanced from ``low``) to ``target``, or None where none
    is needed: the black already at or below the target or above the pivot, or a photo the model
    did not brighten. Statistics are gathered band by band (a luma histogram for the percentile),
    over the ``visible`` pixels only when given (``(H, W)`` bool)."""
    height, width = out.shape[:2]
    counts = np.zeros(HISTOGRAM_BINS, np.int64)
    sums = np.zeros(2)
    for top in range(0, height, BAND_ROWS):
        rows = slice(top, top + BAND_ROWS)
        y_out, y_in = _luma(out[rows]), _luma(low[rows])
        if visible is not None:
            y_out, y_in = y_out[visible[rows]], y_in[visible[rows]]
        bins = np.clip((y_out * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        counts += np.bincount(bins.ravel(), minlength=HISTOGRAM_BINS)
        sums += (float(y_out.sum(dtype=np.float64)), float(y_in.sum(dtype=np.float64)))
    total = int(counts.sum())
    if total == 0:
        return None
    mean_out, mean_in = sums / total
    # the PERCENTILE-th percentile, interpolated within its bin
    rank = PERCENTILE / 100 * total
    cumulative = np.cumsum(counts)
    index = int(np.searchsorted(cumulative, rank, side="left"))
    before = cumulative[index - 1] if index else 0
    black = (index + (rank - before) / max(counts[index], 1)) / HISTOGRAM_BINS
    weight = min(max(mean_out / max(mean_in, 1e-6) - 1.0, 0.0), 1.0)
    level = pivot * mean_out
    if black <= target or weight == 0.0 or black >= level:
        return None
    strength = min((1.0 - target / black) / (1.0 - black / level) ** 2, MAX_TOE) * weight
    return Toe(float(strength), float(level), base_radius(height, width))


def keep_blacks(low: np.ndarray, out: np.ndarray, *, visible: np.ndarray | None = None,
                into: np.ndarray | None = None) -> Toe | None:
    """Lower ``out``'s lifted blacks (enhanced from ``low``) in place, as the module says; returns the
    toe applied, or None where the photo needed none.

    ``low`` and ``out`` are ``(H, W, 3)`` RGB arrays of one size (uint8, uint16 or float in [0, 1];
    their dtypes may differ). ``out`` is rewritten band by band; rows a later band's base still
    needs are kept aside before a band is written, so the result equals the whole-image step.
    ``into``: an array of ``out``'s shape (any of those dtypes) that receives the result instead,
    rounded once to its own scale (an output kept at 16 bits, written out at 8), ``out`` then left
    as it was; with no toe needed it receives ``out`` as it is.

    Raises:
        ValueError: shapes differ or are not ``(H, W, 3)``.
    """
    if low.shape != out.shape or low.ndim != 3 or low.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) images of one size, got {low.shape}, {out.shape}")
    if into is out:
        into = None
    if into is not None and into.shape != out.shape:
        raise ValueError(f"expected (H, W, 3) images of one size, got {out.shape}, {into.shape}")
    toe = plan_toe(low, out, visible=visible)
    scale, low_scale = np.float32(full_scale(out.dtype)), np.float32(full_scale(low.dtype))
    if toe is None:
        for top in range(0, out.shape[0] if into is not None else 0, BAND_ROWS):
            store_rows(into, top, out[top : top + BAND_ROWS].astype(np.float32), scale)
        return None
    height = out.shape[0]
    halo = 2 * toe.radius  # the base at a row reads the luma this many rows away
    band = max(BAND_ROWS, halo)
    above = np.empty((0,) + out.shape[1:], out.dtype)  # the original rows just above the band
    for top in range(0, height, band):
        bottom = min(height, top + band)
        below = out[bottom : bottom + halo]  # not written yet
        chunk = np.concatenate([above, out[top:bottom], below]) if len(above) or len(below) else out[top:bottom]
        base = luma_base(_luma(chunk), toe.radius)[len(above) : len(above) + bottom - top]
        gain = toe.gain(base)
        toned = out[top:bottom].astype(np.float32)
        toned *= gain[..., None]
        floor = low[top:bottom].astype(np.float32)
        if low_scale != scale:
            floor *= scale / low_scale
        np.maximum(toned, floor, out=toned)
        if into is None:  # out is rewritten: keep the original rows the next band's base reads
            above = out[max(0, bottom - halo) : bottom].copy()
        else:
            above = out[max(0, bottom - halo) : bottom]
        store_rows(out if into is None else into, top, toned, scale)
    return toe

