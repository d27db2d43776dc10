"""The 4-direction selective scan of SS2D: chunked (lowlight) vs a sequential loop, time and peak memory.

    OMP_NUM_THREADS=1 python benchmarks/scan_speed.py                       # 64, 256, 512 px; both methods
    OMP_NUM_THREADS=1 python benchmarks/scan_speed.py --sizes 256 --chunks 8 16 32 64 --methods chunked

What is measured is the scan of one SS2D layer of the paper-size Semi-LLIE model: an image of
``d_inner = 128`` channels (batch 1), read in the four orders of ``cross_scan`` (so 4 x 128 = 512
sequences of ``H*W`` positions, each direction with its own ``B``, ``C`` of state size 16), scanned
and merged back with ``cross_merge``. Inputs are random, steps ``softplus(N(0,1) - 2)``, ``A`` in
``[-16, -1]``. Forward runs under ``torch.no_grad``; forward+backward differentiates the sum of the
output with respect to every input.

- ``chunked``: :func:`lowlight_cli.models.selective_scan.selective_scan` (chunked parallel prefix,
  custom backward that keeps only the state at each chunk start);
- ``loop``: :func:`sequential_scan` below, one Python step per position on views made once with
  ``unbind`` (so that autograd's backward stays linear in the length); it keeps every step's state
  for the backward pass. Before timing, each run checks on a 64-position prefix that it agrees
  with the chunked scan.

Each measurement runs in a fresh process: time is the best of ``--repeats`` runs (one run for the
slow cases), peak memory is the peak resident memory minus the resident memory once the inputs
exist. Loop runs whose estimated time or memory is out of reach are skipped and the table says why.
Prints the machine line and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import rss_mb  # noqa: E402

D_INNER, STATE, DIRECTIONS = 128, 16, 4
LOOP_SECONDS_PER_STEP = 2e-4  # measured on the development CPU for 512 x 16 states, for the skip rule
LOOP_BYTES_PER_STEP = 3 * DIRECTIONS * D_INNER * STATE * 4  # autograd keeps ~3 state-sized tensors per step
MAX_LOOP_SECONDS = 120.0




def _inputs(side: int, requires_grad: bool):  # noqa: ANN202 - tuple of tensors
    import torch

    g = torch.Generator().manual_seed(0)
    length = side * side
    x = torch.randn(1, D_INNER, side, side, generator=g)
    delta = torch.randn(1, DIRECTIONS * D_INNER, length, generator=g) - 2
    A = -(torch.rand(DIRECTIONS * D_INNER, STATE, generator=g) * 15 + 1)
    B = torch.randn(1, DIRECTIONS, STATE, length, generator=g)
    C = torch.randn(1, DIRECTIONS, STATE, length, generator=g)
    D = torch.ones(DIRECTIONS * D_INNER)
    bias = torch.zeros(DIRECTIONS * D_INNER)
    return tuple(t.requires_grad_(requires_grad) for t in (x, delta, A, B, C, D, bias))


def sequential_scan(u, delta, A, B, C, D, bias):  # noqa: ANN001, ANN201 - tensors
    """The selective scan one position at a time: ``u, delta (1, G*E, L)``, ``A (G*E, N)``,
    ``B, C (1, G, N, L)``, ``D, bias (G*E,)`` -> ``(1, G*E, L)``."""
    import torch
    import torch.nn.functional as F

    batch, channels, _ = u.shape
    groups, state = B.shape[1], B.shape[2]
    steps = F.softplus(delta + bias[:, None])
    rates = A.reshape(groups, channels // groups, state)
    h = u.new_zeros(batch, groups, channels // groups, state)
    ys = []
    for u_t, d_t, b_t, c_t in zip(u.unbind(-1), steps.unbind(-1), B.unbind(-1), C.unbind(-1)):
        d_t = d_t.reshape(batch, groups, -1, 1)
        h = torch.exp(d_t * rates) * h + (d_t * u_t.reshape(batch, groups, -1, 1)) * b_t.unsqueeze(2)
        ys.append((h * c_t.unsqueeze(2)).sum(-1).reshape(batch, channels))
    return torch.stack(ys, dim=-1) + u * D[:, None]


def _scan_2d(method: str, chunk: int | None, x, delta, A, B, C, D, bias):  # noqa: ANN001, ANN202
    from lowlight_cli.models.selective_scan import cross_merge, cross_scan, selective_scan

    side = x.shape[-1]
    xs = cross_scan(x).flatten(1, 2)
    scan = sequential_scan if method == "loop" else lambda *t: selective_scan(*t, chunk=chunk)
    return cross_merge(scan(xs, delta, A, B, C, D, bias).unflatten(1, (DIRECTIONS, D_INNER)), side, side)


def measure(method: str, side: int, mode: str, chunk: int | None, repeats: int) -> dict:
    """Run in this process: time (best of ``repeats``) and peak memory of one scan configuration."""
    import torch

    from lowlight_cli.models.selective_scan import selective_scan

    backward = mode == "forward+backward"
    inputs = _inputs(side, backward)
    with torch.no_grad():
        warm = _warm_inputs(inputs)
        _scan_2d(method, chunk, *warm)
        u = torch.randn(1, DIRECTIONS * D_INNER, 64)
        if not torch.allclose(sequential_scan(u, *warm[1:]), selective_scan(u, *warm[1:]), atol=1e-4):
            raise AssertionError("the sequential loop and the chunked scan disagree")
    baseline = rss_mb()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        if backward:
            _scan_2d(method, chunk, *inputs).sum().backward()
        else:
            with torch.no_grad():
                _scan_2d(method, chunk, *inputs)
        best = min(best, time.perf_counter() - start)
        for t in inputs:
            t.grad = None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": best, "peak_mb": max(0.0, peak - baseline)}


def _warm_inputs(inputs):  # noqa: ANN001, ANN202 - the inputs of an 8x8 crop, to load the code paths first
    x, delta, A, B, C, D, bias = (t.detach() for t in inputs)
    return x[..., :8, :8], delta[..., :64], A, B[..., :64], C[..., :64], D, bias


def _skip_reason(method: str, side: int, mode: str) -> str | None:
    if method != "loop":
        return None
    steps = side * side
    seconds = steps * LOOP_SECONDS_PER_STEP * (3 if mode == "forward+backward" else 1)
    gigabytes = steps * LOOP_BYTES_PER_STEP / 1e9 if mode == "forward+backward" else 0.0
    if seconds > MAX_LOOP_SECONDS or gigabytes > 8:
        return f"skipped: ~{seconds / 60:.1f} min and ~{gigabytes:.0f} GB of autograd states estimated"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[64, 256, 512])
    parser.add_argument("--methods", nargs="*", default=["chunked", "loop"], choices=["chunked", "loop"])
    parser.add_argument("--modes", nargs="*", default=["forward", "forward+backward"], choices=["forward", "forward+backward"])
    parser.add_argument("--chunks", type=int, nargs="*", default=[0], help="chunk lengths of the chunked scan; 0 = its default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, side, mode, chunk = args.child
        side = int(side)
        repeats = args.repeats if (method == "chunked" and side <= 256) or side <= 64 else 1
        print(json.dumps(measure(method, side, mode, int(chunk) or None, repeats)))
        return
    from lowlight_cli.models.selective_scan import CHUNK_CPU
    from machine import describe_machine

    print(f"machine: {describe_machine()}")
    print(f"scan: {DIRECTIONS} directions x d_inner {D_INNER}, state {STATE}, batch 1; chunked default chunk {CHUNK_CPU}")
    print("| image | positions | method | chunk | pass | time (s) | peak memory (MB) |")
    print("|---|---|---|---|---|---|---|")
    for side in args.sizes:
        for mode in args.modes:
            for method in args.methods:
                for chunk in args.chunks if method == "chunked" else [0]:
                    chunk_text = str(chunk or CHUNK_CPU) if method == "chunked" else "-"
                    row = f"| {side}x{side} | {side * side:,} | {method} | {chunk_text} | {mode} |"
                    reason = _skip_reason(method, side, mode)
                    if reason:
                        print(f"{row} {reason} | - |", flush=True)
                        continue
                    proc = subprocess.run(
                        [sys.executable, __file__, "--repeats", str(args.repeats), "--child", method, str(side), mode, str(chunk)],
                        capture_output=True, text=True, cwd=ROOT,
                    )
                    if proc.returncode != 0:
                        print(f"{row} failed: {proc.stderr.strip().splitlines()[-1]} | - |", flush=True)
                        continue
                    r = json.loads(proc.stdout.strip().splitlines()[-1])
                    print(f"{row} {r['seconds']:.3f} | {r['peak_mb']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
