"""NIQE (Mittal, Soundararajan and Bovik 2013): no-reference naturalness, lower is better.

A float64 numpy port of the LIVE MATLAB release (``niqe_release``: ``computequality.m``,
``computefeature.m``, ``estimateaggdparam.m``) with its pristine model, shipped in
``data/niqe_pris_params.npz``: Copyright (c) 2012-2013 The University of Texas at Austin, Laboratory
for Image and Video Engineering (LIVE); see ``data/NOTICE.md`` for the attribution the licence asks
for. It is an evaluation metric, not a training loss, so it is not differentiable.

One deliberate difference from MATLAB, required by the project spec: in flat neighbourhoods the MSCN
residual ``im - mu`` is computed as a weighted sum of pixel differences, so it is exactly zero
there instead of +-1e-14 noise that flips samples between the two sides of the AGGD fit (up to 5%
on dark or saturated images).

MATLAB behaviours kept on purpose: a block whose AGGD fit is undefined (no negative or no positive
samples, e.g. a flat block) gets NaN scales but alpha = 0.2, because MATLAB's ``min`` over an
all-NaN vector returns the first grid index; that alpha counts in the NaN-ignoring mean. Not
kept: for an image with a single complete block MATLAB's ``nancov`` treats the 1x36 row as 36
observations of one variable; here the covariance of one observation is zero (with a warning).
"""

from __future__ import annotations

import functools
import math
import warnings
from importlib import resources
from typing import Literal

import numpy as np
import torch
from torch import nn

from ..errors import MetricError
from .base import MetricWarning, check_data_range, check_space, check_span, check_tensor, check_value_range
from .color import gray_matlab, luma_bt601, round_half_up
from .imresize import imresize_bicubic

NIQESpace = Literal["y", "gray"]
NIQE_SPACES: tuple[str, ...] = ("y", "gray")

BLOCK_SIZE = 96
_WINDOW_SIGMA = 7 / 6
_WINDOW_RADIUS = 3
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))
# MATLAB 0.2:0.001:10, each value as the correctly rounded k/1000.
_ALPHA_GRID = (200 + np.arange(9801, dtype=np.float64)) / 1000.0


@functools.lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """The LIVE pristine model ``(mu (36,), cov (36, 36))`` in float64, from the package data."""
    path = resources.files("lowlight_cli.metrics").joinpath("data", "niqe_pris_params.npz")
    with path.open("rb") as handle, np.load(handle) as params:
        return params["mu_pris_param"].reshape(36).copy(), params["cov_pris_param"].copy()


@functools.lru_cache(maxsize=1)
def _gamma_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Gamma(1/a), Gamma(2/a), Gamma(3/a) and r(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a))."""
    gamma = np.vectorize(math.gamma, otypes=[np.float64])
    g1, g2, g3 = gamma(1 / _ALPHA_GRID), gamma(2 / _ALPHA_GRID), gamma(3 / _ALPHA_GRID)
    return g1, g2, g3, g2**2 / (g1 * g3)


def _gaussian_window_1d() -> np.ndarray:
    """1-D factor of MATLAB ``fspecial('gaussian', 7, 7/6)`` normalised to sum one."""
    x = np.arange(-_WINDOW_RADIUS, _WINDOW_RADIUS + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2 * _WINDOW_SIGMA**2))
    return g / g.sum()


def _shifted_views(padded: np.ndarray, axis: int, length: int) -> list[np.ndarray]:
    """The 7 windows of ``padded`` (edge-padded by 3 along ``axis``) aligned with the output."""
    if axis == 0:
        return [padded[k : k + length] for k in range(2 * _WINDOW_RADIUS + 1)]
    return [padded[:, k : k + length] for k in range(2 * _WINDOW_RADIUS + 1)]


def _pad(x: np.ndarray, axis: int) -> np.ndarray:
    width = [(0, 0), (0, 0)]
    width[axis] = (_WINDOW_RADIUS, _WINDOW_RADIUS)
    return np.pad(x, width, mode="edge")


def _local_mean(x: np.ndarray) -> np.ndarray:
    """``w * x``, 7x7 Gaussian, replicate borders (MATLAB ``imfilter(..., 'replicate')``)."""
    w = _gaussian_window_1d()
    for axis in (0, 1):
        acc = np.zeros_like(x)
        for weight, view in zip(w, _shifted_views(_pad(x, axis), axis, x.shape[axis]), strict=True):
            acc += weight * view
        x = acc
    return x


def _weighted_differences(center: np.ndarray, neighbours: np.ndarray, axis: int) -> np.ndarray:
    """``sum_k w_k (center - shift_k(neighbours))`` along ``axis``; 0 where every term is."""
    w = _gaussian_window_1d()
    views = _shifted_views(_pad(neighbours, axis), axis, center.shape[axis])
    acc = np.zeros_like(center)
    tmp = np.empty_like(center)
    for weight, view in zip(w, views, strict=True):
        np.subtract(center, view, out=tmp)
        tmp *= weight
        acc += tmp
    return acc


def local_residual(image: np.ndarray) -> np.ndarray:
    """``image - w * image`` (7x7 Gaussian, sigma 7/6, replicate borders), exactly 0 where flat.

    Computed separably as weighted sums of differences: with ``D = sum_j w_j (x - x_j)`` along rows,
    ``x - w * x = sum_i w_i (x - (x - D)_i)`` along columns (the weights sum to one). Every term
    vanishes exactly where the 7x7 neighbourhood is constant, which plain ``x - filter(x)`` does not
    guarantee.

    Example:
        >>> im = np.zeros((20, 20)); im[:, 10:] = 200.0
        >>> r = local_residual(im)
        >>> bool((r[:, :7] == 0).all() and (r[:, 14:] == 0).all() and (r[:, 9] != 0).all())
        True
    """
    horizontal = _weighted_differences(image, image, axis=1)
    return _weighted_differences(image, image - horizontal, axis=0)


def mscn(image: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients ``(im - mu) / (sigma + 1)`` of an image.

    ``mu = w * im``, ``sigma = sqrt(|w * im^2 - mu^2|)`` with the normalised 7x7 Gaussian
    (sigma 7/6) and replicate borders; ``im - mu`` is exactly zero in flat neighbourhoods (see
    :func:`local_residual`). Input (H, W) float64 on the 0..255 scale; output (H, W) float64.
    """
    residual = local_residual(image)
    mu = image - residual
    sigma = np.sqrt(np.abs(_local_mean(image * image) - mu * mu))
    return residual / (sigma + 1)


