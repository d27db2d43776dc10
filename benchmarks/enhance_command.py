"""The whole `lowlight enhance` command on one large JPEG: wall time and peak memory.

    python benchmarks/enhance_command.py                          # default model, 6 / 12 / 24 MP
    python benchmarks/enhance_command.py --megapixels 12 --isa avx2 --repeats 3
    python benchmarks/enhance_command.py --model crnet-s --tile 0 --megapixels 12
    python benchmarks/enhance_command.py --megapixels 12 --curve-scale 2
    python benchmarks/enhance_command.py --megapixels 12 --isa avx2 --blacks model     # without the blacks step
    python benchmarks/enhance_command.py --megapixels 12 --weights weights/crnet-curve-dn-lol-stage5
    python benchmarks/enhance_command.py --megapixels 12 --isa avx2 --repeats 4 --against /tmp/old
    python benchmarks/enhance_command.py --megapixels 12 --busy 1 --env GOMP_SPINCOUNT=10000
    python benchmarks/enhance_command.py --megapixels 12 --repeats 6 --env-against LOWLIGHT_WARM_HEAP=0
    python benchmarks/enhance_command.py --megapixels 12 --photos 4 --repeats 4 --env-against LOWLIGHT_READ_AHEAD=1
    sudo python benchmarks/enhance_command.py --megapixels 12 --repeats 3 --cpu-quota 1 --against /tmp/old

``--against CHECKOUT`` times another checkout of lowlight (``git worktree add /tmp/old COMMIT``)
in the same run, alternating with this tree round by round, so that both see the same state of a
machine whose speed drifts; it prints both and the per-round differences. ``--env-against
KEY=VALUE`` does the same with this tree under another setting (the heap warming off:
``LOWLIGHT_WARM_HEAP=0``). ``--photos N`` enhances a folder of N
copies of the photo in one command (a folder's throughput; the child runs ``--device cpu``, where
``lowlight enhance`` reads the next photo ahead only with ``--env-against LOWLIGHT_READ_AHEAD=1``).

What a user waits for: process start, model load, JPEG decode, inference, JPEG encode with
metadata, atomic rename. The photo is a smooth synthetic scene with noise, written once per size
as a quality-95 JPEG under a temporary folder. Each run is a fresh process (`python -m
lowlight_cli enhance ... --overwrite`); the table gives the best and median wall time and the peak
resident memory of the child (ru_maxrss). ``--isa avx2`` runs the child with oneDNN and ATen
limited to AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, ``ATEN_CPU_CAPABILITY=avx2``): the vector width of
a CPU without AVX-512 or AMX, on a machine that has them. ``--busy N`` keeps N other processes
spinning on the CPU meanwhile (a machine busy with other work) and ``--env KEY=VALUE`` sets the
child's environment (OpenMP's ``GOMP_SPINCOUNT``, ``OMP_NUM_THREADS``, ...). ``--cpu-quota CPUS``
runs each child in a cgroup allowed that many CPUs' worth of time (a container's ``docker run
--cpus``; needs root: ``cpu_quota.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu_quota import in_cgroup, quota_cgroup  # noqa: E402
from machine import describe_machine  # noqa: E402


def make_photo(path: Path, megapixels: float) -> tuple[int, int]:
    """Write a dark, noisy, smooth 4:3 test photo of about ``megapixels``; returns (width, height)."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(megapixels * 1e6 / width))
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 40 + 25 * np.sin(x / 97.0) * np.cos(y / 131.0)
    rgb = np.stack([base, base * 0.9, base * 0.7], axis=-1)
    rgb += np.random.default_rng(0).normal(0, 4, rgb.shape).astype(np.float32)
    cv2.imwrite(str(path), np.clip(rgb, 0, 255).astype(np.uint8)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return width, height


def make_photo_elsewhere(path: Path, megapixels: float) -> tuple[int, int]:
    """:func:`make_photo` in a child process: this process must stay small, because a child's peak
    memory (``ru_maxrss``) includes the memory of the process it was forked from (Linux records
    the old address space's high-water mark at ``exec``), so a 24 MP photo made here (about 1.6 GB
    of float temporaries) would set a floor under every measurement."""
    code = "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); from enhance_command import make_photo; " \
           "print(*make_photo(Path(sys.argv[2]), float(sys.argv[3])))"
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(path), str(megapixels)],
                          check=True, capture_output=True, text=True)
    width, height = map(int, done.stdout.split())
    return width, height


