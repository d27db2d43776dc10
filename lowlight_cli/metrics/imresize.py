"""MATLAB ``imresize(im, scale, 'bicubic')`` (antialiased) for 2-D float64 images, as NIQE needs it.

MATLAB's algorithm, reproduced step for step: cubic kernel with a = -0.5; when shrinking, the kernel
is stretched by ``1/scale`` (``h(x) = scale * cubic(scale * x)``, width ``4/scale``); output pixel
``i`` (1-based) maps to input ``u = i/scale + 0.5 (1 - 1/scale)``; taps are weighted, the weights of
each output pixel are normalised to sum to one, out-of-range taps are mirrored (symmetric border,
edge pixel repeated), all-zero tap columns are dropped, and the two axes are resized one after the
other (rows first). The output size is ``ceil(scale * size)``; no rounding or clipping.
"""

from __future__ import annotations

import math

import numpy as np


def cubic_kernel(x: np.ndarray) -> np.ndarray:
    """Keys cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``), support [-2, 2].

    Example:
        >>> cubic_kernel(np.array([0.0, 1.0, 0.5]))
        array([1.    , 0.    , 0.5625])
    """
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


def resize_contributions(
    in_length: int, out_length: int, scale: float, *, antialiasing: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-pixel tap weights and 0-based input indices of MATLAB's bicubic ``imresize``.

    Returns:
        ``(weights, indices)``, both (out_length, taps); each weight row sums to one.

    Example:
        >>> w, idx = resize_contributions(8, 4, 0.5)
        >>> w.shape, idx[0].tolist()
        ((4, 8), [2, 1, 0, 0, 1, 2, 3, 4])
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:

        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * cubic_kernel(scale * x)

        kernel_width /= scale
    else:
        kernel = cubic_kernel
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, may be outside
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, mirror.size)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_axis(
    image: np.ndarray, axis: int, weights: np.ndarray, indices: np.ndarray
) -> np.ndarray:
    out_shape = list(image.shape)
    out_shape[axis] = weights.shape[0]
    out = np.zeros(out_shape, dtype=np.float64)
    shape = [1, 1]
    shape[axis] = -1
    for tap in range(weights.shape[1]):
        out += weights[:, tap].reshape(shape) * np.take(image, indices[:, tap], axis=axis)
    return out


def imresize_bicubic(image: np.ndarray, scale: float) -> np.ndarray:
    """Resize a 2-D image by ``scale`` like MATLAB ``imresize(image, scale, 'bicubic')``.

    Args:
        image: (H, W) array, any value range; computed in float64.
        scale: positive factor; the output is ``(ceil(H * scale), ceil(W * scale))``. Antialiasing
            is on when ``scale < 1``, as in MATLAB.

    Returns:
        (ceil(H * scale), ceil(W * scale)) float64 array, not rounded or clipped.

    Raises:
        ValueError: ``image`` is not 2-D or ``scale`` is not positive.

    Example:
        >>> out = imresize_bicubic(np.full((9, 6), 7.0), 0.5)
        >>> out.shape, bool(np.allclose(out, 7.0))
        ((5, 3), True)
    """
    if image.ndim != 2:
        raise ValueError(f"imresize_bicubic expects a 2-D image, got shape {image.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    result = np.asarray(image, dtype=np.float64)
    for axis in (0, 1):
        in_length = result.shape[axis]
        out_length = math.ceil(in_length * scale)
        weights, indices = resize_contributions(in_length, out_length, scale)
        result = _resize_axis(result, axis, weights, indices)
    return result
