"""Export models for deployment: ONNX (run by onnxruntime) and safetensors checkpoints, fp32 or fp16.

Every export is checked before it is put in place: the exported artefact is run on two input
sizes and compared with the PyTorch model (:mod:`.parity`); a failed check raises
:class:`~lowlight_cli.errors.ExportError` and leaves nothing behind (:mod:`.staging`). The library
never prints: :func:`export_model` returns an :class:`ExportResult` with the measured errors.

Example:
    >>> from lowlight_cli.models import create_model
    >>> result = export_model(create_model("gamma"), "gamma.onnx")  # doctest: +SKIP
    >>> [round(c.max_abs_error, 6) for c in result.parity]  # doctest: +SKIP
    [0.0, 0.0]
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ..errors import UsageError
from .artefact import ExportResult, weights_provenance
from .checkpoint_export import export_checkpoint
from .onnx_export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, Float32Interface, export_onnx
from .parity import FP16_TOLERANCE, FP32_TOLERANCE, ParityCheck, StageFn, Tolerance, check_parity, parity_input, parity_sizes

EXPORT_FORMATS = ("onnx", "safetensors")

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_FORMATS",
    "FP16_TOLERANCE",
    "FP32_TOLERANCE",
    "MAX_OPSET",
    "MIN_OPSET",
    "ExportResult",
    "Float32Interface",
    "ParityCheck",
    "StageFn",
    "Tolerance",
    "check_format",
    "check_parity",
    "default_output",
    "export_checkpoint",
    "export_model",
    "export_onnx",
    "parity_input",
    "parity_sizes",
    "weights_provenance",
]


def check_format(fmt: str) -> str:
    """Return ``fmt`` if it is one of :data:`EXPORT_FORMATS`; :class:`UsageError` otherwise."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def default_output(name: str, fmt: str, *, fp16: bool = False) -> Path:
    """``<name>[-fp16].onnx`` for ONNX, the folder ``<name>[-fp16]`` for safetensors."""
    stem = f"{name}-fp16" if fp16 else name
    return Path(f"{stem}.onnx") if check_format(fmt) == "onnx" else Path(stem)


def export_model(
    model: nn.Module,
    output: str | Path,
    *,
    format: str = "onnx",  # noqa: A002 - the user-facing word
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    sizes: list[tuple[int, int]] | None = None,
    overwrite: bool = False,
    on_stage: StageFn | None = None,
) -> ExportResult:
    """Export ``model`` in ``format`` to ``output`` and check parity (see :func:`export_onnx`,
    :func:`export_checkpoint`; ``opset`` applies to ONNX only; ``on_stage`` is told each step in
    words, for a progress line).

    Raises:
        UsageError: unknown format, and the errors of the format's exporter.
        ExportError: see the format's exporter.
    """
    if check_format(format) == "onnx":
        return export_onnx(model, output, fp16=fp16, opset=opset, sizes=sizes, overwrite=overwrite, on_stage=on_stage)
    return export_checkpoint(model, output, fp16=fp16, sizes=sizes, overwrite=overwrite, on_stage=on_stage)
