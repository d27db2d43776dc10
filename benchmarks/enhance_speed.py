"""Megapixels per second of each model on this machine, whole image vs tiled.

    python benchmarks/enhance_speed.py                      # CPU, every model
    python benchmarks/enhance_speed.py --device cuda --models crnet crnet-s
    python benchmarks/enhance_speed.py --precision bf16 --models crnet crnet-s   # CPUs with AVX512-BF16/AMX
    python benchmarks/enhance_speed.py --compile --models crnet crnet-s          # torch.compile (warm-up compiles)

Random initialisations are timed (speed does not depend on the weights). Rates are the best of
``--repeats`` runs after a first run; the first run's seconds are printed too (with ``--compile``
they include the compilation, which every new enhance process pays once). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.inference import Enhancer, InferenceConfig, resolve_device, resolve_precision  # noqa: E402
from lowlight_cli.models import create_model, list_models  # noqa: E402

# image side per model on the CPU: the paper-size CRNet runs ~0.01 MP/s there
CPU_SIZES = {"crnet": (384, 512)}
DEFAULT_SIZE = (1200, 1600)


def time_enhance(enhancer: Enhancer, image: np.ndarray, repeats: int) -> tuple[float, float]:
    """Seconds of the first run (which compiles, with ``--compile``) and best of ``repeats`` after it."""
    start = time.perf_counter()
    enhancer.enhance(image)
    if enhancer.device.type == "cuda":
        torch.cuda.synchronize()
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        enhancer.enhance(image)
        if enhancer.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return first, best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list_models())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (the warm-up run compiles)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="image size (default per model)")
    args = parser.parse_args()

    precision = resolve_precision(args.precision, resolve_device(args.device))
    print(f"machine: {describe_machine()}; device {args.device} ({precision}{', compiled' if args.compile else ''})")
    print("| model | image | whole MP/s | tiled MP/s (tile %d, overlap %d, batch %d) | first run s, whole / tiled |"
          % (args.tile, args.overlap, args.batch_size))
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name in args.models:
        model = create_model(name, pretrained=False)
        h, w = args.size or (CPU_SIZES.get(name, DEFAULT_SIZE) if args.device == "cpu" else (3000, 4000))
        image = (rng.random((h, w, 3), dtype=np.float32) * 0.2).astype(np.float32)
        rates, firsts = [], []
        for tile in (0, args.tile):
            config = InferenceConfig(device=args.device, precision=args.precision, tile=tile, overlap=args.overlap,
                                     batch_size=args.batch_size, compile=args.compile)
            torch._dynamo.reset()  # each first run compiles afresh (Inductor's disk cache is left as it is)
            first, seconds = time_enhance(Enhancer(model, config), image, args.repeats)
            rates.append(h * w / 1e6 / seconds)
            firsts.append(first)
        print(f"| {name} | {w}x{h} | {rates[0]:.3f} | {rates[1]:.3f} | {firsts[0]:.1f} / {firsts[1]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
