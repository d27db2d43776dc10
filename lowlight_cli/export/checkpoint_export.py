"""Checkpoint export: a ``config.json`` + ``model.safetensors`` folder, optionally with float16 tensors.

The folder is what ``lowlight enhance --weights`` and ``create_model(weights=...)`` load. float16
tensors halve the file; loading casts them back to the model's float32, so inference runs in
float32 with weights rounded to half precision. The parity check reloads the folder exactly as
those loaders do and compares it with the original model.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from .. import __version__
from ..errors import ExportError
from ..models import load_checkpoint
from ..models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, save_checkpoint
from .artefact import ExportResult, torch_model_info, weights_provenance
from .parity import StageFn, check_fits_float16, check_parity, parity_sizes, tolerance_for
from .staging import staged_folder


def export_checkpoint(
    model: nn.Module,
    folder: str | Path,
    *,
    fp16: bool = False,
    sizes: list[tuple[int, int]] | None = None,
    overwrite: bool = False,
    on_stage: StageFn | None = None,
) -> ExportResult:
    """Save ``model`` as a checkpoint folder, after checking that the saved weights reproduce it.

    Args:
        model: a PyTorch enhancement model with weights (put in eval mode).
        folder: destination folder (created; other files in it are left alone).
        fp16: store floating-point tensors as float16 (half the file size).
        sizes: parity input sizes ``(H, W)``; default :func:`~.parity.default_parity_sizes`.
        overwrite: replace ``config.json``/``model.safetensors`` already in ``folder``.
        on_stage: told in words what the export does next (progress), as in ``export_onnx``.

    Returns:
        The :class:`ExportResult`; parity compares the reloaded checkpoint with ``model`` (max abs
        1e-4 for fp32, PSNR >= 40 dB for fp16).

    Raises:
        ExportError: the model has no weights, or the reloaded checkpoint fails the parity check
            (nothing is written).
        UsageError: bad sizes; ``folder`` is a file, or holds a checkpoint and ``overwrite`` is False.
    """
    info = torch_model_info(model)
    if not info.needs_weights:
        raise ExportError(f"{info.name} has no trained weights: there is no checkpoint to export", hint="use it by name")
    folder = Path(folder).expanduser()
    checked_sizes = parity_sizes(info, sizes)
    tolerance = tolerance_for(fp16)
    model.eval()
    precision = "fp16" if fp16 else "fp32"
    state = {k: v.half() if fp16 and v.is_floating_point() else v for k, v in model.state_dict().items()}
    if fp16:  # said here, naming the cause, rather than as non-finite weights of a temporary folder
        check_fits_float16(model, info.name)
    provenance = {
        **getattr(model, "provenance", {}),
        "export": {"by": f"lowlight {__version__}", "dtype": precision, "from": weights_provenance(model, info)},
    }
    names = (CONFIG_NAME, WEIGHTS_NAME)
    with staged_folder(folder, names, overwrite=overwrite) as tmp:
        if on_stage is not None:
            on_stage("saving the checkpoint and loading it back")
        save_checkpoint(model, tmp, architecture=info.name, kwargs=model.config, provenance=provenance, state_dict=state)
        # with the model's own frozen networks (never in a checkpoint): the weights are what is checked
        reloaded = load_checkpoint(tmp, expected_family=info.family, frozen_networks=model.frozen_networks())
        device = next((p.device for p in model.parameters()), None)
        checks = check_parity(
            lambda x: model(x.to(device)).cpu(), reloaded, checked_sizes, tolerance, what=f"the {precision} checkpoint",
            on_stage=on_stage,
        )
        size = sum((tmp / n).stat().st_size for n in names)
    return ExportResult(
        format="safetensors",
        path=folder,
        files=tuple(folder / n for n in names),
        architecture=info.name,
        precision=precision,
        size_bytes=size,
        opset=None,
        parity=checks,
        tolerance=tolerance,
        compared_with="the reloaded checkpoint (PyTorch, CPU)",
    )
