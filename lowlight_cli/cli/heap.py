"""The C heap of a command-line run: freed memory kept for reuse, and faulted in while torch loads.

glibc serves allocations above a threshold (128 KiB, growing to at most 32 MiB) with fresh
``mmap`` calls and returns them on ``free``; the large temporaries of a convolutional network
are allocated and freed on every forward pass, so each pass pays the kernel to map and zero
their pages again. On a 2-core AMD EPYC this made ``crnet-s`` inference spend more time in the
kernel than in user code (issue 15); with mmap off and trimming disabled the same work ran 1.9 to
2.8 times as fast. The peak memory is unchanged: what was freed is reused, not kept twice.

Even kept, each page is mapped and zeroed by the kernel the first time it is written: the first
photo pays that for its whole working set (on the 2-core Zen 3 of docs/performance.md, about
180,000 page faults for a 12 MP JPEG). :func:`warm_heap_while_starting` pays it on a core that is
otherwise idle while torch's single-threaded import runs, so the photo finds the pages ready.

Imports nothing heavy: the entry point calls it before torch is imported.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

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


def warm_heap(nbytes: int) -> bool:
    """Allocate ``nbytes`` from the heap, write every page, and free it: with
    :func:`keep_freed_memory` the pages stay in the process, mapped and zeroed, for what is
    allocated next (on another thread too, after :func:`one_arena`). Runs without the GIL
    (``ctypes`` releases it), so a thread can do it while the main thread imports. True when done.
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
    libc.memset(block, 0, nbytes)
    libc.free(block)
    return True


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


def warm_bytes(args: list[str]) -> int:
    """How much heap to fault in while starting for the command line ``args`` (without the program
    name): :data:`WARM_BYTES` for the inference commands on a process that may run on two CPUs or
    more, within a share of the memory available; 0 otherwise (other commands, one CPU, where the
    warming would compete with the import, ``LOWLIGHT_WARM_HEAP=0``, ``--help``)."""
    if not args or args[0] not in WARM_COMMANDS or os.environ.get(WARM_VARIABLE) == "0":
        return 0
    if any(a in ("--help", "-h") for a in args[1:]):
        return 0
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    available = _available_bytes()
    if cpus < 2 or available is None:
        return 0
    return min(WARM_BYTES, int(available * WARM_SHARE_OF_AVAILABLE))


def warm_heap_while_starting(args: list[str]) -> threading.Thread | None:
    """Start :func:`warm_heap` on a daemon thread for the command line ``args`` (see
    :func:`warm_bytes`); returns the thread, or None when there is nothing to warm."""
    nbytes = warm_bytes(args)
    if not nbytes or not one_arena():
        return None
    thread = threading.Thread(target=warm_heap, args=(nbytes,), name="lowlight-warm-heap", daemon=True)
    thread.start()
    return thread
