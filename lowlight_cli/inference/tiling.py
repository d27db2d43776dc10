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
DEFAULT_OVERLAP = 32  # pixels shared by neighbouring tiles, unless told (the engine uses 31 for tiles of 64 px)
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


TileReader = Callable[[int, int, int, int], torch.Tensor]
RowsFn = Callable[[int, torch.Tensor], None]


def tensor_reader(image: torch.Tensor) -> TileReader:
    """Read regions of ``image`` ``(1, C, H, W)``: ``read(top, left, height, width)`` gives ``(1, C,
    height, width)``, the part past the bottom or right edge padded as :func:`pad_to` pads the image
    (a region that runs past an edge spans the image from that edge to the other)."""

    def read(top: int, left: int, height: int, width: int) -> torch.Tensor:
        region = image[..., top : top + height, left : left + width]
        return pad_to(region, height, width)

    return read


def tiled_rows(
    fn: TileFn,
    read: TileReader,
    height: int,
    width: int,
    emit: RowsFn,
    *,
    tile: int,
    overlap: int = DEFAULT_OVERLAP,
    batch_size: int = 4,
    multiple: int = 1,
    margin: int = 0,
    device: torch.device | None = None,
    on_progress: ProgressFn | None = None,
) -> None:
    """Run ``fn`` over an image tile by tile and hand its blended result on in finished row bands.

    The image is only ever read a tile at a time (``read``, see :func:`tensor_reader`), and the
    output is blended in a strip one tile high: when a row of tiles is done, the rows no later
    tile reaches are normalised and passed to ``emit(top, rows)`` (``rows`` ``(1, C, r, width)``
    float32 on the CPU, top to bottom, covering ``height`` once; a view into the strip, valid
    during the call only: copy or convert it there). So no float copy of the whole
    image, in or out, is needed: the caller converts each band as it comes (see
    ``Enhancer.enhance_pixels``). Arguments as :func:`tiled_forward`; tiles of one batch come
    from one row of tiles.
    """
    if tile <= 0 or (tile >= height and tile >= width):
        whole = read(0, 0, round_up(height, multiple), round_up(width, multiple))
        emit(0, fn(whole.to(device) if device is not None else whole)[..., :height, :width].float().cpu())
        if on_progress:
            on_progress(1, 1)
        return
    tile_h = balanced_tile(height, tile, overlap, multiple)
    tile_w = balanced_tile(width, tile, overlap, multiple)
    batch_size = max(1, min(batch_size, (tile * tile) // (tile_h * tile_w)))
    full_h, full_w = max(height, tile_h), max(width, tile_w)
    tiles = plan_tiles(full_h, full_w, tile_h, tile_w, overlap)
    ys = sorted({t.top for t in tiles})
    xs = sorted({t.left for t in tiles})
    wy, wx = window_1d(tile_h, overlap, margin), window_1d(tile_w, overlap, margin)
    window = (wy[:, None] * wx[None, :]).float()
    if device is not None:
        window = window.to(device)
    # the weight sum is separable: rows and columns are divided by their 1-D sums, no full-size map
    row_cover = _coverage(full_h, ys, wy).float().view(-1, 1)
    col_cover = _coverage(full_w, xs, wx).float().view(1, -1)
    strip: torch.Tensor | None = None  # rows [strip_top, strip_top + tile_h) of the blended output, allocated once
    strip_top, done = 0, 0

    def finish(rows: int) -> None:  # the strip's first ``rows`` rows are final: normalise and hand on
        assert strip is not None
        block = strip[:, :, :rows]
        block /= row_cover[strip_top : strip_top + rows]
        block /= col_cover
        keep = min(rows, height - strip_top)
        if keep > 0:
            emit(strip_top, block[:, :, :keep, :width])

    for top in ys:
        if strip is not None and top != strip_top:
            finished = top - strip_top
            finish(finished)
            # the rows still open move up, in blocks of at most ``finished`` rows, top first, so no
            # block overlaps its source (in place: no second strip) ...
            for start in range(0, tile_h - finished, finished):
                rows = min(finished, tile_h - finished - start)
                strip[:, :, start : start + rows] = strip[:, :, start + finished : start + finished + rows]
            strip[:, :, tile_h - finished :] = 0.0  # ... and the new rows start empty
            strip_top = top
        row = [t for t in tiles if t.top == top]
        for first in range(0, len(row), batch_size):
            chunk = row[first : first + batch_size]
            batch = torch.cat([read(t.top, t.left, t.height, t.width) for t in chunk])
            result = (fn(batch.to(device) if device is not None else batch).float() * window).cpu()
            if strip is None:
                strip = torch.zeros((1, result.shape[1], tile_h, full_w), dtype=torch.float32)
            for t, r in zip(chunk, result):
                strip[0, :, :, t.left : t.left + t.width] += r
            done += len(chunk)
            if on_progress:
                on_progress(done, len(tiles))
    finish(full_h - strip_top)


def tiled_forward(
    fn: TileFn,
    image: torch.Tensor,
    *,
    tile: int,
    overlap: int = DEFAULT_OVERLAP,
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
    out, keep = float_output(image)
    tiled_rows(fn, tensor_reader(image), *image.shape[-2:], keep, tile=tile, overlap=overlap, batch_size=batch_size,
               multiple=multiple, margin=margin, device=device or image.device, on_progress=on_progress)
    return out.to(image.device)


def float_output(image: torch.Tensor) -> tuple[torch.Tensor, RowsFn]:
    """A float32 CPU tensor shaped like ``image`` ``(1, C, H, W)`` and the ``emit`` of
    :func:`tiled_rows` that copies each finished band into it."""
    out = torch.empty((1, image.shape[1], *image.shape[-2:]), dtype=torch.float32)

    def keep(top: int, rows: torch.Tensor) -> None:
        out[:, :, top : top + rows.shape[-2]] = rows

    return out, keep
