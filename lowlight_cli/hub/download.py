"""Download a checkpoint from the Hugging Face Hub into lowlight's cache, verified before it lands.

Downloads land in ``cache_dir()/weights/<org>--<repo>/<revision>/`` only after the sha256 of
``model.safetensors`` has been checked; ``download.json`` beside the files records where they
came from and the verified digest, so a cache hit is re-checked without the network.
``huggingface_hub`` does the HTTP (endpoint, token, offline mode); everything it writes goes to a
temporary folder inside our cache that is removed whatever happens, so a corrupt download leaves
nothing behind, neither in our cache nor in huggingface_hub's.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from ..errors import CheckpointError, WeightsError, WeightsIntegrityError, WeightsNotFoundError, first_line
from ..models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from .integrity import FOLDER_HINT, Pin, check_pins, config_pins, read_checkpoint
from .refs import HubRef, cache_folder

try:  # huggingface_hub >= 2 talks HTTP through httpx2, 1.x through httpx
    from httpx2 import TransportError
except ImportError:  # pragma: no cover - depends on the installed huggingface_hub
    from httpx import TransportError  # type: ignore[no-redef]

MODEL_CARD_NAME = "MODEL_CARD.md"
DOWNLOAD_RECORD_NAME = "download.json"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_NETWORK_HINT = (
    "check the network and HF_ENDPOINT, pass a local --weights folder, "
    "or download once online and then set HF_HUB_OFFLINE=1"
)


def _hub_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import; the variable may have been set since.
    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in constants.ENV_VARS_TRUE_VALUES


def _endpoint() -> str:
    # huggingface_hub reads HF_ENDPOINT once, at import; pass the current value explicitly.
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


class _NoProgress:
    """Progress sink handed to huggingface_hub: the library never prints; the CLI renders progress."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __enter__(self) -> _NoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: float | None = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _pins(folder: Path, expected_sha256: str | None, source: str, digest: str | None) -> list[Pin]:
    """Digests a downloaded checkpoint must match, in checking order: registry pin, config.json, ``source``."""
    config = read_checkpoint(folder)
    registry: Pin = (WEIGHTS_NAME, "the model registry", expected_sha256)
    return [registry, *config_pins(folder, config), (WEIGHTS_NAME, source, digest)]


def _cached_checkpoint(folder: Path, expected_sha256: str | None) -> bool:
    """Whether ``folder`` holds a complete download that still matches every recorded digest."""
    if not (folder / CONFIG_NAME).is_file():
        return False
    try:
        recorded = json.loads((folder / DOWNLOAD_RECORD_NAME).read_text(encoding="utf-8"))["sha256"][WEIGHTS_NAME]
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{folder / DOWNLOAD_RECORD_NAME} is missing or malformed") from None
    pins = _pins(folder, expected_sha256, DOWNLOAD_RECORD_NAME, recorded)
    check_pins(folder, pins, hint=f"the cached copy is damaged or outdated; delete {folder} and download again")
    return True


def _download_error(ref: HubRef, exc: Exception, filename: str, endpoint: str) -> WeightsNotFoundError:
    """One-line :class:`WeightsNotFoundError` for a failure of huggingface_hub."""
    if isinstance(exc, RevisionNotFoundError):
        return WeightsNotFoundError(
            f"revision {ref.revision!r} of Hub repository {ref.repo_id!r} not found",
            hint="check the part after '@': a branch, tag or commit hash of that repository",
        )
    if isinstance(exc, RepositoryNotFoundError):
        return WeightsNotFoundError(
            f"Hub repository {ref.repo_id!r} not found at {endpoint}",
            hint="check the name; a private or gated repository needs a token (HF_TOKEN or `hf auth login`)",
        )
    if isinstance(exc, RemoteEntryNotFoundError):
        return WeightsNotFoundError(
            f"{ref} has no {filename}, so it is not a lowlight checkpoint",
            hint=FOLDER_HINT.replace("folder", "repository"),
        )
    return WeightsNotFoundError(f"could not download {ref} from {endpoint}: {first_line(exc)}", hint=_NETWORK_HINT)


