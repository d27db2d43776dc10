"""Score a wider guided filter in the default photo model (session 39's trial for issue 15's noisy
night scenes).

    python scripts/chroma_radius_trial.py                     # the model as bundled and every candidate
    python scripts/chroma_radius_trial.py --candidates 3      # only these radii
    python scripts/chroma_radius_trial.py --test --chosen R   # and LOL-v1 test, bundled and radius R

The default model (``crnet-curve-dn``) ends with a guided filter of its output's chroma and luma on
its luma (``lowlight_cli/models/chroma.py``), radius 2 (5x5 windows), whose ``eps`` follows the
noise each pixel carries (session 37, ``chroma_noise``). Radius 2 was chosen in session 21, before
the noise-adaptive ``eps``, on LOL validation pairs. On the darkest noisy photos (the lights set's
2% exposures) the output keeps colour blotches a few pixels across: wider than a 5x5 window, so the
filter cannot average them, however large its ``eps``. Candidates: radius 3 and 4, everything else
as bundled (the weights do not change: the filter has none). Whole image, fp32, the model's own
colour and blacks (``evaluate``'s protocol).

The rule, written before any candidate was scored (2026-12-03, session 39): against the model as
bundled, SSIM rises by at least 0.01 on both the noise set and the examples; PSNR falls at most
0.05 dB and SSIM at most 0.003 on lights, noise, examples and dim; NIQE rises at most 0.05 on every
set (dark included); as many well-exposed photos come back unchanged, none darker, no new clipping;
LOL validation (the 22 pairs every bundled stage held out) loses at most 0.05 dB and 0.002 SSIM.
The passing candidate with the highest SSIM on the noise set is taken if 2x crops of the examples
and of a LOL-v1 test photo show no painted texture by eye and the whole command on a 12 MP photo
takes at most 0.2 s longer (``benchmarks/enhance_command.py --against``); LOL-v1 test is scored
once, after. None passing: nothing changes.

Outcome (session 39, Intel Xeon, one thread, 146 s): neither passed. Radius 3 and 4 lowered SSIM
on every set (noise 0.639 -> 0.636 and 0.631, examples 0.531 -> 0.529 and 0.524) and raised NIQE on
every set by 0.1 to 0.9 (noise 5.90 -> 6.58 and 6.84; the luma, smoothed with the same window,
loses texture); radius 4 also changed one well-exposed photo. Radius 2 stays.
"""

from __future__ import annotations

import argparse
import sys
import time
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

CANDIDATES = [3, 4]


def with_radius(radius: int) -> CRNet:
    """The bundled default's weights with its guided filter at ``radius``."""
    bundled = create_model("crnet-curve-dn", pretrained=True)
    model = create_model("crnet-curve-dn", pretrained=False, **{**bundled.config, "chroma_radius": radius})
    model.load_state_dict(bundled.state_dict())
    return model.eval()


def enhancer_for(radius: int):
    """``uint8 RGB -> uint8 RGB`` through the model with its filter at ``radius`` (whole image, fp32)."""
    enhancer = Enhancer(with_radius(radius), InferenceConfig(device="cpu", precision="fp32", tile=0))
    return lambda low: from_float(enhancer.enhance(to_float(low)), 8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path, default=photo_eval.SHARED, help="the shared data folder")
    parser.add_argument("--candidates", nargs="+", type=int, default=CANDIDATES, metavar="R")
    parser.add_argument("--test", action="store_true", help="also score LOL-v1 test, bundled and with --chosen")
    parser.add_argument("--chosen", type=int, default=None, metavar="R")
    args = parser.parse_args()
    torch.manual_seed(0)
    start = time.perf_counter()
    bundled_radius = create_model("crnet-curve-dn", pretrained=True).config["chroma_radius"]
    items = photo_eval.build_sets(args.shared, only=set(trial.SETS))
    held = trial.validation_pairs(load_pairs(find_pairs(args.shared / "LOL", "train")))
    print(f"# crnet-curve-dn (bundled weights; fp32, whole image); {describe_machine()}\n")
    for radius in [bundled_radius, *args.candidates]:
        run = enhancer_for(radius)
        sets = {name: [(n, low, ref, run(low)) for n, low, ref in rows] for name, rows in items.items()}
        val = [(low, ref, run(low)) for low, ref in held]
        label = f"radius {radius}" + (" (bundled)" if radius == bundled_radius else "")
        print(trial.describe(label, lambda low, out: out, val, sets), flush=True)
    if args.test:
        test = [(read_image(p.low).rgb, read_image(p.high).rgb) for p in find_pairs(args.shared / "LOL", "test")]
        for radius in [bundled_radius, *([args.chosen] if args.chosen else [])]:
            run = enhancer_for(radius)
            scores = [trial.pair_scores(run(low), ref) for low, ref in test]
            print(f"LOL-v1 test, radius {radius}: {np.mean([s[0] for s in scores]):.3f} / {np.mean([s[1] for s in scores]):.4f}")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
