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
    monkeypatch.setattr(cores, "_console", True)
    monkeypatch.setattr(cores, "_started", CpuSample(time.monotonic() - 1.0, 0, 0))
    monkeypatch.setattr(cores, "sample", lambda: CpuSample(time.monotonic(), 10**9, 0))  # everything busy
    assert cores.fit_threads({"OMP_NUM_THREADS": "2"}) is None
    monkeypatch.setattr(cores, "_started", CpuSample(time.monotonic() - 1.0, 0, 0))  # a sample is used once
    assert cores.fit_threads({"LOWLIGHT_FIT_THREADS": "0"}) is None


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
    """Linux, 2 CPUs, no CPU quota below them (the spinners would share it: a quota caps the threads
    silently), and torch's own thread count (no OMP_NUM_THREADS, as in the test's command) 2 or more."""
    if not Path("/proc/stat").is_file() or cores.available_cpus() < 2 or cores.cpus_within_quota() < cores.available_cpus():
        return False
    env = {k: v for k, v in os.environ.items() if k not in cores.THREAD_VARIABLES}
    threads = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"], env=env,
                             capture_output=True, text=True, timeout=120)
    return threads.returncode == 0 and int(threads.stdout.strip() or 0) >= 2


@pytest.mark.skipif(not _fitting_can_be_seen(), reason="needs Linux's /proc, 2 CPUs, no CPU quota and torch on 2 threads or more")
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


def _fake_machine(root: Path, cgroup: str, mountinfo: str, files: dict[str, str]) -> str:
    """A /proc/self and cgroup mounts under ``root`` for cores.cpu_quota(root=...)."""
    (root / "proc/self").mkdir(parents=True)
    (root / "proc/self/cgroup").write_text(cgroup)
    (root / "proc/self/mountinfo").write_text(mountinfo)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return str(root)


V2_MOUNT = "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNTS = ("35 30 0:30 / /sys/fs/cgroup/cpu,cpuacct rw shared:11 - cgroup cgroup rw,cpu,cpuacct\n"
             "36 30 0:31 / /sys/fs/cgroup/cpuset rw shared:12 - cgroup cgroup rw,cpuset\n")


def test_a_cgroup_v2_quota_is_the_smallest_along_the_ancestors(tmp_path):
    root = _fake_machine(tmp_path, "0::/user.slice/job\n", V2_MOUNT, {
        "sys/fs/cgroup/user.slice/job/cpu.max": "max 100000\n",   # the cgroup itself: no limit
        "sys/fs/cgroup/user.slice/cpu.max": "150000 100000\n",    # its parent: 1.5 CPUs
        "sys/fs/cgroup/cpu.max": "400000 100000\n"})
    assert cores.cpu_quota(root) == pytest.approx(1.5)
    assert cores.quota_threads(1.5) == 2 and cores.quota_threads(1.0) == 1 and cores.quota_threads(0.2) == 1