def _fetch(ref: HubRef, scratch: Path) -> tuple[Path, str | None, str]:
    """Download the checkpoint files into ``scratch/checkpoint``; return it, the LFS sha256 and the commit.

    All files are fetched at the commit the revision pointed to when ``model.safetensors`` was
    looked up, so config and weights come from the same commit even if a branch moves meanwhile.
    """
    endpoint = _endpoint()
    staging = scratch / "checkpoint"
    staging.mkdir()
    filename = WEIGHTS_NAME
    try:
        url = hf_hub_url(ref.repo_id, WEIGHTS_NAME, revision=ref.revision, endpoint=endpoint)
        meta = get_hf_file_metadata(url, endpoint=endpoint)
        commit = meta.commit_hash or ref.revision
        for filename in (CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME):
            try:
                path = hf_hub_download(
                    ref.repo_id,
                    filename,
                    revision=commit,
                    endpoint=endpoint,
                    cache_dir=scratch / "hf-cache",  # keep huggingface_hub off its shared cache
                    local_dir=scratch / "files",
                    tqdm_class=_NoProgress,  # type: ignore[arg-type]
                )
            except RemoteEntryNotFoundError:
                if filename == MODEL_CARD_NAME:  # the card is optional
                    continue
                raise
            os.replace(path, staging / filename)
    except (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled, TransportError) as exc:
        raise _download_error(ref, exc, filename, endpoint) from exc
    except (OSError, RuntimeError) as exc:
        # huggingface_hub compares the received length with the advertised one and raises a bare OSError.
        if isinstance(exc, OSError) and "Consistency check failed" in str(exc):
            raise WeightsIntegrityError(
                f"{ref}: {filename} arrived with the wrong size; nothing was cached", hint="retry the download"
            ) from exc
        # hf_xet (a Xet-backed repository) raises RuntimeError, or OSError subclasses of its own
        if not (isinstance(exc, RuntimeError) or type(exc).__module__.startswith("hf_xet")):
            raise
        raise WeightsNotFoundError(
            f"could not download {filename} of {ref} from Xet storage: {first_line(exc)}; nothing was cached",
            hint=f"retry; or download over plain HTTP with HF_HUB_DISABLE_XET=1; or {_NETWORK_HINT}",
        ) from exc
    etag = (meta.etag or "").lower()
    return staging, (etag if _SHA256.fullmatch(etag) else None), commit


@contextlib.contextmanager
def _relabel(folder: Path, label: str) -> Iterator[None]:
    """Re-raise weights errors about the temporary ``folder`` as errors about ``label`` (the Hub ref)."""
    try:
        yield
    except WeightsError as exc:
        raise type(exc)(exc.message.replace(str(folder), label), hint=exc.hint) from None


def _move_into_place(staging: Path, target: Path, scratch: Path) -> None:
    """Rename the verified folder to ``target`` (atomic); a stale copy there goes to ``scratch``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(staging, target)
    except OSError:
        if not target.exists():
            raise
        os.rename(target, scratch / "replaced")  # damaged copy, or a concurrent download's
        os.rename(staging, target)


def download_checkpoint(ref: HubRef, *, expected_sha256: str | None = None) -> Path:
    """Return the verified cache folder of ``ref``, downloading it from the Hub when needed.

    A cached copy that still matches its recorded digests is returned without any network access.
    Otherwise ``config.json``, ``model.safetensors`` and (if present) ``MODEL_CARD.md`` are
    downloaded from ``$HF_ENDPOINT`` (token and offline mode as huggingface_hub reads them) into a
    temporary folder. ``model.safetensors`` must match, in order, ``expected_sha256``, the
    ``sha256`` block of the downloaded ``config.json`` and the Hub's LFS sha256; at least one must
    exist. Only then is the folder renamed into ``cache_dir()/weights/<org>--<repo>/<revision>/``.

    Args:
        ref: repository and revision.
        expected_sha256: digest of ``model.safetensors`` pinned by the model registry.

    Raises:
        WeightsNotFoundError: not cached and ``HF_HUB_OFFLINE`` is set; repository, revision or
            file missing; network failure.
        WeightsIntegrityError: a digest does not match, or none is known; nothing is cached.
        CheckpointError: the downloaded ``config.json`` is malformed.
    """
    target = cache_folder(ref)
    damaged: WeightsError | None = None
    try:
        if _cached_checkpoint(target, expected_sha256):
            return target
    except WeightsError as exc:
        damaged = exc  # replaced by a fresh download when online
    if _hub_offline():
        if damaged is not None:
            raise damaged
        raise WeightsNotFoundError(
            f"{ref} is not in the cache ({target}) and HF_HUB_OFFLINE is set",
            hint="unset HF_HUB_OFFLINE or download once online; a copy of the repository's files "
                 "(config.json, model.safetensors) in a folder runs with --weights FOLDER",
        )
    root = target.parent.parent
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".download-", dir=root) as tmp:
        scratch = Path(tmp)
        staging, lfs_sha256, commit = _fetch(ref, scratch)
        with _relabel(staging, str(ref)):
            pins = _pins(staging, expected_sha256, "the Hub (LFS sha256)", lfs_sha256)
            if not any(name == WEIGHTS_NAME and digest for name, _, digest in pins):
                raise WeightsIntegrityError(
                    f"{staging / WEIGHTS_NAME} cannot be verified: no sha256 is known for it; nothing was cached",
                    hint="record it in config.json's sha256 block, or upload the file with Git LFS",
                )
            digests = check_pins(
                staging, pins, hint="the download is corrupt or the Hub copy changed; nothing was cached, retry"
            )
        record = {
            "repo_id": ref.repo_id,
            "revision": ref.revision,
            "commit": commit,
            "endpoint": _endpoint(),
            "sha256": {WEIGHTS_NAME: digests[WEIGHTS_NAME]},
        }
        record_text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        (staging / DOWNLOAD_RECORD_NAME).write_text(record_text, encoding="utf-8")
        _move_into_place(staging, target, scratch)
    return target
