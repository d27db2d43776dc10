"""Does memorising LOL-v1's training captures carry to other captures? Two fine-tuning probes of the
default photo model, and which held-out captures repeat a training one (session 35-36; the question
behind issue 15's 22 dB).

    python scripts/memorisation_probe.py                      # repeats, then both probes: trains, then scores (about 30 min, 2 cores)
    python scripts/memorisation_probe.py --probes             # the repeats only (no training, about a minute)
    python scripts/memorisation_probe.py --probes 2 --no-repeats   # one probe
    python scripts/memorisation_probe.py --work /tmp/probes   # where subsets and runs go (kept: a rerun only scores)

LOL-v1's test set is mostly rooms of its training set (``scripts/lol_neighbours.py``: a lookup of
the matching training reference scores 23.52 dB), and the bundled model fits its own training
pairs to only 22.03 dB. So: can this model memorise captures it trains on, and does that carry to
another capture of the same room? Each probe fine-tunes the bundled ``crnet-curve-dn-lol`` with
``configs/memorisation-probe.yaml`` (``lowlight train``: lr 2e-4, 384-px patches, 8 per image per
epoch, no identity patches, the EMA teacher scored) on a few training pairs linked into a folder of
its own, then scores the bundled weights and the probe's on:

- **probe 1**: 33 pairs, every 15th reference by file name (25 epochs). Scored on those pairs (plain
  and GT-mean PSNR) and on one untrained neighbour of each (numbered n+1, else n-1, else n+2),
  split by whether the neighbour's reference is the trained pair's own (the two references within
  25 dB PSNR of each other) or another; then each neighbour beside how close its low image is to
  the trained one (added after the runs, to read them).
- **probe 2**: the training pairs whose low image is the same room (layout similarity >=
  ``SAME_ROOM`` of ``scripts/lol_matching.py``, at most 8 each) as one of the 22 validation pairs
  every bundled stage held out (split seed 0): 13 pairs (30 epochs). Scored on them, on the 8
  validation pairs of those rooms and on the 14 of new rooms; each of the 8 beside how close its
  matched training reference is to its own.
- **repeats** (no training): for each LOL-v1 test pair and each of the 22 validation pairs, the
  training capture whose low image is closest (PSNR), and how close the two references are. No
  model is scored on LOL-v1 test here.

The reading, written before the runs: probe 1's fit within 1.5 dB of its GT-mean PSNR means the
model memorises per-capture exposure given passes; probe 2's same-room validation change minus its
new-room change >= 1.5 dB (and the same-room change >= +1 dB) means memorising a room carries to a
held-out capture of it, so a long memorising run over all of LOL would be the road to 22 dB.

Outcome (AMD EPYC Zen 3, 2 threads, fp32; probe 1 19 min, probe 2 8 min of training): the model
memorises (probe 1: 21.45 -> 25.00 dB on its 33 pairs, gap to GT-mean 5.1 -> 2.1 dB), but a room
does not carry: probe 2's same-room validation pairs fell more than the new-room ones (21.28 ->
18.23 against 19.99 -> 17.63). What carries is the capture: probe 1's 11 neighbours whose low image
repeats the trained one (>= 35 dB PSNR) gained 2.66 dB on average (2 worse, both where LOL gave the
repeat another reference); the other 22 lost 4.12 dB (20 worse, down to 8.89 dB), the same room
at another exposure included. And 13 of LOL-v1 test's 15 low images repeat a training capture, 8 of
them with the same reference, while 5 of the 22 validation pairs do, 1 with the same reference
(the split holds out whole reference groups). So LOL-v1 test rewards recalling training captures,
a validation split that keeps references apart cannot choose a checkpoint for it, and the
memorising that gets it costs captures the model has not seen. docs/crnet-training.md, "Does
memorising LOL's rooms carry?".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from lol_matching import SAME_CAPTURE_DB, SAME_REFERENCE_DB, SAME_ROOM, layout, psnr_u8  # noqa: E402
from lol_neighbours import scores  # noqa: E402
from machine import describe_machine  # noqa: E402

from lowlight_cli.data.pairs import PairPaths, find_pairs, load_pairs  # noqa: E402
from lowlight_cli.data.splits import make_split  # noqa: E402
from lowlight_cli.evaluation.scoring import gt_mean_scale  # noqa: E402
from lowlight_cli.inference import Enhancer, InferenceConfig  # noqa: E402
from lowlight_cli.io import from_float, to_float  # noqa: E402
from lowlight_cli.models import create_model, load_checkpoint  # noqa: E402

CONFIG = ROOT / "configs" / "memorisation-probe.yaml"
EVERY = 15  # probe 1 takes every 15th reference by file name
PER_ROOM = 8  # probe 2 takes at most this many training matches per validation pair


def every_nth(names: list[str], every: int = EVERY) -> list[str]:
    """Probe 1's pairs: every ``every``-th of ``names`` sorted as file names ("10" before "9")."""
    return [name for i, name in enumerate(sorted(names, key=lambda n: f"{n}.webp")) if i % every == 0]


