"""The benchmark scripts the README and docs/performance.md quote still run (smallest settings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_onnx_speed_prints_a_row_per_model():
    pytest.importorskip("onnxruntime")
    out = _run("benchmarks/onnx_speed.py", "--models", "crnet-tiny", "--size", "32", "48", "--repeats", "1")
    row = next(line for line in out.splitlines() if line.startswith("| crnet-tiny"))
    assert len(row.strip("|").split("|")) == 6 and "machine:" in out
