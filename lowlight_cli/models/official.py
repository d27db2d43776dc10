"""Convert the authors' published checkpoints (PyTorch ``.pth`` state dicts) to lowlight checkpoint folders.

Official releases are pickles. They are read with ``torch.load(..., weights_only=True)``, PyTorch's
restricted unpickler that builds tensors and plain containers only and refuses any other object,
so a hostile file cannot run code; lowlight never falls back to a full unpickle. Both the zip
format (PyTorch >= 1.6) and the legacy one (SCL-LLE's release) are read. The tensors are renamed
to the registered architecture's names, loaded strictly (every tensor present, shapes equal,
values finite) and written as ``config.json`` + ``model.safetensors`` with the source file's
sha256 in the provenance.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import pickle
import re
import shutil
import struct
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..errors import CheckpointError, UnknownNameError, UsageError
from .checkpoint import CONFIG_NAME, load_weights_strict, save_checkpoint
from .registry import MODELS

DATA_PARALLEL_PREFIX = "module."
CONTAINER_KEYS = ("state_dict", "model_state", "model", "net", "params")  # where training scripts nest the weights


def _dce_key(official: str) -> str | None:
    """Zero-DCE / SCL-LLE / PIE ``e_convN.weight`` -> our ``convN.weight``; None for other names."""
    match = re.fullmatch(r"e_conv([1-7])\.(weight|bias)", official)
    return f"conv{match[1]}.{match[2]}" if match else None


# per model family: the authors' tensor name -> ours (None: not a tensor of that network)
OFFICIAL_NAMES: dict[str, Callable[[str], str | None]] = {"dce": _dce_key}


@dataclass(frozen=True)
class OfficialCheckpoint:
    """Tensors read from an official checkpoint file, with what was done to reach them.

    Attributes:
        path: the file.
        sha256: hex digest of the file.
        file_format: ``zip`` (PyTorch >= 1.6) or ``legacy`` (older pickle format).
        state: tensor name -> tensor, as found (after unwrapping and prefix removal).
        container_key: the key the state dict was nested under (``state_dict`` ...), or "".
        removed_prefix: ``module.`` when DataParallel's prefix was stripped, else "".
    """

    path: Path
    sha256: str
    file_format: str
    state: dict[str, torch.Tensor]
    container_key: str = ""
    removed_prefix: str = ""


_TORCH_BOILERPLATE = ("weights only load failed", "please file an issue", "check the documentation")


def _unpickler_detail(exc: Exception) -> str:
    """What PyTorch's restricted unpickler objected to, without its advice to turn the restriction off."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(line for line in lines if not line.lower().startswith(_TORCH_BOILERPLATE))


def _is_safetensors(data: bytes) -> bool:
    """A safetensors file: an 8-byte little-endian header length, then a JSON header."""
    if len(data) < 10:
        return False
    (length,) = struct.unpack("<Q", data[:8])
    return 2 <= length <= len(data) - 8 and data[8:9] == b"{"


def _load_restricted(path: Path, data: bytes) -> object:
    if _is_safetensors(data):
        raise CheckpointError(
            f"{path} is a safetensors file, not a PyTorch .pth pickle",
            hint="a lowlight checkpoint is a folder holding model.safetensors and its config.json: "
                 "pass that folder as --weights, or import the authors' .pth file",
        )
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on the way to refusing them
            warnings.simplefilter("ignore")
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = _unpickler_detail(exc)
        if "GLOBAL" not in detail:
            raise CheckpointError(
                f"{path} is not a readable PyTorch checkpoint ({detail or exc})",
                hint="pass the .pth file the authors published (a state dict)",
            ) from None
        found = re.search(r"GLOBAL (\S+)", detail)  # the object's class, without torch's advice around it
        raise CheckpointError(
            f"refusing {path}: it holds a Python object (GLOBAL {found.group(1) if found else '?'}), not only tensors "
            "and plain containers; lowlight reads checkpoints with torch.load(weights_only=True) and never unpickles anything else",
            hint="in an environment you trust, re-save just the weights: torch.save(model.state_dict(), 'weights.pth')",
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})",
            hint="pass the .pth file the authors published (a state dict)",
        ) from None


