"""How much the gray weights of GT-mean scaling move a score: lowlight's against LLFlow's and Retinexformer's.

    python scripts/gt_mean_conventions.py --pred OUTPUTS --ref ../shared/data/LOL/test/high
    python scripts/gt_mean_conventions.py --low ../shared/data/LOL/test/low --gamma 0.4 --ref ../shared/data/LOL/test/high

``lowlight evaluate --gt-mean`` scales each prediction by the ratio of the mean gray levels
``0.299 R + 0.587 G + 0.114 B`` of reference and prediction. LLFlow's and Retinexformer's test
scripts hand RGB arrays to OpenCV's ``COLOR_BGR2GRAY``, which weights the first channel 0.114 and
the third 0.299: R and B the other way round. Everything else is held equal here (the same
clipping to [0, 1], the same PSNR and SSIM, no rounding after scaling), so the difference printed is
the weights' alone: the mean PSNR / SSIM of both, and the largest per-image PSNR difference.
``--pred`` scores a folder of outputs; ``--low`` with ``--gamma`` makes predictions ``low ** gamma``
(a plain brightening, no model). Pairs by file stem, as ``lowlight evaluate`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight_cli.evaluation.pairing import pair_by_stem  # noqa: E402
from lowlight_cli.io import read_image, to_float  # noqa: E402
from lowlight_cli.metrics import create_metric  # noqa: E402

WEIGHTS = {"lowlight (BT.601 R, G, B)": np.array([0.299, 0.587, 0.114]),
           "LLFlow / Retinexformer (BGR2GRAY on RGB)": np.array([0.114, 0.587, 0.299])}


def scaled(prediction: np.ndarray, reference: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``prediction`` scaled to ``reference``'s mean gray level under ``weights``, clipped to [0, 1]."""
    return np.clip(prediction * (float((reference @ weights).mean()) / float((prediction @ weights).mean())), 0.0, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--pred", type=Path, help="folder of predictions")
    source.add_argument("--low", type=Path, help="folder of low-light inputs, brightened by --gamma")
    parser.add_argument("--gamma", type=float, default=0.4, help="with --low: predictions are low ** gamma")
    parser.add_argument("--ref", type=Path, required=True, help="folder of references")
    args = parser.parse_args()
    pairing = pair_by_stem(args.pred or args.low, args.ref)
    psnr, ssim = create_metric("psnr"), create_metric("ssim")
    tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None]  # noqa: E731
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in WEIGHTS}
    for pair in pairing.pairs:
        prediction = to_float(read_image(pair.prediction).rgb, np.float64)
        if args.low:
            prediction = prediction ** args.gamma
        reference = to_float(read_image(pair.reference).rgb, np.float64)
        for name, weights in WEIGHTS.items():
            out = tensor(scaled(prediction, reference, weights))
            scores[name].append((float(psnr(out, tensor(reference))[0]), float(ssim(out, tensor(reference))[0])))
    print(f"{len(pairing.pairs)} pairs; predictions: {args.pred or f'{args.low} ** {args.gamma}'}")
    for name, values in scores.items():
        print(f"{name}: PSNR {np.mean([v[0] for v in values]):.4f}, SSIM {np.mean([v[1] for v in values]):.5f}")
    first, second = scores.values()
    print(f"largest per-image PSNR difference: {max(abs(a[0] - b[0]) for a, b in zip(first, second)):.2f} dB")


if __name__ == "__main__":
    main()
