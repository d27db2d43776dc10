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
from safetensors import safe_open

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "scripts"))
from machine import describe_machine  # noqa: E402
from run_history import last_terms, read_history, read_records, validation_history  # noqa: E402

from lowlight_cli import __version__  # noqa: E402
from lowlight_cli.errors import MetricError  # noqa: E402
from lowlight_cli.evaluation import score_test_set  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.models import load_checkpoint  # noqa: E402
from lowlight_cli.models.checkpoint import WEIGHTS_NAME, read_config  # noqa: E402
from lowlight_cli.models.complexity import measure_complexity  # noqa: E402
from lowlight_cli.training.config import DataSection, method_name  # noqa: E402
from lowlight_cli.training.methods import METHODS  # noqa: E402

PAPER_ROWS = "CRNet paper (LOL-v1 test, RGB, no GT-mean): 24.01 / 0.9281 with 100% labels; 23.05 / 0.9354 MCMT with 10%; 21.94 / 0.9086 supervised with 10%"
UNPAIRED_ROWS = (
    "the authors' checkpoints scored the same way (LOL-v1 test, RGB, no GT-mean; figures of issue 17, "
    "not re-measured here: those checkpoints are not in this repository, `lowlight import` converts them): "
    "SCL-LLE 12.42 / 0.520, PIE 11.54 / 0.485, Zero-DCE 14.86 / 0.559"
)
REGION_FIX = (
    "Region brightness consistency is computed as the papers describe it: the variance of brightness "
    "inside each region, per image, each region weighted by its area "
    "(`lowlight_cli.losses.regions.region_brightness_loss`). The authors' code pools a label's pixels over "
    "all images of the batch and divides by the batch's pixel count instead of the region's; these weights "
    "were not trained with that."
)
# Per training method: the reference line and the method-specific paragraphs of the card.
METHOD_NOTES = {
    "scl-lle": (UNPAIRED_ROWS, REGION_FIX),
    "pie": (UNPAIRED_ROWS, REGION_FIX),
}


def bundled_twin(folder: Path, exclude: Path | None = None) -> Path | None:
    """The bundled ``weights/NAME`` holding the same weights as checkpoint ``folder`` (itself if bundled), else None.

    A run warm-started from another run's ``best/`` names that run folder; its bundled copy holds
    the provenance (command, scores) the lineage paragraph quotes. Compares the sha256 every
    checkpoint's config.json records for its weights. ``exclude``: a folder not to return (the one
    being re-bundled, when a run was warm-started from the weights it replaces).
    """
    digest = read_config(folder)["sha256"][WEIGHTS_NAME]
    for candidate in sorted(p.parent for p in (ROOT / "weights").glob("*/config.json")):
        if exclude is not None and candidate.resolve() == exclude.resolve():
            continue
        if read_config(candidate)["sha256"].get(WEIGHTS_NAME) == digest:
            return candidate
    return None


def new_modules_text(model, parent_weights: Path) -> str:
    """The lineage's words for tensors of ``model`` that the warm start's weights file lacks ("" if none)."""
    with safe_open(str(parent_weights), framework="pt") as f:
        parent_keys = set(f.keys())
    return "" if set(model.state_dict()) <= parent_keys else "; the new modules at their initialisation"


def lineage_hours(provenance: dict, seen: frozenset[str] = frozenset()) -> float:
    """Training hours of a bundled checkpoint and of everything it was warm-started from.

    Follows the bundled parent (``parent_weights``) and, for a checkpoint warm-started from a run
    that was not bundled (``parent_run``), that run's hours and the bundled weights it started from.
    """
    hours = provenance.get("training", {}).get("wall_hours", 0.0)
    parents = [provenance.get("parent_weights")]
    run_parent = provenance.get("parent_run")
    if run_parent:
        hours += run_parent.get("wall_hours", 0.0)
        grand = run_parent.get("train_config", {}).get("model", {}).get("init_from") or ""
        parents.append(Path(grand).name if grand.startswith("weights/") else None)
    for parent in parents:
        if parent and parent not in seen and (ROOT / "weights" / parent / "config.json").is_file():
            hours += lineage_hours(read_config(ROOT / "weights" / parent)["provenance"], seen | {parent})
    return hours