def read_official_checkpoint(path: str | Path, name_of: Callable[[str], str | None] | None = None) -> OfficialCheckpoint:
    """Read a published ``.pth`` state dict without unpickling anything but tensors and containers.

    A dict nested under one of :data:`CONTAINER_KEYS` is unwrapped when the top level holds no
    tensor of the network (``name_of`` says which names are), and DataParallel's ``module.``
    prefix is removed when every name carries it.

    Args:
        path: the file.
        name_of: the family's name translation (see :data:`OFFICIAL_NAMES`), used to find the
            weights inside a container; None takes a top-level dict as it is.

    Raises:
        CheckpointError: missing or unreadable file, a file holding other Python objects, or no
            dict of tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise CheckpointError(f"{path} {what}: expected the authors' checkpoint file (.pth)",
                              hint="give the path of the downloaded file, e.g. Epoch99.pth")
    try:
        data = path.read_bytes()  # hashed and loaded from the same bytes
    except OSError as exc:
        raise CheckpointError(f"{path} cannot be read: {exc.strerror or exc}") from None
    if not data:
        raise CheckpointError(f"{path} is empty", hint="download the checkpoint again")
    loaded = _load_restricted(path, data)
    container_key = ""
    if isinstance(loaded, Mapping) and name_of is not None and not any(
        name_of(str(k).removeprefix(DATA_PARALLEL_PREFIX)) for k in loaded
    ):
        nested = [k for k in CONTAINER_KEYS if isinstance(loaded.get(k), Mapping)]
        if nested:
            container_key, loaded = nested[0], loaded[nested[0]]
    if not isinstance(loaded, Mapping) or not loaded:
        raise CheckpointError(
            f"{path} holds a {type(loaded).__name__}, not a state dict (a dict of tensors)",
            hint="pass the file saved with torch.save(model.state_dict(), ...)",
        )
    not_tensors = sorted(str(k) for k, v in loaded.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise CheckpointError(
            f"{path} is not a plain state dict: {len(not_tensors)} entries are not tensors (e.g. {not_tensors[0]!r})",
            hint=f"if the weights are nested, use a file whose top level or one of {', '.join(CONTAINER_KEYS)} is the state dict",
        )
    state = {str(k): v for k, v in loaded.items()}
    prefix = ""
    if all(k.startswith(DATA_PARALLEL_PREFIX) for k in state):
        prefix = DATA_PARALLEL_PREFIX
        state = {k[len(prefix) :]: v for k, v in state.items()}
    return OfficialCheckpoint(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        file_format="zip" if zipfile.is_zipfile(io.BytesIO(data)) else "legacy",
        state=state,
        container_key=container_key,
        removed_prefix=prefix,
    )


def _translated(official_state: Mapping[str, torch.Tensor], name_of: Callable[[str], str | None]) -> dict[str, torch.Tensor]:
    """The authors' tensors under lowlight's names; unknown names stay, strict loading reports them."""
    return {(name_of(k) or k): v for k, v in official_state.items()}


def _fits(architecture: str, official_state: Mapping[str, torch.Tensor]) -> bool:
    """Whether an authors' tensors load strictly into ``architecture`` (names translated, shapes equal)."""
    entry = MODELS.get(architecture)
    state = _translated(official_state, OFFICIAL_NAMES[entry.info.family])
    try:  # only a hint: any failure to build the model means "no"
        with torch.device("meta"):
            expected = {k: v.shape for k, v in entry.build().state_dict().items()}
    except Exception:  # noqa: BLE001
        return False
    return set(state) == set(expected) and all(tuple(state[k].shape) == tuple(expected[k]) for k in expected)


def importable_architectures() -> list[str]:
    """Registered models whose family has an official-checkpoint translation."""
    return [n for n in MODELS.names() if MODELS.get(n).info.family in OFFICIAL_NAMES and "test" not in MODELS.get(n).info.tags]


