"""`lowlight export`: a deployable model file, checked against PyTorch before it is written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.markup import escape

from ..errors import UsageError
from ..export import DEFAULT_OPSET, EXPORT_FORMATS, MAX_OPSET, MIN_OPSET, ExportResult, check_format, default_output, export_model
from ..export.artefact import require_onnx_exportable
from ..export.staging import check_file_destination, check_folder_destination
from ..models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from ..inference.onnx_backend import is_onnx_path
from ..models import model_info
from .console import err, out
from .errors import handle_errors
from .loading import announce, describe_weights, load_model, model_for_weights, refuse_weights_as_model
from .options import CurveScaleOpt, JsonOpt, ModelOpt, NoPretrainedOpt, WeightsOpt

EPILOG = """
Examples:\n
  lowlight export --model crnet --format onnx -o crnet.onnx\n
  lowlight export --model crnet-s --format onnx --fp16 -o crnet-s-fp16.onnx\n
  lowlight export --model crnet --format safetensors --fp16 -o crnet-fp16/\n
  lowlight enhance photos/ --model crnet.onnx -o out/
"""


@handle_errors
def export(
    model: ModelOpt = None,
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="File (onnx) or folder (safetensors); default MODEL[-fp16].onnx or MODEL[-fp16]/, named after --model (with --weights, after the checkpoint's architecture)."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"{' or '.join(EXPORT_FORMATS)}.")] = "onnx",
    fp16: Annotated[bool, typer.Option("--fp16", help="Half precision: float16 weights (ONNX: float16 arithmetic, float32 input/output).")] = False,
    weights: WeightsOpt = None,
    no_pretrained: NoPretrainedOpt = False,
    curve_scale: CurveScaleOpt = None,
    opset: Annotated[Optional[int], typer.Option("--opset", min=MIN_OPSET, max=MAX_OPSET, show_default=False,
                                                 help=f"ONNX opset ({MIN_OPSET}-{MAX_OPSET}; default {DEFAULT_OPSET}; --format onnx only).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing export.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Export a model to ONNX (dynamic size, run by onnxruntime) or to a safetensors checkpoint.

    Every export is compared with PyTorch on two input sizes; beyond tolerance (fp32: max abs error 1e-4, fp16: PSNR 40 dB) it fails with exit code 1 and writes nothing.
    """
    fmt = fmt.lower()  # ONNX, Safetensors: any case, as enhance's --ext
    check_format(fmt)
    if opset is not None and fmt != "onnx":
        raise UsageError(f"--opset is an ONNX setting; --format {fmt} has none", hint="drop --opset, or export --format onnx")
    if model is None:  # as enhance: the architecture the --weights checkpoint names
        if weights is None:
            raise UsageError("export needs a model: --model NAME, or --weights CHECKPOINT (its architecture is read from it)",
                             hint="lowlight export --model crnet-curve-dn, or lowlight export --weights weights/pie-lol")
        model, weights = model_for_weights(None, weights, "")
    if is_onnx_path(model):
        raise UsageError(f"--model {model} names an ONNX file; export takes a registered model name",
                         hint="pass a registered model name (see `lowlight models`), with --weights for trained weights")
    refuse_weights_as_model(model, weights)
    named = model
    if output is None and weights is not None:
        # the default name is the architecture exported: --model crnet-s --weights CKPT of a
        # crnet-curve-dn (same family, loaded as such) writes crnet-curve-dn.onnx, not crnet-s.onnx
        named, weights = model_for_weights(None, weights, model)
    target = Path(output or default_output(named, fmt, fp16=fp16))
    if fmt == "onnx":
        require_onnx_exportable(model_info(model))  # say why before loading any weights
        check_file_destination(target, overwrite=overwrite)  # ... and before the slow part
    else:
        if target.suffix.lower() == ".onnx":  # a folder so named would later be taken for an ONNX file
            raise UsageError(f"-o {target}: a safetensors export is a checkpoint folder, and a name ending in .onnx "
                             "would be read as an ONNX file", hint="drop .onnx from the name, or export --format onnx")
        check_folder_destination(target, (CONFIG_NAME, WEIGHTS_NAME), overwrite=overwrite)
    net = load_model(model, weights, no_pretrained, curve_scale)
    weights_text = describe_weights(model, net, explicit=weights is not None)
    scale = int(getattr(net, "curve_scale", 1)) if getattr(net, "supports_curve_scale", False) else None
    curves = f", curves at 1/{scale} resolution" if scale and scale > 1 else ""
    announce(model, net, f"exporting {model} with {weights_text} to {fmt} ({'fp16' if fp16 else 'fp32'}{curves}), "
                         "checking it against PyTorch ...")
    with err.status("exporting ...") as status:  # a spinner on a terminal (tracing a large model takes a minute)
        result = export_model(net, target, format=fmt, fp16=fp16, opset=opset or DEFAULT_OPSET, overwrite=overwrite,
                              on_stage=lambda text: status.update(f"{text} ..."))
    if json_output:  # what went in, beside what came out
        typer.echo(json.dumps(result.as_dict() | {"weights": weights_text, "curve_scale": scale}, indent=2))
        return
    _report(result)


def _report(result: ExportResult) -> None:
    table = Table(title=f"parity: {result.compared_with} vs PyTorch fp32", caption=f"tolerance: {result.tolerance.describe()}")
    for col in ("input", "max abs error", "PSNR (dB)", "ok"):
        table.add_column(col, justify="left" if col in ("input", "ok") else "right")
    for c in result.parity:
        psnr_text = f"{c.psnr_db:.1f}" if math.isfinite(c.psnr_db) else "inf"
        table.add_row(f"{c.batch}x{c.height}x{c.width}", f"{c.max_abs_error:.2e}", psnr_text, "yes" if c.passed else "no")
    out.print(table)
    opset = f", opset {result.opset}" if result.opset is not None else ""
    out.print(f"wrote {escape(str(result.path))} ({result.format}{opset}, {result.precision}, {result.size_bytes / 1e6:.2f} MB)")
