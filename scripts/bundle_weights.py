"""Bundle a training run's best checkpoint into weights/NAME/ with a model card.

    python scripts/bundle_weights.py runs/crnet-s-lol-full crnet-s-lol \
        --command "lowlight train --config configs/crnet-s-lol-full.yaml --out runs/crnet-s-lol-full"

Copies RUN/best (config.json + model.safetensors), scores it on the LOL test set with the default
protocol (RGB PSNR/SSIM on 0..255, no GT-mean; NIQE on Y), records the scores and the run's facts
in config.json's provenance, and writes MODEL_CARD.md. Needs ../shared/data/LOL (or --data).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from dataclasses import asdict
import sys
from datetime import datetime, timezone
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from machine import describe_machine  # noqa: E402
from run_history import last_terms, read_history, read_records, validation_history  # noqa: E402

from lowlight_cli import __version__  # noqa: E402
from lowlight_cli.evaluation import Protocol, Scorer, pair_by_stem, summarize  # noqa: E402
from lowlight_cli.evaluation.runner import score_pairing  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.models import load_checkpoint  # noqa: E402
from lowlight_cli.models.checkpoint import WEIGHTS_NAME, read_config  # noqa: E402
from lowlight_cli.models.complexity import measure_complexity  # noqa: E402

PAPER_ROWS = "CRNet paper (LOL-v1 test, RGB, no GT-mean): 24.01 / 0.9281 with 100% labels; 23.05 / 0.9354 MCMT with 10%; 21.94 / 0.9086 supervised with 10%"


def bundled_twin(folder: Path) -> Path | None:
    """The bundled ``weights/NAME`` holding the same weights as checkpoint ``folder`` (itself if bundled), else None.

    A run warm-started from another run's ``best/`` names that run folder; its bundled copy holds
    the provenance (command, scores) the lineage paragraph quotes. Compares the sha256 every
    checkpoint's config.json records for its weights.
    """
    digest = read_config(folder)["sha256"][WEIGHTS_NAME]
    for candidate in sorted(p.parent for p in (ROOT / "weights").glob("*/config.json")):
        if read_config(candidate)["sha256"].get(WEIGHTS_NAME) == digest:
            return candidate
    return None


def lol_test_scores(folder: Path, data: Path) -> dict:
    """PSNR / SSIM / NIQE of the checkpoint on ``data/test`` under the default protocol (CPU, whole images)."""
    protocol = Protocol(("psnr", "ssim", "niqe"))
    enhancer = Enhancer(load_checkpoint(folder), InferenceConfig(device="cpu", tile=0))
    pairing = pair_by_stem(data / "test" / "low", data / "test" / "high")
    scores = list(score_pairing(Scorer(protocol), pairing, enhancer))
    failed = [s.error for s in scores if s.error is not None]
    if failed:  # a card's scores are over the whole test set or not at all
        raise SystemExit(f"{len(failed)} test image(s) could not be scored, e.g. {failed[0]}")
    summary = summarize(scores, protocol.metrics)
    return {
        "psnr": round(summary["psnr"].mean, 4),
        "ssim": round(summary["ssim"].mean, 4),
        "niqe": round(summary["niqe"].mean, 4),
        "images": len(scores),
        "protocol": protocol.describe(),
    }


def run_facts(run: Path) -> dict:
    records = read_records(run)
    steps = [r for r in records if r["kind"] == "step"]
    vals = [r for r in records if r["kind"] == "validation"]
    best = max(vals, key=lambda r: r["psnr"])
    gaps = [b["time"] - a["time"] for a, b in zip(records, records[1:])]
    split = json.loads((run / "split.json").read_text())
    config = yaml.safe_load((run / "config.yaml").read_text())
    done = max(r["step"] for r in steps + vals)  # a run stopped after a validation logged its step there last
    return {
        "steps": done,
        "epochs": round(done / max(1, steps[-1]["total_steps"]) * config["optim"]["epochs"], 2),
        "planned_epochs": config["optim"]["epochs"],
        # training time: gaps over 10 minutes between log lines are the run being stopped and resumed
        "wall_hours": round(sum(d for d in gaps if d < 600) / 3600, 2),
        "resumes": sum(d >= 600 for d in gaps),
        "best_val_psnr": round(best["psnr"], 4),
        "best_val_ssim": round(best["ssim"], 4),
        "best_step": best["step"],
        "labeled": len(split["labeled"]),
        "unlabeled": len(split["unlabeled"]),
        "validation": len(split["validation"]),
        "split_seed": split["seed"],
        # every validation of the run and the loss terms of its last logged step, so statements about
        # how validation moved or how large a term was can be checked from the bundle alone
        # (scripts/run_history.py prints them)
        "validation_history": validation_history(records),
        "last_terms": last_terms(records),
        "config": config,
    }


def copy_checkpoint(best: Path, target: Path) -> None:
    """Copy a run's ``best/`` checkpoint into ``target``.

    Re-bundling the same weights keeps the architecture kwargs recorded in ``target``: a run saved
    with the defaults of its day (``{}``) was pinned explicitly there when a default changed later.
    """
    target.mkdir(parents=True, exist_ok=True)
    pinned = read_config(target) if (target / "config.json").is_file() else None
    for file in ("config.json", WEIGHTS_NAME):
        shutil.copyfile(best / file, target / file)
    if pinned and pinned["sha256"] == read_config(target)["sha256"]:
        fresh = json.loads((target / "config.json").read_text())
        fresh.update(architecture=pinned["architecture"], kwargs=pinned.get("kwargs", {}))
        (target / "config.json").write_text(json.dumps(fresh, indent=2, sort_keys=True) + "\n")


def record_history(run: Path, target: Path) -> None:
    """Add ``run``'s validation history and last loss terms to the provenance of bundled ``target``.

    For checkpoints bundled before the history was recorded; refuses a run whose best weights are
    not the bundled ones.
    """
    if read_config(run / "best")["sha256"] != read_config(target)["sha256"]:
        raise SystemExit(f"{run}/best does not hold the weights bundled in {target}")
    history, terms = read_history(run)
    config = json.loads((target / "config.json").read_text())
    config["provenance"]["training"].update(validation_history=history, last_terms=terms)
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--command", help="the exact training command (required unless --history-only)")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "LOL")
    parser.add_argument("--machine", default="", help="the training machine, if not this one as it is now")
    parser.add_argument("--note", default="", help="extra text for the card (how far training got, ...)")
    parser.add_argument("--history-only", action="store_true",
                        help="only record RUN's validation history and last loss terms in an already bundled "
                             "weights/NAME holding the same weights; scores and card stay as they are")
    args = parser.parse_args()
    if args.history_only:
        record_history(args.run, ROOT / "weights" / args.name)
        return
    if not args.command:
        parser.error("--command is required")

    target = ROOT / "weights" / args.name
    copy_checkpoint(args.run / "best", target)
    facts = run_facts(args.run)
    scores = lol_test_scores(target, args.data)
    model = load_checkpoint(target)
    cx = measure_complexity(model, size=256)
    machine = args.machine or describe_machine()

    config = json.loads((target / "config.json").read_text())
    init_from = facts["config"]["model"].get("init_from")
    parent_bundled = bundled_twin(ROOT / init_from) if init_from else None
    config["provenance"].update({
        # the bundled checkpoint this run started from, by name (None: not bundled, or no warm start)
        "parent_weights": parent_bundled.name if parent_bundled else None,
        "lol_test": scores,
        "training": {k: v for k, v in facts.items() if k != "config"},
        "train_config": facts["config"],
        "command": args.command,
        "machine": machine,
        "bundled": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
    })
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    c = facts["config"]
    semi = c["run"]["semi"]
    frac = c["data"]["labeled_frac"]
    labeled_text = (
        f"all {facts['labeled']} other pairs with references labeled"
        if frac >= 1.0
        else f"{facts['labeled']} labeled pairs ({frac:.0%} of the 485 images, rounded up, drawn from the pairs with references)"
    )
    arch = asdict(model.cfg) if hasattr(model, "cfg") else {}
    loss = c["loss"]
    loss_text = (f"progressive loss (1 - SSIM on y_G + lambda_ms {loss['lambda_ms']} x mean stage L1)"
                 + (f" + lambda_final_l1 {loss['lambda_final_l1']} x L1 on y_G (ours, not in the paper)" if loss.get("lambda_final_l1") else ""))
    if semi:
        loss_text += (f"; MCMT: lambda_c {loss['lambda_c']}, lambda_mc {loss['lambda_mc']}, teacher input noise sigma "
                      f"{loss['teacher_noise']} (ours), EMA decay {c['teacher']['ema_decay']} with warm-up "
                      f"{'on' if c['teacher'].get('warmup', True) else 'off'} (ours)")
        if loss.get("consistency_rampup"):
            loss_text += (f"; lambda_c ramped up over the first {loss['consistency_rampup']} steps along Mean Teacher's "
                          "sigmoid exp(-5 (1 - t)^2) (ours)")
    elif c["run"].get("export") == "teacher":
        loss_text += f"; exported weights: an EMA of the student, decay {c['teacher']['ema_decay']} (ours)"
    context_text = ""
    if arch.get("global_context"):
        context_text = (
            f"\nGlobal context (ours, not in the paper): the mean over the whole image of a per-pixel embedding "
            f"({arch['context_channels']} channels, 1x1 conv + ReLU on the pixel-unshuffled stem input) feeds an MLP "
            "that gives a per-channel scale and shift before every group and a per-channel gain on every stage "
            "image; zero-initialised. Tiled inference computes that mean over the whole photo.\n"
        )
    lineage_text = ""
    if init_from:
        parent = read_config(parent_bundled or ROOT / init_from)["provenance"]
        pt = parent.get("training", {})
        twin = (f"bundled as `weights/{parent_bundled.name}`, the same weights; "
                if parent_bundled and parent_bundled.resolve() != (ROOT / init_from).resolve() else "")
        lineage_text = (
            f"\n## Lineage\n\nWarm-started from `{init_from}` ({twin}every tensor of it; the new modules at their "
            f"initialisation), which was trained first: `{parent.get('command', '?')}` "
            f"({pt.get('epochs', '?')} epochs, {pt.get('steps', '?')} steps, {pt.get('wall_hours', '?')} h; "
            f"LOL test {parent.get('lol_test', {}).get('psnr', float('nan')):.2f} dB; see its MODEL_CARD.md). "
            f"Total training time of these weights: {round(pt.get('wall_hours', 0) + facts['wall_hours'], 2)} h.\n"
        )
    batch_text = f"{c['data']['batch_size']}" + (f" labeled + {c['data']['unlabeled_batch_size']} unlabeled" if semi else "")
    card = f"""# {args.name}

