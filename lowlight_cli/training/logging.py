"""Run logs: a JSONL file always, TensorBoard event files when ``tensorboard`` is installed."""

from __future__ import annotations

import json
import time
from pathlib import Path


class RunLog:
    """Appends one JSON object per line to ``run_dir/log.jsonl``; mirrors scalars to TensorBoard.

    Disabled (a no-op) on processes other than rank 0. ``resumed_at``: the step a resumed run
    continues from; records of later steps, written by a run that stopped without saving them (a
    crash, a kill), are dropped first, so that the resumed run's records of those steps are the
    only ones.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True, resumed_at: int | None = None) -> None:
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        if resumed_at is not None:
            drop_records_after(run_dir / "log.jsonl", resumed_at)
        self._file = open(run_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # optional extra: lowlight-cli[tensorboard]
            SummaryWriter = None
        if SummaryWriter is not None:
            self._tb = SummaryWriter(str(run_dir / "tb"))

    def write(self, record: dict) -> None:
        if not self.enabled or self._file is None:
            return
        self._file.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = record.get("step", 0)
            for key, value in record.items():
                if isinstance(value, (int, float)) and key not in ("step", "time", "total_steps", "epoch"):
                    self._tb.add_scalar(f"{record.get('kind', 'log')}/{key}", value, step)
            for key, value in (record.get("terms") or {}).items():
                self._tb.add_scalar(f"loss/{key}", value, step)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def drop_records_after(path: Path, step: int) -> int:
    """Rewrite the log at ``path`` without its records of steps after ``step`` (atomically; lines
    that are not records of a step, or not JSON, stay). Returns how many were dropped."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        try:
            at = json.loads(line).get("step")
        except (ValueError, AttributeError):
            at = None
        if isinstance(at, int) and at > step:
            dropped += 1
        else:
            kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        from ..models.checkpoint import atomic_write_bytes

        atomic_write_bytes(path, "".join(kept).encode("utf-8"))
    return dropped
