"""Threads for the CPU time this process may have: cores busy with other work, and a container's
CPU quota (docs/performance.md).

torch runs each operator on as many OpenMP threads as the machine has cores, and every operator
ends at a barrier that waits for the slowest thread. A core another program keeps busy slows the
thread that shares it, and every barrier with it: with one of two cores busy, the 12 MP default
command took 7.5 s on two threads and 5.4 s on one. The CPU time other programs use is read from
``/proc`` while ``lowlight`` starts (torch's import takes about a second, so nothing is waited for),
and the inference commands then run on the cores that are free.

A container limited to part of the machine's CPU time (``docker run --cpus 2``, a Kubernetes CPU
limit: a cgroup CPU quota) still shows torch every core, and torch starts a thread per core; the
quota then throttles them all, and the threads spin at each barrier on time the quota counts.
Under a one-CPU quota on 2 cores the 12 MP command took 12.40 s on two threads and 10.39 s on one
(median). The quota caps the threads at the CPUs it is worth, rounded up (1.5 CPUs: two threads,
4.82 s against 5.67 s on one), as the JVM rounds it (Go's runtime rounds up too, but never below 2).
Commands and machine: docs/performance.md, "A container's CPU quota".

Imports nothing heavy: the first sample is taken before torch is imported.
"""

from __future__ import annotations

import math
import os
import re
import sys
import time
from dataclasses import dataclass

# the user's choice of threads: left alone
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# set to 0 to keep torch's thread count whatever the load (the test suite does, for repeatable runs)
FIT_VARIABLE = "LOWLIGHT_FIT_THREADS"
MIN_WINDOW_S = 0.2  # shorter than this, a few clock ticks would decide


@dataclass(frozen=True)
class CpuSample:
    """CPU time so far, in clock ticks: all CPUs not idle (time the hypervisor stole included) and
    this process's own (all its threads)."""

    at: float  # time.monotonic()
    busy: int
    own: int