def _nearest_alpha_index(target: np.ndarray) -> np.ndarray:
    """Index of the grid alpha minimising ``(r(alpha) - target)^2``, first index on ties.

    ``r`` increases strictly on the grid, so the minimiser is one of the two neighbours found by
    binary search; NaN targets give index 0, as MATLAB's ``min`` (and ``np.argmin``) do for an
    all-NaN vector.
    """
    r = _gamma_tables()[3]
    upper = np.clip(np.searchsorted(r, target, side="left"), 0, r.size - 1)
    lower = np.clip(upper - 1, 0, r.size - 1)
    with np.errstate(invalid="ignore"):
        index = np.where((r[upper] - target) ** 2 < (r[lower] - target) ** 2, upper, lower)
    return np.where(np.isnan(target), 0, index)


def fit_aggd(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fit an asymmetric generalised Gaussian to each row of ``samples`` (MATLAB estimateaggdparam).

    Args:
        samples: (N, M) float64, one sample vector per row.

    Returns:
        ``(alpha, beta_left, beta_right, mean)``, each (N,): the shape from the grid 0.2:0.001:10,
        the left/right scales, and ``(beta_r - beta_l) Gamma(2/a) / Gamma(1/a)``. Rows without
        negative or without positive samples give NaN scales and, like MATLAB, alpha = 0.2.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> alpha, bl, br, mean = fit_aggd(rng.standard_normal((1, 200_000)))
        >>> round(float(alpha[0]), 1), round(float(bl[0]), 1), round(float(br[0]), 1)
        (2.0, 1.4, 1.4)
    """
    g1, g2, g3, _ = _gamma_tables()
    squares = samples * samples
    negative = samples < 0
    positive = samples > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left_std = np.sqrt(
            np.sum(squares, axis=1, where=negative) / np.count_nonzero(negative, axis=1)
        )
        right_std = np.sqrt(
            np.sum(squares, axis=1, where=positive) / np.count_nonzero(positive, axis=1)
        )
        gamma_hat = left_std / right_std
        rhat = np.mean(np.abs(samples), axis=1) ** 2 / np.mean(squares, axis=1)
        rhat_norm = rhat * (gamma_hat**3 + 1) * (gamma_hat + 1) / (gamma_hat**2 + 1) ** 2
    index = _nearest_alpha_index(rhat_norm)
    spread = np.sqrt(g1[index] / g3[index])
    beta_left = left_std * spread
    beta_right = right_std * spread
    mean = (beta_right - beta_left) * (g2[index] / g1[index])
    return _ALPHA_GRID[index], beta_left, beta_right, mean


def block_features(coefficients: np.ndarray, block: int) -> np.ndarray:
    """The 18 NIQE features of each ``block`` x ``block`` tile of an MSCN map (computefeature.m).

    Args:
        coefficients: (H, W) MSCN map, H and W multiples of ``block``.
        block: tile side (96 at scale 1, 48 at scale 2).

    Returns:
        (N, 18) float64, tiles in row-major order: ``[alpha, (beta_l + beta_r)/2]`` of the tile,
        then ``[alpha, mean, beta_l, beta_r]`` of its product with its circular shift within the
        tile by (0, 1), (1, 0), (1, 1), (1, -1).
    """
    rows, cols = coefficients.shape[0] // block, coefficients.shape[1] // block
    tiles = coefficients.reshape(rows, block, cols, block).swapaxes(1, 2).reshape(-1, block, block)
    count = tiles.shape[0]
    alpha, beta_left, beta_right, _ = fit_aggd(tiles.reshape(count, -1))
    columns = [alpha, (beta_left + beta_right) / 2]
    for shift in _SHIFTS:
        pairs = tiles * np.roll(tiles, shift, axis=(1, 2))
        alpha, beta_left, beta_right, mean = fit_aggd(pairs.reshape(count, -1))
        columns += [alpha, mean, beta_left, beta_right]
    return np.stack(columns, axis=1)


def _single_channel(image: np.ndarray, space: str) -> np.ndarray:
    """Step 1: the 0..255 channel NIQE scores; (H, W) input is used as given."""
    check_space("niqe", space, NIQE_SPACES)
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 3 and image.shape[2] == 3:
        r, g, b = image[..., 0], image[..., 1], image[..., 2]
        image = round_half_up(luma_bt601(r, g, b) if space == "y" else gray_matlab(r, g, b))
    elif image.ndim != 2:
        raise MetricError(
            f"niqe: expected an (H, W, 3) RGB or (H, W) image, got shape {image.shape}"
        )
    if not np.isfinite(image).all():
        raise MetricError("niqe: the image contains NaN or infinite values")
    return image


def niqe_features(image: np.ndarray, *, space: NIQESpace = "y") -> np.ndarray:
    """Steps 1-4: the (N, 36) per-block features (scale 1 then scale 2) of an image on 0..255.

    Args and errors as :func:`niqe`.
    """
    channel = _single_channel(image, space)
    height, width = channel.shape
    if height < BLOCK_SIZE or width < BLOCK_SIZE:
        raise MetricError(
            f"niqe: image is {width}x{height} px (width x height); NIQE needs at least {BLOCK_SIZE}x{BLOCK_SIZE}",
            hint="score larger images, or leave niqe out of --metrics for these",
        )
    channel = channel[: height - height % BLOCK_SIZE, : width - width % BLOCK_SIZE]
    scale1 = block_features(mscn(channel), BLOCK_SIZE)
    half = imresize_bicubic(channel, 0.5)
    scale2 = block_features(mscn(half), BLOCK_SIZE // 2)
    return np.concatenate([scale1, scale2], axis=1)


def niqe_from_features(features: np.ndarray) -> float:
    """Steps 5-6: NIQE distance between the features' MVG fit and the pristine model.

    Mean over blocks ignoring NaN; covariance (N - 1 normaliser) over the blocks whose 36 features
    are all finite. No finite block gives NaN with a :class:`MetricWarning`; a single finite block
    gives a zero covariance (MATLAB's one-observation convention) with a warning.
    """
    complete = np.isfinite(features).all(axis=1)
    if not complete.any():
        warnings.warn(
            "niqe: no 96x96 block has finite features (constant or black image?); returning NaN",
            MetricWarning,
            stacklevel=3,
        )
        return math.nan
    mu_pristine, cov_pristine = pristine_model()
    mu_distorted = np.nanmean(features, axis=0)
    if complete.sum() >= 2:
        cov_distorted = np.cov(features[complete], rowvar=False)
    else:
        warnings.warn(
            "niqe: only one block has finite features; the score is unreliable",
            MetricWarning,
            stacklevel=3,
        )
        cov_distorted = np.zeros_like(cov_pristine)
    diff = mu_pristine - mu_distorted
    pooled = (cov_pristine + cov_distorted) / 2
    tolerance = max(pooled.shape) * np.finfo(np.float64).eps  # MATLAB pinv's default, relative
    quadratic = float(diff @ np.linalg.pinv(pooled, rcond=tolerance) @ diff)
    return math.sqrt(max(quadratic, 0.0))


# The value of white of an integer image, by dtype; any other dtype is on the 0..255 scale.
_WHITE = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}


def _on_0_255(image: np.ndarray, data_range: float | None) -> np.ndarray:
    """``image`` as float64 on the 0..255 scale NIQE scores on (see :func:`niqe` for ``data_range``)."""
    array = np.asarray(image)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise MetricError(f"niqe: expected an image of numbers, got dtype {array.dtype}")
    low, high = (float(array.min()), float(array.max())) if array.size else (0.0, 0.0)
    if data_range is None:
        white = _WHITE.get(array.dtype, 255)
        # a [0, 1] float image would score as nearly black (NaN, or a wrong number): refused; a
        # constant one is NaN on any scale, as the constant images of other values are
        if np.issubdtype(array.dtype, np.floating) and array.size and 0 < high <= 1 and low < high:
            raise MetricError(
                "niqe: the image's values all lie within [0, 1], but niqe() scores values on 0..255",
                hint="pass data_range=1.0 for an image in [0, 1] (or data_range=255 if it is a nearly black 0..255 image)",
            )
    else:
        check_data_range(data_range, "niqe")
        white = data_range
    # an image on another scale would score a plausible, wrong number (non-finite values are refused later)
    check_span(low, high, white, "niqe", "image", bound="",
               hint="pass data_range= the value of white of the image (1.0 for [0, 1], 255 for 0..255); clamp it first")
    array = np.asarray(array, dtype=np.float64)
    return array if white == 255 else array * 255.0 / white


def niqe(image: np.ndarray, *, space: NIQESpace = "y", data_range: float | None = None) -> float:
    """NIQE of one image, as the LIVE MATLAB release computes it (lower is more natural).

    Steps: one channel (``space="y"``: BT.601 luma rounded; ``"gray"``: MATLAB rgb2gray rounded),
    crop to whole 96x96 blocks from the top-left, MSCN and 18 AGGD features per block at full and
    half size (MATLAB antialiased bicubic imresize), MVG fit, distance to the LIVE pristine model.

    Args:
        image: (H, W, 3) RGB or (H, W) single channel numpy array (channels last). NIQE scores
            values on the 0..255 scale: uint8 and float arrays on 0..255 are scored as they are,
            uint16 arrays are scaled from 0..65535 (a 16-bit copy of an 8-bit image scores the
            same). A float array whose values all lie in [0, 1] (and are not all equal) is refused
            unless ``data_range`` says its scale. A 2-D image is scored without conversion or rounding.
        space: channel used for RGB input.
        data_range: the value of white in ``image`` (1.0 for [0, 1] floats), scaled to 255 before
            scoring; default from the dtype (65535 for uint16, else 255).

    Returns:
        The NIQE score (float); NaN with a :class:`MetricWarning` when no block has finite features
        (constant or black images).

    Raises:
        MetricError: an image side under 96 px, a wrong shape, non-finite values, unknown space, a
            [0, 1] float image without ``data_range``, or a ``data_range`` that is not a positive
            number.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> image = rng.uniform(0, 255, (192, 192, 3))
        >>> bool(niqe(image) > 10)  # white noise is far from natural
        True
        >>> abs(niqe(image / 255, data_range=1.0) - niqe(image)) < 1e-9  # the same image in [0, 1]
        True
    """
    return niqe_from_features(niqe_features(_on_0_255(image, data_range), space=space))


class NIQE(nn.Module):
    """Batched :func:`niqe`: ``(B, 3, H, W)`` float tensor in [0, 1] -> ``(B,)`` float64; lower is better.

    Each image is scaled to 0..255 and scored in numpy float64 (not differentiable). A
    ``(B, 1, H, W)`` input is scored as the single channel itself. ``data_range`` is the value of
    white (1.0 for [0, 1], 255 for 0..255), as for :func:`~lowlight_cli.metrics.psnr`; values
    outside ``[0, data_range]`` by more than 0.1% are refused (:class:`MetricError`), as are numpy
    arrays (use :func:`niqe` for those).

    Example:
        >>> import torch
        >>> scores = NIQE()(torch.rand(2, 3, 192, 192, generator=torch.Generator().manual_seed(0)))
        >>> scores.shape, scores.dtype
        (torch.Size([2]), torch.float64)
    """

    def __init__(self, space: NIQESpace = "y", data_range: float = 1.0) -> None:
        super().__init__()
        check_space("niqe", space, NIQE_SPACES)
        check_data_range(data_range, "niqe")
        self.space: NIQESpace = space
        self.data_range = float(data_range)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_tensor(images, "niqe")
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise MetricError(
                f"niqe: expected (B, 3, H, W) or (B, 1, H, W), got {tuple(images.shape)}"
            )
        if not images.is_floating_point():
            raise MetricError(f"niqe: expected a float tensor in [0, data_range], got {images.dtype}")
        check_value_range(images, self.data_range, "niqe", "image")
        arrays = images.detach().to("cpu", torch.float64).permute(0, 2, 3, 1).numpy() * (255.0 / self.data_range)
        scores = [niqe(a[..., 0] if a.shape[2] == 1 else a, space=self.space, data_range=255) for a in arrays]
        return torch.tensor(scores, dtype=torch.float64, device=images.device)
