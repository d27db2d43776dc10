"""Reduced-resolution curve estimation (DCE-Net ``curve_scale``): speed-up and quality cost, CPU.

    OMP_NUM_THREADS=1 python benchmarks/curve_speed.py                 # scales 1 2 4 8, three photos
    python benchmarks/curve_speed.py --size 1200 1600 --fit-steps 0     # bigger images, random weights only
    python benchmarks/curve_speed.py --weights weights/scl-lle-lol weights/pie-lol   # and trained weights

The photos are scikit-image samples resized to ``--size`` and darkened with
``lowlight_cli.data.synthetic`` (seeded). Speed: megapixels per second of whole-image inference,
best of ``--repeats`` runs after a warm-up, of the model's forward alone and of the Enhancer
(fp32, no tiling; adds the array conversions and output checks); it does not depend on the weights.
Quality: PSNR of each reduced-resolution output against the full-resolution output of the same
weights, over the whole image and away from the border (``8 x scale`` px), where zero padding acts
at a coarser scale. Two seeded sets of weights:

- ``random``: He-initialised x1.5, last bias -1: strongly brightening curves that follow pixel
  noise (no smoothness), a pessimistic case;
- ``fitted``: the authors' initialisation after ``--fit-steps`` Adam steps of Zero-DCE's
  zero-reference losses (200 TV + 5 colour + 10 exposure) on crops of two other sample photos:
  smooth curves like a trained model's (not a trained model: no data set, half a minute of fitting);
- each ``--weights DIR``: a trained checkpoint (``weights/scl-lle-lol``, ``weights/pie-lol``).

The cost on LOL-v1 test itself: ``lowlight evaluate --model scl-lle --data ../shared/data/LOL/test
--curve-scale 4`` (README).

Prints the machine line and a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.data.synthetic import DarkeningModel, darken, sample_photo  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.cli.heap import keep_freed_memory  # noqa: E402
from lowlight_cli.losses import colour_constancy_loss, exposure_control_loss, illumination_smoothness_loss  # noqa: E402
from lowlight_cli.models import create_model, load_checkpoint  # noqa: E402
from lowlight_cli.models.dce import DCENet  # noqa: E402

EVAL_PHOTOS = ("astronaut", "chelsea", "coffee")
FIT_PHOTOS = ("rocket", "immunohistochemistry")


def dark_photo(name: str, height: int, width: int, seed: int, exposure: float = 0.05) -> np.ndarray:
    """A sample photo resized to ``height x width`` and darkened: ``(H, W, 3)`` float32 in [0, 1]."""
    photo = cv2.resize(sample_photo(name), (width, height), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return darken(photo, DarkeningModel(exposure=exposure), np.random.default_rng(seed))


def random_weights(seed: int) -> DCENet:
    """Seeded random DCE-Net with strong, noise-following curves."""
    model = create_model("scl-lle", pretrained=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.convolutions():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 1.5 * (2 / conv.weight[0].numel()) ** 0.5)
            conv.bias.zero_()
        model.conv7.bias.fill_(-1.0)
    return model


def fitted_weights(seed: int, steps: int, crop: int = 96, batch: int = 4) -> tuple[DCENet, float]:
    """The authors' initialisation fitted for ``steps`` steps with Zero-DCE's losses; returns it and the seconds spent."""
    torch.manual_seed(seed)
    model = create_model("scl-lle", pretrained=False).train()
    rng = np.random.default_rng(seed)
    pool = [cv2.resize(sample_photo(n), (384, 384), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0 for n in FIT_PHOTOS]
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    start = time.perf_counter()
    for _ in range(steps):
        crops = []
        for _ in range(batch):
            photo = pool[rng.integers(len(pool))]
            top, left = rng.integers(0, 384 - crop, size=2)
            crops.append(darken(photo[top : top + crop, left : left + crop], DarkeningModel(exposure=float(rng.uniform(0.02, 0.2))), rng))
        x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
        out = model.forward_train(x)
        loss = (
            200 * illumination_smoothness_loss(out["curves"])
            + 5 * colour_constancy_loss(out["output"])
            + 10 * exposure_control_loss(out["output"])
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval(), time.perf_counter() - start


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def decibels(value: float) -> str:
    return "exact" if not np.isfinite(value) else f"{value:.1f}"


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls (the caller has run it once already: the warm-up)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="*", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--photos", nargs="*", default=list(EVAL_PHOTOS))
    parser.add_argument("--size", nargs=2, type=int, default=[768, 1024], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--fit-steps", type=int, default=150, help="0: random weights only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--weights", nargs="*", default=[], metavar="DIR",
                        help="trained DCE-Net checkpoints (e.g. weights/scl-lle-lol) whose quality cost to measure too")
    args = parser.parse_args()
    if 1 not in args.scales:
        parser.error("--scales must include 1 (the reference)")

    keep_freed_memory()  # as the CLI does: large temporaries are not re-mapped on every pass
    height, width = args.size
    images = {name: dark_photo(name, height, width, seed=args.seed + i) for i, name in enumerate(args.photos)}
    weights = {"random": random_weights(args.seed)}
    fit_note = ""
    if args.fit_steps:
        weights["fitted"], seconds = fitted_weights(args.seed, args.fit_steps)
        fit_note = f"; fitted: {args.fit_steps} steps in {seconds:.0f} s"
    for folder in args.weights:
        weights[Path(folder).name] = load_checkpoint(folder).eval()

    config = InferenceConfig(device="cpu", precision="fp32", tile=0)
    outputs: dict[tuple[str, int, str], np.ndarray] = {}
    forward_rates: dict[int, list[float]] = {s: [] for s in args.scales}
    enhance_rates: dict[int, list[float]] = {s: [] for s in args.scales}
    megapixels = height * width / 1e6
    for label, model in weights.items():
        for scale in sorted(args.scales):
            enhancer = Enhancer(model.set_curve_scale(scale), config)
            for name, image in images.items():
                outputs[label, scale, name] = enhancer.enhance(image)
                if label != "random":  # speed does not depend on the weights
                    continue
                enhance_rates[scale].append(megapixels / best_seconds(partial(enhancer.enhance, image), args.repeats))
                batch = torch.from_numpy(image).permute(2, 0, 1)[None].contiguous()
                with torch.inference_mode():
                    model(batch)
                    forward_rates[scale].append(megapixels / best_seconds(partial(model, batch), args.repeats))
        model.set_curve_scale(1)

    print(f"machine: {describe_machine()}")
    print(f"images: {', '.join(args.photos)} at {width}x{height}, darkened (exposure 0.05); whole image, fp32{fit_note}")
    print()
    header = "| curve_scale | forward MP/s | speed-up | enhance MP/s | speed-up |"
    for label in weights:
        header += f" PSNR {label} (dB) | PSNR {label}, interior (dB) |"
    print(header)
    print("|" + "---|" * (5 + 2 * len(weights)))
    base_forward, base_enhance = float(np.mean(forward_rates[1])), float(np.mean(enhance_rates[1]))
    for scale in sorted(args.scales):
        forward, enhance = float(np.mean(forward_rates[scale])), float(np.mean(enhance_rates[scale]))
        row = f"| {scale} | {forward:.2f} | {forward / base_forward:.1f}x | {enhance:.2f} | {enhance / base_enhance:.1f}x |"
        for label in weights:
            whole, inner = [], []
            band = 8 * scale
            for name in images:
                a, b = outputs[label, scale, name], outputs[label, 1, name]
                whole.append(psnr(a, b))
                inner.append(psnr(a[band:-band, band:-band], b[band:-band, band:-band]))
            row += f" {decibels(float(np.mean(whole)))} | {decibels(float(np.mean(inner)))} |"
        print(row)
    gains = {label: float(np.mean([outputs[label, 1, n].mean() / images[n].mean() for n in images])) for label in weights}
    print()
    print("mean brightness gain at scale 1: " + ", ".join(f"{k} x{v:.1f}" for k, v in gains.items()))


if __name__ == "__main__":
    main()
