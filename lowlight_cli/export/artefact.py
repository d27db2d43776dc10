"""What an export produces: the result record, and the provenance an exported artefact carries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from ..errors import ExportError, UsageError
from ..models import SEED
from ..models.base import ModelInfo
from ..models.checkpoint import WEIGHTS_NAME, read_config
from .parity import ParityCheck, Tolerance


@dataclass(frozen=True)
class ExportResult:
    """A finished export that passed its parity check.

    Attributes:
        format: ``onnx`` or ``safetensors``.
        path: the ``.onnx`` file, or the checkpoint folder.
        files: every file written.
        architecture: registered model name of the exported model.
        precision: ``fp32`` or ``fp16``.
        size_bytes: total size of ``files``.
        opset: ONNX opset (``None`` for safetensors).
        parity: one check per input size, all passed.
        tolerance: what the checks had to meet.
        compared_with: what ran the exported artefact in the check (e.g. ``onnxruntime 1.20.1
            (CPUExecutionProvider)``), against PyTorch in float32 on the CPU.
    """

    format: str
    path: Path
    files: tuple[Path, ...]
    architecture: str
    precision: str
    size_bytes: int
    opset: int | None
    parity: tuple[ParityCheck, ...]
    tolerance: Tolerance
    compared_with: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``inf`` PSNR becomes ``None``)."""

        def number(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "format": self.format,
            "path": str(self.path),
            "files": [str(f) for f in self.files],
            "architecture": self.architecture,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "opset": self.opset,
            "compared_with": self.compared_with,
            "tolerance": {"max_abs_error": self.tolerance.max_abs_error, "min_psnr_db": self.tolerance.min_psnr_db},
            "parity": [
                {
                    "height": c.height,
                    "width": c.width,
                    "batch": c.batch,
                    "max_abs_error": number(c.max_abs_error),
                    "psnr_db": number(c.psnr_db),
                    "passed": c.passed,
                }
                for c in self.parity
            ],
        }


def torch_model_info(model: object) -> ModelInfo:
    """The :class:`ModelInfo` of a PyTorch enhancement model about to be exported.

    Raises:
        UsageError: ``model`` is not a PyTorch module with ``info`` (e.g. an already exported
            :class:`~lowlight_cli.inference.onnx_backend.OnnxModel`).
    """
    if not isinstance(model, nn.Module) or not isinstance(getattr(model, "info", None), ModelInfo):
        raise UsageError(
            f"only PyTorch models can be exported, not {type(model).__name__}",
            hint="pass a registered model name (with --weights for trained weights), not an exported file",
        )
    return model.info


def require_onnx_exportable(info: ModelInfo) -> None:
    """Raise :class:`ExportError` with the model's ``export_note`` unless it declares itself exportable."""
    if not info.exportable:
        raise ExportError(
            f"{info.name} cannot be exported to ONNX: {info.export_note or 'the model declares itself not exportable'}",
            hint="use it through `lowlight enhance` instead",
        )


_LOCAL_PROVENANCE = ("train_config",)  # provenance keys an export leaves out (local paths)


def weights_provenance(model: nn.Module, info: ModelInfo) -> dict[str, Any]:
    """Where the weights of ``model`` came from, for the exported artefact's metadata.

    Returns:
        ``{"source": "none"}`` for models without weights; ``{"source": "checkpoint", "checkpoint",
        "sha256", "provenance"}`` for a model loaded by ``create_model``/``load_checkpoint``
        (``checkpoint`` is the folder's name, not its path, and ``provenance`` leaves out the
        training run's resolved config: a shared file must not carry the exporting user's
        directories; the sha256 identifies the weights);
        ``{"source": "in-memory"}`` otherwise (e.g. a ``--no-pretrained`` random initialisation).
    """
    if not info.needs_weights:
        return {"source": "none", "note": f"{info.name} has no trained weights"}
    folder = getattr(model, "checkpoint_dir", None)
    if folder is None:
        note = f"not loaded from a checkpoint (e.g. a --no-pretrained random initialisation, seed {SEED})"
        return {"source": "in-memory", "note": note}
    config = read_config(folder)
    return {
        "source": "checkpoint",
        "checkpoint": Path(folder).name,
        "sha256": config.get("sha256", {}).get(WEIGHTS_NAME),
        # without the training run's resolved config: it holds the trainer's local paths (data
        # folders, run folder), and the checkpoint's own config.json keeps it
        "provenance": {k: v for k, v in config.get("provenance", {}).items() if k not in _LOCAL_PROVENANCE},
    }
