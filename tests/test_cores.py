"""Threads fitted to the CPUs other programs leave free (cli.cores, docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lowlight_cli.cli import cores
from lowlight_cli.cli.cores import CpuSample, other_busy_cpus, threads_for

ROOT = Path(__file__).resolve().parents[1]


def test_the_threads_that_find_a_free_cpu():
    assert threads_for(2, 2, 1.0) == 1  # one of two CPUs busy: one thread
    assert threads_for(2, 2, 0.95) == 1
    assert threads_for(2, 2, 0.6) == 2  # some background work: left alone
    assert threads_for(2, 2, 2.0) == 1  # never below one
    assert threads_for(8, 16, 1.0) == 8  # torch's 8 threads (physical cores) still find free CPUs
    assert threads_for(8, 8, 3.0) == 5


def test_other_programs_cpu_is_the_machines_less_this_processs():
    start, end = CpuSample(10.0, 1000, 50), CpuSample(11.0, 1300, 150)  # 300 ticks busy, 100 of them ours, in 1 s
    assert other_busy_cpus(start, end, ticks_per_second=100) == pytest.approx(2.0)
    assert other_busy_cpus(start, CpuSample(10.1, 1010, 55), ticks_per_second=100) is None  # too short to tell
    assert other_busy_cpus(start, CpuSample(11.0, 1100, 160), ticks_per_second=100) == 0.0  # never negative


def test_the_users_choice_and_the_switch_are_left_alone(monkeypatch):
    monkeypatch.setattr(cores, "_started", CpuSample(time.monotonic() - 1.0, 0, 0))
    monkeypatch.setattr(cores, "sample", lambda: CpuSample(time.monotonic(), 10**9, 0))  # everything busy
    assert cores.fit_threads_to_free_cpus({"OMP_NUM_THREADS": "2"}) is None
    monkeypatch.setattr(cores, "_started", CpuSample(time.monotonic() - 1.0, 0, 0))  # a sample is used once
    assert cores.fit_threads_to_free_cpus({"LOWLIGHT_FIT_THREADS": "0"}) is None


def test_only_the_cpus_this_process_may_use_count(monkeypatch, tmp_path):
    """Work pinned to CPUs outside this process's affinity (a container's cpuset, taskset) leaves
    its own CPUs free: the sample adds up the cpuN lines it may use."""
    if not Path("/proc/stat").is_file():
        pytest.skip("needs Linux's /proc")
    def cpu0_busy() -> int:
        return cores._busy_ticks(next(line.split() for line in Path("/proc/stat").read_text().splitlines()
                                      if line.startswith("cpu0 ")))

    monkeypatch.setattr(cores, "_affinity", lambda: {0})
    before = cpu0_busy()  # the counters only grow: cpu0's, read around the sample, bracket it
    only_first = cores.sample()
    after = cpu0_busy()
    monkeypatch.setattr(cores, "_affinity", lambda: None)
    every = cores.sample()
    assert only_first is not None and every is not None
    assert before <= only_first.busy <= after
    assert only_first.busy < every.busy or cores.available_cpus() == 1


def _fitting_can_be_seen() -> bool:
    """Linux, 2 CPUs, and torch's own thread count (no OMP_NUM_THREADS, as in the test's command) 2 or more."""
    if not Path("/proc/stat").is_file() or cores.available_cpus() < 2:
        return False
    env = {k: v for k, v in os.environ.items() if k not in cores.THREAD_VARIABLES}
    threads = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                             capture_output=True, text=True, timeout=120)
    return threads.returncode == 0 and int(threads.stdout.strip() or 0) >= 2


@pytest.mark.skipif(not _fitting_can_be_seen(), reason="needs Linux's /proc, 2 CPUs and torch on 2 threads or more")
def test_a_busy_cpu_lowers_the_threads_of_an_inference_command(tmp_path):
    """With every CPU but one kept busy, `lowlight evaluate` runs on one thread and says so; with
    the switch off it keeps torch's count. The spinners are this test's own children."""
    import numpy as np

    from .photos import save_photo

    save_photo(tmp_path / "a.png", np.random.default_rng(0).random((128, 128, 3)).astype(np.float32))
    env = {k: v for k, v in os.environ.items() if k not in (*cores.THREAD_VARIABLES, cores.FIT_VARIABLE)}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "lowlight_cli", "evaluate", "--pred", str(tmp_path), "--metrics", "niqe"]
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores.available_cpus() - 1)]
    try:
        time.sleep(0.5)
        fitted = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        kept = subprocess.run(command, env={**env, cores.FIT_VARIABLE: "0"}, capture_output=True, text=True, timeout=300)
        mistyped = subprocess.run([sys.executable, "-m", "lowlight_cli", "enhance", str(tmp_path), "--bogus"], env=env,
                                  capture_output=True, text=True, timeout=300)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert fitted.returncode == 0 and kept.returncode == 0, fitted.stderr + kept.stderr
    text = " ".join(fitted.stderr.split())
    assert "running on 1 thread instead of" in text and "OMP_NUM_THREADS=N chooses" in text, fitted.stderr
    assert "running on" not in kept.stderr
    assert mistyped.returncode == 2 and "note:" not in mistyped.stderr  # a usage error says nothing of threads
