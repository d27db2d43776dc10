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
  luma (a guided filter of the luma on itself, its coefficients computed on block means about a
  radius / 8 coarser and interpolated back: :func:`luma_base`): grain is scaled with its
  surroundings, never made more contrasty, while edges, lamps and window frames keep their own
  base. Hue is kept;
- the toe is blended in by how much the model brightened the photo (none on a photo it passed
  unchanged), and no pixel ends below its input.

Chosen by ``scripts/black_point_trial.py`` (round 3, its rule written before the candidates were
scored); the numbers are in docs/photo-quality.md. Memory beyond the two images is a few bands of
rows and three maps on the coarse grid (each a 16th of the photo's pixels at 12 MP, at most 2 MP
of cells), whatever the photo's size.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from .colour import LUMA, band_workers, full_scale, store_rows

REFERENCE_BLACK = 0.0978  # median 1st-percentile luma of LOL-v1's 484 training references
PIVOT = 1.5  # the toe acts below this many times the output's mean luma
MAX_TOE = 0.9  # the toe never takes more than this share of a black pixel's level
BASE_EPS = 0.01  # the base's guided filter: luma steps of about sqrt(eps) = 0.1 are edges, kept
PERCENTILE = 1.0
HISTOGRAM_BINS = 1 << 14
BAND_ROWS = 256
COARSE_RADIUS = 8  # the base's filter runs on a grid with about this radius in cells (base_step)
MAX_GRID_PIXELS = 1 << 21  # ... and at most this many cells: its maps stay small whatever the photo


@dataclass(frozen=True)
class Toe:
    """One photo's toe: ``gain(B) = 1 - strength (1 - min(B / pivot, 1))^2`` of the luma base ``B``,
    which is a guided filter of radius ``radius`` px computed on a grid ``step`` times coarser
    (:func:`luma_base`)."""

    strength: float
    pivot: float
    radius: int
    step: int = 1

    def gain(self, base: np.ndarray) -> np.ndarray:
        shortfall = 1.0 - np.clip(base / np.float32(self.pivot), 0.0, 1.0)
        shortfall *= shortfall
        return 1.0 - np.float32(self.strength) * shortfall


def base_radius(height: int, width: int) -> int:
    """The base's radius: a hundredth of the short side, at least 4 px."""
    return max(4, round(min(height, width) / 100))


def base_step(height: int, width: int) -> int:
    """How much coarser than the photo the base's filter runs: one grid cell per
    :data:`COARSE_RADIUS`-th of its radius (the photo's own grid, 1, below a radius of 12 px), and
    coarse enough that the grid holds at most :data:`MAX_GRID_PIXELS` (a long panorama's)."""
    by_radius = round(base_radius(height, width) / COARSE_RADIUS)
    return max(1, by_radius, math.ceil(math.sqrt(height * width / MAX_GRID_PIXELS)))


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)


