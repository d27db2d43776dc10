"""Split LOL-v1 test scores by whether training references cover the test image's part of LOL.

    lowlight evaluate --model crnet --data ../shared/data/LOL/test --csv crnet.csv
    lowlight evaluate --model crnet --data ../shared/data/LOL/test --gt-mean --csv crnet-gtmean.csv
    python scripts/lol_test_breakdown.py --lol ../shared/data/LOL crnet=crnet.csv "crnet, GT-mean=crnet-gtmean.csv"

LOL-v1 numbers its scenes; ``../shared/data/LOL/train/high`` holds the references of the
first training images by number only (2 to 489). A test image numbered up to the highest of them
has training references from its own part of the dataset (LOL-v1 numbers neighbouring scenes
together); one numbered above it comes from scenes whose training references are withheld here.
Each CSV is one ``lowlight evaluate --csv`` file; the script prints one markdown row per CSV: mean
PSNR / SSIM over all test images, over those numbered up to the highest training reference and
over those above it; then the median mean grey level (0..1, as `--gt-mean` measures it) of the references in each group and of
the training references.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@dataclass(frozen=True)
class Group:
    name: str
    stems: tuple[str, ...]


def highest_reference(lol: Path) -> int:
    """The highest number among the training references present."""
    numbers = [int(p.stem) for p in (lol / "train" / "high").iterdir() if p.stem.isdigit()]
    if not numbers:
        raise SystemExit(f"no numbered training references in {lol / 'train' / 'high'}")
    return max(numbers)


def groups_for(stems: list[str], high: int) -> list[Group]:
    inside = tuple(s for s in stems if s.isdigit() and int(s) <= high)
    beyond = tuple(s for s in stems if s not in inside)
    return [
        Group(f"all ({len(stems)})", tuple(stems)),
        Group(f"numbered up to {high}, as the training references ({len(inside)})", inside),
        Group(f"numbered above {high} ({len(beyond)})", beyond),
    ]


def read_scores(path: Path) -> dict[str, dict[str, float]]:
    """Per-image scores from a ``lowlight evaluate --csv`` file (its ``#`` protocol line skipped)."""
    with path.open(newline="") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        scores = {row["name"]: {k: float(v) for k, v in row.items() if k != "name" and v} for row in rows}
    if not scores:
        raise SystemExit(f"{path}: no scores")
    return scores


def mean_of(scores: dict[str, dict[str, float]], stems: tuple[str, ...], metric: str) -> str:
    values = [scores[s][metric] for s in stems if metric in scores[s]]
    if not values:
        return "-"
    value = sum(values) / len(values)
    return f"{value:.2f}" if metric == "psnr" else f"{value:.4f}"


def load(labelled: list[tuple[str, Path]]) -> tuple[list[tuple[str, dict[str, dict[str, float]]]], list[str]]:
    """Every CSV's scores, and the test images they score (all CSVs must score the same ones)."""
    loaded = [(label, read_scores(path)) for label, path in labelled]
    stems = sorted(loaded[0][1], key=lambda s: (not s.isdigit(), int(s) if s.isdigit() else 0, s))
    for label, scores in loaded[1:]:
        if sorted(scores) != sorted(stems):
            raise SystemExit(f"{label}: scores a different set of images than {loaded[0][0]}")
    return loaded, stems


def table(loaded: list[tuple[str, dict[str, dict[str, float]]]], groups: list[Group]) -> list[str]:
    lines = ["| scores | " + " | ".join(g.name for g in groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for label, scores in loaded:
        cells = [f"{mean_of(scores, g.stems, 'psnr')} / {mean_of(scores, g.stems, 'ssim')}" for g in groups]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def mean_grey(path: Path) -> float:
    """Mean grey level (0..1) of an image file, read and measured as ``lowlight evaluate --gt-mean`` does."""
    from lowlight_cli.evaluation.scoring import mean_gray_level
    from lowlight_cli.io import read_image, to_float

    return mean_gray_level(to_float(read_image(path).rgb))


def brightness_line(lol: Path, groups: list[Group]) -> str:
    """Median mean grey level of each group's test references and of the training references."""
    from statistics import median

    def ref(stem: str) -> Path:
        found = sorted((lol / "test" / "high").glob(f"{stem}.*"))
        if not found:
            raise SystemExit(f"no reference for test image {stem} in {lol / 'test' / 'high'}")
        return found[0]

    parts = [f"{g.name}: {median(mean_grey(ref(s)) for s in g.stems):.3f}" for g in groups if g.stems]
    train = [mean_grey(p) for p in sorted((lol / "train" / "high").iterdir()) if p.is_file()]
    parts.append(f"training references ({len(train)}): {median(train):.3f}")
    return "reference mean grey level, median per group: " + "; ".join(parts)


def _labelled(arg: str) -> tuple[str, Path]:
    label, sep, path = arg.rpartition("=")
    path_obj = Path(path)
    if not path_obj.is_file():
        raise argparse.ArgumentTypeError(f"no such CSV file: {path}")
    return (label if sep and label else path_obj.stem), path_obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lol", type=Path, default=Path("../shared/data/LOL"), help="LOL-v1 folder (train/high read)")
    parser.add_argument("csvs", nargs="+", type=_labelled, help="LABEL=scores.csv from lowlight evaluate --csv")
    args = parser.parse_args(argv)
    if not (args.lol / "train" / "high").is_dir():
        parser.error(f"{args.lol / 'train' / 'high'} is not a folder")
    loaded, stems = load(args.csvs)
    groups = groups_for(stems, highest_reference(args.lol))
    print("\n".join(table(loaded, groups)))
    print()
    print(brightness_line(args.lol, groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