def test_a_cgroup_v1_quota_in_a_containers_own_view(tmp_path):
    """Docker on cgroup v1 without a cgroup namespace: /proc/self/cgroup names /docker/ID and the
    container mounts that cgroup as the hierarchy's root; -1 is no quota."""
    mounts = V1_MOUNTS.replace("35 30 0:30 / ", "35 30 0:30 /docker/abc ")
    root = _fake_machine(tmp_path, "5:cpuset:/docker/abc\n4:cpu,cpuacct:/docker/abc\n0::/\n", mounts, {
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cores.cpu_quota(root) == pytest.approx(2.0)
    (tmp_path / "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us").write_text("-1\n")
    assert cores.cpu_quota(root) is None


def test_no_quota_where_none_is_set_or_nothing_can_be_read(tmp_path):
    assert cores.cpu_quota(str(tmp_path)) is None  # no /proc (not Linux)
    root = _fake_machine(tmp_path / "a", "0::/\n", V2_MOUNT, {"sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert cores.cpu_quota(root) is None
    root = _fake_machine(tmp_path / "b", "0::/x\n", V2_MOUNT, {"sys/fs/cgroup/x/cpu.max": "garbage\n"})
    assert cores.cpu_quota(root) is None


def test_a_cgroup_v1_quota_of_an_ancestor_and_escaped_mount_points(tmp_path):
    mounts = "35 30 0:30 / /sys/fs/cgroup/cpu\\040acct rw - cgroup cgroup rw,cpu\n"  # a space in the mount point
    root = _fake_machine(tmp_path, "4:cpu:/batch/job\n", mounts, {
        "sys/fs/cgroup/cpu acct/batch/job/cpu.cfs_quota_us": "-1\n",
        "sys/fs/cgroup/cpu acct/batch/job/cpu.cfs_period_us": "100000\n",
        "sys/fs/cgroup/cpu acct/batch/cpu.cfs_quota_us": "50000\n",   # the parent: half a CPU
        "sys/fs/cgroup/cpu acct/batch/cpu.cfs_period_us": "100000\n"})
    assert cores.cpu_quota(root) == pytest.approx(0.5)


def test_a_cgroup_the_mount_does_not_show_is_not_read(tmp_path):
    """A path above a cgroup namespace's root (``/../x``) or outside the mount's root names
    another cgroup than the folder it would map to: no quota is read, rather than a wrong one; and
    files that cannot be understood never raise."""
    files = {"sys/fs/cgroup/x/cpu.max": "50000 100000\n", "sys/fs/cgroup/cpu.max": "50000 100000\n"}
    assert cores.cpu_quota(_fake_machine(tmp_path / "a", "0::/../../x\n", V2_MOUNT, files)) is None
    inner = V2_MOUNT.replace(" / /sys/fs/cgroup ", " /docker/abc /sys/fs/cgroup ")
    assert cores.cpu_quota(_fake_machine(tmp_path / "b", "0::/other\n", inner, files)) is None
    assert cores.cpu_quota(_fake_machine(tmp_path / "c", "0::\n", V2_MOUNT, files)) is None  # an empty path
    assert cores.cpu_quota(_fake_machine(tmp_path / "d", "0::/x\n", "garbage - \n" + V2_MOUNT, files)) == pytest.approx(0.5)


def test_a_quota_caps_torchs_threads_silently_unless_the_user_chose(tmp_path, monkeypatch):
    import torch

    root = _fake_machine(tmp_path, "0::/job\n", V2_MOUNT, {"sys/fs/cgroup/job/cpu.max": "100000 100000\n"})
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert cores.fit_threads({}, root=root) is None  # a program running the CLI in its own process
        assert torch.get_num_threads() == 2  # keeps its threads
        monkeypatch.setattr(cores, "_console", True)  # the lowlight program (cores.note_start)
        assert cores.fit_threads({"OMP_NUM_THREADS": "2"}, root=root) is None
        assert torch.get_num_threads() == 2  # the user's count
        assert cores.fit_threads({cores.FIT_VARIABLE: "0"}, root=root) is None
        assert torch.get_num_threads() == 2
        if cores.available_cpus() >= 2:
            assert cores.fit_threads({}, root=root) is None  # nothing to tell: the user's limit
            assert torch.get_num_threads() == 1
            torch.set_num_threads(2)  # other programs busy too: they are named
            monkeypatch.setattr(cores, "_started", CpuSample(time.monotonic() - 1.0, 0, 0))
            monkeypatch.setattr(cores, "sample", lambda: CpuSample(time.monotonic(), 10**9, 0))
            note = cores.fit_threads({}, root=root)
            assert torch.get_num_threads() == 1 and note is not None and "other programs kept" in note
    finally:
        torch.set_num_threads(before)


def test_the_kernels_quota_reaches_a_command():
    """A child moved into a real cgroup with a quota of 1.5 CPUs reads it (benchmarks/cpu_quota.py
    makes the cgroup); needs root and a writable cgroup hierarchy (skipped otherwise)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from cpu_quota import in_cgroup, quota_cgroup
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    code = "from lowlight_cli.cli import cores; print(cores.cpu_quota())"
    try:
        with quota_cgroup(1.5) as folder:
            # the cgroup is made at the top of the hierarchy as this process sees it, whose own quota
            # (a container's, seen through a cgroup namespace) applies too
            version = "v1" if (folder / "cpu.cfs_quota_us").exists() else "v2"
            outer = cores._own_quota(str(folder.parent), version)
            child = subprocess.run(in_cgroup(folder, [sys.executable, "-c", code]), env={**os.environ, "PYTHONPATH": str(ROOT)},
                                   capture_output=True, text=True, timeout=120)
    except OSError as failure:  # PermissionError included: not root, no writable hierarchy
        pytest.skip(f"needs a cgroup with a CPU quota: {failure}")
    assert child.returncode == 0, child.stderr
    assert float(child.stdout) == pytest.approx(min(1.5, outer or 1.5))
