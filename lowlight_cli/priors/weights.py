"""Find, verify and strictly load the weights of a frozen network.

Resolution, first match wins:

1. an explicit ``weights``: a safetensors file, a folder holding the network's file (or
   ``model.safetensors``), or ``hf-hub:org/repo[@rev]`` (downloaded and verified through
   :func:`lowlight_cli.hub.download_checkpoint`, like enhancement weights);
2. the network's file (``WeightsSource.filename``) in ``$LOWLIGHT_NETS``, then in
   ``cache_dir()/nets``, then in ``../shared/nets`` beside the checkout (development);
3. a copy of the network's suggested Hub repository already in lowlight's cache.

Nothing is downloaded unless an ``hf-hub:`` reference is passed. Files found by the default lookup
must match the sha256 recorded in the registry; every file must match the architecture tensor by
tensor (names and shapes), and nothing is unpickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from safetensors import SafetensorError, safe_open
from torch import Tensor

import lowlight_cli

from ..errors import CheckpointError, WeightsIntegrityError, WeightsNotFoundError
from ..hub import HubRef, cache_dir, download_checkpoint, is_hub_ref, sha256_file
from ..hub.refs import cache_folder
from ..models.checkpoint import WEIGHTS_NAME, load_weights_strict
from .base import FrozenNetwork, PriorInfo

NETS_ENV = "LOWLIGHT_NETS"


@dataclass(frozen=True)
class FoundWeights:
    """A weights file and how it was found.

    Attributes:
        path: the safetensors file.
        place: where it was found, for messages and listings (``$LOWLIGHT_NETS``, ``cache``,
            ``../shared/nets``, ``hf-hub:org/repo@rev (cached)``, ``explicit``).
    """

    path: Path
    place: str


def development_nets_dir() -> Path:
    """``../shared/nets`` beside the checkout that holds this package (development weights)."""
    return Path(lowlight_cli.__file__).resolve().parents[1].parent / "shared" / "nets"


def nets_folders() -> list[tuple[str, Path]]:
    """The folders searched for a network's file, in order, each with a label for messages.

    ``$LOWLIGHT_NETS`` (when set), ``cache_dir()/nets``, ``../shared/nets``; read at every call.
    """
    folders = []
    if explicit := os.environ.get(NETS_ENV):
        folders.append((f"${NETS_ENV}", Path(explicit).expanduser()))
    folders.append(("cache", cache_dir() / "nets"))
    folders.append(("../shared/nets", development_nets_dir()))
    return folders


def _hub_ref(info: PriorInfo) -> HubRef | None:
    return HubRef.parse(f"hf-hub:{info.weights.hub_id}") if info.weights.hub_id else None


def locate_weights(info: PriorInfo) -> FoundWeights | None:
    """Where the default lookup finds the network's weights, without hashing or network access.

    Returns:
        The first hit of the nets folders, else a cached download of ``info.weights.hub_id``,
        else None.
    """
    for label, folder in nets_folders():
        path = folder / info.weights.filename
        if path.is_file():
            return FoundWeights(path, label)
    ref = _hub_ref(info)
    if ref is not None and (cache_folder(ref) / WEIGHTS_NAME).is_file():
        return FoundWeights(cache_folder(ref) / WEIGHTS_NAME, f"{ref} (cached)")
    return None


def _missing_hint(info: PriorInfo) -> str:
    hint = (
        f"put {info.weights.filename} (from {info.weights.origin}) in a folder named by ${NETS_ENV}, "
        "or give its path or hf-hub:ORG/REPO"
    )
    if info.weights.hub_id:
        hint += f" (e.g. hf-hub:{info.weights.hub_id})"
    return hint + (" (training: the method's *_weights key, e.g. --set pie.features_weights=PATH; "
                   "Python: weights=PATH; stand_in=True gives seeded random weights, for tests)")


def _explicit(info: PriorInfo, weights: str | Path) -> FoundWeights:
    if is_hub_ref(weights):
        ref = HubRef.parse(str(weights))
        return FoundWeights(download_checkpoint(ref) / WEIGHTS_NAME, str(ref))
    path = Path(weights).expanduser()
    if path.is_dir():
        for name in (info.weights.filename, WEIGHTS_NAME):
            if (path / name).is_file():
                return FoundWeights(path / name, "explicit")
        raise WeightsNotFoundError(
            f"{path} holds neither {info.weights.filename} nor {WEIGHTS_NAME}",
            hint=f"pass the safetensors file of {info.name} itself, or a folder holding it",
        )
    if not path.is_file():
        raise WeightsNotFoundError(f"weights file {path} does not exist", hint=_missing_hint(info))
    return FoundWeights(path, "explicit")


def resolve_weights(info: PriorInfo, weights: str | Path | None = None) -> FoundWeights:
    """Find (and, for default lookups, verify) the weights file of a frozen network.

    Args:
        info: the network's registered facts.
        weights: a file, a folder, ``hf-hub:org/repo[@rev]``, or None for the default lookup.

    Returns:
        The file and where it was found.

    Raises:
        WeightsNotFoundError: nothing found (the hint says where to put the file), an explicit path
            that does not exist, a failed or offline download.
        WeightsIntegrityError: a file found by the default lookup does not match the registry's sha256,
            or a download does not match its recorded digests.
    """
    if weights is not None:
        return _explicit(info, weights)
    found = locate_weights(info)
    if found is None:
        searched = ", ".join(str(folder) for _, folder in nets_folders())
        raise WeightsNotFoundError(
            f"no weights for frozen network {info.name!r}: {info.weights.filename} is in none of {searched}",
            hint=_missing_hint(info),
        )
    ref = _hub_ref(info)
    if ref is not None and found.path.parent == cache_folder(ref):
        download_checkpoint(ref)  # re-checks the cached copy against its recorded digests, offline
    elif info.weights.sha256 is not None:
        digest = sha256_file(found.path)
        if digest != info.weights.sha256:
            raise WeightsIntegrityError(
                f"{found.path}: sha256 is {digest}, but {info.name} expects {info.weights.sha256}",
                hint=f"replace it with the conversion of {info.weights.origin}, or pass another file explicitly",
            )
    return found


def read_weights(path: Path, network: FrozenNetwork) -> dict[str, Tensor]:
    """Tensors of a safetensors file under the network's names (:meth:`FrozenNetwork.module_key`).

    Unused tensors (a classifier head of a feature extractor) are never read into memory.

    Raises:
        CheckpointError: the file is not a readable safetensors file.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = {key: network.module_key(key) for key in handle.keys()}
            return {name: handle.get_tensor(key) for key, name in names.items() if name is not None}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from None


def load_weights(network: FrozenNetwork, found: FoundWeights) -> FrozenNetwork:
    """Copy the file's tensors into ``network``: every name and shape must match.

    Raises:
        CheckpointError: unreadable file, missing / unexpected / mis-shaped tensors, non-finite values.
    """
    state = read_weights(found.path, network)
    try:
        load_weights_strict(network, state, str(found.path))
    except CheckpointError as exc:
        raise CheckpointError(
            exc.message.replace("the architecture", f"the {network.info.name} network"),
            hint=f"{network.info.name} reads {network.info.weights.filename} ({network.info.weights.origin})",
        ) from None
    network.weights_path = found.path
    return network
