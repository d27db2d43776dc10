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

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import CheckpointError, ConfigError, UnknownNameError
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


def _json_plain(value: Any, where: str) -> Any:
    """``value`` as plain JSON types: numpy scalars become Python numbers, tuples lists;
    :class:`CheckpointError` naming ``where`` for anything ``config.json`` cannot hold."""
    if isinstance(value, np.generic) and isinstance(value.item(), (bool, int, float, str)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_json_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise CheckpointError(f"cannot save a checkpoint: {where} has a key that is not a string")
        return {k: _json_plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    raise CheckpointError(
        f"cannot save a checkpoint: {where} is a {type(value).__name__}, which config.json cannot hold",
        hint="pass numbers, strings, booleans, lists and dicts of them",
    )


def _check_rebuildable(architecture: str, kwargs: dict[str, Any], state: Mapping[str, torch.Tensor]) -> None:
    """Refuse (:class:`CheckpointError`) an ``architecture`` and ``kwargs`` that :func:`load_checkpoint`
    could not rebuild ``state`` with: not registered, an option it has not, or other tensor names or
    shapes than ``state``'s."""
    from .registry import MODELS  # filled by lowlight_cli.models, which imports this module

    try:
        entry = MODELS.get(architecture)
    except UnknownNameError as exc:
        raise CheckpointError(f"cannot save a checkpoint of unknown architecture {architecture!r}: {exc}",
                              hint=exc.hint or "pass the registered name the model was built with") from None
    try:
        with torch.random.fork_rng(devices=[]):  # a throwaway build must not move the caller's random stream
            rebuilt = entry.build(**kwargs).state_dict()
    except ConfigError as exc:
        raise CheckpointError(f"cannot save a checkpoint: {exc}", hint=exc.hint) from None
    except (TypeError, ValueError) as exc:  # the architecture's config refused a value
        raise CheckpointError(f"cannot save a checkpoint: {architecture} cannot be built with these kwargs: {exc}") from None
    missing = sorted(set(rebuilt) - set(state))
    unexpected = sorted(set(state) - set(rebuilt))
    wrong = sorted(k for k in set(rebuilt) & set(state) if rebuilt[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        k = (wrong or missing or unexpected)[0]
        detail = (f"{k}: {tuple(state[k].shape)} here, {tuple(rebuilt[k].shape)} rebuilt" if wrong else
                  f"{len(missing)} tensor(s) missing here, e.g. {k}" if missing else
                  f"{len(unexpected)} tensor(s) the rebuilt model lacks, e.g. {k}")
        raise CheckpointError(
            f"cannot save a checkpoint: {architecture} built with these kwargs does not have this model's tensors ({detail})",
            hint="leave architecture and kwargs out to record the model's own (model.info.name, model.config)",
        )


def save_checkpoint(
    model: torch.nn.Module,
    folder: str | Path,
    *,
    architecture: str | None = None,
    kwargs: Mapping[str, Any] | None = None,
    provenance: Mapping[str, Any] | None = None,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    allow_non_finite: bool = False,
) -> Path:
    """Write a checkpoint folder that :func:`load_checkpoint` and ``lowlight enhance --weights`` read.

    Before anything is written, the model is rebuilt (on the CPU, the caller's random state left as
    it was) from ``architecture`` and ``kwargs`` as :func:`load_checkpoint` will rebuild it, and its
    tensor names and shapes must be those of the tensors saved.

    Args:
        model: the model whose ``state_dict`` is saved (unless ``state_dict`` is given).
        folder: destination folder (created).
        architecture: registered model name to rebuild it with; default ``model.info.name``.
        kwargs: constructor kwargs of that architecture, on top of its registered ones; default
            ``model.config`` (every option of the model). Numpy scalars are stored as Python numbers.
        provenance: free-form facts (data, command, steps) recorded in ``config.json``; JSON values
            (numpy scalars converted as in ``kwargs``).
        state_dict: tensors to save instead of ``model.state_dict()`` (e.g. the EMA teacher).
        allow_non_finite: save NaN or inf weights too (a training run's ``last/`` keeps the state it
            reached, diverged or not; :func:`load_checkpoint` refuses them and points to ``best/``).

    Returns:
        The folder.

    Raises:
        CheckpointError: ``architecture`` is not registered (or not given and the model has no
            ``info``), ``kwargs`` holds an option it has not, the model it builds has other tensors
            than those saved, a kwargs or provenance value is not JSON, ``folder`` is a file, or
            (unless ``allow_non_finite``) a weight is NaN or inf; nothing is written then.
        OSError: writing failed (the folder's previous checkpoint is left as it was).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"cannot save a checkpoint to {folder}: it is a file, and a checkpoint is a folder",
                              hint="give a folder path (it is created), e.g. runs/mine")
    if architecture is None:
        info = getattr(model, "info", None)
        architecture = getattr(info, "name", None)
        if not isinstance(architecture, str):
            raise CheckpointError(f"cannot save a checkpoint of a {type(model).__name__} without its architecture",
                                  hint="pass architecture=, the registered model name to rebuild it with")
    if kwargs is None:
        kwargs = getattr(model, "config", {})
    plain_kwargs = _json_plain(kwargs, "kwargs")
    if not isinstance(plain_kwargs, dict):
        raise CheckpointError(f"cannot save a checkpoint: kwargs must be a mapping, got {type(kwargs).__name__}")
    plain_provenance = _json_plain(provenance or {}, "provenance")
    state = state_dict if state_dict is not None else model.state_dict()
    _check_rebuildable(architecture, plain_kwargs, state)
    broken = [] if allow_non_finite else sorted(k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if broken:  # load_checkpoint would refuse them: say so before writing
        raise CheckpointError(f"cannot save a checkpoint to {folder}: {len(broken)} tensor(s) hold NaN or inf, e.g. {broken[0]}",
                              hint="the weights diverged; save an earlier state, or retrain with a lower learning rate")
    # both files are written in full before either is renamed into place, so a failure while
    # writing (a full disk, an interrupt: the slow part) leaves the folder's previous pair as it
    # was; only a crash between the two renames at the end can leave new weights beside the old
    # config.json, whose sha256 then refuses them at load rather than running them unchecked
    weights_tmp, digest = _stage_weights(state, folder / WEIGHTS_NAME, {"architecture": architecture})
    config = {
        "format_version": FORMAT_VERSION,
        "architecture": architecture,
        "kwargs": plain_kwargs,
        "provenance": plain_provenance,
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
    version = config.get("format_version", FORMAT_VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{path}: format_version must be a positive integer, got {version!r}")
    if version > FORMAT_VERSION:  # its fields may mean what this version cannot know
        raise CheckpointError(f"{path} is in checkpoint format {version}, written by a newer lowlight; "
                              f"this one (lowlight {__version__}) reads format {FORMAT_VERSION}",
                              hint="upgrade lowlight (pip install -U lowlight-cli)")
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