ROOT = Path(__file__).resolve().parent.parent


def run_once(photo: Path, out: Path, args: argparse.Namespace, tree: Path = ROOT, extra_env: list[str] = ()) -> tuple[float, float]:
    """One fresh `lowlight enhance` process of the checkout ``tree`` on ``photo`` (a file or a
    folder), with ``extra_env`` settings too; returns (seconds, peak RSS of the child in MB)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    if args.isa == "avx2":
        env.update(ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    env.update(dict(setting.split("=", 1) for setting in [*args.env, *extra_env]))
    command = [sys.executable, "-m", "lowlight_cli", "enhance", str(photo), "-o", str(out), "--overwrite", "--device", "cpu"]
    if args.model:
        command += ["--model", args.model]
    if args.weights:
        command += ["--weights", args.weights]
    if args.tile is not None:
        command += ["--tile", str(args.tile)]
    if args.curve_scale is not None:
        command += ["--curve-scale", str(args.curve_scale)]
    if args.colour is not None:
        command += ["--colour", args.colour]
    if args.blacks is not None:
        command += ["--blacks", args.blacks]
    if args.precision is not None:
        command += ["--precision", args.precision]
    if args.quota_folder is not None:
        command = in_cgroup(args.quota_folder, command)
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)  # this child's own rusage
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"lowlight enhance failed: {child.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="default: the CLI's default model")
    parser.add_argument("--weights", default=None, help="checkpoint folder (default: the model's bundled weights)")
    parser.add_argument("--tile", type=int, default=None, help="default: the CLI's choice")
    parser.add_argument("--curve-scale", default=None, help="curve models: --curve-scale auto|N (default: the CLI's)")
    parser.add_argument("--colour", default=None, choices=["model", "input"], help="--colour (default: the CLI's)")
    parser.add_argument("--blacks", default=None, choices=["model", "keep"], help="--blacks (default: the CLI's)")
    parser.add_argument("--precision", default=None, choices=["auto", "fp32", "bf16"], help="--precision (default: the CLI's)")
    parser.add_argument("--megapixels", type=float, nargs="+", default=[6.0, 12.0, 24.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--isa", choices=("native", "avx2"), default="native")
    parser.add_argument("--against", type=Path, default=None, metavar="CHECKOUT",
                        help="another checkout of lowlight, timed alternately with this tree (see above)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="set in the child's environment (repeatable), e.g. GOMP_SPINCOUNT=10000 or OMP_NUM_THREADS=1")
    parser.add_argument("--env-against", action="append", default=[], metavar="KEY=VALUE",
                        help="time this tree with these settings too (repeatable), alternately (see above)")
    parser.add_argument("--photos", type=int, default=1, metavar="N",
                        help="enhance a folder of N copies of each photo in one command (default 1: the photo itself)")
    parser.add_argument("--busy", type=int, default=0, metavar="N",
                        help="keep N other processes spinning on the CPU while timing: a machine busy with other work")
    parser.add_argument("--cpu-quota", type=float, default=None, metavar="CPUS",
                        help="run each child in a cgroup allowed CPUS CPUs' worth of time (a container's --cpus; needs root)")
    args = parser.parse_args()
    args.quota_folder = None
    if args.cpu_quota is not None and args.cpu_quota <= 0:
        parser.error("--cpu-quota takes a positive number of CPUs")
    if any("=" not in setting for setting in args.env + args.env_against):
        parser.error("--env and --env-against take KEY=VALUE")
    if args.photos < 1:
        parser.error("--photos takes a count of 1 or more")
    if args.against is not None and not (args.against / "lowlight_cli" / "__init__.py").is_file():
        parser.error(f"{args.against} is not a checkout of lowlight (no lowlight_cli/__init__.py)")
    print(f"# {describe_machine()}; child ISA: {args.isa}; model {args.model or 'default'}, weights {args.weights or 'bundled'}, tile {args.tile if args.tile is not None else 'default'}, "
          f"curve scale {args.curve_scale if args.curve_scale is not None else 'default'}"
          + (f", colour {args.colour}" if args.colour else "") + (f", blacks {args.blacks}" if args.blacks else "") + (f", precision {args.precision}" if args.precision else "")
          + (f", child env {' '.join(args.env)}" if args.env else "")
          + (f", a folder of {args.photos} copies" if args.photos > 1 else "")
          + (f", {args.busy} busy process(es) spinning meanwhile" if args.busy else "")
          + (f", children in a cgroup with a CPU quota of {args.cpu_quota:g}" if args.cpu_quota else ""))
    marker = f"lowlight-benchmark-busy-{os.getpid()}"  # in each spinner's command line, to find them
    if args.busy:
        print(f"# busy processes: {marker}")
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass", marker]) for _ in range(args.busy)]
    try:
        with contextlib.ExitStack() as stack:
            if args.cpu_quota is not None:
                try:
                    args.quota_folder = stack.enter_context(quota_cgroup(args.cpu_quota))
                except OSError as failure:  # PermissionError included
                    raise SystemExit(f"--cpu-quota: {failure}") from None
            _time(args)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def _time(args: argparse.Namespace) -> None:
    compared = args.against is not None or bool(args.env_against)
    other_tree = args.against if args.against is not None else ROOT
    other = (str(args.against.resolve()) if args.against is not None else "this tree") + (
        f" with {' '.join(args.env_against)}" if args.env_against else "")
    if not compared:
        print("| photo | best s | median s | peak RSS (MB) |")
        print("|---|---|---|---|")
    else:
        print(f"# alternating this tree ({ROOT}) with {other}, round by round")
        print("| photo | checkout | best s | median s | each round (s) | peak RSS (MB) |")
        print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for mp in sorted(args.megapixels):
            photo = Path(tmp) / f"photo-{mp:g}mp.jpg"
            width, height = make_photo_elsewhere(photo, mp)
            label = f"{width}x{height} JPEG ({mp:g} MP)"
            if args.photos > 1:  # a folder of copies, enhanced by one command
                folder = Path(tmp) / f"folder-{mp:g}mp"
                folder.mkdir()
                data = photo.read_bytes()
                for i in range(args.photos):
                    (folder / f"{i:03d}.jpg").write_bytes(data)
                photo, label = folder, f"{args.photos} x {label}"
            if not compared:
                runs = [run_once(photo, Path(tmp) / "out", args) for _ in range(args.repeats)]
                times = [t for t, _ in runs]
                print(f"| {label} | {min(times):.2f} | {statistics.median(times):.2f} | {max(r for _, r in runs):.0f} |")
                continue
            rounds = [(run_once(photo, Path(tmp) / "out", args, other_tree, args.env_against), run_once(photo, Path(tmp) / "out", args))
                      for _ in range(args.repeats)]
            for name, index in ((other, 0), ("this tree", 1)):
                times = [r[index][0] for r in rounds]
                print(f"| {label} | {name} | {min(times):.2f} | {statistics.median(times):.2f} | "
                      f"{', '.join(f'{t:.2f}' for t in times)} | {max(r[index][1] for r in rounds):.0f} |")
            gains = [other[0] - this[0] for other, this in rounds]
            print(f"# {label}: this tree faster in {sum(g > 0 for g in gains)} of {len(gains)} rounds, "
                  f"by {', '.join(f'{g:+.2f}' for g in gains)} s (median {statistics.median(gains):+.2f} s)")


if __name__ == "__main__":
    main()
