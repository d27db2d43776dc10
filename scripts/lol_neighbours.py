"""How close is each LOL-v1 test scene to a training scene? A lookup baseline and what it means.

    python scripts/lol_neighbours.py                                   # default model
    python scripts/lol_neighbours.py --model crnet-curve-dn --weights weights/crnet-curve-dn-lol
    python scripts/lol_neighbours.py --validation runs/crnet-curve-dn-lol-stage7   # a run's held-out pairs

LOL numbers its photos by capture, and neighbouring numbers are often the same room a moment
later. For every test pair this prints:

- **lookup**: the training pair whose *low* image looks most like the test low image (an
  exposure-invariant layout: the log of a 32x24 thumbnail minus its mean, cosine similarity), and
  its *reference* scored as if it were the enhanced test image. Only the test input and the
  training set are used: it is an enhancer that memorises, with no network at all.
- **by number**: the training reference numbered within 3 of the test image that is closest to the
  test reference (an oracle: it looks at the test reference, to show how near the nearest is).
- the model's own output, and the same output scaled to the lookup reference's mean gray (GT-mean
  scaling with the recalled reference in place of the true one: a diagnostic of how much of the
  model's error is the exposure a memorising model would recall; not an enhancement mode).

``--validation RUN`` asks the same of a training run's validation pairs (its ``split.json``)
against the pairs it trained on, instead of the test set against the whole training set: the split
holds out whole groups of pairs that share a reference, so its validation scenes are further from
what the run trained on.

PSNR / SSIM by ``lowlight evaluate``'s scorer under its default protocol (RGB, no GT-mean).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from lol_matching import layout, nearest  # noqa: E402
from machine import describe_machine  # noqa: E402

from lowlight_cli.data.pairs import find_pairs, load_pairs  # noqa: E402
from lowlight_cli.evaluation import Protocol, Scorer  # noqa: E402
from lowlight_cli.evaluation.scoring import gt_mean_scale  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.io import from_float, to_float  # noqa: E402
from lowlight_cli.models import create_model  # noqa: E402

SCORER = Scorer(Protocol(metrics=("psnr", "ssim")))


def scores(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """PSNR / SSIM of two ``(H, W, 3)`` images (uint8, or float in [0, 1]), as ``lowlight evaluate``
    scores them."""
    values = SCORER.score("", to_float(out) if out.dtype.kind == "u" else out, to_float(ref)).values
    return values["psnr"], values["ssim"]


@dataclass
class Row:
    name: str
    lookup: str
    similarity: float
    lookup_scores: tuple[float, float]
    by_number: str
    by_number_psnr: float
    model: tuple[float, float]
    model_rescaled: tuple[float, float]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared/data/LOL")
    parser.add_argument("--model", default="crnet-curve-dn")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--validation", type=Path, default=None, metavar="RUN",
                        help="a training run folder: its validation pairs against its training pairs")
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir() or not (args.data / "test").is_dir():
        parser.error(f"{args.data}/train and /test not found (pass --data LOL_ROOT)")
    torch.set_num_threads(1)
    train = [p for p in load_pairs(find_pairs(args.data, "train")) if p.high is not None]
    if args.validation is None:
        queries, what = list(load_pairs(find_pairs(args.data, "test"))), "LOL-v1 test"
    else:
        split_file = args.validation / "split.json"
        if not split_file.is_file():
            parser.error(f"{split_file} not found (--validation takes a training run folder)")
        split = json.loads(split_file.read_text())
        held_out, trained = set(split["validation"]), set(split["labeled"])
        queries = [p for p in train if p.name in held_out]
        train = [p for p in train if p.name in trained]
        what = f"validation of {args.validation}"
    library = np.stack([layout(p.low) for p in train])
    by_name = {p.name: p for p in train}
    enhancer = Enhancer(create_model(args.model, weights=args.weights), InferenceConfig(device="cpu", tile=0))
    rows = []
    for pair in queries:
        index, similarity = nearest(layout(pair.low), library)
        recalled = train[index].high
        candidates = [by_name[str(int(pair.name) + d)] for d in (-3, -2, -1, 1, 2, 3)
                      if pair.name.isdigit() and str(int(pair.name) + d) in by_name]
        closest = max(candidates, key=lambda p: scores(p.high, pair.high)[0], default=None)
        out = from_float(enhancer.enhance(to_float(pair.low)), 8)  # as written to disk
        rescaled = from_float(gt_mean_scale(to_float(out), to_float(recalled)), 8)
        rows.append(Row(pair.name, train[index].name, similarity, scores(recalled, pair.high),
                        closest.name if closest else "-", scores(closest.high, pair.high)[0] if closest else float("nan"),
                        scores(out, pair.high), scores(rescaled, pair.high)))
    print(f"# {what} ({len(rows)} pairs) against {len(train)} training pairs; model {args.model} "
          f"({args.weights or 'default weights'}); {describe_machine()}")
    print("| test | lookup: training pair (similarity) | lookup reference PSNR / SSIM | closest training reference by number (PSNR) "
          "| model PSNR / SSIM | model at the lookup's mean gray |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.name} | {r.lookup} ({r.similarity:.3f}) | {r.lookup_scores[0]:.2f} / {r.lookup_scores[1]:.4f} "
              f"| {r.by_number} ({r.by_number_psnr:.2f}) | {r.model[0]:.2f} / {r.model[1]:.4f} "
              f"| {r.model_rescaled[0]:.2f} / {r.model_rescaled[1]:.4f} |")
    mean = lambda values: float(np.nanmean(values))  # noqa: E731
    print(f"| mean | | {mean([r.lookup_scores[0] for r in rows]):.2f} / {mean([r.lookup_scores[1] for r in rows]):.4f} "
          f"| ({mean([r.by_number_psnr for r in rows]):.2f}) | {mean([r.model[0] for r in rows]):.2f} / "
          f"{mean([r.model[1] for r in rows]):.4f} | {mean([r.model_rescaled[0] for r in rows]):.2f} / "
          f"{mean([r.model_rescaled[1] for r in rows]):.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
