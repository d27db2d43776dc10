"""Does the default tiling make a photo slower than one tile (whole-image inference)? In-process,
warm, the sizes alternated tile by tile.

    python benchmarks/tile_choice.py                                   # the default model, the sizes below
    python benchmarks/tile_choice.py --sizes 1280x720 1920x1080 --tiles 1024 0 --repeats 9
    python benchmarks/tile_choice.py --tiles default 0       # enhance's own choice (tile and curve scale) against whole

Each photo (a random dark image of that size: speed does not depend on content) is enhanced once
with every tile (a first, unrounded run per tile), then ``--repeats`` rounds in which every tile
runs once in turn, so a slow spell of the machine hits all tiles alike. Prints the median seconds
per tile and how many rounds each tile was the fastest. Tile 0 is whole-image inference;
``default`` is ``enhance``'s choice on this machine (no ``--tile``, ``--curve-scale auto``: on
the CPU 1024-px tiles for a photo at full resolution larger than one such tile,
``Enhancer.photo_tile``).
``--curve-scale 1`` (the default here) is what ``enhance``'s auto chooses up to 8 MP; the whole
command and its peak memory: ``benchmarks/enhance_command.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.models import create_model  # noqa: E402

# a 720p frame, one just under a 1024-px tile's area, 1, 1.5 and 2 MP photos, a 1080p frame, 3 MP
DEFAULT_SIZES = ["1280x720", "1154x865", "1024x1024", "1414x1060", "1632x1224", "1920x1080", "2000x1500"]


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"error: size {text!r} is not WIDTHxHEIGHT") from None
    return width, height


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="crnet-curve-dn")
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, metavar="WxH")
    parser.add_argument("--tiles", nargs="+", default=["1024", "0"],
                        help="tile sides to compare (0: whole image; default: enhance's choice)")
    parser.add_argument("--curve-scale", type=int, default=1)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    try:
        tiles = [None if t == "default" else int(t) for t in args.tiles]
    except ValueError:
        raise SystemExit(f"error: --tiles takes integers or 'default', not {args.tiles}") from None
    names = ["default" if t is None else ("whole" if t == 0 else str(t)) for t in tiles]
    model = create_model(args.model, pretrained=True)
    rng = np.random.default_rng(0)
    print(f"# {describe_machine()}; {args.model}, bundled weights, {args.precision}, curve scale {args.curve_scale}; "
          f"median of {args.repeats} rounds, tiles alternated\n")
    header = " | ".join(f"tile {n} (s)" for n in names)
    print(f"| photo | {header} | fastest in rounds |")
    print("|---|" + "---|" * (len(tiles) + 1))
    for size in args.sizes:
        width, height = parse_size(size)
        photo = rng.random((height, width, 3), dtype=np.float32) * 0.2
        enhancers = [Enhancer(model, InferenceConfig(device="cpu", tile=t, precision=args.precision,
                                                     curve_scale="auto" if t is None else args.curve_scale))
                     for t in tiles]
        for enhancer in enhancers:  # first runs: allocations and kernel choices for these shapes
            enhancer.enhance(photo)
        seconds = np.zeros((args.repeats, len(enhancers)))
        for r in range(args.repeats):
            for i, enhancer in enumerate(enhancers):
                start = time.perf_counter()
                enhancer.enhance(photo)
                seconds[r, i] = time.perf_counter() - start
        medians = " | ".join(f"{m:.3f}" for m in np.median(seconds, axis=0))
        wins = np.bincount(seconds.argmin(axis=1), minlength=len(enhancers))
        used = [e.last_tile for e in enhancers]
        won = ", ".join(f"{n}{'' if t is not None else f' ({u} px)' if u else ' (whole)'}: {w}"
                        for n, t, u, w in zip(names, tiles, used, wins))
        print(f"| {width}x{height} ({width * height / 1e6:.1f} MP) | {medians} | {won} |", flush=True)


if __name__ == "__main__":
    main()
