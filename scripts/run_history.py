"""Print how a training run validated over time, from its log or from a bundled checkpoint.

    python scripts/run_history.py weights/crnet-s-lol-sup10-stage1 --last 7
    python scripts/run_history.py runs/crnet-lol
    python scripts/run_history.py training-state/crnet-lol --step-time 1400 2650   # median s/step there

FOLDER is a run folder (reads log.jsonl) or a bundled ``weights/NAME`` (reads the history that
scripts/bundle_weights.py recorded in config.json's provenance). Prints every validation (step,
PSNR, SSIM, and PSNR after GT-mean scaling where the run logged it), the range and mean of the
last N, and the loss terms at the last logged step.
``--step-time A B`` (run folders) adds the median seconds per optimiser step between steps A and B,
from the times of consecutive log lines (intervals over 10 minutes, stops and resumes, left out).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def read_records(run: Path) -> list[dict]:
    """The records of a run folder's ``log.jsonl``, in file order."""
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]


def median_step_seconds(records: list[dict], first: int, last: int) -> float:
    """Median seconds per step between consecutive step lines within ``[first, last]``; NaN if none."""
    steps = [r for r in records if r["kind"] == "step" and first <= r["step"] <= last]
    rates = [(b["time"] - a["time"]) / (b["step"] - a["step"]) for a, b in zip(steps, steps[1:])
             if b["step"] > a["step"] and b["time"] - a["time"] < 600]
    return statistics.median(rates) if rates else float("nan")


def validation_history(records: list[dict]) -> list[dict]:
    """One entry per validated step, in step order, from a run's log records.

    A resume from a state older than the last log line logs those steps again; the later record counts.
    """
    by_step = {r["step"]: r for r in records if r["kind"] == "validation"}
    history = []
    for s, r in sorted(by_step.items()):
        entry = {"step": s, "psnr": round(r["psnr"], 4), "ssim": round(r["ssim"], 4)}
        if "psnr_gt_mean" in r:  # logged since 2026-11-25
            entry["psnr_gt_mean"] = round(r["psnr_gt_mean"], 4)
        history.append(entry)
    return history


def last_terms(records: list[dict]) -> dict:
    """The loss terms of the last step line in the log (the one a finished or resumed run ended on)."""
    last = [r for r in records if r["kind"] == "step"][-1]
    return {"step": last["step"], **{k: round(v, 6) for k, v in last["terms"].items()}}


def read_history(folder: Path) -> tuple[list[dict], dict]:
    """(validation history, last terms) of a run folder or a bundled checkpoint folder."""
    if (folder / "log.jsonl").is_file():
        records = read_records(folder)
        return validation_history(records), last_terms(records)
    config = folder / "config.json"
    if not config.is_file():
        raise SystemExit(f"{folder}: neither a run folder (log.jsonl) nor a checkpoint folder (config.json)")
    training = json.loads(config.read_text()).get("provenance", {}).get("training", {})
    if "validation_history" not in training:
        raise SystemExit(f"{folder}: bundled without a validation history; rebundle it with scripts/bundle_weights.py")
    return training["validation_history"], training["last_terms"]


def report(folder: Path, history: list[dict], terms: dict, last: int | None) -> list[str]:
    if not history:
        return [f"{folder}: no validation logged yet"]
    best = max(history, key=lambda h: h["psnr"])
    lines = [f"{folder}: {len(history)} validations, best {best['psnr']:.2f} dB at step {best['step']}",
             "| step | PSNR | SSIM | PSNR, GT-mean |", "|---|---|---|---|"]
    lines += [f"| {h['step']} | {h['psnr']:.2f} | {h['ssim']:.4f} | "
              + (f"{h['psnr_gt_mean']:.2f} |" if "psnr_gt_mean" in h else "(not logged) |") for h in history]
    tail = history[-last:] if last else history
    psnr = [h["psnr"] for h in tail]
    lines.append(f"last {len(tail)} validations (steps {tail[0]['step']} to {tail[-1]['step']}): "
                 f"{min(psnr):.2f} to {max(psnr):.2f} dB, mean {statistics.fmean(psnr):.2f}")
    lines.append(f"loss terms at step {terms['step']}: "
                 + ", ".join(f"{k} {v:.4g}" for k, v in terms.items() if k != "step"))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", type=Path, nargs="+")
    parser.add_argument("--last", type=int, default=None, help="summarise the last N validations (default: all)")
    parser.add_argument("--step-time", type=int, nargs=2, metavar=("A", "B"),
                        help="median seconds per step between steps A and B (run folders only)")
    args = parser.parse_args(argv)
    if args.last is not None and args.last < 1:
        parser.error("--last must be at least 1")
    for folder in args.folders:
        print("\n".join(report(folder, *read_history(folder), args.last)))
        if args.step_time:
            if not (folder / "log.jsonl").is_file():
                parser.error(f"--step-time needs a run folder with log.jsonl, not {folder}")
            a, b = args.step_time
            print(f"median seconds per step, steps {a} to {b}: {median_step_seconds(read_records(folder), a, b):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
