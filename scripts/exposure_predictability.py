"""How much of a model's LOL exposure error could global image statistics predict?

    python scripts/exposure_predictability.py                          # default model, LOL-v1 train pairs
    python scripts/exposure_predictability.py --model crnet-curve-dn --weights weights/crnet-curve-dn-lol

For every training pair with a reference, the model enhances the low image (whole image, CPU, one
thread) and the exposure error is ``log(mean(reference) / mean(output))``. Twelve global statistics
of the low image and the output (log mean, log percentiles, contrast, saturation, share of near-black
pixels, per-channel log means, the output's log mean) are regressed on it with ridge regression,
cross-validated over five folds that keep every reference's pairs together (LOL shares references
between exposures). A cross-validated R^2 near 0 says the error is not in those statistics: a global
exposure head reading them could not remove it.

``--noise`` adds six noise-level statistics of the low image (the median absolute deviation of its
gray image from a 3x3 median, over all pixels and over the darker half, each alone and relative to
the mean; the mean absolute Laplacian; the per-channel standard deviations): LOL's low images were
taken with different exposure times and gains, so their noise could tell how far a scene is from
its reference's exposure.

``--content squeezenet|espnetv2-voc|vgg19-normalised`` adds what a content-aware exposure head could
read: the frozen network's globally pooled features of the model's output (SqueezeNet's fire9
embedding, 512; ESPNetv2's share of each of the 21 VOC classes; VGG19's relu3_1 channel means, 256),
regressed together with the statistics, ridge strengths up to 10000. A cross-validated R^2 near 0
with them too says that, on these 484 pairs, the scene's content does not tell its reference's
exposure either (within what these networks see).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from machine import describe_machine  # noqa: E402

from lowlight_cli.data.pairs import find_pairs, load_pairs  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.models import create_model  # noqa: E402
from lowlight_cli.priors import create_prior  # noqa: E402

EPS = 1e-3
FEATURES = ("log mean", "log p50", "log p90", "log p99", "log p99.9", "contrast", "saturation", "near-black share",
            "log mean R", "log mean G", "log mean B", "output log mean")


def image_features(low: np.ndarray, out: np.ndarray) -> list[float]:
    """The statistics of :data:`FEATURES` for a low image and its output, both ``(H, W, 3)`` in [0, 1]."""
    gray = low.mean(axis=2)
    saturation = (low.max(axis=2) - low.min(axis=2)) / (low.max(axis=2) + EPS)
    percentiles = np.percentile(gray, [50, 90, 99, 99.9])
    return [float(np.log(gray.mean() + EPS)), *np.log(percentiles + EPS).tolist(), float(gray.std() / (gray.mean() + EPS)),
            float(saturation.mean()), float((gray < 0.02).mean()), *np.log(low.reshape(-1, 3).mean(0) + EPS).tolist(),
            float(np.log(out.mean() + EPS))]


NOISE_FEATURES = ("log noise", "log noise / mean", "log mean |Laplacian|", "log noise, darker half",
                  "log noise / mean, darker half", "mean log channel std")


def noise_features(low: np.ndarray) -> list[float]:
    """The statistics of :data:`NOISE_FEATURES` of a low image ``(H, W, 3)`` in [0, 1]."""
    gray = low.mean(axis=2).astype(np.float32)
    median = cv2.medianBlur(np.round(gray * 255).astype(np.uint8), 3).astype(np.float32) / 255
    residual = np.abs(gray - median)
    dark = gray < np.median(gray)
    noise = float(np.median(residual)) / 0.6745 + 1e-4
    noise_dark = float(np.median(residual[dark])) / 0.6745 + 1e-4 if dark.any() else noise
    laplacian = float(np.abs(cv2.Laplacian(gray, cv2.CV_32F)).mean())
    return [np.log(noise), np.log(noise / (gray.mean() + EPS)), np.log(laplacian + 1e-5), np.log(noise_dark),
            np.log(noise_dark / (gray[dark].mean() + EPS)) if dark.any() else np.log(noise / (gray.mean() + EPS)),
            float(np.log(low.reshape(-1, 3).std(0) + 1e-4).mean())]


@torch.no_grad()
def content_features(network, name: str, image: np.ndarray) -> list[float]:
    """Globally pooled features of ``image`` ``(H, W, 3)`` in [0, 1] by a frozen network (see the module doc)."""
    x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].float()
    if name == "squeezenet":
        return network.embedding(x)[0].tolist()
    if name == "espnetv2-voc":
        labels = network.logits(x).argmax(dim=1)
        return torch.bincount(labels.flatten(), minlength=21).float().div(labels.numel()).tolist()
    return network.features(x, ("relu3_1",))["relu3_1"].mean(dim=(2, 3))[0].tolist()


def cross_validated_residuals(x: np.ndarray, y: np.ndarray, groups: np.ndarray, *, ridge: float, folds: int = 5,
                              seed: int = 0) -> np.ndarray:
    """Out-of-fold residuals of a ridge regression of ``y`` on standardised ``x``; rows sharing a group
    are always in the same fold."""
    names = np.unique(groups)
    fold_of = dict(zip(names, np.random.default_rng(seed).integers(0, folds, len(names))))
    fold = np.array([fold_of[g] for g in groups])
    residuals = np.empty_like(y)
    for k in range(folds):
        train, test = fold != k, fold == k
        if not test.any() or not train.any():
            continue
        mean, std = x[train].mean(0), x[train].std(0) + 1e-9
        design = np.c_[np.ones(train.sum()), (x[train] - mean) / std]
        weights = np.linalg.solve(design.T @ design + ridge * np.eye(design.shape[1]), design.T @ y[train])
        residuals[test] = y[test] - np.c_[np.ones(test.sum()), (x[test] - mean) / std] @ weights
    return residuals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="crnet-curve-dn")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parent.parent.parent / "shared/data/LOL")
    parser.add_argument("--content", choices=("squeezenet", "espnetv2-voc", "vgg19-normalised"), default=None,
                        help="add a frozen network's pooled features of the output (see above)")
    parser.add_argument("--noise", action="store_true", help="add noise-level statistics of the low image (see above)")
    args = parser.parse_args(argv)
    if not (args.data / "train").is_dir():
        parser.error(f"{args.data}/train not found (pass --data LOL_ROOT)")
    torch.set_num_threads(1)
    enhancer = Enhancer(create_model(args.model, weights=args.weights), InferenceConfig(device="cpu", tile=0))
    network = create_prior(args.content) if args.content else None
    rows, errors, groups = [], [], []
    for pair in load_pairs(find_pairs(args.data, "train")):
        if pair.high is None:
            continue
        low, high = pair.low.astype(np.float32) / 255, pair.high.astype(np.float32) / 255
        out = enhancer.enhance(low)
        rows.append(image_features(low, out) + (noise_features(low) if args.noise else [])
                    + (content_features(network, args.content, out) if network else []))
        errors.append(float(np.log(high.mean() / out.mean())))
        groups.append(hashlib.sha1(pair.high.tobytes()).hexdigest())
    x, y, g = np.array(rows), np.array(errors), np.array(groups)
    print(f"# {args.model} ({args.weights or 'default weights'}) on {len(y)} LOL training pairs "
          f"({len(set(groups))} distinct references); {describe_machine()}")
    print(f"exposure error log(reference mean / output mean): mean {y.mean():+.3f}, std {y.std():.3f}")
    extra = len(FEATURES) + (len(NOISE_FEATURES) if args.noise else 0)
    if args.noise:
        print("with the noise-level statistics of the low image: correlation with the error "
              + ", ".join(f"{name} {np.corrcoef(x[:, len(FEATURES) + j], y)[0, 1]:+.2f}" for j, name in enumerate(NOISE_FEATURES)))
    if network is not None:
        print(f"with {x.shape[1] - extra} pooled features of {args.content} on the output")
    for ridge in ((0.1, 1.0, 10.0) if network is None else (10.0, 100.0, 1000.0, 10000.0)):
        residuals = cross_validated_residuals(x, y, g, ridge=ridge)
        print(f"ridge {ridge:g}: cross-validated residual std {residuals.std():.3f}, R^2 {1 - residuals.var() / y.var():+.2f}")
    print("correlation of each statistic with the error: "
          + ", ".join(f"{name} {np.corrcoef(x[:, j], y)[0, 1]:+.2f}" for j, name in enumerate(FEATURES)))
    if network is not None:
        content = np.array([abs(np.corrcoef(x[:, j], y)[0, 1]) if x[:, j].std() > 0 else 0.0
                            for j in range(extra, x.shape[1])])
        print(f"largest |correlation| of one {args.content} feature with the error: {content.max():.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
