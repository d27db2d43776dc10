"""Checkpoint verification: files present, ``config.json`` valid, sha256 digests as recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, WeightsIntegrityError
from ..models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_config

FOLDER_HINT = "a checkpoint folder holds config.json and model.safetensors"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


Pin = tuple[str, str, str | None]  # (file name, who recorded the digest, hex digest or None)


def read_checkpoint(folder: Path) -> dict[str, Any]:
    """Validated ``config.json`` of a folder that also holds ``model.safetensors``."""
    config = read_config(folder)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing", hint=FOLDER_HINT)
    return config


def config_pins(folder: Path, config: dict[str, Any]) -> list[Pin]:
    """The digests recorded in ``config.json``'s optional ``sha256`` block."""
    block = config.get("sha256", {})
    if not isinstance(block, dict) or not all(isinstance(v, str) for v in block.values()):
        raise CheckpointError(f"{folder / CONFIG_NAME}: 'sha256' must map file names to hex digests")
    for name in block:
        if Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{folder / CONFIG_NAME}: 'sha256' names {name!r}, not a file of the checkpoint")
    return [(name, CONFIG_NAME, digest) for name, digest in block.items()]


def check_pins(folder: Path, pins: list[Pin], *, hint: str) -> dict[str, str]:
    """Check each file against each recorded digest, in order; return the digests (each file hashed once)."""
    actual: dict[str, str] = {}
    for name, source, expected in pins:
        if expected is None:
            continue
        path = folder / name
        if name not in actual:
            if not path.is_file():
                raise CheckpointError(f"{path} is missing but has a sha256 recorded in {source}")
            actual[name] = sha256_file(path)
        if actual[name] != expected.strip().lower():
            raise WeightsIntegrityError(
                f"{path}: sha256 is {actual[name]}, but {source} expects {expected}", hint=hint
            )
    return actual


def verify_checkpoint(folder: Path) -> None:
    """Check that ``folder`` is a usable checkpoint.

    ``config.json`` must exist, be valid JSON and name an ``architecture``; ``model.safetensors``
    must exist; every file listed in the optional ``sha256`` block must match its digest.

    Raises:
        CheckpointError: a file is missing or ``config.json`` is malformed (the message names it).
        WeightsIntegrityError: a file does not match its recorded sha256 (names file and digests).
    """
    folder = Path(folder)
    config = read_checkpoint(folder)
    hint = "the file changed after the checkpoint was written; re-create or re-download it"
    check_pins(folder, config_pins(folder, config), hint=hint)
