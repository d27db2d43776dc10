"""Distributed data parallel under torchrun: gloo on the CPU, nccl on GPUs; rank 0 writes."""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..inference.device import resolve_device


# The work objects of this module's recent collectives, kept referenced from Python. Why: a gloo
# worker thread drops its reference to a finished work under the process group's mutex; if that is
# the last one, the work's tensors go with it, and freeing a tensor Python has seen takes the GIL.
# If the main thread is meanwhile destroying the process group (the DDP wrapper's reducer going away
# after `leave`), it holds the GIL and waits for that thread: a deadlock, seen in CI and again under
# load here (gdb: the main thread in ~ProcessGroupGloo joining a pt_gloo_runloop thread that waits
# for the GIL inside ~AsyncAllgatherWork, the work of `gather_values`). Keeping the tensors alone
# does not help (torch lets go of a tensor's Python object when its C++ count falls to one); with
# the work held here the worker's drop only lowers a count, and the work is freed by Python, under
# the GIL. A gloo thread drops each work before it takes the next, so a few dozen cover it.
_RECENT_WORK: deque[dist.Work] = deque(maxlen=64)


def _wait(work: dist.Work) -> None:
    """Wait for an asynchronous collective, keeping its work referenced (see ``_RECENT_WORK``)."""
    _RECENT_WORK.append(work)
    work.wait()


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job (``world_size == 1`` when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    """True when torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) is present."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK")) and int(os.environ["WORLD_SIZE"]) > 1


def setup(device_spec: str) -> tuple[DistContext, torch.device]:
    """This process's place in the job and its device (no communication yet: see :func:`join`).

    Under torchrun on CUDA each process takes ``cuda:LOCAL_RANK``.
    """
    if not launched_by_torchrun():
        return DistContext(), resolve_device(device_spec)
    ctx = DistContext(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    device = resolve_device(device_spec)
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    return ctx, device


def join(ctx: DistContext, device: torch.device) -> None:
    """Join the process group (nccl on CUDA, gloo otherwise); a no-op outside torchrun."""
    if ctx.enabled and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum ``values`` over processes (identity when not distributed)."""
    if ctx.enabled:
        _wait(dist.all_reduce(values, op=dist.ReduceOp.SUM, async_op=True))
    return values


def gather_checksums(model: torch.nn.Module, ctx: DistContext) -> list[float]:
    """Each process's sum of all parameters (float64), gathered to every process."""
    local = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    return gather_values(float(local), ctx, next(model.parameters()).device)


def gather_values(value: float, ctx: DistContext, device: torch.device) -> list[float]:
    """Each process's ``value`` (float64), gathered to every process in rank order; ``device``:
    where the collective runs (the process's training device)."""
    local = torch.tensor([value], dtype=torch.float64)
    if not ctx.enabled:
        return [value]
    local = local.to(device)
    gathered = [torch.zeros_like(local) for _ in range(ctx.world_size)]
    _wait(dist.all_gather(gathered, local, async_op=True))
    return [float(g) for g in gathered]


def leave(ctx: DistContext) -> None:
    """Wait for every process, then destroy the process group.

    Call it once communication is over, before the interpreter exits (torch's shutdown rule). It
    does not by itself stop the gloo abort at exit that ``lowlight train`` works around (see
    ``cli.train._end_torchrun_worker``). Only on the success path: after a failure the peers may be
    inside a collective and would never reach the barrier.
    """
    if ctx.enabled and dist.is_initialized():
        _wait(dist.barrier(async_op=True))
        dist.destroy_process_group()