CARD_METRICS = ("psnr", "ssim", "niqe")  # a card's scores; per image only those against the reference
PER_IMAGE_METRICS = ("psnr", "ssim")
# how far a re-score may land from a card's figures and still reproduce it (tests/test_bundled_weights.py,
# scripts/record_per_image.py)
PSNR_TOLERANCE = 0.05  # dB
SSIM_TOLERANCE = 0.001


def lol_test_scores(
    folder: Path, data: Path, metrics: tuple[str, ...] = CARD_METRICS, names: tuple[str, ...] | None = None
) -> dict:
    """PSNR / SSIM / NIQE of the checkpoint on ``data/test`` under the default protocol (CPU, whole
    images), with each pair's PSNR and SSIM under ``per_image``.

    ``metrics``: fewer to score faster (the bundled-weights test leaves NIQE out); ``names``: only
    these pairs (the means are then over those pairs alone: compare ``per_image``).
    """
    enhancer = Enhancer(load_checkpoint(folder), InferenceConfig(device="cpu", tile=0))
    try:  # a card's scores are over the whole test set or not at all
        result = score_test_set(data / "test" / "low", data / "test" / "high", enhancer, metrics, names=names)
    except MetricError as exc:
        raise SystemExit(str(exc)) from exc
    per_image = {name: {k: round(v, 4) for k, v in values.items() if k in PER_IMAGE_METRICS}
                 for name, values in sorted(result.per_image.items())}
    return {**{k: round(v, 4) for k, v in result.means.items()}, "images": result.images, "protocol": result.protocol,
            "per_image": per_image}


def hours_until(records: list[dict], step: int) -> float:
    """Training hours up to ``step`` (the log lines through that step; gaps over 10 minutes between
    lines are stops and resumes, left out, as in :func:`run_facts`)."""
    upto = []
    for record in records:
        if record.get("step", 0) > step:
            break
        upto.append(record)
    return round(sum(d for d in (b["time"] - a["time"] for a, b in zip(upto, upto[1:])) if d < 600) / 3600, 2)