{model.info.description}. Trained by `lowlight train` (lowlight {__version__}).

| | |
|---|---|
| architecture | `{config["architecture"]}` {json.dumps(config["kwargs"]) if config["kwargs"] else ""} (CRNet, SPEC-crnet.md) |
| parameters | {cx.parameters:,} |
| MACs per pixel | {round(cx.macs_per_pixel):,} (measured at 256x256) |
| training | {"semi-supervised, multi-consistency mean teacher (MCMT)" if semi else "supervised, progressive loss"} |
| weights | {"EMA teacher" if config["provenance"].get("weights") == "teacher" else "student"} at the best validation step ({facts["best_step"]} of {facts["steps"]}) |
| licence | Apache-2.0 (weights); LOL-v1 is licensed by its authors for research use |

## SPEC-crnet.md "ours" choices

Architecture: {", ".join(f"{k}={v}" for k, v in arch.items())}; layer-attention energy divided by C*H*W
(a mean); one stage head per group. Loss: {loss_text}.
{context_text}
## Data and split

LOL-v1 training set as in `../shared/data/LOL` ({facts["validation"] + facts["labeled"] + facts["unlabeled"]} low-light images, {facts["validation"] + facts["labeled"]} of them with references used; the earlier bundles saw 232 references, all there were until 2026-11-29).
Seed {facts["split_seed"]}: {facts["validation"]} pairs with references held out for validation;
{labeled_text}; {facts["unlabeled"]} other low-light images
{"used as unlabeled data" if semi else "unused (supervised run)"}. Patches {c["data"]["patch_size"]} px,
{c["data"]["patches_per_image"]} per labeled image per epoch, batch {batch_text}, flips and 90-degree rotations.

