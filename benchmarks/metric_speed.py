"""Seconds per megapixel of each metric on this machine.

    python benchmarks/metric_speed.py              # 12-megapixel image (4000 x 3000), 1 thread
    python benchmarks/metric_speed.py --size 1200 1600 --threads 2

Times ``create_metric(name)`` modules on float64 tensors, the way ``lowlight evaluate`` calls
them; best of ``--repeats``. ``--convolution`` adds SSIM's convolution path (what it ran before
session 20; gradients, float32 and GPUs still take it) for comparison in the same run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.metrics import create_metric, list_metrics, metric_info  # noqa: E402
from lowlight_cli.metrics.ssim import _filter_valid, _ssim_map, gaussian_window_1d  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--metrics", nargs="*", default=[m for m in list_metrics() if m != "lpips"])
    parser.add_argument("--convolution", action="store_true",
                        help="also time SSIM's convolution path (float64 on the CPU scores band by band since session 20)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    h, w = args.size
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(1, 3, h, w, generator=gen, dtype=torch.float64)
    ref = (pred + 0.05 * torch.randn(1, 3, h, w, generator=gen, dtype=torch.float64)).clamp(0, 1)
    print(f"machine: {describe_machine()}; {args.threads} thread(s); image {w}x{h} ({h * w / 1e6:.1f} MP)")
    print("| metric | seconds | seconds per megapixel |")
    print("|---|---|---|")
    for name in args.metrics:
        module = create_metric(name)
        full = metric_info(name).full_reference
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            module(pred, ref) if full else module(pred)
            best = min(best, time.perf_counter() - start)
        print(f"| {name} | {best:.2f} | {best / (h * w / 1e6):.3f} |", flush=True)
    if "ssim" in args.metrics and args.convolution:
        # the path gradients, float32 and GPUs take (a grouped conv2d over all moment planes at once)
        window = gaussian_window_1d(11, 1.5)
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            x, y = pred * 255, ref * 255
            _ssim_map(_filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), window), c1, c2).flatten(1).mean(dim=1)
            best = min(best, time.perf_counter() - start)
        print(f"| ssim, convolution path (before session 20) | {best:.2f} | {best / (h * w / 1e6):.3f} |", flush=True)


if __name__ == "__main__":
    main()