def _coefficients(luma: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The guided filter's window-averaged coefficients ``(A, B)``: the base is ``A luma + B``."""
    mean = _box(luma, radius)
    variance = np.maximum(_box(luma * luma, radius) - mean * mean, 0.0)
    a = variance / (variance + np.float32(eps))
    b = mean - a * mean
    return _box(a, radius), _box(b, radius)


def _block_means(luma: np.ndarray, step: int) -> np.ndarray:
    """Means of ``step`` x ``step`` blocks, the last row and column of blocks padded by repeating the
    edge."""
    if step == 1:
        return luma
    height, width = luma.shape
    padded = cv2.copyMakeBorder(luma, 0, -height % step, 0, -width % step, cv2.BORDER_REPLICATE)
    # an area resize by a whole factor is the mean of each block
    return cv2.resize(padded, (padded.shape[1] // step, padded.shape[0] // step), interpolation=cv2.INTER_AREA)


def _upsampled(coarse: np.ndarray, step: int, top: int, bottom: int, width: int) -> np.ndarray:
    """Rows ``top:bottom`` of ``coarse`` (one value per ``step`` x ``step`` block) interpolated
    linearly to the photo's grid (block centres as samples, edges repeated): the rows a band needs,
    equal to those of the whole map."""
    if step == 1:
        return coarse[top:bottom]
    first = max(0, top // step - 1)  # one block row more on each side: the band's edges interpolate as inside
    rows = coarse[first : min(len(coarse), (bottom - 1) // step + 2)]
    fine = cv2.resize(rows, (rows.shape[1] * step, rows.shape[0] * step), interpolation=cv2.INTER_LINEAR)
    return fine[top - first * step : bottom - first * step, :width]


def luma_base(luma: np.ndarray, radius: int, eps: float = BASE_EPS, step: int = 1) -> np.ndarray:
    """An edge-preserving base of ``luma`` ``(H, W)`` float32: a guided filter of it on itself
    (He et al. 2013) with box windows of ``radius``, edges mirrored; with ``step`` > 1 its
    coefficients are computed on the means of ``step`` x ``step`` blocks with a radius ``step`` times
    smaller and interpolated back (the fast guided filter, He and Sun 2015)."""
    a, b = _coefficients(_block_means(luma, step), max(1, round(radius / step)), eps)
    height, width = luma.shape
    return _upsampled(a, step, 0, height, width) * luma + _upsampled(b, step, 0, height, width)


def _luma(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) @ LUMA) / np.float32(full_scale(pixels.dtype))


def plan_toe(low: np.ndarray, out: np.ndarray, *, visible: np.ndarray | None = None,
             target: float = REFERENCE_BLACK, pivot: float = PIVOT) -> Toe | None:
    """The toe that brings ``out``'s black (enhanced from ``low``) to ``target``, or None where none
    is needed: the black already at or below the target or above the pivot, or a photo the model
    did not brighten. Statistics are gathered band by band (a luma histogram for the percentile),
    over the ``visible`` pixels only when given (``(H, W)`` bool)."""
    return _survey(low, out, visible, target, pivot)[0]


def _survey(low: np.ndarray, out: np.ndarray, visible: np.ndarray | None, target: float,
            pivot: float) -> tuple[Toe | None, np.ndarray]:
    """:func:`plan_toe`'s toe and, from the same pass, the block means of ``out``'s luma on the
    base's coarse grid."""
    height, width = out.shape[:2]
    radius = base_radius(height, width)
    step = base_step(height, width)
    band = max(step, BAND_ROWS // step * step)  # whole blocks per band

    def survey(top: int) -> tuple[np.ndarray, np.ndarray, float, float]:
        rows = slice(top, top + band)
        y_out = _luma(out[rows])
        blocks = _block_means(y_out, step)
        if visible is None:  # the input's mean luma from its channel sums: no second luma map
            sum_in = float(np.dot(cv2.sumElems(low[rows])[:3], LUMA)) / full_scale(low.dtype)
        else:
            y_out, sum_in = y_out[visible[rows]], float(_luma(low[rows])[visible[rows]].sum(dtype=np.float64))
        bins = np.clip((y_out * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        return blocks, np.bincount(bins.ravel(), minlength=HISTOGRAM_BINS), float(y_out.sum(dtype=np.float64)), sum_in

    counts = np.zeros(HISTOGRAM_BINS, np.int64)
    sums = np.zeros(2)
    blocks = []
    with ThreadPoolExecutor(max_workers=band_workers(height * width)) as pool:  # bands side by side, summed in order
        for band_blocks, band_counts, sum_out, sum_in in pool.map(survey, range(0, height, band)):
            blocks.append(band_blocks)
            counts += band_counts
            sums += (sum_out, sum_in)
    coarse = np.concatenate(blocks) if blocks else np.zeros((0, width), np.float32)
    total = int(counts.sum())
    if total == 0:
        return None, coarse
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
        return None, coarse
    strength = min((1.0 - target / black) / (1.0 - black / level) ** 2, MAX_TOE) * weight
    return Toe(float(strength), float(level), radius, step), coarse


def keep_blacks(low: np.ndarray, out: np.ndarray, *, visible: np.ndarray | None = None,
                into: np.ndarray | None = None) -> Toe | None:
    """Lower ``out``'s lifted blacks (enhanced from ``low``) in place, as the module says; returns the
    toe applied, or None where the photo needed none.

    ``low`` and ``out`` are ``(H, W, 3)`` RGB arrays of one size (uint8, uint16 or float in [0, 1];
    their dtypes may differ). ``out`` is rewritten band by band; the base's coefficients are
    computed on the coarse grid before the first band is written, so the result equals the
    whole-image step.
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
    toe, coarse = _survey(low, out, visible, REFERENCE_BLACK, PIVOT)
    scale, low_scale = np.float32(full_scale(out.dtype)), np.float32(full_scale(low.dtype))
    height, width = out.shape[:2]
    if toe is None:
        for top in range(0, height if into is not None else 0, BAND_ROWS):
            store_rows(into, top, out[top : top + BAND_ROWS].astype(np.float32), scale)
        return None
    a, b = _coefficients(coarse, max(1, round(toe.radius / toe.step)), BASE_EPS)
    del coarse

    def tone(top: int) -> None:  # the coefficients are whole: a band reads no other rows
        bottom = min(height, top + BAND_ROWS)
        base = _upsampled(a, toe.step, top, bottom, width) * _luma(out[top:bottom])
        base += _upsampled(b, toe.step, top, bottom, width)
        toned = out[top:bottom].astype(np.float32)
        toned *= toe.gain(base)[..., None]
        floor = low[top:bottom].astype(np.float32)
        if low_scale != scale:
            floor *= scale / low_scale
        np.maximum(toned, floor, out=toned)
        store_rows(out if into is None else into, top, toned, scale)

    with ThreadPoolExecutor(max_workers=band_workers(height * width)) as pool:  # numpy releases the GIL: bands side by side
        for done in pool.map(tone, range(0, height, BAND_ROWS)):
            del done  # pool.map raises here what a band raised
    return toe