def import_official_checkpoint(path: str | Path, architecture: str, folder: str | Path, *, overwrite: bool = False) -> Path:
    """Convert an authors' checkpoint into a lowlight checkpoint folder.

    Args:
        path: the published ``.pth`` file (zip or legacy PyTorch format).
        architecture: the registered model it is for (``scl-lle``, ``pie``; see
            :func:`importable_architectures`).
        folder: destination; created. Must not hold a checkpoint already unless ``overwrite``.
        overwrite: replace an existing checkpoint in ``folder``.

    Returns:
        The folder, loadable with ``create_model(architecture, weights=folder)`` and ``lowlight
        enhance --model ARCH --weights FOLDER``.

    Raises:
        UnknownNameError: unknown architecture.
        UsageError: an architecture without an official format, or a folder that is not empty.
        CheckpointError: unreadable or refused file, tensors that do not fit the architecture.
    """
    importable = importable_architectures()
    if architecture not in MODELS.names():  # "did you mean" among what imports, not every model
        close = difflib.get_close_matches(architecture.lower(), importable, n=2, cutoff=0.6)
        raise UnknownNameError(f"unknown architecture {architecture!r} (importable: {', '.join(importable)})",
                               hint=f"did you mean {', '.join(close)}?" if close else None)
    entry = MODELS.get(architecture)
    name_of = OFFICIAL_NAMES.get(entry.info.family)
    if name_of is None:
        raise UsageError(
            f"no official checkpoint format is known for {architecture!r} (family {entry.info.family})",
            hint=f"importable architectures: {', '.join(importable_architectures())}",
        )
    folder = Path(folder)
    if folder.suffix.lower() == ".onnx":  # enhance --model would take the folder for an ONNX file
        raise UsageError(f"-o {folder}: a checkpoint is a folder, and a name ending in .onnx would be read as an ONNX file",
                         hint="drop .onnx from the name")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder", hint="choose a folder for the checkpoint with -o")
    if folder.is_dir() and any(folder.iterdir()) and not (overwrite and (folder / CONFIG_NAME).is_file()):
        raise UsageError(
            f"{folder} is not empty" + (" and holds no checkpoint (no config.json)" if overwrite else ""),
            hint="choose a new folder" + ("" if overwrite else ", or pass --overwrite to replace the checkpoint it holds"),
        )
    official = read_official_checkpoint(path, name_of)
    state = _translated(official.state, name_of)
    model = entry.build()
    try:
        load_weights_strict(model, state, str(official.path))
    except CheckpointError as exc:  # the generic hint is about config.json, which a .pth has none of
        if _fits(architecture, official.state):  # names and shapes fit: the values or their types are wrong
            broken = "non-finite" in exc.message
            raise CheckpointError(exc.message, hint="the file's weights are broken: download or copy it again" if broken
                                  else "the authors' files hold float tensors; convert it with model.float() first") from None
        fits = [name for name in importable_architectures() if name != architecture and _fits(name, official.state)]
        raise CheckpointError(
            exc.message,
            hint=(f"these tensors fit --arch {' or --arch '.join(fits)}" if fits else
                  f"it is not a checkpoint of {architecture}; importable architectures: {', '.join(importable_architectures())}"),
        ) from None
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in official.state.values()})
    provenance = {
        "imported_from": {
            "file": official.path.name,
            "sha256": official.sha256,
            "format": official.file_format,
            "container_key": official.container_key,
            "removed_prefix": official.removed_prefix,
            "tensors": len(official.state),
            "dtypes": dtypes,
        },
        "converted_by": f"lowlight {__version__} (lowlight import, torch.load weights_only=True)",
        "paper": entry.info.paper,
        "weights": "the authors' tensors, values unchanged, stored as float32"
                   + ("" if dtypes == ["float32"] else f" (widened exactly from the file's {', '.join(dtypes)})"),
    }
    created = _first_missing(folder)  # the outermost folder this import creates, if any
    try:
        return save_checkpoint(model, folder, architecture=architecture, kwargs=model.config, provenance=provenance)
    except BaseException:
        if created is not None:  # a failed import leaves nothing behind, parents it made included
            shutil.rmtree(created, ignore_errors=True)
        raise


def _first_missing(folder: Path) -> Path | None:
    """The outermost of ``folder`` and its parents that does not exist yet (None if ``folder`` does)."""
    missing = None
    for candidate in (folder.absolute(), *folder.absolute().parents):
        if candidate.exists():
            break
        missing = candidate
    return missing
