"""Seconds per megapixel of each metric on this machine.

    python benchmarks/metric_speed.py              # 12-megapixel image (4000 x 3000), 1 thread
    python benchmarks/metric_speed.py --size 1200 1600 --threads 2

Times ``create_metric(name)`` modules on float64 tensors, the way ``lowlight evaluate`` calls
them; best of ``--repeats``. ``--convolution`` adds SSIM's convolution path (what it ran before
session 20; gradients, float32 and GPUs still take it) for comparison in the same run.
``--memory`` adds each metric's peak memory: the rise of the process's peak resident set over what
the two images already hold, measured in a fresh child process per metric (and per SSIM path), so
one metric's peak does not hide the next one's.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.metrics import create_metric, list_metrics, metric_info  # noqa: E402
from lowlight_cli.metrics.ssim import _ssim_banded, _ssim_convolved, gaussian_window_1d  # noqa: E402

SSIM_C1, SSIM_C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _images(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(1, 3, h, w, generator=gen, dtype=torch.float64)
    ref = (pred + 0.05 * torch.randn(1, 3, h, w, generator=gen, dtype=torch.float64)).clamp(0, 1)
    return pred, ref


def _runner(name: str) -> Callable[[torch.Tensor, torch.Tensor], object]:
    """What one timed or measured call runs: a metric module, or one of SSIM's two paths."""
    if name in ("ssim-convolution", "ssim-banded"):
        path = _ssim_convolved if name == "ssim-convolution" else _ssim_banded
        window = gaussian_window_1d(11, 1.5)
        return lambda pred, ref: path(pred * 255, ref * 255, window, SSIM_C1, SSIM_C2)
    module = create_metric(name)
    return (lambda pred, ref: module(pred, ref)) if metric_info(name).full_reference else (lambda pred, ref: module(pred))


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _peak_child(name: str, h: int, w: int, threads: int, queue: "multiprocessing.Queue[float]") -> None:
    torch.set_num_threads(threads)
    pred, ref = _images(h, w)
    run = _runner(name)
    try:  # Linux: reset the peak to the current resident set, so the images' temporaries do not count
        Path("/proc/self/clear_refs").write_text("5")
        before = _status_kib("VmRSS")
        run(pred, ref)
        peak = _status_kib("VmHWM")
    except OSError:  # elsewhere: the process's peak so far (an underestimate when temporaries were larger)
        unit = 1 if sys.platform != "darwin" else 1024  # ru_maxrss is in KiB on Linux, bytes on macOS
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // unit
        run(pred, ref)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // unit
    queue.put((peak - before) / 1024**2)


def peak_memory_gb(name: str, h: int, w: int, threads: int) -> float:
    """Peak resident memory added by one call of ``name`` on an HxW pair, in GB, in a fresh process."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_child, args=(name, h, w, threads, queue))
    child.start()
    while True:  # a child killed for memory or failing never answers: say so instead of waiting forever
        try:
            peak = queue.get(timeout=5)
            break
        except Exception:  # queue.Empty
            if not child.is_alive():
                raise SystemExit(f"{name}: the measuring process ended without an answer (exit code {child.exitcode})") from None
    child.join()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=(3000, 4000), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--metrics", nargs="*", default=[m for m in list_metrics() if m != "lpips"])
    parser.add_argument("--convolution", action="store_true",
                        help="also time SSIM's convolution path (float64 on the CPU scores band by band since session 20)")
    parser.add_argument("--memory", action="store_true",
                        help="also measure each metric's peak memory (a fresh child process per metric)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    h, w = args.size
    pred, ref = _images(h, w)
    names = list(args.metrics)
    if "ssim" in names and args.convolution:
        # ssim as `lowlight evaluate` runs it is the banded path; the convolution path is what
        # gradients, float32 and GPUs take (a grouped conv2d over all moment planes at once)
        names.insert(names.index("ssim") + 1, "ssim-convolution")
    labels = {"ssim-convolution": "ssim, convolution path (before session 20)"}
    print(f"machine: {describe_machine()}; {args.threads} thread(s); image {w}x{h} ({h * w / 1e6:.1f} MP)")
    print("| metric | seconds | seconds per megapixel |" + (" peak memory (GB) |" if args.memory else ""))
    print("|---|---|---|" + ("---|" if args.memory else ""))
    for name in names:
        run = _runner(name)
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            run(pred, ref)
            best = min(best, time.perf_counter() - start)
        memory = f" {peak_memory_gb(name, h, w, args.threads):.2f} |" if args.memory else ""
        print(f"| {labels.get(name, name)} | {best:.2f} | {best / (h * w / 1e6):.3f} |{memory}", flush=True)


if __name__ == "__main__":
    main()
