"""The C heap of a command-line run: freed memory kept for reuse, and faulted in while torch loads.

glibc serves allocations above a threshold (128 KiB, growing to at most 32 MiB) with fresh
``mmap`` calls and returns them on ``free``; the large temporaries of a convolutional network
are allocated and freed on every forward pass, so each pass pays the kernel to map and zero
their pages again. On a 2-core AMD EPYC this made ``crnet-s`` inference spend more time in the
kernel than in user code (issue 15); with mmap off and trimming disabled the same work ran 1.9 to
2.8 times as fast. The peak memory is unchanged: what was freed is reused, not kept twice.

Even kept, each page is mapped and zeroed by the kernel the first time it is written: the first
photo pays that for its whole working set (on the 2-core Zen 3 of docs/performance.md, the 12 MP
JPEG's command counted about 230,000 page faults, 40,000 of them torch's import). :func:`warm_heap_while_starting` pays it on a core that is
otherwise idle while torch's single-threaded import runs, so the photo finds the pages ready.

Imports nothing heavy: the entry point calls it before torch is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import threading

from .cores import cgroup_folders, cpus_within_quota

# mallopt parameters, from glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
_TRIM_NEVER = 2**31 - 1
# the commands whose first photo needs a large heap, and how much of it to fault in: below what
# `lowlight enhance` uses for any photo of 2 MP and more (about 0.55 GB above torch's own 0.25 GB,
# docs/performance.md), so the peak grows only for smaller photos
WARM_COMMANDS = frozenset({"enhance", "evaluate", "compare"})
WARM_BYTES = 512 << 20
WARM_SHARE_OF_AVAILABLE = 0.25  # never more than this share of the memory available
WARM_VARIABLE = "LOWLIGHT_WARM_HEAP"  # set to 0 to turn it off
WARM_SLICE = 16 << 20  # written a slice at a time, so that the warming stops soon after it is told
_stop_warming = threading.Event()
_warming: threading.Thread | None = None


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc with ``mallopt``, or None (not Linux, musl, a refused load)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return None
    libc.mallopt.restype = ctypes.c_int
    return libc


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to serve large blocks from the heap and never trim it.

    A process-wide setting, meant for a command-line run (the CLI calls it once at start). Does
    nothing and returns False off Linux/glibc or when the call is refused; True when it took.
    """
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_NEVER))


def one_arena() -> bool:
    """Have every thread allocate from the main heap (glibc's ``M_ARENA_MAX`` of 1), so that what
    one thread warms (:func:`warm_heap`) is what the others reuse; with :func:`keep_freed_memory`.
    Called before other threads start. True when both took."""
    libc = _libc()
    return libc is not None and keep_freed_memory() and bool(libc.mallopt(_M_ARENA_MAX, 1))


def warm_heap(nbytes: int, stop: threading.Event | None = None) -> bool:
    """Allocate ``nbytes`` from the heap, write every page, and free it: with
    :func:`keep_freed_memory` the pages stay in the process, mapped and zeroed, for what is
    allocated next (on another thread too, after :func:`one_arena`). Runs without the GIL
    (``ctypes`` releases it), so a thread can do it while the main thread imports. Written a
    :data:`WARM_SLICE` at a time: once ``stop`` is set, what is written so far is freed at once (the
    pages written are kept; the rest were never touched). True when every page was written.
    """
    libc = _libc()
    if libc is None or nbytes <= 0:
        return False
    libc.malloc.argtypes, libc.malloc.restype = (ctypes.c_size_t,), ctypes.c_void_p
    libc.memset.argtypes, libc.memset.restype = (ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t), ctypes.c_void_p
    libc.free.argtypes, libc.free.restype = (ctypes.c_void_p,), None
    block = libc.malloc(nbytes)
    if not block:
        return False
    done = 0
    try:
        while done < nbytes and not (stop is not None and stop.is_set()):
            size = min(WARM_SLICE, nbytes - done)
            libc.memset(block + done, 0, size)
            done += size
    finally:
        libc.free(block)
    return done == nbytes


def _available_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes; None where it cannot be read."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room(root: str = "/") -> int | None:
    """Bytes this process's cgroup (v2) may still use, ``memory.max - memory.current``; None without a
    limit or where it cannot be read. ``MemAvailable`` is the whole machine's: a container's limit
    may be far lower. The cgroup's folder is found as for the CPU quota (:func:`cores.cgroup_folders`;
    ``root``: where ``/proc`` and the cgroup mounts are found, for tests)."""
    try:
        folder = next((f for f, _top, version in cgroup_folders(root, "memory") if version == "v2"), None)
        if folder is None:
            return None
        with open(os.path.join(folder, "memory.max"), encoding="ascii") as limit:
            text = limit.read().strip()
        if text == "max":
            return None
        with open(os.path.join(folder, "memory.current"), encoding="ascii") as current:
            return max(0, int(text) - int(current.read().strip()))
    except (OSError, ValueError, IndexError):
        return None


def warm_bytes(args: list[str]) -> int:
    """How much heap to fault in while starting for the command line ``args`` (without the program
    name): :data:`WARM_BYTES` for the inference commands on a process that may run on two CPUs or
    more (its affinity and its cgroup's CPU quota), within a share of the memory available (the
    machine's, and the cgroup's where it has a limit); 0 otherwise (other commands, one CPU, where
    the warming would compete with the import, ``LOWLIGHT_WARM_HEAP=0``, ``--help``)."""
    if not args or args[0] not in WARM_COMMANDS or os.environ.get(WARM_VARIABLE) == "0":
        return 0
    if any(a in ("--help", "-h") for a in args[1:]):
        return 0
    cpus = cpus_within_quota()  # a container's CPU quota of one CPU leaves no idle core to warm on
    available = _available_bytes()
    if cpus < 2 or available is None:
        return 0
    room = _cgroup_room()
    if room is not None:
        available = min(available, room)
    return min(WARM_BYTES, int(available * WARM_SHARE_OF_AVAILABLE))


def _warm_heap_politely(nbytes: int) -> None:
    """:func:`warm_heap` at the lowest scheduling priority (Linux gives each thread its own nice
    value), until :func:`stop_warming`: on a machine whose other core is busy, the warming takes
    what the import and the other program leave; on an idle core it runs as fast as ever."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):  # not Linux, or refused: warm at the normal priority
        pass
    warm_heap(nbytes, _stop_warming)


def warm_heap_while_starting(args: list[str]) -> threading.Thread | None:
    """Start :func:`warm_heap` on a daemon thread for the command line ``args`` (see
    :func:`warm_bytes`); returns the thread, or None when there is nothing to warm."""
    global _warming
    nbytes = warm_bytes(args)
    if not nbytes or not one_arena():
        return None
    _stop_warming.clear()
    _warming = threading.Thread(target=_warm_heap_politely, args=(nbytes,), name="lowlight-warm-heap", daemon=True)
    _warming.start()
    return _warming


def stop_warming(timeout: float = 0.5) -> None:
    """Called as the command starts its work: the warming stops after the slice it is writing and
    frees its block, so that the command's own allocations reuse the pages warmed so far instead
    of growing the heap past a block still held (a warming slowed by a busy machine). Waits up to
    ``timeout`` seconds for that; does nothing when no warming was started."""
    _stop_warming.set()
    if _warming is not None:
        _warming.join(timeout)