def neighbour(name: str, labelled: set[str], taken: set[str]) -> str | None:
    """The first of ``name`` + 1, - 1, + 2 that has a reference and is not among ``taken``."""
    if not name.isdigit():
        return None
    for step in (1, -1, 2):
        other = str(int(name) + step)
        if other in labelled and other not in taken:
            return other
    return None


def same_room_matches(validation: list[str], training: list[str], lows: dict[str, np.ndarray],
                      per_room: int = PER_ROOM) -> dict[str, list[str]]:
    """For each validation name, the training names whose low image is its room (layout similarity
    >= SAME_ROOM), most similar first, at most ``per_room``; rooms with none are left out."""
    library = np.stack([lows[name] for name in training])
    matches = {}
    for name in validation:
        similarity = library @ lows[name]
        found = np.flatnonzero(similarity >= SAME_ROOM)
        if found.size:
            matches[name] = [training[i] for i in found[np.argsort(-similarity[found])][:per_room]]
    return matches


def link_subset(pairs: dict[str, PairPaths], names: list[str], folder: Path, test: Path | None) -> Path:
    """A LOL-like folder of symbolic links: ``train/{low,high}`` for ``names``, ``test`` -> ``test``."""
    for name in names:
        for side, source in (("low", pairs[name].low), ("high", pairs[name].high)):
            target = folder / "train" / side / Path(source).name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_symlink():
                target.symlink_to(Path(source).resolve())
    if test is not None and not (folder / "test").exists():
        (folder / "test").symlink_to(test.resolve())
    return folder


def train(data: Path, run: Path, epochs: int) -> None:
    """``lowlight train`` with the probe config on ``data``; a finished run is kept as it is."""
    if (run / "last" / "ema.safetensors").exists() and (run / "best").exists():
        return
    command = [sys.executable, "-m", "lowlight_cli", "train", "--config", str(CONFIG), "--data", str(data),
               "--out", str(run), "--epochs", str(epochs)]
    if (run / "last").exists():
        command = [sys.executable, "-m", "lowlight_cli", "train", "--resume", str(run)]
    subprocess.run(command, check=True, cwd=ROOT)


def teacher(run: Path) -> torch.nn.Module:
    """The run's EMA teacher at its last step."""
    from safetensors.torch import load_file

    model = load_checkpoint(run / "last")
    model.load_state_dict(load_file(str(run / "last" / "ema.safetensors")))
    return model.eval()


@dataclass(frozen=True)
class Twin:
    """A held-out capture's nearest training capture: how close the low images and the references are."""

    name: str
    twin: str
    low_psnr: float
    reference_psnr: float


