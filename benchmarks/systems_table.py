"""The README's systems table: every published system the toolkit implements, measured in one run.

    python benchmarks/systems_table.py                      # all bundled systems, LOL-v1 test from ../shared
    python benchmarks/systems_table.py --size 900 1200 --repeats 5

One row per system and trained variant (`weights/NAME`; a system whose weights are not bundled yet
gets its size and speed, measured with random weights, and no scores): system, paper, parameters, multiply-adds per pixel (measured
with forward hooks at 256x256), CPU speed (megapixels per second of whole-image `Enhancer`
inference, fp32, on a seeded random image of ``--size``, best of ``--repeats`` after a warm-up, with
the threads torch has), what the weights were trained on (from their provenance), and the LOL-v1
test set scored now under the default protocol (PSNR / SSIM in RGB, no GT-mean; NIQE on the
enhanced test low images, Y channel). The first row scores the test low images themselves.

Prints the machine line and a markdown table; needs ../shared/data/LOL (or --data).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.errors import MetricError  # noqa: E402
from lowlight_cli.evaluation import score_test_set  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.cli.heap import keep_freed_memory  # noqa: E402
from lowlight_cli.models import create_model, load_checkpoint  # noqa: E402
from lowlight_cli.models.complexity import measure_complexity  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# (system, paper, bundled weights, architecture): the toolkit's five published systems, one row per
# trained variant; a row whose weights are not bundled yet is measured with random weights (size,
# speed) and says so in the score columns
SYSTEMS = (
    ("CRNet", "Lee et al., CVPRW 2023", "crnet-s-lol", "crnet-s"),
    ("CRNet + MCMT, 10% labels", "Lee et al., CVPRW 2023", "crnet-s-lol-semi10", "crnet-s"),
    ("SCL-LLE", "Liang et al., AAAI 2022", "scl-lle-lol", "scl-lle"),
    ("PIE", "Liang et al., IJCV 2024", "pie-lol", "pie"),
    ("Semi-LLIE, 10% labels", "Li et al., arXiv 2409.16604", "semi-llie-s-lol-semi10", "semi-llie-s"),
    ("Semi-LLIE backbone, same labels, supervised only", "Li et al., arXiv 2409.16604", "semi-llie-s-lol-sup10", "semi-llie-s"),
    ("SKF (on CRNet-s)", "Wu et al., CVPR 2023", "crnet-s-skf-lol", "crnet-s-skf"),
)


def trained_on(provenance: dict) -> str:
    """What the weights saw, in a few words, from their provenance."""
    method = provenance.get("method") or ("mcmt" if provenance.get("semi") else "crnet")
    training = provenance.get("training", {})
    if method in ("scl-lle", "pie"):
        return "LOL-v1 low images, unpaired"
    labeled = training.get("labeled", "?")
    unlabeled = training.get("unlabeled", 0)
    unlabeled_batch = provenance.get("train_config", {}).get("data", {}).get("unlabeled_batch_size", 1)
    if provenance.get("semi") and unlabeled_batch:  # a semi method run with its unlabeled stream off is supervised
        return f"LOL-v1, {labeled} pairs + {unlabeled} unlabeled"
    return f"LOL-v1, {labeled} pairs"


def megapixels_per_second(enhancer: Enhancer, image: np.ndarray, repeats: int) -> float:
    enhancer.enhance(image)  # warm-up: allocator, one-time kernels
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        enhancer.enhance(image)
        best = min(best, time.perf_counter() - start)
    return image.shape[0] * image.shape[1] / 1e6 / best


def lol_scores(data: Path, enhancer: Enhancer | None) -> dict[str, float]:
    try:
        return score_test_set(data / "test" / "low", data / "test" / "high", enhancer).means
    except MetricError as exc:
        raise SystemExit(str(exc)) from exc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "LOL")
    parser.add_argument("--size", type=int, nargs=2, default=(900, 1200), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not (args.data / "test" / "low").is_dir():
        raise SystemExit(f"no LOL-v1 test set under {args.data} (pass --data)")

    keep_freed_memory()  # as the CLI does (glibc keeps freed memory: no re-mapping of temporaries)
    image = np.random.default_rng(0).random((*args.size, 3), dtype=np.float32) * 0.3
    print(describe_machine())
    print(f"speed: whole-image inference of a {args.size[0]}x{args.size[1]} image, fp32, best of {args.repeats}\n")
    print("| system | paper | weights | params | MACs/pixel | CPU MP/s | trained on | LOL test PSNR / SSIM | NIQE |")
    print("|---|---|---|---|---|---|---|---|---|")
    low = lol_scores(args.data, None)
    print(f"| (the input) | - | - | - | - | - | - | {low['psnr']:.2f} / {low['ssim']:.4f} | {low['niqe']:.2f} |")
    for system, paper, name, architecture in SYSTEMS:
        folder = ROOT / "weights" / name
        trained = (folder / "config.json").is_file()
        model = load_checkpoint(folder) if trained else create_model(architecture, pretrained=False)
        cx = measure_complexity(model, size=256)
        enhancer = Enhancer(model, InferenceConfig(device="cpu", precision="fp32", tile=0))
        speed = megapixels_per_second(enhancer, image, args.repeats)
        if trained:
            provenance = json.loads((folder / "config.json").read_text())["provenance"]
            lol = lol_scores(args.data, enhancer)
            scores = f"{trained_on(provenance)} | {lol['psnr']:.2f} / {lol['ssim']:.4f} | {lol['niqe']:.2f}"
            weights = f"`{name}` (`{architecture}`)"
        else:
            scores = "not trained yet | - | -"
            weights = f"none yet (`{architecture}`, speed with random weights)"
        print(f"| {system} | {paper} | {weights} | {cx.parameters:,} | {round(cx.macs_per_pixel):,} | {speed:.2f} | {scores} |", flush=True)


if __name__ == "__main__":
    main()
