"""Score checkpoints on a training run's own validation pairs, as `lowlight train` validates.

    python scripts/validate_run.py training-state/crnet-lol best last
    python scripts/validate_run.py runs/crnet-lol best --data ../shared/data/LOL --device cuda

RUN is a run folder (or a `training-state/NAME` snapshot) holding `split.json` and `config.yaml`;
each CHECKPOINT is a folder in it (`best`, `last`) or any checkpoint folder path. Prints PSNR,
SSIM and PSNR after GT-mean scaling, the numbers training logs (whole images, float32, as training
validates), for checkpoints that predate the GT-mean column or were never validated (a `last/`
between validations).

    python scripts/validate_run.py runs/scl-lle-lol best last --exposure --test ../shared/data/LOL/test
    python scripts/validate_run.py /tmp/pie-split weights/pie-lol --make-split --data ../shared/data/LOL --curve-scale 1 2 4 8
    python scripts/validate_run.py runs/crnet-curve-dn-lol-stage7b weights/crnet-curve-dn-lol --colour model input

    python scripts/validate_run.py /tmp/lol-split weights/crnet-curve-dn-lol --make-split --data ../shared/data/LOL

``--make-split`` (with ``--data``) first writes RUN as a run folder holding only the split that
``lowlight train`` makes for that data (``--seed``, ``--val-count``; the defaults 0 and 15 are what
every bundled LOL run used since the 484 references): the validation pairs of a bundled checkpoint
whose run folder is not in the repository.

``--exposure`` adds the mean gray of the inputs, the outputs and the references (exposure error
shows there before PSNR says why); ``--test DIR`` adds the same for ``DIR/low`` and ``DIR/high``.
``--curve-scale N [N ...]`` scores curve models (DCE-Net) with their curves estimated at each 1/N
resolution, one row per scale (as ``lowlight evaluate --curve-scale N``, on validation pairs).
``--colour model input`` scores each checkpoint as it is and with the input's colour kept (the
``--exposure`` rows use the model's colours: the colour step keeps luma, so mean gray barely moves).

``--gain-exponent A [A ...]`` (CRNet curve models) adds a row per ``A`` with every pixel's
log-gain multiplied by ``A`` (``max_gain`` raised to ``A``: the curve's exposure calibrated by one
number; a gain of 1 stays 1). ``--trained`` scores the pairs the run trained on instead of its
validation pairs:

    python scripts/validate_run.py /tmp/lol-split weights/crnet-curve-dn-lol --gain-exponent 0.85 0.9 0.95 [--trained]

``--recall-weighted`` (LOL-like data with a ``test/low`` folder) adds a row weighted like the test
set: LOL-v1's test set largely measures recall of rooms seen in training (13 of its 15 low images
have a training low of the same room, ``scripts/lol_neighbours.py``), while a run's validation
pairs are mostly new rooms. Each validation pair counts as "same room" when its low image's layout
(``lol_neighbours.layout``) has a cosine similarity of at least 0.9 to a low image the run trained
on; the two groups' means are weighted by the share of test low images with such a training
neighbour (only the test *low* images are read, never its references):

    python scripts/validate_run.py runs/crnet-curve-dn-lol-stage11 best weights/crnet-curve-dn-lol --recall-weighted
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import yaml

import numpy as np

from lowlight_cli.data.pairs import SYNTHETIC, find_pairs, load_pairs
from lowlight_cli.errors import UsageError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.inference.engine import require_curve_model
from lowlight_cli.io import SUPPORTED_EXTENSIONS, read_image, to_float
from lowlight_cli.data.splits import Split, make_split
from lowlight_cli.inference import resolve_device
from lowlight_cli.models import load_checkpoint
from lowlight_cli.models.checkpoint import read_config
from lowlight_cli.training.distributed import DistContext
from lowlight_cli.training.validation import ValidationScores, validate

sys.path.insert(0, str(Path(__file__).resolve().parent))  # lol_matching.py, beside this script
from lol_matching import SAME_ROOM, layout  # noqa: E402


def checkpoint_folder(run: Path, name: str) -> Path:
    folder = run / name if (run / name).is_dir() else Path(name)
    if not (folder / "model.safetensors").is_file():
        raise SystemExit(f"{name}: neither {run / name} nor {name} is a checkpoint folder (no model.safetensors)")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data", type=Path, help="dataset root (default: the run's data.root)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--exposure", action="store_true", help="also print mean gray of inputs, outputs and references")
    parser.add_argument("--test", type=Path, help="with --exposure: a DIR/{low,high} test set to measure too")
    parser.add_argument("--curve-scale", type=int, nargs="+", default=[], help="curve models: score at each of these curve scales")
    parser.add_argument("--colour", nargs="+", choices=["model", "input"], default=["model"],
                        help="score with the model's colours and/or the input's kept (lowlight enhance --colour input)")
    parser.add_argument("--recall-weighted", action="store_true",
                        help="add same-room / new-room rows and their mean weighted like DATA/test (see above)")
    parser.add_argument("--make-split", action="store_true", help="write RUN's split.json from --data first (see above)")
    parser.add_argument("--seed", type=int, default=0, help="with --make-split: data.seed of the run")
    parser.add_argument("--val-count", type=int, default=15, help="with --make-split: data.val_count of the run")
    parser.add_argument("--gain-exponent", type=float, nargs="+", default=[],
                        help="CRNet curve models: score with the log-gain scaled by each of these (see above)")
    parser.add_argument("--trained", action="store_true", help="score the pairs the run trained on instead of its validation pairs")
    args = parser.parse_args(argv)
    if args.make_split:
        if args.data is None:
            parser.error("--make-split needs --data")
        write_split(args.run, args.data, seed=args.seed, val_count=args.val_count)
    if not (args.run / "split.json").is_file():
        parser.error(f"{args.run} has no split.json: not a run folder")
    split = Split.load(args.run / "split.json")
    root = args.data or Path(yaml.safe_load((args.run / "config.yaml").read_text())["data"]["root"])
    if str(root) == SYNTHETIC:  # generated pairs: no folder to read them back from
        parser.error(f"{args.run} trained on synthetic data, which has no folder to read its validation pairs from: "
                     "this script scores runs on a dataset folder (give it with --data)")
    wanted = set(split.labeled if args.trained else split.validation)
    paths = [p for p in find_pairs(root, "train") if p.name in wanted and p.high is not None]
    kind = "trained" if args.trained else "validation"
    if not args.trained and len(paths) != len(wanted):
        parser.error(f"{root}: found {len(paths)} of the run's {len(wanted)} validation pairs")
    if args.trained and args.recall_weighted:
        parser.error("--recall-weighted weights validation pairs; drop --trained")
    pairs = load_pairs(paths)
    groups = None
    if args.recall_weighted:
        if not (root / "test" / "low").is_dir():
            parser.error(f"--recall-weighted needs {root}/test/low (the test set whose mix it weights by)")
        groups = recall_groups(root, split, pairs)
    device = resolve_device(args.device)
    print(f"{args.run}: {len(pairs)} {kind} pairs from {root}; {device}, float32")
    if groups is not None:
        same, new, weight = groups
        print(f"recall-weighted: {len(same)} validation pairs of a room trained on ({', '.join(p.name for p in same)}), "
              f"{len(new)} of new rooms; weight {weight:.3f} on the first (the share of {root}/test/low with a training "
              f"neighbour at layout similarity >= {SAME_ROOM})")
    print("| checkpoint | step | PSNR | SSIM | PSNR, GT-mean |")
    print("|---|---|---|---|---|")
    for name in args.checkpoints:
        folder = checkpoint_folder(args.run, name)
        model = load_checkpoint(folder).to(device)
        step = read_config(folder).get("provenance", {}).get("step", "?")
        base_gain = getattr(getattr(model, "cfg", None), "max_gain", None)
        if args.gain_exponent and (base_gain is None or not getattr(model, "supports_curve_scale", False)):
            parser.error(f"{name}: --gain-exponent applies to CRNet curve models")
        variants = [(s, None) for s in args.curve_scale or [None]] + [(None, e) for e in args.gain_exponent]
        for scale, exponent in variants:
            label = name
            if exponent is not None:
                if args.curve_scale:  # the scale the checkpoint was built with, as the rows without --curve-scale
                    model.set_curve_scale(model.built_curve_scale)
                model.cfg = dataclasses.replace(model.cfg, max_gain=base_gain ** exponent)
                label = f"{name}, log-gain x {exponent:g}"
            if scale is not None:
                try:
                    require_curve_model(model)
                except UsageError as error:
                    parser.error(f"{name}: {error}")
                model.set_curve_scale(scale)
                label = f"{name}, curve scale {scale}"
            for colour in args.colour:
                shown = label + (", the input's colour" if colour == "input" else "")
                score = lambda some: validate(model, some, device, DistContext(), model.info.input_multiple, colour=colour)  # noqa: E731
                if groups is None:
                    scores = score(pairs)
                else:  # each pair scored once: the mean over all is the groups' means weighted by their sizes
                    same, new, weight = groups
                    parts = [score(part) if part else None for part in (same, new)]
                    scores = pooled([(len(part_pairs), part) for part_pairs, part in zip((same, new), parts) if part is not None])
                print(f"| {shown} | {step} | {scores.psnr:.2f} | {scores.ssim:.4f} | {scores.psnr_gt_mean:.2f} |", flush=True)
                if groups is not None:
                    for part_label, part in zip(("same rooms", "new rooms"), parts):
                        if part is not None:
                            print(f"| {shown}, {part_label} | {step} | {part.psnr:.2f} | {part.ssim:.4f} | {part.psnr_gt_mean:.2f} |")
                    # a group the test set gives no weight may be empty; one it weighs must not be
                    weighted = [(w, part) for w, part in ((weight, parts[0]), (1 - weight, parts[1])) if w > 0]
                    if all(part is not None for _, part in weighted):
                        mix = pooled(weighted)
                        print(f"| {shown}, recall-weighted | {step} | {mix.psnr:.2f} | {mix.ssim:.4f} "
                              f"| {mix.psnr_gt_mean:.2f} |", flush=True)
            if exponent is not None:
                model.cfg = dataclasses.replace(model.cfg, max_gain=base_gain)
        if args.exposure:
            sets = {"validation": [(p.low, p.high) for p in pairs]}
            if args.test is not None:
                sets["test"] = [(read_image(low).rgb, read_image(args.test / "high" / low.name).rgb)
                                for low in sorted((args.test / "low").iterdir()) if (args.test / "high" / low.name).is_file()]
            enhancer = Enhancer(model, InferenceConfig(device=str(device), tile=0))
            for label, images in sets.items():
                print(f"  {label} ({len(images)}): mean gray input / output / reference "
                      + " / ".join(f"{v:.3f}" for v in exposure(enhancer, images)), flush=True)
    return 0


def pooled(parts: list[tuple[float, ValidationScores]]) -> ValidationScores:
    """The mean scores of groups pooled, each weighted by its weight (its pair count: the mean over
    all the pairs, since every score is a mean over pairs)."""
    total = sum(w for w, _ in parts)
    mean = lambda key: sum(w * getattr(part, key) for w, part in parts) / total  # noqa: E731
    return ValidationScores(psnr=mean("psnr"), ssim=mean("ssim"), psnr_gt_mean=mean("psnr_gt_mean"))


def recall_groups(root: Path, split: Split, pairs: list) -> tuple[list, list, float]:
    """The validation ``pairs`` of a room the run trained on and those of new rooms, and the weight of
    the first group: the share of ``root/test/low`` images with a training neighbour (every training
    pair with a reference counts: the test set's relation to a model trained on all of them).
    Only low images are read."""
    trained = set(split.labeled) | set(split.unlabeled)  # every low image the run trained on
    train_paths = [p for p in find_pairs(root, "train") if p.high is not None]
    loaded = {p.name: p.low for p in pairs}  # the validation lows are decoded already
    lows = {p.name: layout(loaded[p.name] if p.name in loaded else read_image(p.low).rgb) for p in train_paths}
    library = np.stack([vector for name, vector in lows.items() if name in trained])
    same_names = {p.name for p in pairs if float(np.max(library @ layout(p.low))) >= SAME_ROOM}
    same = [p for p in pairs if p.name in same_names]
    new = [p for p in pairs if p.name not in same_names]
    everything = np.stack(list(lows.values()))
    tests = [read_image(path).rgb for path in sorted((root / "test" / "low").iterdir())
             if path.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS]
    share = float(np.mean([np.max(everything @ layout(low)) >= SAME_ROOM for low in tests]))
    return same, new, share


def write_split(run: Path, root: Path, *, seed: int, val_count: int) -> None:
    """``run/split.json`` and a ``config.yaml`` naming ``root``: the split a supervised run on ``root`` makes.
    Refuses a folder that holds a training run (its own split and config would be replaced)."""
    if any((run / name).exists() for name in ("log.jsonl", "last", "best")):
        raise SystemExit(f"{run} holds a training run; --make-split writes a new folder (choose another RUN)")
    pairs = load_pairs(find_pairs(root, "train"))
    run.mkdir(parents=True, exist_ok=True)
    make_split(pairs, labeled_frac=1.0, val_count=val_count, seed=seed).save(run / "split.json")
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"root": str(root)}}))


def exposure(enhancer: Enhancer, images: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, float]:
    """Mean gray (0..1, averaged over images) of the inputs, their enhanced outputs and the references."""
    def gray(rgb: np.ndarray) -> float:
        return float(np.mean(rgb, dtype=np.float64))

    values = []
    for low, high in images:
        low, high = to_float(low), to_float(high)
        values.append((gray(low), gray(enhancer.enhance(low)), gray(high)))
    return tuple(float(np.mean(column)) for column in zip(*values))


if __name__ == "__main__":
    raise SystemExit(main())
