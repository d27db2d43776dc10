"""Score two inference-time changes inside the default photo model against its lifted blacks
(session 33's trial for issue 15's "night scenes keep their blacks").

    python scripts/gain_map_trial.py                                 # the model as bundled and every candidate
    python scripts/gain_map_trial.py --candidates 1,1,0.5 1,1,1      # only these (k,a,t), as round 2 ran
    python scripts/gain_map_trial.py --test --chosen K A T           # and LOL-v1 test, bundled and the chosen one

The default model (``crnet-curve-dn``) lifts the blacks of dark photos: the 1st-percentile gray of
its outputs is 0.143 on the darkened photos and 0.186 on the noisy ones, against 0.082 in the
clean originals (README "Where the default stands"). Its curve stage has two parts that could put
that lift there, and neither was tried alone before (a later-bending curve, retrained, and a black
point after the model were: docs/crnet-training.md, docs/photo-quality.md):

- the **correction**, a bounded offset added to the photo before the curve where it brightens
  (``y = x + c (1 - 1/g)``): a positive offset in the shadows is multiplied by the gain there;
  candidates scale it by ``k`` in {0, 0.5};
- the **gain map**'s local variation: the body's per-pixel gain, larger in a photo's shadows than
  in its mid-tones (local tone mapping, as LOL's references have it); candidates pull each pixel's
  gain share ``sigmoid(logit)`` towards the photo's mean share by ``1 - a``, ``a`` in {0.75, 0.5}
  (``a = 1``: as trained);
- and both together (``k = 0``, ``a = 0.5``);
- round 2, added after round 1 had found the lift in the correction (outcome below): the
  correction kept, its positive part limited in the darkest pixels only (``c x / (t m)`` where a
  pixel's level ``x`` is below ``t`` times the photo's mean ``m``), ``t`` in {0.5, 1}, so that the
  gain multiplies no offset at black while the mid-tones keep theirs. Same rule.

Each candidate runs the bundled weights with the change inside the curve stage (no retraining),
whole-image (every photo here fits one tile, so the mean share is the photo's own).

The rule, written before any candidate was scored (2026-12-02): against the model as bundled, LOL
validation (the 22 pairs every bundled stage held out) may lose at most 0.05 dB PSNR and 0.002
SSIM; on every photo set of ``scripts/photo_eval.py`` NIQE may rise at most 0.05, PSNR may fall at
most 0.05 dB and SSIM at most 0.003 (lights, noise, examples, dim), as many well-exposed photos
must come back unchanged, none darker, no new clipping; and the black level must fall by at least
0.03 on both the lights and noise sets. The passing candidate with the lowest black level on the
noise set is taken; LOL-v1 test is scored once, after (``--test``). Outcome: docs/photo-quality.md.

Prints one line per candidate (and one for the model as bundled): about 50 s a candidate on two
cores of an AMD EPYC Zen 3 (round 1, five candidates: 313 s; round 2, two: 164 s).

Outcome (session 33): no candidate passes. The correction holds the lift: without it the blacks
are the clean photos' (0.080 / 0.095), limited at black (``t 0.5``) 0.086 / 0.104. But LOL
validation loses 2.7 dB without it (0.85 with half, 0.95 limited at black) and the photo sets'
SSIM falls by 0.014-0.036: the offset also keeps
the shadows on the flatter part of the curve, where noise is amplified less. Flattening the gain
map leaves the blacks where they were. The table: docs/photo-quality.md, "Where the lift lives".
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmarks.machine import describe_machine  # noqa: E402
from lowlight_cli.data.pairs import find_pairs, load_pairs  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.io import from_float, read_image, to_float  # noqa: E402
from lowlight_cli.models import create_model  # noqa: E402
from lowlight_cli.models.crnet import CRNet  # noqa: E402

import black_point_trial as trial  # noqa: E402
import photo_eval  # noqa: E402

# (correction scale k, gain-map locality a, toe t); (1, 1, 0) is the model as trained
CANDIDATES = [(0.0, 1.0, 0.0), (0.5, 1.0, 0.0), (1.0, 0.75, 0.0), (1.0, 0.5, 0.0), (0.0, 0.5, 0.0),
              (1.0, 1.0, 0.5), (1.0, 1.0, 1.0)]


def flatten_logits(logits: torch.Tensor, locality: float) -> torch.Tensor:
    """Logits whose gain share ``sigmoid`` is pulled towards its per-image, per-channel mean:
    ``sigmoid(out) = a sigmoid(logits) + (1 - a) mean``."""
    if locality == 1.0:
        return logits
    share = torch.sigmoid(logits)
    share = locality * share + (1.0 - locality) * share.mean(dim=(-2, -1), keepdim=True)
    return torch.logit(share.clamp(1e-6, 1.0 - 1e-6))


def toe_limited(correction: torch.Tensor, x: torch.Tensor, toe: float) -> torch.Tensor:
    """The correction's positive part scaled down where the photo is darker than ``toe`` times its
    mean (the mean over channels of each pixel against the image's mean): ``c x / (t m)`` there,
    so that the darkest pixels get no offset to be multiplied by the gain."""
    if toe == 0.0:
        return correction
    level = x.mean(dim=1, keepdim=True)
    limit = (level / (toe * level.mean(dim=(-2, -1), keepdim=True)).clamp(min=1e-6)).clamp(max=1.0)
    return torch.where(correction > 0, correction * limit, correction)


@contextlib.contextmanager
def curve_stage_changed(correction_scale: float, locality: float, toe: float = 0.0) -> Iterator[None]:
    """The model's full-resolution curve step (``CRNet._curve_in_place``, the inference form) with
    its correction scaled (and limited in the darkest pixels) and its gain map flattened, while
    the context is open."""
    original = CRNet._curve_in_place

    def changed(self, x, correction, logits):
        return original(self, x, toe_limited(correction * correction_scale, x, toe), flatten_logits(logits, locality))

    CRNet._curve_in_place = changed
    try:
        yield
    finally:
        CRNet._curve_in_place = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=photo_eval.SHARED, help="the shared data folder")
    parser.add_argument("--test", action="store_true", help="also score LOL-v1 test, bundled and with the chosen candidate")
    parser.add_argument("--chosen", type=float, nargs=3, default=None, metavar=("K", "A", "T"),
                        help="with --test: the candidate the rule chose")
    parser.add_argument("--candidates", nargs="+", default=None, metavar="K,A,T",
                        help="score only these candidates (default: all of CANDIDATES)")
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    enhancer = Enhancer(create_model("crnet-curve-dn", pretrained=True), InferenceConfig(device="cpu", precision="fp32", tile=0))
    run = lambda low: from_float(enhancer.enhance(to_float(low)), 8)  # noqa: E731
    items = photo_eval.build_sets(args.shared, only=set(trial.SETS))
    training = load_pairs(find_pairs(args.shared / "LOL", "train"))
    held = trial.validation_pairs(training)
    print(f"# crnet-curve-dn (bundled weights, fp32, whole image); {describe_machine()}\n")
    chosen = CANDIDATES if args.candidates is None else [tuple(float(v) for v in c.split(",")) for c in args.candidates]
    for k, a, t in [(1.0, 1.0, 0.0), *chosen]:
        with curve_stage_changed(k, a, t):
            sets = {name: [(n, low, ref, run(low)) for n, low, ref in rows] for name, rows in items.items()}
            val = [(low, ref, run(low)) for low, ref in held]
        label = "bundled" if (k, a, t) == (1.0, 1.0, 0.0) else f"k {k}, a {a}, t {t}"
        print(trial.describe(label, lambda low, out: out, val, sets), flush=True)
    if args.test:
        test = [(read_image(path.low).rgb, read_image(path.high).rgb) for path in find_pairs(args.shared / "LOL", "test")]
        for k, a, t in [(1.0, 1.0, 0.0), *([tuple(args.chosen)] if args.chosen else [])]:
            with curve_stage_changed(k, a, t):
                scores = [trial.pair_scores(run(low), ref) for low, ref in test]
            print(f"LOL-v1 test, k {k}, a {a}, t {t}: {np.mean([s[0] for s in scores]):.3f} / {np.mean([s[1] for s in scores]):.4f}")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
