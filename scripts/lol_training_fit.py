"""How well does a checkpoint fit LOL's training pairs, split by whether a capture repeats?

    lowlight evaluate --model crnet-curve-dn --weights W --data ../shared/data/LOL/train --csv fit.csv
    lowlight evaluate --model crnet-curve-dn --weights W --data ../shared/data/LOL/train --gt-mean --csv fit-gtmean.csv
    python scripts/lol_training_fit.py --lol ../shared/data/LOL fit.csv fit-gtmean.csv --show 607 699 719 723 731

LOL-v1 often holds the same capture twice: two low images a moment apart (>= 35 dB PSNR to each
other, ``SAME_CAPTURE_DB`` of ``scripts/lol_matching.py``), paired with the same reference
or with another one. A model that memorised its training pairs would fit the repeats with one
reference as well as the captures that occur once, and the gap between its PSNR and its PSNR after
GT-mean scaling (the exposure part of its error) would close on both. ``--trained-by RUN`` keeps
the pairs the run's ``split.json`` trained on (its validation pairs are repeats' partners too, so
they still count when repeats are looked for). Each training pair falls in
one of three groups:

- **once**: no other training low image repeats its capture;
- **repeat, same reference**: every repeat of its capture has its reference (> 25 dB PSNR,
  ``SAME_REFERENCE_DB``), so nothing in the data contradicts it;
- **repeat, other reference**: a repeat of its capture is paired with another reference.

The repeats of a capture are looked for among the four training low images of the same size whose
exposure-invariant layout (``layout`` of ``scripts/lol_neighbours.py``) is closest, then checked
by PSNR. The two CSVs are ``lowlight evaluate --csv`` files on the training folder, without and with
``--gt-mean``. Prints one markdown row per group (pairs, PSNR, PSNR after GT-mean scaling, their
gap) and, with ``--show``, those pairs' rows and their repeats.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from lol_matching import SAME_CAPTURE_DB, SAME_REFERENCE_DB, layout, psnr_u8  # noqa: E402

GROUPS = ("once", "repeat, same reference", "repeat, other reference")
CANDIDATES = 4  # layout neighbours checked by PSNR for a repeat


@dataclass(frozen=True)
class Repeat:
    name: str
    low_psnr: float
    reference_psnr: float


def find_repeats(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[Repeat]]:
    """For each ``(low, reference)`` pair, the other pairs whose low image repeats its capture."""
    names = sorted(pairs)
    layouts = np.stack([layout(pairs[n][0]) for n in names])
    similarity = layouts @ layouts.T
    np.fill_diagonal(similarity, -np.inf)
    found: dict[str, list[Repeat]] = {}
    for i, name in enumerate(names):
        low, ref = pairs[name]
        repeats = []
        for j in np.argsort(-similarity[i])[:CANDIDATES]:
            other_low, other_ref = pairs[names[j]]
            if other_low.shape != low.shape:
                continue
            close = psnr_u8(low, other_low)
            if close >= SAME_CAPTURE_DB:
                repeats.append(Repeat(names[j], close, psnr_u8(ref, other_ref)))
        found[name] = repeats
    return found


def group_of(repeats: list[Repeat]) -> str:
    if not repeats:
        return GROUPS[0]
    return GROUPS[1] if all(r.reference_psnr > SAME_REFERENCE_DB for r in repeats) else GROUPS[2]


def read_scores(path: Path) -> dict[str, float]:
    """``name -> psnr`` from a ``lowlight evaluate --csv`` file (its ``#`` header lines skipped)."""
    with path.open(newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return {row["name"]: float(row["psnr"]) for row in rows if row.get("psnr")}


def rows(groups: dict[str, str], raw: dict[str, float], gt_mean: dict[str, float]) -> list[str]:
    """One markdown row per group (and all): pairs, mean PSNR, mean GT-mean PSNR, gap."""
    out = []
    for label in (*GROUPS, "all"):
        names = [n for n in groups if (label == "all" or groups[n] == label) and n in raw and n in gt_mean]
        if not names:
            out.append(f"| {label} | 0 | - | - | - |")
            continue
        a, b = np.mean([raw[n] for n in names]), np.mean([gt_mean[n] for n in names])
        out.append(f"| {label} | {len(names)} | {a:.2f} | {b:.2f} | {b - a:.2f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, help="lowlight evaluate --csv on LOL's training folder")
    parser.add_argument("gt_mean", type=Path, help="the same with --gt-mean")
    parser.add_argument("--lol", type=Path, default=ROOT.parent / "shared" / "data" / "LOL")
    parser.add_argument("--show", nargs="*", default=[], help="pairs to list with their repeats")
    parser.add_argument("--trained-by", type=Path, help="a run folder: score only the pairs its split.json trained on")
    args = parser.parse_args(argv)

    import cv2

    from lowlight_cli.data.pairs import find_pairs

    pairs = {}
    for p in find_pairs(args.lol, "train"):
        if p.high is not None:
            pairs[p.name] = tuple(cv2.imread(str(path), cv2.IMREAD_COLOR) for path in (p.low, p.high))
    if not pairs:
        raise SystemExit(f"no training pairs under {args.lol}")
    repeats = find_repeats(pairs)
    groups = {n: group_of(r) for n, r in repeats.items()}
    raw, gt_mean = read_scores(args.raw), read_scores(args.gt_mean)
    if args.trained_by is not None:
        import json

        trained = set(json.loads((args.trained_by / "split.json").read_text())["labeled"])
        groups = {n: g for n, g in groups.items() if n in trained}
    print(f"# {len(pairs)} training pairs of {args.lol}; scores {args.raw} and {args.gt_mean}\n")
    print("| pairs | count | PSNR | PSNR, GT-mean | gap |\n|---|---|---|---|---|")
    print("\n".join(rows(groups, raw, gt_mean)))
    if args.show:
        print("\n| pair | group | PSNR | PSNR, GT-mean | repeats (low / reference PSNR) |\n|---|---|---|---|---|")
        for name in args.show:
            if name not in groups:
                print(f"| {name} | not a training pair | | | |")
                continue
            listed = ", ".join(f"{r.name} ({r.low_psnr:.1f} / {r.reference_psnr:.1f} dB)" for r in repeats[name]) or "-"
            print(f"| {name} | {groups[name]} | {raw.get(name, float('nan')):.2f} | "
                  f"{gt_mean.get(name, float('nan')):.2f} | {listed} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
