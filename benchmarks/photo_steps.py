"""The steps `lowlight enhance` runs after the model, timed alone on one photo-sized output.

    python benchmarks/photo_steps.py                          # 12 MP, this tree
    python benchmarks/photo_steps.py --workers 1              # each step's bands on one thread
    python benchmarks/photo_steps.py --against /tmp/old       # and another checkout, alternated

The colour step (``keep_input_colour``, ``--colour input``) and the blacks step (``keep_blacks``,
``--blacks keep``) on a synthetic dark photo (smooth shading with noise, uint8) and a lifted "model
output" of it (``2.5 x + 40`` levels: its blacks lifted to about 0.16, so the toe acts), kept at 16 bits and written into an 8-bit array, as
``Enhancer.enhance_pixels`` runs them for an 8-bit photo. Each round is a fresh process: one
untimed run of each step, then one timed, on a fresh copy of the output; best and median
milliseconds over the rounds. ``--workers N`` holds each step's thread pool to N
(default: as the library chooses, torch's thread count from 1 MP; a checkout without
``band_workers`` keeps its own). ``--against CHECKOUT`` times
another checkout of lowlight too (``git worktree add /tmp/old COMMIT``), in child processes
alternated with this tree's round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_steps(megapixels: float, repeats: int, workers: int | None) -> dict[str, list[float]]:
    """Milliseconds per repeat of each step on one synthetic photo, in this process (the
    ``lowlight_cli`` on ``sys.path``)."""
    import numpy as np
    import torch

    from lowlight_cli.inference import blacks, colour

    if "OMP_NUM_THREADS" not in os.environ:  # the CLI's thread count on a 2-core machine
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    if workers is not None:
        for module in (blacks, colour):
            if hasattr(module, "band_workers"):
                module.band_workers = lambda pixels, n=workers: n
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(width * 3 / 4))
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    shading = 20 + 15 * np.sin(cols / 300) + 10 * np.cos(rows / 200)
    low = np.clip(shading[..., None] * np.array([1.0, 0.8, 0.6], np.float32) + rng.normal(0, 3, (height, width, 3)), 0, 255)
    low = low.astype(np.uint8)
    lifted = (np.clip(low.astype(np.float32) * 2.5 + 40, 0, 255) * 257).astype(np.uint16)  # blacks lifted to 0.16
    final = np.empty(low.shape, np.uint8)
    if blacks.plan_toe(low, lifted) is None:
        raise RuntimeError("the synthetic output needs no toe: the blacks step would only copy it")
    steps = {"colour": lambda out: colour.keep_input_colour(low, out, into=final),
             "blacks": lambda out: blacks.keep_blacks(low, out, into=final)}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm: the pools, the allocator, the pages of final
        step(lifted.copy())
    for _ in range(repeats):
        for name, step in steps.items():
            out = lifted.copy()
            start = time.perf_counter()
            step(out)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def _child(tree: Path, args: argparse.Namespace) -> dict[str, list[float]]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])]))
    command = [sys.executable, __file__, "--megapixels", str(args.megapixels), "--repeats", "1", "--json"]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True, cwd=tree)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megapixels", type=float, default=12.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="threads per step (default: the library's choice)")
    parser.add_argument("--against", type=Path, default=None, metavar="CHECKOUT")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child's answer
    args = parser.parse_args()
    if args.json:
        print(json.dumps(time_steps(args.megapixels, args.repeats, args.workers)))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import describe_machine

    trees = {"this tree": ROOT} | ({str(args.against): args.against.resolve()} if args.against else {})
    if args.against is not None and not (args.against / "lowlight_cli" / "__init__.py").is_file():
        parser.error(f"--against {args.against}: not a checkout of lowlight")
    times: dict[str, dict[str, list[float]]] = {label: {} for label in trees}
    for _ in range(args.repeats):  # a fresh process per round and tree, alternated
        for label, tree in trees.items():
            for name, values in _child(tree, args).items():
                times[label].setdefault(name, []).extend(values)
    print(f"# {describe_machine()}; {args.megapixels:g} MP, uint16 output into uint8; workers "
          f"{args.workers if args.workers is not None else 'default'}; ms over {args.repeats} rounds")
    print("| tree | step | best | median |\n|---|---|---|---|")
    for label, steps in times.items():
        for name, values in steps.items():
            print(f"| {label} | {name} | {min(values):.0f} | {statistics.median(values):.0f} |")


if __name__ == "__main__":
    main()
