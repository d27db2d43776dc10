"""Copy a run's resumable state into training-state/NAME/ (to commit), or restore it into runs/.

    python scripts/snapshot_run.py save runs/crnet-s-lol-semi10        # -> training-state/crnet-s-lol-semi10/
    python scripts/snapshot_run.py restore crnet-s-lol-semi10          # -> runs/crnet-s-lol-semi10/
    lowlight train --resume runs/crnet-s-lol-semi10                     # continues exactly

A snapshot holds config.yaml, split.json, data.json, log.jsonl, last/ (student, teacher, training state) and
best/ (and rng/, a torchrun run's other processes' random states); it replaces the previous snapshot of the same run, so the repository keeps one copy.
"""

from __future__ import annotations

import argparse

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("config.yaml", "split.json", "data.json", "log.jsonl")
FOLDERS = ("last", "best", "rng")  # rng/: the other processes' random states of a torchrun run


def copy_run(source: Path, target: Path) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, tmp / name)
    for name in FOLDERS:
        if (source / name).is_dir():
            shutil.copytree(source / name, tmp / name)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("save", "restore"))
    parser.add_argument("run", help="save: the run folder (runs/NAME); restore: the snapshot's NAME")
    args = parser.parse_args(argv)
    if args.action == "save":
        run = Path(args.run)
        copy_run(run, ROOT / "training-state" / run.name)
        print(f"saved {run} -> training-state/{run.name}")
    else:
        name = args.run
        copy_run(ROOT / "training-state" / name, ROOT / "runs" / name)
        print(f"restored training-state/{name} -> runs/{name}")


if __name__ == "__main__":
    main()
