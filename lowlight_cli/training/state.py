"""Resumable run state, written atomically as a folder swap.

``<run>/last/`` holds ``model.safetensors`` (student), ``ema.safetensors`` (teacher: mean-teacher methods, ``run.export: teacher``),
``config.json`` (so ``lowlight enhance --weights <run>/last`` works) and ``train_state.pt``
(optimiser, scheduler, scaler, RNG states, counters). A save writes ``last.tmp/`` completely,
then swaps it in with renames, so an interruption leaves either the old or the new state,
never a mix. ``train_state.pt`` is read with ``weights_only=True``: tensors and plain values,
never arbitrary objects.

Under torchrun every process draws its own random numbers (a mean teacher's noise, a contrastive
method's negatives). ``last/`` holds the first process's; each other process writes its own to
``<run>/rng/rank<N>.pt`` with the step it belongs to, at the same saves, so that a resume gives every
process its own stream back (:func:`save_rank_rng`, :func:`load_rank_rng`).
"""

from __future__ import annotations

import io
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, TrainingError, first_line
from ..models.checkpoint import atomic_write_bytes, load_state_dict_file, save_checkpoint, save_state_dict

STATE_NAME = "train_state.pt"
EMA_NAME = "ema.safetensors"


@dataclass
class Progress:
    """Where training stands: optimiser steps done, epoch, batches done within the epoch, and the
    validation PSNR / SSIM of the best checkpoint so far (best by ``run.select_on``)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_psnr: float = float("-inf")
    best_step: int = -1
    best_ssim: float = float("-inf")


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


RANK_RNG_DIR = "rng"


def _rank_rng_path(run_dir: Path, rank: int) -> Path:
    return run_dir / RANK_RNG_DIR / f"rank{rank}.pt"


RANK_RNG_KEPT = 3  # the last saves' states: last/ (or last.old) may be a save behind an interrupt's


def save_rank_rng(run_dir: Path, rank: int, step: int, state: dict[str, Any], world_size: int) -> None:
    """Add process ``rank``'s random ``state`` at ``step`` (of a job of ``world_size`` processes) to
    its file, which keeps the last :data:`RANK_RNG_KEPT` (atomically replaced)."""
    path = _rank_rng_path(run_dir, rank)
    kept = [entry for entry in _rank_entries(path) if entry["step"] != step][-(RANK_RNG_KEPT - 1):]
    buffer = io.BytesIO()
    torch.save({"states": [*kept, {"step": step, "rng": state, "world_size": world_size}]}, buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def _rank_entries(path: Path) -> list[dict[str, Any]]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - missing or unreadable: nothing kept
        return []
    entries = saved.get("states") if isinstance(saved, dict) else None
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("step"), int) and isinstance(e.get("rng"), dict)] \
        if isinstance(entries, list) else []


def load_rank_rng(run_dir: Path, rank: int, step: int, world_size: int) -> dict[str, Any] | None:
    """Process ``rank``'s random state saved at ``step`` by a job of ``world_size`` processes; None
    when there is none (never written, saved only at other steps, by a job of another size, or a
    damaged file)."""
    for entry in reversed(_rank_entries(_rank_rng_path(run_dir, rank))):
        if entry["step"] == step and entry.get("world_size") == world_size:
            return entry["rng"]
    return None


def save_run_state(
    run_dir: Path,
    *,
    student: torch.nn.Module,
    teacher: torch.nn.Module | None,
    architecture: str,
    kwargs: dict,
    provenance: dict,
    trainer_state: dict[str, Any],
) -> Path:
    """Write ``run_dir/last`` atomically (see module docstring); returns its path."""
    final, tmp, old = run_dir / "last", run_dir / "last.tmp", run_dir / "last.old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        save_checkpoint(student, tmp, architecture=architecture, kwargs=kwargs, provenance=provenance,
                        allow_non_finite=True)  # the state reached, diverged or not: a resume or a load says so
        if teacher is not None:
            save_state_dict(teacher.state_dict(), tmp / EMA_NAME)
        torch.save(trainer_state, tmp / STATE_NAME)
    except (OSError, RuntimeError) as exc:  # a full disk: torch.save's zip writer raises RuntimeError
        shutil.rmtree(tmp, ignore_errors=True)  # half a state is no state; the last complete one stays
        if isinstance(exc, OSError):
            raise
        kept = f"; {final} keeps the state saved before" if final.exists() else ""
        raise TrainingError(f"could not write the resumable state to {tmp}{kept}: "
                            f"{first_line(exc)}",
                            hint="free disk space (or raise the file-size limit) and resume, or start again") from None
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def find_last(run_dir: Path) -> Path:
    """The newest complete state folder of a run (``last``, or ``last.old`` after a crash mid-swap)."""
    for name in ("last", "last.old"):
        folder = run_dir / name
        if (folder / STATE_NAME).is_file():
            return folder
    raise CheckpointError(f"no resumable state in {run_dir}", hint="a run folder written by `lowlight train` has last/train_state.pt")


def load_run_state(folder: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor] | None, dict[str, Any]]:
    """Read ``(student tensors, teacher tensors or None, trainer state)`` from a state folder."""
    student = load_state_dict_file(folder / "model.safetensors")
    teacher = load_state_dict_file(folder / EMA_NAME) if (folder / EMA_NAME).is_file() else None
    try:
        trainer = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable state is the same problem for the user
        why = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        other = folder.parent / ("last.old" if folder.name == "last" else "last")
        fallback = (f"{other} holds the save before it: move {folder} aside to resume from there, or " if
                    (other / STATE_NAME).is_file() else "")
        raise CheckpointError(f"{folder / STATE_NAME} is damaged and cannot be read ({why})",
                              hint=fallback + f"start a new run from its weights (--set model.init_from={folder})") from None
    return student, teacher, trainer


def progress_dict(progress: Progress) -> dict[str, Any]:
    return asdict(progress)