{lineage_text}
## Command

```
{args.command}
```

The resolved configuration of the run is in config.json (`provenance.train_config`).
Adam lr {c["optim"]["lr"]}, halved at epochs {c["optim"]["milestones"]}, {facts["planned_epochs"]} epochs planned,
{facts["epochs"]} done ({facts["steps"]} steps); {"EMA decay " + str(c["teacher"]["ema_decay"]) + ", teacher noise sigma " + str(c["loss"]["teacher_noise"]) + ", " if semi else ""}seed {c["run"]["seed"]}.
Wall time {facts["wall_hours"]} h of training (log-line intervals; {facts["resumes"]} stop(s) and resume(s) of over 10 minutes left out).
Machine: {machine}, CPU only.

## Results

Validation (held-out training pairs): best PSNR {facts["best_val_psnr"]:.2f} dB, SSIM {facts["best_val_ssim"]:.4f}.

LOL-v1 test set ({scores["images"]} pairs): **PSNR {scores["psnr"]:.2f} dB, SSIM {scores["ssim"]:.4f}**, NIQE {scores["niqe"]:.3f}.
Protocol: {scores["protocol"]}. Reproduce with

```
lowlight evaluate --model {config["architecture"]} --weights weights/{args.name} --data ../shared/data/LOL/test --metrics psnr ssim niqe
```

For reference, {PAPER_ROWS}.
{args.note}
"""
    (target / "MODEL_CARD.md").write_text(card)
    print(json.dumps({"name": args.name, **scores}, indent=2))


if __name__ == "__main__":
    main()
