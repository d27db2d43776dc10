"""Record each LOL test pair's PSNR / SSIM in bundled checkpoints bundled before they were recorded.

    python scripts/record_per_image.py            # every bundled checkpoint without them
    python scripts/record_per_image.py crnet-lol  # these

Re-scores ``weights/NAME`` on the LOL test set with the protocol of its card (CPU, whole images;
PSNR and SSIM only), refuses to write unless the means reproduce the card's (the tolerance of
``tests/test_bundled_weights.py``), and adds the per-pair scores under ``provenance.lol_test.per_image``
in config.json; the card's figures stay as they are. The bundled-weights test re-scores the
slowest checkpoints on a few pairs against these. Needs ../shared/data/LOL (or --data).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from bundle_weights import PER_IMAGE_METRICS, PSNR_TOLERANCE, SSIM_TOLERANCE, lol_test_scores  # noqa: E402


def record(folder: Path, data: Path) -> dict:
    """Score ``folder`` and write its per-pair scores; returns them. SystemExit when the means disagree."""
    config = json.loads((folder / "config.json").read_text())
    recorded = config["provenance"]["lol_test"]
    measured = lol_test_scores(folder, data, PER_IMAGE_METRICS)
    if measured["images"] != recorded["images"]:
        raise SystemExit(f"{folder.name}: {measured['images']} pairs scored, its card {recorded['images']}")
    if abs(measured["psnr"] - recorded["psnr"]) > PSNR_TOLERANCE or abs(measured["ssim"] - recorded["ssim"]) > SSIM_TOLERANCE:
        raise SystemExit(f"{folder.name}: measured {measured['psnr']:.4f} / {measured['ssim']:.4f}, its card "
                         f"{recorded['psnr']:.4f} / {recorded['ssim']:.4f}: not recorded")
    recorded["per_image"] = measured["per_image"]
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return measured["per_image"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="bundled checkpoints (default: every one without per-pair scores)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "LOL")
    args = parser.parse_args()
    bundled = sorted(p.parent for p in (ROOT / "weights").glob("*/config.json"))
    if args.names:
        unknown = sorted(set(args.names) - {f.name for f in bundled})
        if unknown:
            parser.error(f"not bundled: {', '.join(unknown)}")
        folders = [f for f in bundled if f.name in args.names]
    else:
        folders = [f for f in bundled
                   if "per_image" not in json.loads((f / "config.json").read_text())["provenance"]["lol_test"]]
    for folder in folders:
        per_image = record(folder, args.data)
        print(f"{folder.name}: {len(per_image)} pairs recorded", flush=True)


if __name__ == "__main__":
    main()