def repeat_twins(held_out: dict[str, tuple[np.ndarray, np.ndarray]],
                 training: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[Twin]:
    """For each held-out ``(low, reference)`` pair, the training pair whose low image is closest
    (PSNR over the whole image, same size only) and how close the two references are."""
    twins = []
    for name, (low, ref) in held_out.items():
        found = [(psnr_u8(low, other_low), other) for other, (other_low, _) in training.items()
                 if other_low.shape == low.shape]
        if not found:
            continue
        close, other = max(found)
        twins.append(Twin(name, other, close, psnr_u8(ref, training[other][1])))
    return twins


def print_twins(label: str, twins: list[Twin]) -> None:
    repeats = [t for t in twins if t.low_psnr >= SAME_CAPTURE_DB]
    shared = [t for t in repeats if t.reference_psnr > SAME_REFERENCE_DB]
    print(f"{label}: {len(repeats)} of {len(twins)} low images repeat a training capture (>= {SAME_CAPTURE_DB:.0f} dB), "
          f"{len(shared)} of those with the same reference (> {SAME_REFERENCE_DB:.0f} dB)\n")
    print("| pair | closest training capture | low images (PSNR) | references (PSNR) |\n|---|---|---|---|")
    for t in twins:
        print(f"| {t.name} | {t.twin} | {t.low_psnr:.1f} dB | {t.reference_psnr:.1f} dB |")
    print()


@dataclass
class Scored:
    psnr: float
    psnr_gt_mean: float


def score_each(enhancer: Enhancer, pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Scored]:
    """Each ``name: (low, reference)`` pair enhanced and scored (plain and GT-mean PSNR)."""
    scored = {}
    for name, (low, ref) in pairs.items():
        out = enhancer.enhance(to_float(low))
        scored[name] = Scored(scores(from_float(out, 8), ref)[0], scores(from_float(gt_mean_scale(out, to_float(ref)), 8), ref)[0])
    return scored


def mean(scored: list[Scored]) -> Scored:
    return Scored(float(np.mean([s.psnr for s in scored])), float(np.mean([s.psnr_gt_mean for s in scored])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lol", type=Path, default=ROOT.parent / "shared" / "data" / "LOL", help="LOL-v1 (train/, test/)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/memorisation-probe"), help="subsets and runs (kept)")
    parser.add_argument("--probes", type=int, nargs="*", choices=(1, 2), default=[1, 2], help="the probes to run (none: --repeats only)")
    parser.add_argument("--repeats", action=argparse.BooleanOptionalAction, default=True,
                        help="which held-out low images repeat a training capture (no training; about 20 s)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    found = find_pairs(args.lol, "train")
    paths = {p.name: p for p in found if p.high is not None}
    loaded = load_pairs(found)  # every pair, as the stages' split saw them
    images = {p.name: (p.low, p.high) for p in loaded if p.high is not None}

    def read(name: str, side: str) -> np.ndarray:
        return images[name][0 if side == "low" else 1]

    def pairs(names: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {n: images[n] for n in names}

    bundled = Enhancer(create_model("crnet-curve-dn", pretrained=True), InferenceConfig(device="cpu", precision="fp32"))
    print(f"# {describe_machine()}; crnet-curve-dn, fp32, whole images; PSNR as lowlight evaluate scores it\n")
    split = make_split(loaded, labeled_frac=1.0, val_count=15, seed=0)
    validation = sorted(split.validation)
    if args.repeats:
        test = {p.name: (p.low, p.high) for p in load_pairs(find_pairs(args.lol, "test")) if p.high is not None}
        print_twins("LOL-v1 test against the whole training set", repeat_twins(test, pairs(list(paths))))
        print_twins("the 22 validation pairs (split seed 0) against the pairs the stages trained on",
                    repeat_twins(pairs(validation), pairs([n for n in paths if n not in set(validation)])))
    if 1 in args.probes:
        names = every_nth(list(paths))
        start = time.perf_counter()
        run = args.work / "run1"
        train(link_subset(paths, names, args.work / "probe1", args.lol / "test"), run, 25)
        seconds = time.perf_counter() - start
        probe = Enhancer(teacher(run), InferenceConfig(device="cpu", precision="fp32"))
        near = {name: other for name in names if (other := neighbour(name, set(paths), set(names))) is not None}
        scored = [score_each(enhancer, pairs(names + list(near.values()))) for enhancer in (bundled, probe)]
        same = [n for n in names if n in near and psnr_u8(read(n, "high"), read(near[n], "high")) > SAME_REFERENCE_DB]
        print(f"probe 1 ({len(names)} pairs; {seconds:.0f} s here)\n")
        print("| pairs | bundled PSNR (GT-mean) | probe 1 PSNR (GT-mean) |\n|---|---|---|")
        for label, group in ((f"the {len(names)} trained", names),
                             (f"{len(same)} neighbours with the trained pair's reference", [near[n] for n in same]),
                             (f"{len(near) - len(same)} neighbours with another", [near[n] for n in near if n not in same])):
            before, after = (mean([each[n] for n in group]) for each in scored)
            print(f"| {label} | {before.psnr:.2f} ({before.psnr_gt_mean:.2f}) | {after.psnr:.2f} ({after.psnr_gt_mean:.2f}) |")
        print("\n| trained pair | neighbour | references (PSNR) | low images (PSNR) | neighbour: bundled | probe 1 |\n|---|---|---|---|---|---|")
        repeats, others = [], []
        for name, other in near.items():
            low_vs_low = psnr_u8(read(name, "low"), read(other, "low"))
            before, after = (each[other].psnr for each in scored)
            (repeats if low_vs_low >= SAME_CAPTURE_DB else others).append(after - before)
            print(f"| {name} | {other} | {psnr_u8(read(name, 'high'), read(other, 'high')):.1f} dB | {low_vs_low:.1f} dB "
                  f"| {before:.2f} | {after:.2f} |")
        print(f"\nneighbours whose low image matches the trained one at >= {SAME_CAPTURE_DB:.0f} dB PSNR (a repeat of the capture): "
              f"{len(repeats)}, mean change {np.mean(repeats):+.2f} dB, {sum(d < 0 for d in repeats)} worse; "
              f"the other {len(others)}: mean change {np.mean(others):+.2f} dB, {sum(d < 0 for d in others)} worse\n")
    if 2 in args.probes:
        training = [n for n in paths if n not in set(validation)]
        lows = {n: layout(read(n, "low")) for n in paths}
        matches = same_room_matches(validation, training, lows)
        chosen = sorted({n for found in matches.values() for n in found})
        start = time.perf_counter()
        run = args.work / "run2"
        train(link_subset(paths, chosen, args.work / "probe2", args.lol / "test"), run, 30)
        seconds = time.perf_counter() - start
        probe = Enhancer(teacher(run), InferenceConfig(device="cpu", precision="fp32"))
        new = [n for n in validation if n not in matches]
        print(f"probe 2 ({len(chosen)} pairs, the rooms of {len(matches)} validation pairs; "
              f"{seconds:.0f} s here)\n")
        scored = [score_each(enhancer, pairs(chosen + validation)) for enhancer in (bundled, probe)]
        print("| pairs | bundled PSNR (GT-mean) | probe 2 PSNR (GT-mean) |\n|---|---|---|")
        for label, names in ((f"the {len(chosen)} trained", chosen), (f"{len(matches)} validation pairs of those rooms", list(matches)),
                             (f"{len(new)} validation pairs of new rooms", new)):
            before, after = (mean([each[n] for n in names]) for each in scored)
            print(f"| {label} | {before.psnr:.2f} ({before.psnr_gt_mean:.2f}) | {after.psnr:.2f} ({after.psnr_gt_mean:.2f}) |")
        print("\n| validation pair | its best-matched training pair | that pair's reference vs its own (PSNR) | bundled | probe 2 |\n|---|---|---|---|---|")
        for name, found in matches.items():
            before, after = (each[name].psnr for each in scored)
            print(f"| {name} | {found[0]} | {psnr_u8(read(found[0], 'high'), read(name, 'high')):.1f} dB "
                  f"| {before:.2f} | {after:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
