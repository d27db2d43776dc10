"""Describe the machine a benchmark ran on, in one line."""

from __future__ import annotations

import os
import platform

import torch


# the instruction sets that decide CPU inference speed, as /proc/cpuinfo names them
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")


def describe_machine() -> str:
    """CPU model and vector ISA, cores, torch threads and version, GPU name when one is used."""
    cpu = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    if flags:
        isa = [f for f in ISA_FLAGS if f in flags]
        cpu = f"{cpu} [{' '.join(isa) or 'no AVX2'}]"
    parts = [f"{cpu}", f"{os.cpu_count()} cores", f"torch {torch.__version__} ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        parts.append(f"GPU {torch.cuda.get_device_name()}")
    return ", ".join(parts)


def rss_mb() -> float:
    """Resident memory of this process in MB (Linux ``/proc/self/status``; NaN elsewhere)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")