def run_facts(run: Path, step: int | None = None) -> dict:
    """What a run's log and split say: steps, hours, the chosen checkpoint's validation, the config.

    ``step``: the step of the checkpoint being bundled when it is not the run's ``best/`` (a copy of
    the EMA chosen by a rule of its own); its validation is the log's record at that step.
    """
    records = read_records(run)
    steps = [r for r in records if r["kind"] == "step"]
    vals = [r for r in records if r["kind"] == "validation"]
    # the checkpoint in best/ is the last validation marked best (by the run's select_on metric)
    marked = [r for r in vals if r.get("best")]
    run_best = marked[-1] if marked else max(vals, key=lambda r: r["psnr"])
    best = run_best
    if step is not None and step != run_best["step"]:
        at_step = [r for r in vals if r["step"] == step]
        if not at_step:
            raise SystemExit(f"{run}'s log has no validation at step {step}, the checkpoint's step")
        best = at_step[-1]
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
        "run_best_step": run_best["step"],  # differs from best_step when a rule of its own chose the checkpoint
        "selected_on": "SSIM" if config.get("run", {}).get("select_on") == "ssim" else "PSNR",
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
    parser.add_argument("--parent-run", type=Path, default=None,
                        help="the run whose weights RUN was warm-started from (model.init_from), when it is not bundled: "
                             "its facts go into the provenance and the card's lineage")
    parser.add_argument("--parent-command", default="", help="the exact command of --parent-run")
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
    facts = run_facts(args.run, read_config(args.run / "best")["provenance"].get("step"))
    init_from = facts["config"]["model"].get("init_from")
    # before the copy: a second stage re-bundled under its parent's name replaces the parent, whose
    # bundled twin (e.g. NAME-stage1) then holds the provenance the lineage quotes
    parent_bundled = bundled_twin(ROOT / init_from, exclude=target) if init_from else None
    only_copy = bundled_twin(ROOT / init_from) if init_from and parent_bundled is None else None
    if only_copy is not None and only_copy.resolve() == target.resolve():
        raise SystemExit(f"{init_from}, the parent of {args.run}, is bundled only as {target}, which this would "
                         "replace: bundle it under another name first (e.g. NAME-stage1)")
    parent_step = read_config(ROOT / init_from)["provenance"].get("step") if init_from else None
    copy_checkpoint(args.run / "best", target)
    scores = lol_test_scores(target, args.data)
    model = load_checkpoint(target)
    cx = measure_complexity(model, size=256)
    machine = args.machine or describe_machine()

    config = json.loads((target / "config.json").read_text())
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
    if args.parent_run is not None:
        parent = run_facts(args.parent_run)
        # the step of the weights warm-started from (a run stopped between log lines logged fewer)
        start = parent_step if parent_step is not None else parent["steps"]
        config["provenance"]["parent_run"] = {
            "command": args.parent_command, "steps": start, "epochs": round(start / parent["steps"] * parent["epochs"], 2),
            # the hours that led to the weights warm-started from, not the whole run's
            "wall_hours": hours_until(read_records(args.parent_run), start), "best_val_psnr": parent["best_val_psnr"],
            "validation_history": parent["validation_history"], "train_config": parent["config"],
        }
    (target / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")

    c = facts["config"]
    method = method_name(c["run"].get("method"), c["run"]["semi"])
    if method not in ("crnet", "mcmt"):
        card = method_card(args, model, cx, config, facts, scores, machine, method)
        (target / "MODEL_CARD.md").write_text(card)
        print(json.dumps({"name": args.name, **scores}, indent=2))
        return
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
    if arch.get("refine_channels"):
        context_text += (
            f"\nRefinement stage (ours, not in the paper): a denoiser at 1/2 resolution on the last stage's curve output "
            f"(pixel-unshuffle by 2 and the curve's brightening 1 - 1/g in, {arch['refine_layers'] + 2} 3x3 convolutions of "
            f"{arch['refine_channels']} channels, pixel-shuffle out), added where the curve brightened (times 1 - 1/g, so a "
            "well-exposed photo passes); its last convolution zero-initialised.\n"
        )
    if arch.get("chroma_radius"):
        context_text += (
            f"\nGuided filter (ours, not in the paper; no weights): the output's chroma (R - Y, B - Y) is replaced by a "
            f"guided filter of it on its own luma (radius {arch['chroma_radius']}, eps {arch['chroma_eps']}; at curve scale "
            "N the filter's coefficients are fitted at 1/N resolution), blended in by the green channel's brightening "
            "(full from a gain of 2 up, none at gain 1), no new clipping (`lowlight_cli/models/chroma.py`)"
            + ("; the same filter smooths luma too, guided by itself (`chroma_luma`: flat noisy windows averaged, "
               "edges and texture whose variance exceeds eps kept), added to all three channels" if arch.get("chroma_luma") else "")
            + ". " + ("Trained with it on (the run's `model.kwargs`)." if c["model"].get("kwargs", {}).get("chroma_radius")
                      else "Switched on at bundling (`config.json`'s `kwargs`); the weights were trained without it.") + "\n"
        )
    identity = c["data"].get("identity_prob", 0)
    identity_text = (f"; {identity:.0%} of the labeled patches trained reference -> reference (`data.identity_prob`, "
                     "ours), so that well-exposed photos pass" if identity else "")
    lineage_text = ""
    run_parent = config["provenance"].get("parent_run")
    if init_from and run_parent:  # warm-started from a run that is not bundled (--parent-run)
        grand = run_parent["train_config"]["model"].get("init_from")
        grand_prov = read_config(ROOT / grand)["provenance"] if grand and (ROOT / grand / "config.json").is_file() else {}
        grand_text = (f", which itself continued from `{grand}` (see its MODEL_CARD.md)" if grand_prov else "")
        total = lineage_hours(grand_prov) + run_parent["wall_hours"] + facts["wall_hours"]
        lineage_text = (
            f"\n## Lineage\n\nWarm-started from `{init_from}` (every tensor of it): the weights after step "
            f"{run_parent['steps']} ({run_parent['epochs']} epochs, {run_parent['wall_hours']} h) of "
            f"`{run_parent['command']}`, not bundled (its validation history is in config.json, "
            f"`provenance.parent_run`){grand_text}. Total training time of these weights: {round(total, 2)} h.\n"
        )
    elif init_from:
        parent = read_config(parent_bundled or ROOT / init_from)["provenance"]
        pt = parent.get("training", {})
        replaced = (ROOT / init_from).resolve() == target.resolve()
        twin = (f"bundled as `weights/{parent_bundled.name}`, the same weights; "
                if parent_bundled and parent_bundled.resolve() != (ROOT / init_from).resolve() else "")
        source = f"the previous `{init_from}`" if replaced else f"`{init_from}`"
        added = new_modules_text(model, (parent_bundled or ROOT / init_from) / WEIGHTS_NAME)
        lineage_text = (
            f"\n## Lineage\n\nWarm-started from {source} ({twin}every tensor of it{added}), "
            f"which was trained first: `{parent.get('command', '?')}` "
            f"({pt.get('epochs', '?')} epochs, {pt.get('steps', '?')} steps, {pt.get('wall_hours', '?')} h; "
            f"LOL test {parent.get('lol_test', {}).get('psnr', float('nan')):.2f} dB; see its MODEL_CARD.md). "
            f"Total training time of these weights: {round(lineage_hours(parent) + facts['wall_hours'], 2)} h.\n"
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
| weights | {"EMA teacher" if config["provenance"].get("weights") == "teacher" else "student"} {chosen_text(facts)} |
| licence | Apache-2.0 (weights); LOL-v1 is licensed by its authors for research use |

## SPEC-crnet.md "ours" choices

Architecture: {", ".join(f"{k}={v}" for k, v in arch.items())}; layer-attention energy divided by C*H*W
(a mean); one stage head per group. Loss: {loss_text}.
{context_text}
## Data and split

LOL-v1 training set as in `../shared/data/LOL` ({facts["validation"] + facts["labeled"] + facts["unlabeled"]} low-light images, {facts["validation"] + facts["labeled"]} of them with references used; the earlier bundles saw 232 references, all there were until 2026-11-29).
{held_out_text(facts)};
{labeled_text}; {facts["unlabeled"]} other low-light images
{"used as unlabeled data" if semi else "unused (supervised run)"}. Patches {c["data"]["patch_size"]} px,
{c["data"]["patches_per_image"]} per labeled image per epoch, batch {batch_text}, flips and 90-degree rotations{identity_text}.

{lineage_text}
## Command

```
{args.command}
```

The resolved configuration of the run is in config.json (`provenance.train_config`).
Adam lr {c["optim"]["lr"]}, halved at epochs {c["optim"]["milestones"]}, {facts["planned_epochs"]} epochs planned,
{facts["epochs"]} done ({facts["steps"]} steps); {"EMA decay " + str(c["teacher"]["ema_decay"]) + ", teacher noise sigma " + str(c["loss"]["teacher_noise"]) + ", " if semi else ""}seed {c["run"]["seed"]}.
{results_section(args.name, config, facts, scores, machine)}

For reference, {PAPER_ROWS}.
{args.note}
"""
    (target / "MODEL_CARD.md").write_text(card)
    print(json.dumps({"name": args.name, **scores}, indent=2))


def held_out_text(facts: dict) -> str:
    """The card's words for the validation split: which pairs were held out, and how (``data.hold_out``)."""
    text = f"Seed {facts['split_seed']}: {facts['validation']} pairs with references held out for validation"
    if facts["config"].get("data", {}).get("hold_out", DataSection.hold_out) == "pair":  # runs before the key: its default
        return (text + ", each alone (`data.hold_out: pair`): the other pairs of their scenes (sharing their "
                "reference), where there are any, are trained on, as the LOL-v1 test set's are, so validation "
                "measures recall of trained scenes, not new ones")
    return text + ", each with every pair sharing its reference (`data.hold_out: scene`: new scenes)"


def chosen_text(facts: dict) -> str:
    """Which step's weights these are, for the card's table."""
    if facts["best_step"] == facts["run_best_step"]:
        return f"at the best validation step ({facts['best_step']} of {facts['steps']})"
    return (f"at step {facts['best_step']} of {facts['steps']}, chosen by a rule of its own (below), not the run's "
            f"best validation step ({facts['run_best_step']})")


def results_section(name: str, config: dict, facts: dict, scores: dict, machine: str) -> str:
    """The wall time, machine and results part every card shares (validation, LOL test, how to rerun)."""
    return f"""Wall time {facts["wall_hours"]} h of training (log-line intervals; {facts["resumes"]} stop(s) and resume(s) of over 10 minutes left out).
Machine: {machine}, CPU only.

## Results

Validation (held-out training pairs, {facts["selected_on"] + " chose the checkpoint" if facts["best_step"] == facts["run_best_step"] else "the run's log"}): PSNR {facts["best_val_psnr"]:.2f} dB, SSIM {facts["best_val_ssim"]:.4f} at the chosen step.

LOL-v1 test set ({scores["images"]} pairs): **PSNR {scores["psnr"]:.2f} dB, SSIM {scores["ssim"]:.4f}**, NIQE {scores["niqe"]:.3f}.
Protocol: {scores["protocol"]}. Reproduce with

```
lowlight evaluate --model {config["architecture"]} --weights weights/{name} --data ../shared/data/LOL/test --metrics psnr ssim niqe
```"""


def method_card(args: argparse.Namespace, model, cx, config: dict, facts: dict, scores: dict, machine: str, method: str) -> str:
    """The model card of a run of a method other than CRNet's (``crnet``, ``mcmt``): what the method
    is (its ``--explain`` text), its loss section as run, the frozen networks, the data, the command."""
    entry = METHODS.get(method)
    c = facts["config"]
    prov = config["provenance"]
    reference_rows, *paragraphs = METHOD_NOTES.get(method, ("", ))
    paragraphs = list(paragraphs)
    section = c.get(entry.section, {})
    networks = prov.get("frozen_networks") or {}
    networks_text = "; ".join(f"`{name}` from `{Path(path).name if '/' in path else path}`" for name, path in networks.items()) or "none"
    losses_text = ", ".join(f"{k} {v}" for k, v in section.items())
    parent = prov.get("parent_run")
    if parent:
        paragraphs.append(
            f"## Lineage\n\nWarm-started from `{c['model']['init_from']}`: the weights after step {parent['steps']} "
            f"({parent['epochs']} epochs, {parent['wall_hours']} h) of `{parent['command']}` (its validation history is in "
            f"config.json, `provenance.parent_run`). Both stages together: "
            f"{round(parent['wall_hours'] + facts['wall_hours'], 2)} h, {parent['steps'] + facts['steps']} steps; these weights "
            f"are stage 2's step {facts['best_step']}, {parent['steps'] + facts['best_step']} steps from the initialisation."
        )
    extra = "\n\n".join(paragraphs)
    optim = c["optim"]
    return f"""# {args.name}

{model.info.description}. Trained by `lowlight train --method {method}` (lowlight {__version__}).

| | |
|---|---|
| architecture | `{config["architecture"]}` {json.dumps(config["kwargs"]) if config["kwargs"] else ""} |
| parameters | {cx.parameters:,} |
| MACs per pixel | {round(cx.macs_per_pixel):,} (measured at 256x256) |
| training | {entry.summary} |
| frozen networks ({"the model runs them, and training" if model.frozen_networks() else "training only"}; never in this checkpoint) | {networks_text} |
| weights | {"EMA teacher" if prov.get("weights") == "teacher" else "student"} {chosen_text(facts)} |
| licence | Apache-2.0 (weights); LOL-v1 is licensed by its authors for research use |

## Method

{entry.doc.strip()}

As run: `{entry.section}:` {losses_text}.

{extra}

## Data

{prov.get("training_data") or f"{facts['labeled']} labeled pairs" + (f" and {facts['unlabeled']} unlabeled low-light images" if prov.get("semi") else "") + f"; {facts['validation']} held-out pairs for validation"}.
LOL-v1 training set as in `../shared/data/LOL`; split seed {facts["split_seed"]}. Patches {c["data"]["patch_size"]} px,
{c["data"]["patches_per_image"]} per input per epoch, batch {c["data"]["batch_size"]}, flips and 90-degree rotations.

## Command

```
{args.command}
```

The resolved configuration of the run is in config.json (`provenance.train_config`).
Adam lr {optim["lr"]}{f", weight decay {optim['weight_decay']}" if optim.get("weight_decay") else ""}{f", grad-norm clip {optim['grad_clip']}" if optim.get("grad_clip") else ""}{f", halved at epochs {optim['milestones']}" if optim.get("milestones") else ", constant"}; {facts["planned_epochs"]} epochs planned,
{facts["epochs"]} done ({facts["steps"]} steps); precision {c["run"].get("precision", "auto")}; seed {c["run"]["seed"]}.
{results_section(args.name, config, facts, scores, machine)}

{"For reference, " + reference_rows + "." if reference_rows else ""}
{args.note}
"""


if __name__ == "__main__":
    main()
