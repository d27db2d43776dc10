"""Print the README's table of bundled weights from their config.json provenance.

    python scripts/weights_table.py

One row per `weights/<name>/`: architecture, parameters, MACs per pixel (measured), labels used,
training done, LOL-v1 test PSNR / SSIM (as scored by scripts/bundle_weights.py), then the CRNet
paper's rows for comparison. CPU speed is not re-measured here: see benchmarks/enhance_speed.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lowlight_cli.models import create_model, load_checkpoint  # noqa: E402
from lowlight_cli.models.complexity import measure_complexity  # noqa: E402
from lowlight_cli.training.config import method_name  # noqa: E402

PAPER = [
    ("CRNet, 100% labels (paper)", "24.01", "0.9281"),
    ("CRNet + MCMT, 10% labels (paper)", "23.05", "0.9354"),
    ("CRNet, 10% labels, supervised only (paper)", "21.94", "0.9086"),
]


def training_text(prov: dict) -> tuple[str, str]:
    """The method as trained and the data it used, from a bundle's provenance.

    ``crnet`` is CRNet's supervised loss and ``mcmt`` its mean teacher; another method is named as
    registered (``lowlight train --list-methods``). Unlabeled images count only where the run used
    them (a semi-supervised method run with ``data.unlabeled_batch_size: 0`` did not); an unpaired
    run names its inputs, not labels.
    """
    run, train = prov["train_config"]["run"], prov["training"]
    method = prov.get("method") or method_name(run.get("method"), run["semi"])
    mode = {"crnet": "supervised", "mcmt": "MCMT"}.get(method, f"`{method}`")
    data = prov.get("training_data", "")
    if data.startswith("unpaired"):
        return mode, data.split(",")[0].replace(":", ",")  # "unpaired, 463 low-light inputs"
    used = run["semi"] and "not used" not in data
    return mode, f"{train['labeled']} labeled" + (f" + {train['unlabeled']} unlabeled" if used else "")


def rows() -> list[str]:
    out = ["| weights | model | params | MACs/pixel | training | LOL test PSNR / SSIM |", "|---|---|---|---|---|---|"]
    for folder in sorted(p for p in (ROOT / "weights").iterdir() if (p / "config.json").is_file()):
        config = json.loads((folder / "config.json").read_text())
        prov = config["provenance"]
        cx = measure_complexity(load_checkpoint(folder), size=256)
        train = prov["training"]
        mode, labels = training_text(prov)
        done = f"{train['epochs']:g} of {train['planned_epochs']} epochs"
        init_from = prov["train_config"]["model"].get("init_from")
        if init_from:
            start = Path(init_from)  # a run's best/ or last/ is named by its run folder
            done += f" from `{prov.get('parent_weights') or (start.parent.name if start.name in ('best', 'last') else start.name)}`"
        if not init_from and train["epochs"] < train["planned_epochs"]:
            done += f" ({train['steps']:,} steps)"
        arch = f"`{config['architecture']}`" + (" without global context" if config.get("kwargs", {}).get("global_context") is False else "")
        scores = prov["lol_test"]
        out.append(f"| `{folder.name}` | {arch} | {cx.parameters:,} | {round(cx.macs_per_pixel):,} | "
                   f"{mode}, {labels}, {done} | {scores['psnr']:.2f} / {scores['ssim']:.4f} |")
    paper = measure_complexity(create_model("crnet", pretrained=False), size=256)
    for name, psnr, ssim in PAPER:
        out.append(f"| {name} | `crnet` (ours) | {paper.parameters:,} | {round(paper.macs_per_pixel):,} | "
                   f"LOL-v1, 485 training pairs | {psnr} / {ssim} |")
    return out


if __name__ == "__main__":
    print("\n".join(rows()))
