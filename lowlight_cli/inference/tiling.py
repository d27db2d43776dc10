"""Tiled inference: fixed-size tiles, overlaps blended with a smooth window, tiles run in batches.

Pure functions. Every tile has the same size (the last row and column are shifted inward rather
than shrunk), so tiles batch together and a model sees no odd-sized input. Overlaps are blended with
a separable raised-cosine window, normalised by the summed weights; because the tiles form a grid
and the window is separable, the weight sum is an outer product of two 1-D sums and no full-size
weight map is stored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .padding import pad_to, round_up

TileFn = Callable[[torch.Tensor], torch.Tensor]
ProgressFn = Callable[[int, int], None]
_EPS = 1e-6  # window floor: a pixel covered by one tile only is reproduced exactly after normalising


@dataclass(frozen=True)
class Tile:
    """A tile's place in the (padded) image, in pixels."""

    top: int
    left: int
    height: int
    width: int


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``[0, length)`` with at least ``overlap``.

    The last tile is shifted inward to end exactly at ``length``. Requires ``tile <= length`` and
    ``0 <= overlap < tile``.
    """
    if not 0 <= overlap < tile <= length:
        raise ValueError(f"need 0 <= overlap ({overlap}) < tile ({tile}) <= length ({length})")
    stride = tile - overlap
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts


def balanced_tile(length: int, max_tile: int, overlap: int, multiple: int = 1) -> int:
    """The smallest tile side (a multiple of ``multiple``) that covers ``length`` with as few tiles of
    at most about ``max_tile`` as possible, each overlapping the next by at least ``overlap``.

    Cutting 1920 px into tiles of at most 1024 gives two tiles of 976 (not two of 1024 that
    overlap by 128): tiling costs only the overlap, so it is never much slower than one pass.
    """
    if length <= max_tile:
        return round_up(length, multiple)
    count = math.ceil((length - overlap) / (max_tile - overlap))
    return min(round_up(math.ceil((length + (count - 1) * overlap) / count), multiple), round_up(length, multiple))


def plan_tiles(height: int, width: int, tile_h: int, tile_w: int, overlap: int) -> list[Tile]:
    """Grid of equal-size tiles covering a ``height`` x ``width`` image, row-major."""
    return [
        Tile(top, left, tile_h, tile_w)
        for top in tile_starts(height, tile_h, min(overlap, tile_h - 1))
        for left in tile_starts(width, tile_w, min(overlap, tile_w - 1))
    ]


def window_1d(size: int, overlap: int, margin: int = 0) -> torch.Tensor:
    """Blend weights along one side of a tile, float64 ``(size,)``.

    Weights ramp as ``sin^2`` from the ``margin``-th pixel of each edge to 1 at ``overlap - margin``
    pixels in, and are ``_EPS`` (not 0) in the margin. ``margin`` is the receptive radius of a
    tile-exact model: those pixels saw the tile border, so they get (almost) no say.
    """
    distance = torch.minimum(torch.arange(size), torch.arange(size).flip(0)).double()
    ramp = max(1, overlap - 2 * margin)
    t = ((distance - margin + 0.5) / ramp).clamp(0.0, 1.0)
    return torch.sin(t * (math.pi / 2)).pow(2).clamp(min=_EPS)


def _coverage(length: int, starts: list[int], window: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(length, dtype=torch.float64)
    for s in starts:
        total[s : s + window.numel()] += window
    return total


def tiled_forward(
    fn: TileFn,
    image: torch.Tensor,
    *,
    tile: int,
    overlap: int = 32,
    batch_size: int = 4,
    multiple: int = 1,
    margin: int = 0,
    device: torch.device | None = None,
    on_progress: ProgressFn | None = None,
) -> torch.Tensor:
    """Run ``fn`` over ``image`` tile by tile and blend the results.

    Args:
        fn: maps a batch ``(N, 3, h, w)`` on ``device`` to an output of the same shape.
        image: ``(1, 3, H, W)`` float in ``[0, 1]`` (stays where it is, usually host memory).
        tile: largest tile side in pixels; each side is cut into the fewest tiles of at most about
            that size, all of one size (:func:`balanced_tile`); ``0`` runs the whole image at once.
        overlap: minimum overlap between neighbouring tiles, in pixels.
        batch_size: tiles per call of ``fn``, at most; a batch never holds more pixels than one
            ``tile`` x ``tile`` square, so large tiles go one at a time and memory stays bounded.
        multiple: the model's input multiple; tiles and the whole image are padded to it.
        margin: receptive radius of a tile-exact model (see :func:`window_1d`).
        device: where tiles are sent for ``fn`` (default: the image's device).
        on_progress: called with ``(tiles_done, tiles_total)`` after each batch.

    Returns:
        ``(1, 3, H, W)`` float32 on the image's device.
    """
    if image.ndim != 4 or image.shape[0] != 1:
        raise ValueError(f"expected a (1, C, H, W) image, got {tuple(image.shape)}")
    device = device or image.device
    _, _, height, width = image.shape
    if tile <= 0 or (tile >= height and tile >= width):
        padded = pad_to(image, round_up(height, multiple), round_up(width, multiple)).to(device)
        out = fn(padded)[..., :height, :width].float().to(image.device)
        if on_progress:
            on_progress(1, 1)
        return out
    tile_h = balanced_tile(height, tile, overlap, multiple)
    tile_w = balanced_tile(width, tile, overlap, multiple)
    batch_size = max(1, min(batch_size, (tile * tile) // (tile_h * tile_w)))
    source = pad_to(image, max(height, tile_h), max(width, tile_w))
    full_h, full_w = source.shape[-2:]
    tiles = plan_tiles(full_h, full_w, tile_h, tile_w, overlap)
    wy, wx = window_1d(tile_h, overlap, margin), window_1d(tile_w, overlap, margin)
    window = (wy[:, None] * wx[None, :]).float().to(device)
    acc = torch.zeros((1, image.shape[1], full_h, full_w), dtype=torch.float32, device=image.device)
    for first in range(0, len(tiles), batch_size):
        chunk = tiles[first : first + batch_size]
        batch = torch.cat([source[..., t.top : t.top + t.height, t.left : t.left + t.width] for t in chunk])
        result = (fn(batch.to(device)).float() * window).to(image.device)
        for t, r in zip(chunk, result):
            acc[0, :, t.top : t.top + t.height, t.left : t.left + t.width] += r
        if on_progress:
            on_progress(first + len(chunk), len(tiles))
    ys = sorted({t.top for t in tiles})
    xs = sorted({t.left for t in tiles})
    # the weight sum is separable: divide by its row and column factors in place, no full-size map
    acc /= _coverage(full_h, ys, wy).float().to(acc.device).view(-1, 1)
    acc /= _coverage(full_w, xs, wx).float().to(acc.device).view(1, -1)
    return acc[..., :height, :width]
