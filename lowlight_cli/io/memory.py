"""Will a decoded image fit in memory? Asked before decoding, from the header alone.

A PNG of a few hundred KB can declare 15000x15000 pixels; decoding it takes seconds and gigabytes.
``psutil`` is not a dependency: on Linux the kernel's own estimate (``MemAvailable`` in
``/proc/meminfo``) is read; elsewhere nothing is checked.
"""

from __future__ import annotations

from pathlib import Path

MEMINFO = Path("/proc/meminfo")
# the decoded pixels are copied a few times on the way (RGB split, the enhanced image of the same size;
# the float tiles the model sees are bounded by the tile size, not the photo)
DECODE_MARGIN = 3.0


def available_memory(meminfo: Path = MEMINFO) -> int | None:
    """Bytes of memory available to new allocations without swapping, or None where unknown.

    Reads ``MemAvailable`` (kB) from ``meminfo``; None when the file is missing or has no such line.
    """
    try:
        text = meminfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            parts = value.split()
            if parts and parts[0].isdigit():
                return int(parts[0]) * 1024
    return None


def decoded_bytes(width: int, height: int, channels: int, bytes_per_sample: int) -> int:
    """Bytes of the decoded pixel array: ``width * height * channels * bytes_per_sample``."""
    return width * height * channels * bytes_per_sample


def memory_shortfall(needed: int, *, available: int | None = None) -> int | None:
    """``available`` bytes (default: :func:`available_memory`) when ``needed`` times
    :data:`DECODE_MARGIN` does not fit in them; None when it fits or nothing is known."""
    free = available_memory() if available is None else available
    if free is None or needed * DECODE_MARGIN <= free:
        return None
    return free
