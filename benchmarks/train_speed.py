"""Training throughput: patches per second and seconds per LOL epoch, per model and mode.

    python benchmarks/train_speed.py                         # CPU: crnet-s and crnet, supervised and MCMT
    python benchmarks/train_speed.py --device cuda --models crnet
    python benchmarks/train_speed.py --precision bf16            # bf16 autocast (CUDA, or a CPU with AVX512-BF16/AMX)
    python benchmarks/train_speed.py --compile --warmup 2        # torch.compile, as lowlight train --compile
    python benchmarks/train_speed.py --compile --warmup 2 --eager-teacher   # ... with the MCMT teacher left eager

Times real optimisation steps of the project's training steps (progressive loss; MCMT with the
EMA teacher) on random patches, after warm-up steps. A LOL epoch is 217 training pairs x 30
patches (the full-label split with 15 pairs held out for validation).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe_machine  # noqa: E402

from lowlight_cli.inference import resolve_device, resolve_precision  # noqa: E402
from lowlight_cli.inference.precision import autocast  # noqa: E402
from lowlight_cli.models import create_model  # noqa: E402
from lowlight_cli.training import EMA  # noqa: E402
from lowlight_cli.training.config import LossSection  # noqa: E402
from lowlight_cli.training.steps import MeanTeacherStep, StagesForward, SupervisedStep, training_forwards  # noqa: E402

LOL_EPOCH_PATCHES = 217 * 30


def time_steps(name: str, semi: bool, device: torch.device, precision: str, batch: int, patch: int, steps: int, warmup: int,
               compile: bool = False, eager_teacher: bool = False) -> float:
    """Seconds per optimisation step (labeled batch of ``batch``; MCMT adds as many unlabeled)."""
    torch._dynamo.reset()  # each row compiles afresh, for its own fixed batch shape, as its own training run would
    model = create_model(name, pretrained=False).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    ema = EMA(model) if semi else None
    # as lowlight train: with compile, the student (and the MCMT teacher); the warm-up steps include the compilation
    student, teacher_forward = training_forwards(StagesForward(model), ema, semi=semi, compile=compile)
    if eager_teacher and ema:  # the A/B of compiling the teacher: only the student compiled
        teacher_forward = StagesForward(ema.teacher)
    step = MeanTeacherStep(LossSection(), ema, teacher_forward) if ema else SupervisedStep(LossSection())
    n = batch * (2 if semi else 1)
    data = {
        "low": torch.rand(n, 3, patch, patch, device=device) * 0.2,
        "high": torch.rand(n, 3, patch, patch, device=device),
        "labeled": torch.tensor([True] * batch + [False] * (n - batch), device=device),
    }
    for i in range(warmup + steps):
        if i == warmup:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with autocast(precision, device):  # as the training loop runs it
            out = step(student, data)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if ema:
            ema.update(model)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=["crnet-s", "crnet"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--supervised-only", action="store_true", help="skip the MCMT rows")
    parser.add_argument("--compile", action="store_true", help="torch.compile the student (and MCMT teacher), as run.compile")
    parser.add_argument("--eager-teacher", action="store_true", help="with --compile: leave the MCMT teacher uncompiled")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch-size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    mode = f"{precision}{', compiled' if args.compile else ''}{' (teacher eager)' if args.compile and args.eager_teacher else ''}"
    print(f"machine: {describe_machine()}; device {device} ({mode}); batch {args.batch_size} x {args.patch_size} px")
    print("| model | mode | s/step | labeled patches/s | s per LOL epoch (6510 patches) |")
    print("|---|---|---|---|---|")
    for name in args.models:
        for semi in (False, True) if not args.supervised_only else (False,):
            seconds = time_steps(name, semi, device, precision, args.batch_size, args.patch_size, args.steps, args.warmup,
                                 args.compile, args.eager_teacher)
            rate = args.batch_size / seconds
            mode = "MCMT (+16 unlabeled)" if semi else "supervised"
            print(f"| {name} | {mode} | {seconds:.3f} | {rate:.1f} | {LOL_EPOCH_PATCHES / rate:.0f} |", flush=True)


if __name__ == "__main__":
    main()
