"""ONNX export: TorchScript tracing with dynamic batch, height and width, metadata, parity check.

The TorchScript exporter (``torch.onnx.export(..., dynamo=False)``) is used: it handles dynamic
axes predictably and needs no package beyond ``onnx``. The graph is traced at one size and checked
by onnxruntime at two other sizes, which catches sizes frozen into the graph during tracing.

fp16 exports keep float32 inputs and outputs: the graph casts the input to float16, runs the model
(weights stored in float16, half the file) and casts the result back. Callers feed and receive the
same tensors as with the fp32 file. onnxruntime's CPU provider runs any operator that has no
float16 kernel in float32 behind casts it inserts itself, so the file also runs on CPUs.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch
from torch import nn

from ..errors import ExportError, UsageError
from ..inference.onnx_backend import (
    CPU_PROVIDER,
    INPUT_NAME,
    INPUT_RANGE,
    OUTPUT_NAME,
    OnnxModel,
    import_onnxruntime,
    onnx_metadata,
)
from ..models.base import ModelInfo
from .artefact import ExportResult, require_onnx_exportable, torch_model_info, weights_provenance
from .parity import StageFn, check_fits_float16, check_parity, parity_input, parity_sizes, tolerance_for, trace_size
from .staging import check_file_destination, staged_file

DEFAULT_OPSET = 17
MIN_OPSET = 17
MAX_OPSET = 20  # newest opset of torch's TorchScript exporter
_INSTALL_HINT = "pip install onnx onnxruntime"


class Float32Interface(nn.Module):
    """Wraps a float16 model so that it takes and returns float32 ``(B, 3, H, W)`` in ``[0, 1]``."""

    def __init__(self, half_model: nn.Module) -> None:
        super().__init__()
        self.model = half_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.half()).float()


def _onnx_module():  # noqa: ANN202 - the onnx module
    try:
        import onnx
    except ImportError:
        raise UsageError("ONNX export needs the onnx and onnxruntime packages", hint=_INSTALL_HINT) from None
    return onnx


def _trace(module: nn.Module, path: Path, info: ModelInfo, opset: int, device: torch.device) -> None:
    h, w = trace_size(info.input_multiple)
    example = parity_input(1, h, w).to(device)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        # the exporter warns that it is the legacy one, and the tracer about Python values taken
        # from tensors; the parity check at other sizes is what tells whether those matter
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes},
                do_constant_folding=True,
            )
        except torch.onnx.errors.OnnxExporterError as exc:
            raise ExportError(
                f"torch.onnx cannot export {info.name} at opset {opset}: {exc}",
                hint=f"try a newer --opset (up to {MAX_OPSET})",
            ) from None


def _annotate(path: Path, info: ModelInfo, props: dict[str, str]) -> None:
    onnx = _onnx_module()
    graph = onnx.load(str(path))
    onnx.helper.set_model_props(graph, props)
    graph.doc_string = (
        f"lowlight {info.name}: input {INPUT_NAME} (batch, 3, height, width) float32 RGB in {INPUT_RANGE}, "
        f"height and width multiples of {info.input_multiple}; output {OUTPUT_NAME}: the enhanced image, same shape and range"
    )
    onnx.checker.check_model(graph)
    onnx.save(graph, str(path))


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    sizes: list[tuple[int, int]] | None = None,
    overwrite: bool = False,
    on_stage: StageFn | None = None,
) -> ExportResult:
    """Export ``model`` to an ONNX file with dynamic batch, height and width, after a parity check.

    The file's input ``input`` and output ``output`` are ``(B, 3, H, W)`` float32 RGB in ``[0, 1]``
    with ``H`` and ``W`` multiples of ``model.info.input_multiple`` (recorded in the metadata
    props with the architecture, version, input range, weights provenance and whether the model
    uses a whole-image context, which makes the file run whole images only). Before the file is
    put in place, onnxruntime (CPU provider) runs it on :func:`~.parity.parity_sizes` and must
    match PyTorch float32 within max abs 1e-4 (fp32) or PSNR 40 dB (fp16).

    Args:
        model: a PyTorch enhancement model (put in eval mode).
        path: destination, ending in ``.onnx``.
        fp16: float16 weights and arithmetic inside a float32 interface.
        opset: ONNX opset, 17 to 20.
        sizes: parity input sizes ``(H, W)``; default :func:`~.parity.default_parity_sizes`.
        overwrite: replace an existing file.
        on_stage: told in words what the export does next (tracing, loading in onnxruntime,
            comparing at each size): a caller's progress line; tracing a large model takes a while.

    Returns:
        The :class:`ExportResult`.

    Raises:
        ExportError: the model is not exportable (message gives its ``export_note``), the exporter
            fails, or the parity check fails (no file is left behind).
        UsageError: bad path, opset or sizes; ``path`` exists without ``overwrite``; onnx or
            onnxruntime missing.
    """
    info = torch_model_info(model)
    require_onnx_exportable(info)
    path = Path(path).expanduser()
    check_file_destination(path, overwrite=overwrite)  # the name, an existing file, a file on the path: before any work
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError(f"opset {opset} is not supported", hint=f"use {MIN_OPSET} to {MAX_OPSET}")
    checked_sizes = parity_sizes(info, sizes)
    tolerance = tolerance_for(fp16)
    _onnx_module()
    import_onnxruntime()
    model.eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    if fp16:
        check_fits_float16(model, info.name)
    module = Float32Interface(copy.deepcopy(model).half()) if fp16 else model
    precision = "fp16" if fp16 else "fp32"
    with staged_file(path, overwrite=overwrite) as tmp:
        if on_stage is not None:
            on_stage("tracing the model into an ONNX graph")
        _trace(module, tmp, info, opset, device)
        whole_image = bool(getattr(model, "uses_image_context", False))
        curve_scale = int(model.curve_scale) if getattr(model, "supports_curve_scale", False) else None
        props = onnx_metadata(info, precision=precision, weights=weights_provenance(model, info), whole_image_context=whole_image,
                              curve_scale=curve_scale)
        _annotate(tmp, info, props)
        if on_stage is not None:
            on_stage("loading the graph in onnxruntime")
        exported = OnnxModel(tmp, providers=[CPU_PROVIDER])
        checks = check_parity(lambda x: model(x.to(device)).cpu(), exported, checked_sizes, tolerance, what=path.name,
                              on_stage=on_stage)
        size = tmp.stat().st_size
        runtime = exported.runtime()
    return ExportResult(
        format="onnx",
        path=path,
        files=(path,),
        architecture=info.name,
        precision=precision,
        size_bytes=size,
        opset=opset,
        parity=checks,
        tolerance=tolerance,
        compared_with=runtime,
    )
