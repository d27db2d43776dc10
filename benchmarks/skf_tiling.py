"""Tiled vs whole-image inference of crnet-s-skf (and crnet-s for comparison): how badly do tiles differ?

    python benchmarks/skf_tiling.py --weights runs/crnet-s-skf-lol/best        # a trained crnet-s-skf
    python benchmarks/skf_tiling.py                                             # crnet-s-lol + random SEMs

crnet-s-skf is not tile-exact twice over: its semantic embedding's attention is a statistic of the
whole input, and its segmentation network (ESPNetv2, run inside the model) sees only the tile. For
``--images`` LOL test photos resized to 1024x768 (larger than a LOL image, so tiles of 512 and
256 px cut it), this prints, per model and tile size, how far the tiled output is from the
whole-image output (max and mean absolute difference, PSNR of one against the other), how much
the SEMs change the whole-image output at all (their "effect": output with vs without the SEMs'
residual branches), and how often ESPNetv2's argmax class on the tiles agrees with its argmax on
the whole photo. Needs ``../shared/data/LOL`` and ESPNetv2's weights (``lowlight priors``).

Without ``--weights`` the enhancer is ``weights/crnet-s-lol`` with SEM output projections drawn
N(0, 0.05) (seeded): random but fixed, for a first look before any training.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.models import create_model, load_checkpoint, load_frozen_networks  # noqa: E402
from lowlight_cli.models.checkpoint import load_state_dict_file, load_weights_strict  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOL_TEST = ROOT.parent / "shared" / "data" / "LOL" / "test" / "low"
SIZE = (1024, 768)


def random_sems(seed: int = 1) -> torch.nn.Module:
    """crnet-s-lol's weights in crnet-s-skf, the real ESPNetv2, SEM output projections ~ N(0, 0.05)."""
    model = create_model("crnet-s-skf", pretrained=False)
    load_weights_strict(model, load_state_dict_file(ROOT / "weights" / "crnet-s-lol" / "model.safetensors"), "crnet-s-lol",
                        allow_missing=model.warm_start_additions)
    load_frozen_networks(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.semantic.named_parameters():
            if "project_out" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.05)
    return model.eval()


def without_sems(model: torch.nn.Module) -> torch.nn.Module:
    """A copy whose SEMs are the identity (output projections zeroed)."""
    silent = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in silent.semantic.named_parameters():
            if "project_out" in name:
                p.zero_()
    return silent


def enhance(model: torch.nn.Module, image: np.ndarray, tile: int) -> np.ndarray:
    return Enhancer(model, InferenceConfig(device="cpu", tile=tile)).enhance(image)


def label_agreement(model: torch.nn.Module, image: np.ndarray, tile: int) -> float:
    """Share of pixels whose argmax class on non-overlapping tiles equals the whole photo's."""
    x = torch.from_numpy(image).permute(2, 0, 1)[None]
    with torch.no_grad():
        whole = model.prior(x).labels[0]
        tiled = torch.empty_like(whole)
        for top in range(0, x.shape[2], tile):
            for left in range(0, x.shape[3], tile):
                tiled[top : top + tile, left : left + tile] = model.prior(x[..., top : top + tile, left : left + tile]).labels[0]
    return float((tiled == whole).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="a crnet-s-skf checkpoint folder (default: random SEMs)")
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--tiles", type=int, nargs="*", default=[512, 256])
    args = parser.parse_args()
    if not LOL_TEST.is_dir():
        sys.exit(f"needs the LOL test images in {LOL_TEST}")
    torch.set_grad_enabled(False)
    skf = load_checkpoint(args.weights) if args.weights else random_sems()
    models = {"crnet-s (weights/crnet-s-lol)": load_checkpoint(ROOT / "weights" / "crnet-s-lol"),
              f"crnet-s-skf ({args.weights or 'crnet-s-lol + random SEMs'})": skf}
    silent = without_sems(skf)
    print(describe_machine())
    print("| model | image | SEM effect (mean abs) | tile | tiled vs whole: max abs | mean abs | PSNR (dB) | ESPNetv2 argmax agreement |")
    print("|---|---|---|---|---|---|---|---|")
    for path in sorted(LOL_TEST.glob("*.png"))[: args.images]:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        image = cv2.resize(rgb, SIZE, interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
        for label, model in models.items():
            whole = enhance(model, image, 0)
            guided = model is skf
            effect = f"{np.abs(whole - enhance(silent, image, 0)).mean():.4f}" if guided else "-"
            for tile in args.tiles:
                tiled = enhance(model, image, tile)
                diff = np.abs(tiled - whole)
                psnr = 10 * np.log10(1.0 / max(float(np.mean(diff**2)), 1e-12))
                agreement = f"{label_agreement(model, image, tile):.3f}" if guided else "-"
                print(f"| {label} | {path.name} | {effect} | {tile} | {diff.max():.3f} | {diff.mean():.4f} | {psnr:.1f} | {agreement} |")


if __name__ == "__main__":
    main()
