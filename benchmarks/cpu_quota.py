"""A cgroup with a CPU quota for benchmark children: a container's ``--cpus N`` on this machine.

Needs root on Linux and a cgroup hierarchy with the ``cpu`` controller that may be written (v2's
``cpu.max`` or v1's ``cpu.cfs_quota_us``); :func:`quota_cgroup` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

PERIOD_US = 100_000  # the kernel's default period


def _candidates() -> list[tuple[Path, str]]:
    """Hierarchies a cgroup with a CPU quota may be made in: v1's cpu controller, v2 with cpu enabled."""
    found = []
    v1 = Path("/sys/fs/cgroup/cpu")
    if (v1 / "cpu.cfs_quota_us").exists():
        found.append((v1, "v1"))
    for v2 in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
        subtree = v2 / "cgroup.subtree_control"
        if subtree.is_file() and "cpu" in subtree.read_text().split():
            found.append((v2, "v2"))
    return found


@contextlib.contextmanager
def quota_cgroup(cpus: float) -> Iterator[Path]:
    """A fresh cgroup allowed ``cpus`` CPUs' worth of time per period; yields its folder (run a
    command in it with :func:`in_cgroup`). On leaving, whatever still runs in it is killed and the
    cgroup removed (a warning on stderr if it cannot be). Raises ``PermissionError`` or
    ``OSError`` with the reason where none can be made."""
    if os.name != "posix" or os.geteuid() != 0:
        raise PermissionError("a CPU quota needs root on Linux (it makes a cgroup)")
    quota = max(1000, round(cpus * PERIOD_US))
    for top, version in _candidates():
        folder = top / f"lowlight-quota-{os.getpid()}"
        try:
            folder.mkdir()
        except OSError:
            continue
        try:
            if version == "v2":
                (folder / "cpu.max").write_text(f"{quota} {PERIOD_US}\n")
            else:
                (folder / "cpu.cfs_period_us").write_text(f"{PERIOD_US}\n")
                (folder / "cpu.cfs_quota_us").write_text(f"{quota}\n")
            yield folder
        finally:
            _remove(folder)
        return
    raise OSError("no writable cgroup hierarchy with the cpu controller (/sys/fs/cgroup)")


def in_cgroup(folder: Path, command: list[str]) -> list[str]:
    """``command`` run inside cgroup ``folder``: a shell writes its own pid to ``cgroup.procs``,
    then ``exec``s the command, which keeps that pid (and so the caller's ``wait4`` measures the
    command itself); the command does not start if the shell cannot join."""
    return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(folder), *command]


def _remove(folder: Path) -> None:
    """Kill what is left in the cgroup (an interrupted run's child), then remove it."""
    for _ in range(50):
        try:
            pids = [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        try:
            folder.rmdir()
            return
        except OSError:
            time.sleep(0.1)  # the killed processes take a moment to leave it
    print(f"warning: could not remove the cgroup {folder}: rmdir it by hand", file=sys.stderr)
