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


def test_metric_speed_measures_the_peak_memory_of_each_ssim_path():
    out = _run("benchmarks/metric_speed.py", "--size", "600", "800", "--metrics", "psnr", "ssim",
               "--convolution", "--memory", "--repeats", "1")
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "---" not in line}
    peak = {name: float(row.strip("|").split("|")[-1]) for name, row in rows.items() if name != "metric"}
    assert set(peak) == {"psnr", "ssim", "ssim, convolution path (before session 20)"}
    # 600x800x3 float64 moments: the convolution path holds 15 planes of 11.5 MB (and their filtered
    # copies); the banded path only the two scaled images
    assert peak["ssim, convolution path (before session 20)"] > 0.1 > peak["ssim"]


def test_enhance_command_times_a_busy_machine_with_the_childs_environment():
    """`--busy 1` keeps a process spinning while the command is timed and `--env` reaches the child
    (docs/performance.md, a machine busy with other work); the spinner is gone afterwards."""
    out = _run("benchmarks/enhance_command.py", "--megapixels", "0.05", "--repeats", "1", "--model", "gamma",
               "--busy", "1", "--env", "OMP_NUM_THREADS=1")
    assert "1 busy process(es) spinning meanwhile" in out and "child env OMP_NUM_THREADS=1" in out
    assert any(line.startswith("| ") and "JPEG (0.05 MP)" in line for line in out.splitlines())
    marker = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("# busy processes: "))
    spinning = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            spinning += [cmdline] if marker.encode() in cmdline.read_bytes() else []
        except OSError:  # a process that ended meanwhile
            pass
    assert not spinning, "the busy process outlived the benchmark"


def test_enhance_command_alternates_a_setting_on_a_folder_of_copies():
    """`--env-against` times this tree under a setting too, round by round, and `--photos N`
    enhances a folder of N copies in one command (docs/performance.md, the heap warming and the
    read-ahead)."""
    out = _run("benchmarks/enhance_command.py", "--megapixels", "0.05", "--repeats", "1", "--model", "gamma",
               "--photos", "2", "--env-against", "LOWLIGHT_WARM_HEAP=0")
    assert "a folder of 2 copies" in out and "with LOWLIGHT_WARM_HEAP=0, round by round" in out
    rows = [line for line in out.splitlines() if line.startswith("| 2 x ")]
    assert len(rows) == 2 and "this tree with LOWLIGHT_WARM_HEAP=0" in rows[0] and "| this tree |" in rows[1]
    assert "this tree faster in" in out


def _quota_cgroups() -> set[Path]:
    tops = [Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/unified")]
    return {f for top in tops for f in top.glob("lowlight-quota-*")}


def test_enhance_command_runs_its_children_under_a_cpu_quota():
    """`--cpu-quota` runs each child in a cgroup with that quota (docs/performance.md, a
    container's CPU quota); needs root and a writable cgroup hierarchy, and says so otherwise."""
    before = _quota_cgroups()
    args = ("benchmarks/enhance_command.py", "--megapixels", "0.05", "--repeats", "1", "--model", "gamma", "--cpu-quota", "1")
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if result.returncode != 0 and "--cpu-quota:" in result.stderr:
        pytest.skip(result.stderr.strip())
    assert result.returncode == 0, result.stderr[-2000:]
    assert "children in a cgroup with a CPU quota of 1" in result.stdout
    assert _quota_cgroups() <= before  # its own removed afterwards


def test_tile_choice_times_enhances_default_tiling_against_whole_images():
    """`benchmarks/tile_choice.py` (docs/performance.md, the per-photo tile) names the tile the
    default picked for each photo: one tile up to a small tile's area, small tiles above it."""
    out = _run("benchmarks/tile_choice.py", "--model", "crnet-curve-dn", "--sizes", "96x64", "--tiles", "default", "0",
               "--repeats", "1")
    row = next(line for line in out.splitlines() if line.startswith("| 96x64"))
    assert "default (whole): " in row and "whole: " in row  # smaller than a tile: the default ran it whole
    assert " cores, torch " in out.splitlines()[0]  # the machine, named
    bad = subprocess.run([sys.executable, "benchmarks/tile_choice.py", "--sizes", "96"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "not WIDTHxHEIGHT" in bad.stderr


def test_photo_steps_times_the_colour_and_blacks_steps_on_an_output_the_toe_acts_on(tmp_path):
    """`benchmarks/photo_steps.py` (docs/performance.md, session 39): one row per tree and step; the
    synthetic output needs a toe, so the blacks step's time is the toe's, not a copy's."""
    out = _run("benchmarks/photo_steps.py", "--megapixels", "0.05", "--repeats", "1", "--workers", "1",
               "--against", str(ROOT))
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line and not line.startswith("| tree |")]
    assert [row.split("|")[2].strip() for row in rows] == ["colour", "blacks", "colour", "blacks"]
    assert " cores, torch " in out.splitlines()[0] and "workers 1" in out.splitlines()[0]
    bad = subprocess.run([sys.executable, "benchmarks/photo_steps.py", "--against", str(tmp_path)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "not a checkout of lowlight" in bad.stderr
