"""How large is SKF's semantic histogram term next to an L1 image loss? (issue 19)

    python scripts/histogram_scale.py                    # 16 crops of ../shared/data/LOL/train
    python scripts/histogram_scale.py --crops 64 --json scale.json

Random 256x256 crops of LOL training pairs (seeded); regions from ESPNetv2-VOC on the *low*
input (real weights from ``../shared/nets``; left out if absent) and from Felzenszwalb on the low
input. For stand-in "outputs" at several distances from the reference, prints the mean L1, the mean
:func:`~lowlight_cli.losses.histogram.semantic_histogram_loss` and the ratio of the two terms'
gradient norms with respect to the output (what decides whether one drowns the other):

- ``low``: the input itself (the start of training);
- ``matched``: the input scaled to the reference's mean, clipped (a crude enhancer);
- ``gamma``: the reference through gamma 1/2.2 (right structure, wrong tones);
- ``noise 0.03``: the reference plus Gaussian noise of std 0.03, clipped (late training);
- ``shift 0.02``: the reference plus 0.02 (a small colour cast).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lowlight_cli.io import read_image  # noqa: E402
from lowlight_cli.losses.histogram import semantic_histogram_loss  # noqa: E402
from lowlight_cli.priors import FelzenszwalbRegions, SemanticRegions, create_prior  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOL = ROOT.parent / "shared" / "data" / "LOL" / "train"


def _tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(read_image(path).rgb.astype(np.float32) / 255.0).permute(2, 0, 1)


def crops(folder: Path, count: int, side: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random ``side x side`` crops of (low, reference) pairs: two ``(count, 3, side, side)`` batches."""
    rng = np.random.default_rng(seed)
    stems = sorted(p.name for p in (folder / "high").iterdir() if (folder / "low" / p.name).is_file())
    lows, highs = [], []
    for name in rng.choice(stems, size=count, replace=False):
        low, high = _tensor(folder / "low" / name), _tensor(folder / "high" / name)
        top = int(rng.integers(0, low.shape[1] - side + 1))
        left = int(rng.integers(0, low.shape[2] - side + 1))
        lows.append(low[:, top : top + side, left : left + side])
        highs.append(high[:, top : top + side, left : left + side])
    return torch.stack(lows), torch.stack(highs)


def outputs(low: torch.Tensor, high: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """Stand-in enhanced images at several distances from the reference."""
    generator = torch.Generator().manual_seed(seed)
    gain = high.mean(dim=(1, 2, 3), keepdim=True) / low.mean(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
    return {
        "low": low,
        "matched": (low * gain).clamp(0, 1),
        "gamma": high.pow(1 / 2.2),
        "noise 0.03": (high + 0.03 * torch.randn(high.shape, generator=generator)).clamp(0, 1),
        "shift 0.02": (high + 0.02).clamp(0, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=LOL, help="LOL-layout folder with low/ and high/")
    parser.add_argument("--crops", type=int, default=16)
    parser.add_argument("--side", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not (args.data / "high").is_dir():
        sys.exit(f"no LOL pairs under {args.data} (need low/ and high/)")
    torch.set_num_threads(1)
    low, high = crops(args.data, args.crops, args.side, args.seed)
    providers = {}
    try:
        providers["espnetv2-voc"] = SemanticRegions(create_prior("espnetv2-voc"))
    except Exception as error:  # noqa: BLE001 - report and measure what is there
        print(f"espnetv2-voc left out: {error}", file=sys.stderr)
    providers["felzenszwalb"] = FelzenszwalbRegions()
    regions = {name: torch.cat([provider(low[i : i + 8]) for i in range(0, len(low), 8)]) for name, provider in providers.items()}
    rows = []
    for case, output in outputs(low, high, args.seed).items():
        row: dict[str, object] = {"output": case, "l1": (output - high).abs().mean().item()}
        output = output.clone().requires_grad_(True)
        (output - high).abs().mean().backward()
        l1_gradient = output.grad.norm().item()
        for name, labels in regions.items():
            output.grad = None
            start = time.perf_counter()
            values = []
            for i in range(0, len(low), 8):  # batches of 8; the sum of batch means, for one gradient
                term = semantic_histogram_loss(output[i : i + 8], high[i : i + 8], labels[i : i + 8])
                (term * (len(output[i : i + 8]) / len(low))).backward()
                values.append(term.item())
            row[name] = float(np.mean(values))
            row[f"{name} gradient ratio"] = output.grad.norm().item() / l1_gradient
            row[f"{name} s/crop"] = (time.perf_counter() - start) / len(low)
        rows.append(row)
    names = list(regions)
    print(f"{args.crops} crops {args.side}x{args.side} of {args.data}, regions on the low input")
    print("| output | L1 | " + " | ".join(f"histogram ({n}) | gradient norm / L1's" for n in names) + " |")
    print("|---|---|" + "---|---|" * len(names))
    for row in rows:
        cells = " | ".join(f"{row[n]:.3f} | {row[n + ' gradient ratio']:.2f}" for n in names)
        print(f"| {row['output']} | {row['l1']:.3f} | {cells} |")
    print("seconds per crop (forward + backward):", {n: round(rows[0][f"{n} s/crop"], 2) for n in names})
    regions_per_crop = {n: float(np.mean([len(torch.unique(r)) for r in labels])) for n, labels in regions.items()}
    print("regions per crop:", {n: round(v, 1) for n, v in regions_per_crop.items()})
    if args.json is not None:
        args.json.write_text(json.dumps({"rows": rows, "regions_per_crop": regions_per_crop}, indent=2))


if __name__ == "__main__":
    main()
