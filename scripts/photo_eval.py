"""Score an enhancer on photos it never trained on, as issue 15 asks (README "Photo quality").

    python scripts/photo_eval.py --model crnet-curve-dn         # bundled weights (the default photo model)
    python scripts/photo_eval.py --model crnet-s --weights weights/crnet-s-lol --save out/
    python scripts/photo_eval.py --model gamma --json gamma.json
    python scripts/photo_eval.py --curve-scale 2 --upscale 2 --sets lights bright noise
    python scripts/photo_eval.py --sets lights --noise-free     # darkened without sensor noise
    python scripts/photo_eval.py --colour input                 # lowlight enhance --colour input
    python scripts/photo_eval.py --colour input --blacks keep   # lowlight enhance's defaults for crnet-curve-dn

Five sets (and one more on request), built here from ``../shared/data`` and scikit-image's sample photos (nothing trained
on them; LOL's *test* split only):

- ``dark``: the 15 real low-light photos of the LOL-v1 test set.
- ``lights``: 20 well-exposed photos (the 15 LOL test references, 4 scikit-image photos and
  ``calibration/baboon.png``) darkened through the camera model of ``lowlight_cli.data.synthetic``
  (exposure 0.02, 0.05, 0.1 in turn), with their bright parts (gray above 0.8) kept bright, as
  lamps and windows stay bright in a night photo.
- ``bright``: those 20 well-exposed photos as they are: an enhancer should pass them nearly
  unchanged (PSNR of the output against the input).
- ``examples``: the README's bundled examples (``examples/*.png``) against the clean photos they
  were made from (``examples/make_examples.py``).
- ``noise``: the 20 photos darkened without lights at exposures 0.015, 0.03 and 0.06 (60 images):
  PSNR / SSIM of the input and of the output against the clean original.
- ``dim`` (not in the default run): the 20 photos mildly under-exposed (exposure 0.25 and 0.5, 40
  images, mean gray about 0.25-0.33): the regime of issue 15's held-out set A (inputs at mean
  gray 0.33), where an enhancer should still lower NIQE rather than pass the photo as it is.

Measures per set: NIQE of input and output, mean gray of both, how many outputs are darker than
their input by more than 0.02, the share of pixels the output clips that the input did not
(``evaluation.photo_checks``), the 1st-percentile gray (black level; "clean" is the clean
photo's, where a set has one). Prints a markdown table and the machine; ``--json`` writes
everything. ``--noise-free`` darkens the ``lights`` and ``noise`` sets without shot or read noise
(exposure only): what an enhancer does to the tones, apart from what noise does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.machine import describe_machine  # noqa: E402
from lowlight_cli.data.synthetic import DarkeningModel, darken, sample_photo  # noqa: E402
from lowlight_cli.evaluation import photo_checks as checks  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.io import from_float, read_image, to_float  # noqa: E402
from lowlight_cli.metrics import niqe, psnr, ssim  # noqa: E402
from lowlight_cli.models import create_model  # noqa: E402
from examples.make_examples import EXAMPLES, SIZE as EXAMPLE_SIZE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SAMPLES = ("astronaut", "chelsea", "coffee", "rocket")
LIGHT_EXPOSURES = (0.02, 0.05, 0.1)
NOISE_EXPOSURES = (0.015, 0.03, 0.06)
DIM_EXPOSURES = (0.25, 0.5)


def _u8(path: Path) -> np.ndarray:
    return from_float(to_float(read_image(path).rgb), 8)


def well_exposed(shared: Path) -> dict[str, np.ndarray]:
    """The 20 clean photos, uint8 RGB, by name."""
    photos = {f"lol-{p.stem}": _u8(p) for p in sorted((shared / "LOL" / "test" / "high").glob("*.png"))}
    for name in SAMPLES:
        photos[name] = sample_photo(name)
    photos["baboon"] = _u8(shared / "calibration" / "baboon.png")
    return photos


def keep_lights(clean: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """``dark`` with the parts that are bright in ``clean`` (gray 0.8 -> 0.95: fade in) put back."""
    gray = (clean.astype(np.float64) / 255.0) @ np.array([0.299, 0.587, 0.114])
    mask = np.clip((gray - 0.8) / 0.15, 0.0, 1.0)[..., None]
    mask = cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None] if mask.ndim == 3 else mask
    return mask * (clean / 255.0) + (1.0 - mask) * dark


def build_sets(shared: Path, upscale: int = 1, noise_free: bool = False,
               only: set[str] | None = None) -> dict[str, list[tuple[str, np.ndarray, np.ndarray | None]]]:
    """``{set: [(name, input uint8, clean reference uint8 or None)]}``; ``upscale`` > 1 enlarges
    the clean photos (bicubic) before they are darkened, as a proxy for high-resolution photos
    (detail spread over several pixels, sensor noise still per pixel); ``noise_free`` darkens
    without shot and read noise. ``only``: the darkened sets to make (the others come back
    empty); each photo's noise has its own seed, so a set is the same whichever others are made."""
    wanted = only if only is not None else {"lights", "noise", "dim"}
    sensor = dict(full_well=1e12, read_noise=0.0) if noise_free else {}
    clean = well_exposed(shared)
    if upscale > 1:
        clean = {name: cv2.resize(photo, None, fx=upscale, fy=upscale, interpolation=cv2.INTER_CUBIC)
                 for name, photo in clean.items()}
    dark = [(p.stem, _u8(p), None) for p in sorted((shared / "LOL" / "test" / "low").glob("*.png"))]
    lights, noise, dim = [], [], []
    for i, (name, photo) in enumerate(clean.items()):
        rgb = photo.astype(np.float32) / 255.0
        exposure = LIGHT_EXPOSURES[i % len(LIGHT_EXPOSURES)]
        if "lights" in wanted:
            lit = keep_lights(photo, darken(rgb, DarkeningModel(exposure=exposure, **sensor), np.random.default_rng(i)))
            lights.append((f"{name}-e{exposure}", from_float(lit.astype(np.float32), 8), photo))
        for j, e in enumerate(NOISE_EXPOSURES if "noise" in wanted else ()):
            noisy = darken(rgb, DarkeningModel(exposure=e, **sensor), np.random.default_rng(1000 + 10 * i + j))
            noise.append((f"{name}-e{e}", from_float(noisy, 8), photo))
        for j, e in enumerate(DIM_EXPOSURES if "dim" in wanted else ()):
            under = darken(rgb, DarkeningModel(exposure=e, **sensor), np.random.default_rng(2000 + 10 * i + j))
            dim.append((f"{name}-e{e}", from_float(under, 8), photo))
    bright = [(name, photo, photo) for name, photo in clean.items()]
    examples = []
    for name in EXAMPLES:
        original = cv2.resize(sample_photo(name), EXAMPLE_SIZE, interpolation=cv2.INTER_AREA)
        examples.append((name, _u8(ROOT / "examples" / f"{name}.png"), original))
    return {"dark": dark, "lights": lights, "bright": bright, "examples": examples, "noise": noise, "dim": dim}


