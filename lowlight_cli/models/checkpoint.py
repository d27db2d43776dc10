"""Checkpoint folders: ``config.json`` (architecture, kwargs, provenance, sha256) + ``model.safetensors``.

Loading is strict and never unpickles. Writes are atomic: files are written to temporary names and
renamed into place, so an interrupted save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import CheckpointError
from ..permissions import FILE_MODE

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _temp_beside(path: Path) -> Path:
    """A new empty temporary file in ``path``'s folder (created), to be renamed onto ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _stage_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to a synced temporary file beside ``path``; return the temporary's path."""
    tmp = _temp_beside(path)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _stage_weights(state: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None) -> tuple[Path, str]:
    """Save tensors as safetensors to a temporary file beside ``path``; return it and its sha256 (hex)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    tmp = _temp_beside(path)
    try:
        try:
            save_file(tensors, str(tmp), metadata=metadata)
        except SafetensorError as exc:  # its I/O failures (a full disk) as the OSError they are
            raise OSError(errno.EIO, f"cannot write the weights ({exc})", str(path)) from None
        digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, digest


def _commit(staged: list[tuple[Path, Path]]) -> None:
    """Rename each staged temporary onto its destination; on failure remove the ones not renamed."""
    try:
        for tmp, path in staged:
            os.chmod(tmp, FILE_MODE)  # mkstemp's (and safetensors') 0600 would stay on the published file
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    _commit([(_stage_bytes(path, data), path)])


def save_state_dict(state: Mapping[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> str:
    """Save tensors as safetensors atomically; return the file's sha256 (hex)."""
    tmp, digest = _stage_weights(state, path, metadata)
    _commit([(tmp, path)])
    return digest


def save_checkpoint(
    model: torch.nn.Module,
    folder: str | Path,
    *,
    architecture: str,
    kwargs: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint folder that :func:`load_checkpoint` and ``lowlight enhance --weights`` read.

    Args:
        model: the model whose ``state_dict`` is saved (unless ``state_dict`` is given).
        folder: destination folder (created).
        architecture: registered model name to rebuild it with.
        kwargs: constructor kwargs of that architecture.
        provenance: free-form facts (data, command, steps) recorded in ``config.json``.
        state_dict: tensors to save instead of ``model.state_dict()`` (e.g. the EMA teacher).

    Returns:
        The folder.
    """
    folder = Path(folder)
    state = state_dict if state_dict is not None else model.state_dict()
    # both files are written in full before either is renamed into place, so a failure while
    # writing (a full disk, an interrupt: the slow part) leaves the folder's previous pair as it
    # was; only a crash between the two renames at the end can leave new weights beside the old
    # config.json, whose sha256 then refuses them at load rather than running them unchecked
    weights_tmp, digest = _stage_weights(state, folder / WEIGHTS_NAME, {"architecture": architecture})
    config = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "kwargs": dict(kwargs),
        "provenance": dict(provenance or {}),
        "sha256": {WEIGHTS_NAME: digest},
    }
    try:
        config_tmp = _stage_bytes(folder / CONFIG_NAME, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
    except BaseException:
        weights_tmp.unlink(missing_ok=True)
        raise
    _commit([(weights_tmp, folder / WEIGHTS_NAME), (config_tmp, folder / CONFIG_NAME)])
    return folder


def read_config(folder: str | Path) -> dict[str, Any]:
    """Read and validate ``config.json`` of a checkpoint folder; :class:`CheckpointError` if malformed."""
    if Path(folder).is_file():
        raise CheckpointError(f"{folder} is a file, not a checkpoint folder",
                              hint="a checkpoint folder holds config.json and model.safetensors")
    path = Path(folder) / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        inside = [name for name in ("best", "last") if (Path(folder) / name / CONFIG_NAME).is_file()]
        hint = (f"{folder} is a training run: its checkpoints are {' and '.join(str(Path(folder) / n) for n in inside)}"
                if inside else "a checkpoint folder holds config.json and model.safetensors")
        raise CheckpointError(f"{path} is missing", hint=hint) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise CheckpointError(f"{path} does not name an architecture")
    if not isinstance(config.get("kwargs", {}), dict):
        raise CheckpointError(f"{path}: kwargs must be an object")
    return config


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file (never pickle); :class:`CheckpointError` if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None


def load_weights_strict(
    model: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    source: str,
    *,
    allow_missing: tuple[str, ...] = (),
) -> list[str]:
    """Copy ``state`` into ``model``; every key and shape must match and every float must be finite
    (:class:`CheckpointError`; a diverged run's NaN weights would give black images).

    ``allow_missing``: key prefixes of the model that ``state`` may lack (they keep their
    initialisation; used to warm-start a model that adds modules). Returns the keys left as they were.
    """
    own = model.state_dict()
    kept = sorted(k for k in set(own) - set(state) if k.startswith(allow_missing)) if allow_missing else []
    missing = sorted(set(own) - set(state) - set(kept))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            parts.append(f"shape mismatch in {len(wrong)} (e.g. {k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)})")
        raise CheckpointError(
            f"{source} does not fit the architecture: " + "; ".join(parts),
            hint="the checkpoint's config.json must name the architecture and kwargs it was trained with",
        )
    odd = sorted(k for k, v in state.items() if v.layout != torch.strided or v.is_complex()
                 or (own[k].is_floating_point() and not v.is_floating_point()))
    if odd:
        k = odd[0]
        kind = "sparse" if state[k].layout != torch.strided else str(state[k].dtype).removeprefix("torch.")
        raise CheckpointError(
            f"{source} holds {len(odd)} tensor(s) that are not dense real floating-point numbers, e.g. {k}: {kind}",
            hint="a state dict of float tensors is expected (torch.save(model.state_dict(), ...))",
        )
    # converted first: a float64 value beyond float32's range becomes inf only on the way in
    merged = {k: v.to(own[k].dtype) for k, v in state.items()}
    broken = sorted(k for k, v in merged.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if broken:
        raise CheckpointError(
            f"{source} holds non-finite weights (NaN or inf, or values beyond {own[broken[0]].dtype} range) in "
            f"{len(broken)} tensor(s), e.g. {broken[0]}: the model would give black images",
            hint="the training run probably diverged: use an earlier checkpoint (e.g. the run's best/), or retrain with a lower --lr",
        )
    merged.update({k: own[k] for k in kept})
    model.load_state_dict(merged, strict=True)
    return kept