def _busy_ticks(fields: list[str]) -> int:
    """A ``/proc/stat`` cpu line's time not idle: user, nice, system, irq, softirq and steal (time the
    hypervisor gave to others; guest time is inside user and nice already)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return user + nice + system + irq + softirq + steal


def sample() -> CpuSample | None:
    """The CPU time of the CPUs this process may run on and of this process now; None where
    ``/proc`` cannot tell (not Linux)."""
    allowed = _affinity()
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            lines = [line.split() for line in stat if line.startswith("cpu")]
        # only the CPUs this process may use: work pinned elsewhere (a container's cpuset, taskset)
        # leaves ours free; the total line where the affinity cannot be read
        per_cpu = [f for f in lines if f[0][3:].isdigit() and (allowed is None or int(f[0][3:]) in allowed)]
        busy = sum(_busy_ticks(f) for f in per_cpu) if per_cpu else _busy_ticks(lines[0])
        with open("/proc/self/stat", encoding="ascii", errors="replace") as own_stat:
            after_name = own_stat.read().rsplit(")", 1)[1].split()  # the name may hold spaces and parentheses
        # utime, stime, and the children's it waited for: fields 14 to 17 of proc(5)
        own = sum(int(v) for v in after_name[11:15])
    except (OSError, ValueError, IndexError):
        return None
    return CpuSample(time.monotonic(), busy, own)


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def other_busy_cpus(start: CpuSample, end: CpuSample, ticks_per_second: float | None = None) -> float | None:
    """How many CPUs other programs kept busy between two samples, on average (None: too short a window)."""
    elapsed = end.at - start.at
    if elapsed < MIN_WINDOW_S:
        return None
    hz = ticks_per_second or os.sysconf("SC_CLK_TCK")
    return max(0.0, (end.busy - start.busy) - (end.own - start.own)) / hz / elapsed


def threads_for(threads: int, cpus: int, other_busy: float) -> int:
    """Of ``threads`` (torch's count) on ``cpus`` CPUs of which ``other_busy`` are busy with other
    work, the threads that find a CPU to themselves (at least one; a CPU counts as taken from three
    quarters busy, so that a little background work changes nothing). torch counts physical cores
    and ``cpus`` logical ones: on a machine with hyperthreads a program on a sibling thread leaves
    torch's count alone."""
    return max(1, min(threads, int(cpus - other_busy + 0.75)))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity; all of them where that cannot be read)."""
    allowed = _affinity()
    return len(allowed) if allowed else (os.cpu_count() or 1)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as file:
            return file.read()
    except OSError:
        return None


def cgroup_folders(root: str = "/", controller: str = "cpu") -> list[tuple[str, str, str]]:
    """``(folder, hierarchy's folder, version)`` of this process's cgroups where ``controller``'s
    files may be: the cgroup v2 one, and v1's where that controller is mounted; each folder found
    through the mount table, so that a container's own view (its cgroup mounted as the
    hierarchy's root) reads right, and none the mount does not show. May raise ``ValueError`` or
    ``IndexError`` on files it does not understand (callers that must not fail catch them)."""
    cgroups = _read(os.path.join(root, "proc/self/cgroup"))
    mounts = _read(os.path.join(root, "proc/self/mountinfo"))
    if cgroups is None or mounts is None:
        return []
    paths = {}  # "v2" or "v1" -> the cgroup's path in its hierarchy
    for line in cgroups.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            paths["v2"] = parts[2]
        elif controller in parts[1].split(","):
            paths["v1"] = parts[2]
    folders = []
    for line in mounts.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        if len(fields) < dash + 4:
            continue
        kind, options = fields[dash + 1], fields[dash + 3].split(",")
        version = "v2" if kind == "cgroup2" else "v1" if kind == "cgroup" and controller in options else None
        if version is None or version not in paths:
            continue
        mount_root, mount_point = _unescape(fields[3]), _unescape(fields[4])
        inside = _inside(paths[version], mount_root)
        if inside is None:  # not this mount's part of the hierarchy: its files are another cgroup's
            continue
        top = os.path.normpath(os.path.join(root, mount_point.lstrip("/")))
        folders.append((os.path.normpath(os.path.join(top, inside)), top, version))
    return folders


def _unescape(field: str) -> str:
    """A ``/proc/self/mountinfo`` path with its octal escapes decoded (``\\040`` is a space)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _inside(path: str, mount_root: str) -> str | None:
    """``path`` (a cgroup's, from ``/proc/self/cgroup``) relative to a mount of its hierarchy whose
    root is ``mount_root``; None where the mount does not show it: outside the mount's root, or
    above the namespace's root (``/../x``, a cgroup namespace's view of a cgroup outside it)."""
    if not path.startswith("/") or ".." in path.split("/"):
        return None
    base = mount_root.rstrip("/") + "/"
    if not (path.rstrip("/") + "/").startswith(base):
        return None
    return path[len(base):] or "."


def _own_quota(folder: str, version: str) -> float | None:
    """The CPU quota of the cgroup at ``folder`` itself, in CPUs (its ancestors' apart); None without one."""
    if version == "v2":
        text = _read(os.path.join(folder, "cpu.max"))
        fields = text.split() if text else []
        if len(fields) != 2 or fields[0] == "max":
            return None
        quota, period = fields
    else:
        quota, period = (_read(os.path.join(folder, name)) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        if quota is None or period is None:
            return None
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def cpu_quota(root: str = "/") -> float | None:
    """The CPU time this process's cgroups allow, in CPUs (cgroup v2 ``cpu.max``, v1
    ``cpu.cfs_quota_us / cpu.cfs_period_us``): the smallest quota of its cgroup and the cgroup's
    ancestors up to the mounted hierarchy's root; None without a quota or where none can be read
    (not Linux, or files this reading does not understand: it runs as every command starts, so it
    never raises). ``root``: where ``/proc`` and the cgroup mounts are found (tests)."""
    quotas = []
    try:
        for folder, top, version in cgroup_folders(root):
            while True:
                quota = _own_quota(folder, version)
                if quota is not None:
                    quotas.append(quota)
                if folder == top or len(folder) <= len(top):
                    break
                folder = os.path.dirname(folder)
    except (OSError, ValueError, IndexError):
        return None
    return min(quotas) if quotas else None


def quota_threads(quota: float) -> int:
    """Threads for a CPU quota of ``quota`` CPUs: rounded up, at least one."""
    return max(1, math.ceil(quota - 1e-6))


def cpus_within_quota(root: str = "/") -> int:
    """CPUs this process may run on, capped by its cgroup's CPU quota."""
    quota = cpu_quota(root)
    cpus = available_cpus()
    return cpus if quota is None else min(cpus, quota_threads(quota))


# the commands whose threads are fitted; not train: under torchrun the other processes of the job
# would count as other programs
FIT_COMMANDS = frozenset({"enhance", "evaluate", "compare"})
_started: CpuSample | None = None
_console = False  # the process is the `lowlight` program, not a program running the CLI in its own process


def note_start(argv: list[str]) -> None:
    """Called by the ``lowlight`` program as it starts (before torch is imported): the threads
    of this process are then the command's to fit, and for a command of :data:`FIT_COMMANDS` the
    first sample of the CPUs is taken (``argv``: the program's arguments, the command first)."""
    global _started, _console
    _console = True
    _started = sample() if argv[:1] and argv[0] in FIT_COMMANDS else None


def fit_threads(environ: dict | None = None, root: str = "/") -> str | None:
    """In the ``lowlight`` program (:func:`note_start`), lower torch's thread count (and OpenCV's)
    to the CPU quota of this process's cgroup (every command) and to the CPUs other programs left
    free since :func:`note_start` (once: the sample is used up). Returns what to tell the user
    when other programs lowered it, None otherwise: a quota is the user's own setting, kept
    silently, as is everything when the threads were chosen (``OMP_NUM_THREADS``) or
    ``LOWLIGHT_FIT_THREADS=0``; a program running the CLI in its own process keeps its threads.
    Called as the command starts, its arguments parsed, so that ``--help`` and a usage error say
    nothing of threads. torch is imported only when a quota or other programs' work may lower its
    count."""
    global _started
    started, _started = _started, None
    environ = os.environ if environ is None else environ
    if not _console or environ.get(FIT_VARIABLE) == "0" or any(v in environ for v in THREAD_VARIABLES):
        return None
    cpus = available_cpus()
    within = cpus_within_quota(root)
    cap = within if within < cpus else None
    end = None if started is None else sample()
    other = None if started is None or end is None else other_busy_cpus(started, end)
    if other is None and cap is None:
        return None
    import torch

    threads = torch.get_num_threads()
    free = threads if other is None else threads_for(threads, cpus, other)
    fitted = free if cap is None else min(free, cap)
    if fitted >= threads:
        return None
    torch.set_num_threads(fitted)
    cv2 = sys.modules.get("cv2")  # imported by then with the command's module; its pool is sized per core too
    if cv2 is not None:
        cv2.setNumThreads(fitted)
    if free > fitted or free >= threads:  # the quota decided
        return None
    return (f"other programs kept {other:.1f} of the {cpus} CPUs busy as lowlight started: running on {fitted} "
            f"thread{'s' if fitted > 1 else ''} instead of {threads} (OMP_NUM_THREADS=N chooses; docs/performance.md)")
