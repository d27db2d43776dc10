"""Run logs: a JSONL file always, TensorBoard event files when ``tensorboard`` is installed."""

from __future__ import annotations

import json
import time
from pathlib import Path


class RunLog:
    """Appends one JSON object per line to ``run_dir/log.jsonl``; mirrors scalars to TensorBoard.

    Disabled (a no-op) on processes other than rank 0.
    """

    def __init__(self, run_dir: Path, *, enabled: bool = True) -> None:
        self.enabled = enabled
        self._file = None
        self._tb = None
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
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
