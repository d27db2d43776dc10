"""Resolve trained weights: explicit path > bundled ``weights/`` > local cache > Hugging Face Hub.

A checkpoint is a folder (or Hub repository) holding ``config.json`` and ``model.safetensors``
(see :mod:`lowlight_cli.models.checkpoint`). :func:`resolve_weights` is the entry point; the
pieces live in :mod:`.refs` (names and places), :mod:`.integrity` (verification) and
:mod:`.download` (the Hub, through ``huggingface_hub``).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from ..errors import WeightsNotFoundError
from ..models.checkpoint import CONFIG_NAME
from .integrity import FOLDER_HINT, sha256_file, verify_checkpoint
from .refs import HUB_PREFIX, HubRef, bundled_weights_dir, cache_dir, is_hub_ref

__all__ = [
    "HUB_PREFIX",
    "HubRef",
    "bundled_weights_dir",
    "bundled_weights_names",
    "cache_dir",
    "download_checkpoint",
    "is_hub_ref",
    "resolve_weights",
    "sha256_file",
    "verify_checkpoint",
]


def bundled_weights_names() -> list[str]:
    """The names of the bundled checkpoints (folders of :func:`bundled_weights_dir` holding
    ``config.json``), sorted; empty when none are shipped."""
    bundled = bundled_weights_dir()
    return [] if bundled is None else sorted(p.name for p in bundled.iterdir() if (p / CONFIG_NAME).is_file())


def _bundled_guess(bundled: Path | None, named: Path | None) -> str | None:
    """A "did you mean" for a mistyped bundled weights name (``--weights crnet-s-lool``), else None."""
    if bundled is None or named is None:
        return None
    close = difflib.get_close_matches(named.name, bundled_weights_names(), n=1)
    return f"did you mean --weights {close[0]}? (bundled weights: `lowlight models`)" if close else None


def download_checkpoint(ref: HubRef, *, expected_sha256: str | None = None) -> Path:
    """:func:`lowlight_cli.hub.download.download_checkpoint`, imported on first use: huggingface_hub
    and its HTTP stack take a noticeable share of the command's start-up, and local weights
    (bundled or a folder) never need them."""
    from .download import download_checkpoint as download

    return download(ref, expected_sha256=expected_sha256)


_NO_WEIGHTS_HINT = "pass --weights PATH or hf-hub:org/repo@rev, or --no-pretrained for a random initialisation"


def resolve_weights(
    model_name: str,
    weights: str | Path | None = None,
    *,
    hub_ref: HubRef | None = None,
    expected_sha256: str | None = None,
    bundled_name: str | None = None,
) -> Path:
    """Find and verify the checkpoint folder for ``model_name``.

    Resolution order, first match wins:

    1. explicit ``weights``: a local checkpoint folder, the name of a bundled checkpoint
       (``crnet-s-lol-semi10``), or ``hf-hub:org/repo[@rev]`` (downloaded through the cache;
       ``expected_sha256`` applies only if it is ``hub_ref``);
    2. bundled ``bundled_weights_dir()/<bundled_name or model_name>/`` when it holds ``config.json``;
    3. the local cache of ``hub_ref`` (the model's registered default repository, may be None);
    4. a download of ``hub_ref`` from the Hub, checked against ``expected_sha256``.

    Returns:
        A folder holding ``config.json`` and ``model.safetensors`` that passed verification.

    Raises:
        WeightsNotFoundError: nothing found (hint: ``--weights`` or ``--no-pretrained``), an
            explicit folder that does not exist, a malformed ``hf-hub:`` reference, download failure.
        WeightsIntegrityError, CheckpointError: see :func:`verify_checkpoint`, :func:`download_checkpoint`.
    """
    if weights is not None:
        if is_hub_ref(weights):
            ref = HubRef.parse(str(weights))
            return download_checkpoint(ref, expected_sha256=expected_sha256 if ref == hub_ref else None)
        folder = Path(weights).expanduser()
        bundled = bundled_weights_dir()
        named = bundled / str(weights) if bundled is not None and "/" not in str(weights) else None
        if not folder.exists() and named is not None and (named / CONFIG_NAME).is_file():
            folder = named
        if not folder.exists():
            final = folder.parent / "final"  # a run without validation exporting its EMA teacher
            last = final if (final / CONFIG_NAME).is_file() else folder.parent / "last"
            run_hint = (f"{folder.parent} is a training run without a best checkpoint (it validated on nothing, or "
                        f"no validation scored): its final weights are {last}"
                        if folder.name == "best" and (last / CONFIG_NAME).is_file() else None)
            raise WeightsNotFoundError(
                f"weights folder {folder} does not exist",
                hint=run_hint or _bundled_guess(bundled, named)
                or "pass a checkpoint folder (config.json + model.safetensors), a bundled weights name "
                   "(`lowlight models` lists them) or hf-hub:org/repo@rev",
            )
        if not folder.is_dir():
            raise WeightsNotFoundError(f"{folder} is a file, not a checkpoint folder", hint=FOLDER_HINT)
        verify_checkpoint(folder)
        return folder
    bundled = bundled_weights_dir()
    name = bundled_name or model_name
    if bundled is not None and (bundled / name / CONFIG_NAME).is_file():
        verify_checkpoint(bundled / name)
        return bundled / name
    if hub_ref is None:
        raise WeightsNotFoundError(f"no trained weights for model {model_name!r}", hint=_NO_WEIGHTS_HINT)
    try:
        return download_checkpoint(hub_ref, expected_sha256=expected_sha256)
    except WeightsNotFoundError as exc:
        hint = f"{exc.hint}; or {_NO_WEIGHTS_HINT}" if exc.hint else _NO_WEIGHTS_HINT
        raise WeightsNotFoundError(f"no trained weights for model {model_name!r}: {exc.message}", hint=hint) from exc