def _pair_scores(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    a = torch.from_numpy(out.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
    b = torch.from_numpy(ref.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
    return float(psnr(a, b)), float(ssim(a, b))


def score_set(enhancer: Enhancer, items: list, save: Path | None, set_name: str) -> dict:
    rows = []
    for name, low, ref in items:
        out = enhancer.enhance_pixels(low)  # what lowlight enhance saves (uint8 in, uint8 out)
        if save is not None:
            (save / set_name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(save / set_name / f"{name}.png"), cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
        row = {
            "name": name,
            "niqe_in": niqe(low), "niqe_out": niqe(out),
            "gray_in": checks.mean_gray(low), "gray_out": checks.mean_gray(out),
            "darkening": checks.darkening(low, out),
            "new_clipping": checks.new_clipping_share(low, out),
            "black_in": checks.black_level(low), "black_out": checks.black_level(out),
        }
        if ref is not None:
            row["psnr_in"], row["ssim_in"] = _pair_scores(low, ref)
            row["psnr_out"], row["ssim_out"] = _pair_scores(out, ref)
            row["black_clean"] = checks.black_level(ref)
        rows.append(row)
    keys = [k for k in rows[0] if k != "name"]
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    summary["darker_count"] = sum(r["darkening"] > 0.02 for r in rows)
    summary["count"] = len(rows)
    if "psnr_out" in rows[0]:
        summary["psnr_out_min"] = float(min(r["psnr_out"] for r in rows))
        summary["identical_count"] = sum(bool(np.isinf(r["psnr_out"])) for r in rows)  # output == reference, bit for bit
    return {"summary": summary, "images": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="crnet-curve-dn")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--tile", type=int, default=None)
    parser.add_argument("--shared", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--save", type=Path, default=None, help="write the outputs here, by set")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--curve-scale", type=int, default=1, help="curve models: estimate the curves at 1/N resolution")
    parser.add_argument("--upscale", type=int, default=1,
                        help="enlarge the clean photos N times before darkening (lights, bright, noise sets: large-photo proxy)")
    parser.add_argument("--sets", nargs="+", default=["dark", "lights", "bright", "examples", "noise"],
                        help="dark lights bright examples noise (default) and dim")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="as lowlight enhance --precision")
    parser.add_argument("--colour", choices=["model", "input"], default="model",
                        help="input: keep the input's colour at low resolution (lowlight enhance --colour input)")
    parser.add_argument("--blacks", choices=["model", "keep"], default="model",
                        help="keep: lower the blacks the model lifts (lowlight enhance --blacks keep)")
    parser.add_argument("--noise-free", action="store_true", help="darken the lights and noise sets without sensor noise")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = create_model(args.model, weights=args.weights) if args.weights else create_model(args.model, pretrained=True)
    if args.curve_scale != 1:
        model.set_curve_scale(args.curve_scale)
    enhancer = Enhancer(model, InferenceConfig(device="cpu", tile=args.tile, colour=args.colour, blacks=args.blacks, precision=args.precision))
    sets = build_sets(args.shared, args.upscale, args.noise_free, only=set(args.sets))
    start = time.perf_counter()
    results = {name: score_set(enhancer, sets[name], args.save, name) for name in args.sets}
    setting = f", curve scale {args.curve_scale}" if args.curve_scale != 1 else ""
    setting += f", clean photos upscaled {args.upscale}x" if args.upscale != 1 else ""
    setting += ", darkened without sensor noise" if args.noise_free else ""
    setting += ", the input's colour" if args.colour == "input" else ""
    setting += ", blacks kept" if args.blacks == "keep" else ""
    setting += f", {enhancer.precision}"
    print(f"# {args.model} ({args.weights or ('bundled weights' if model.info.needs_weights else 'no weights')}{setting}); "
          f"{describe_machine()}; {time.perf_counter() - start:.0f} s\n")
    print("| set | images | NIQE in -> out | mean gray in -> out | darker by > 0.02 | new clipping | black level in -> out (clean) | PSNR / SSIM in -> out |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        s = result["summary"]
        clean = f" (clean {s['black_clean']:.3f})" if "black_clean" in s else ""
        pair = (f"{s['psnr_in']:.2f} / {s['ssim_in']:.3f} -> {s['psnr_out']:.2f} / {s['ssim_out']:.3f} (min {s['psnr_out_min']:.2f}, {s['identical_count']} identical)"
                if "psnr_out" in s else "")
        print(f"| {name} | {s['count']} | {s['niqe_in']:.2f} -> {s['niqe_out']:.2f} | {s['gray_in']:.3f} -> {s['gray_out']:.3f} "
              f"| {s['darker_count']} | {100 * s['new_clipping']:.2f}% | {s['black_in']:.3f} -> {s['black_out']:.3f}{clean} | {pair} |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "weights": args.weights, "curve_scale": args.curve_scale, "upscale": args.upscale, "noise_free": args.noise_free, "colour": args.colour, "blacks": args.blacks, "precision": enhancer.precision, "results": results}, indent=1))


if __name__ == "__main__":
    main()
