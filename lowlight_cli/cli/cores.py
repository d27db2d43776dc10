"""Threads for a machine whose cores are busy with other work (docs/performance.md).

torch runs each operator on as many OpenMP threads as the machine has cores, and every operator
ends at a barrier that waits for the slowest thread. A core another program keeps busy slows the
thread that shares it, and every barrier with it: with one of two cores busy, the 12 MP default
command took 7.5 s on two threads and 5.4 s on one. The CPU time other programs use is read from
``/proc`` while ``lowlight`` starts (torch's import takes about a second, so nothing is waited for),
and the inference commands then run on the cores that are free.

Imports nothing heavy: the first sample is taken before torch is imported.
"""

from __future__ import annotations

import os
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


# the commands whose threads are fitted; not train: under torchrun the other processes of the job
# would count as other programs
FIT_COMMANDS = frozenset({"enhance", "evaluate", "compare"})
_started: CpuSample | None = None


def note_start(argv: list[str]) -> None:
    """The first sample, as the program starts (before torch is imported), for a command of
    :data:`FIT_COMMANDS` (``argv``: the program's arguments, the command first)."""
    global _started
    _started = sample() if argv[:1] and argv[0] in FIT_COMMANDS else None


def fit_threads_to_free_cpus(environ: dict | None = None) -> str | None:
    """Lower torch's thread count to the CPUs other programs left free since :func:`note_start`
    (once: the sample is used up); returns what to tell the user, or None when nothing changed (no
    sample, as in a program running the CLI in its own process; an idle machine; the threads chosen
    by the user; or ``LOWLIGHT_FIT_THREADS=0``). Called as the command starts, its arguments parsed,
    so that ``--help`` and a usage error say nothing of threads."""
    global _started
    started, _started = _started, None
    environ = os.environ if environ is None else environ
    if started is None or environ.get(FIT_VARIABLE) == "0" or any(v in environ for v in THREAD_VARIABLES):
        return None
    end = sample()
    other = None if end is None else other_busy_cpus(started, end)
    if other is None:
        return None
    import torch

    threads, cpus = torch.get_num_threads(), available_cpus()
    fitted = threads_for(threads, cpus, other)
    if fitted >= threads:
        return None
    torch.set_num_threads(fitted)
    return (f"other programs kept {other:.1f} of the {cpus} CPUs busy as lowlight started: running on {fitted} "
            f"thread{'s' if fitted > 1 else ''} instead of {threads} (OMP_NUM_THREADS=N chooses; docs/performance.md)")
