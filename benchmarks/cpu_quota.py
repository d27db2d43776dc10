"""A cgroup with a CPU quota for benchmark children: a container's ``--cpus N`` on this machine.

Needs root on Linux and a cgroup hierarchy with the ``cpu`` controller that may be written (v2's
``cpu.max`` or v1's ``cpu.cfs_quota_us``); :func:`quota_cgroup` says why not otherwise.
"""

from __future__ import annotations

import contextlib
import os
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
    """A fresh cgroup allowed ``cpus`` CPUs' worth of time per period; yields its folder (write a
    process's pid to ``cgroup.procs`` in it: :func:`join`), removed afterwards. Raises
    ``PermissionError`` or ``OSError`` with the reason where none can be made."""
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
            for _ in range(50):  # the children have exited; the kernel may take a moment to empty it
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
        return
    raise OSError("no writable cgroup hierarchy with the cpu controller (/sys/fs/cgroup)")


def join(folder: Path) -> None:
    """Move the calling process into cgroup ``folder`` (a ``preexec_fn`` for subprocess)."""
    (folder / "cgroup.procs").write_text(str(os.getpid()))
