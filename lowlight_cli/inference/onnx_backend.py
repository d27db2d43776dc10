"""Run an exported ``.onnx`` model with onnxruntime behind the same interface as a PyTorch model.

:class:`OnnxModel` has what :class:`~lowlight_cli.inference.Enhancer` needs: ``info`` (a
:class:`~lowlight_cli.models.ModelInfo` rebuilt from the file's metadata, so tiling and padding
read the input multiple and tile size of the exported architecture) and ``__call__(batch) -> batch``
on torch tensors. This module also defines that metadata (:func:`onnx_metadata`), so the writer
(``lowlight_cli.export``) and the reader agree on one format.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..errors import CheckpointError, UsageError, WeightsNotFoundError
from ..models.base import ModelInfo, PretrainedWeights

METADATA_VERSION = "1"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
INPUT_RANGE = "[0, 1]"
INPUT_LAYOUT = "NCHW float RGB"
WHOLE_IMAGE_CONTEXT = "whole_image_context"
CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"
_INSTALL_HINT = "pip install onnxruntime (or onnxruntime-gpu for the CUDA provider)"


def is_onnx_path(name: str | Path) -> bool:
    """True when ``name`` names an ONNX file (``.onnx`` suffix, any case), not a registered model."""
    return str(name).lower().endswith(".onnx")


def onnx_metadata(
    info: ModelInfo, *, precision: str, weights: Mapping[str, Any], whole_image_context: bool = False,
    curve_scale: int | None = None,
) -> dict[str, str]:
    """Metadata props written into every exported ONNX file (all values are strings).

    Human-readable keys (``architecture``, ``input_range``, ``input_multiple``, ``weights`` ...)
    show in tools such as Netron; ``model_info`` holds the whole :class:`ModelInfo` as JSON and is
    what :class:`OnnxModel` rebuilds ``info`` from.

    Args:
        info: the exported model's facts.
        precision: ``fp32`` or ``fp16`` (the arithmetic inside the graph; its input and output
            are float32 either way).
        weights: provenance of the weights (JSON-serialisable), e.g. checkpoint path and sha256.
        whole_image_context: the model uses statistics of the whole photo (CRNet's
            ``global_context``). The graph computes them from whatever it is given, so a tile
            would get its own and tiles would differ in exposure: such a file runs whole images.
        curve_scale: a curve model's curve scale, fixed in the graph (its maps at ``1/N``
            resolution); None for other models.
    """
    extra = {} if curve_scale is None else {"curve_scale": str(curve_scale)}
    return {
        **extra,
        "lowlight_metadata_version": METADATA_VERSION,
        "lowlight_version": __version__,
        "architecture": info.name,
        "family": info.family,
        "description": info.description,
        "paper": info.paper,
        "licence": info.licence,
        "input_range": INPUT_RANGE,
        "input_layout": INPUT_LAYOUT,
        "input_multiple": str(info.input_multiple),
        "tile_exact": str(info.tile_exact).lower(),
        WHOLE_IMAGE_CONTEXT: str(whole_image_context).lower(),
        "precision": precision,
        "weights": json.dumps(dict(weights), sort_keys=True),
        "model_info": json.dumps(dataclasses.asdict(info), sort_keys=True),
    }


def info_from_metadata(props: Mapping[str, str], source: str) -> ModelInfo:
    """Rebuild the :class:`ModelInfo` stored by :func:`onnx_metadata`.

    Unknown fields (written by a newer version) are ignored; missing ones take their defaults.

    Raises:
        CheckpointError: the file carries no (or unreadable) lowlight metadata.
    """
    raw = props.get("model_info")
    if raw is None:
        raise CheckpointError(
            f"{source} has no lowlight metadata (model_info), so its input multiple and tiling are unknown",
            hint="export the model with `lowlight export --format onnx`",
        )
    try:
        fields = json.loads(raw)
        known = {f.name for f in dataclasses.fields(ModelInfo)}
        fields = {k: v for k, v in fields.items() if k in known}
        if fields.get("pretrained") is not None:
            fields["pretrained"] = PretrainedWeights(**fields["pretrained"])
        fields["tags"] = tuple(fields.get("tags", ()))
        return ModelInfo(**fields)
    except (json.JSONDecodeError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{source}: unreadable model_info metadata: {exc}") from None


def import_onnxruntime() -> Any:
    """The ``onnxruntime`` module; :class:`UsageError` with an install hint if it is missing."""
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("running .onnx models needs the onnxruntime package", hint=_INSTALL_HINT) from None
    return onnxruntime


def _runtime_errors(ort: Any) -> tuple[type[Exception], ...]:
    """onnxruntime's own exception types (``Fail``, ``InvalidArgument``, ``InvalidProtobuf`` ...)."""
    state = ort.capi.onnxruntime_pybind11_state
    return tuple(v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))


class OnnxModel:
    """An exported ``.onnx`` enhancement model run by onnxruntime.

    Calling it maps a torch batch ``(B, 3, H, W)`` float in ``[0, 1]`` (``H`` and ``W`` multiples
    of ``info.input_multiple``) to the enhanced batch, same shape, float32, on the input's device.
    The execution provider follows the batch: a CUDA batch runs on the CUDA provider when
    onnxruntime has it (else on the CPU provider), a CPU batch on the CPU provider. So the
    :class:`~lowlight_cli.inference.Enhancer`'s ``--device`` choice holds for ONNX models too.

    Args:
        path: the ``.onnx`` file, written by ``lowlight export``.
        providers: fixed onnxruntime providers, overriding the per-device choice.
        threads: intra-op threads of the CPU provider (0: onnxruntime's default).

    Attributes:
        info: the exported architecture's :class:`ModelInfo`.
        whole_image_context: the file's metadata says the model uses whole-image statistics, so it
            must run whole images (``InferenceConfig(tile=0)``; :meth:`check_tile` refuses tiles).
        metadata: all metadata props of the file.
        precision: ``fp32`` or ``fp16`` (arithmetic inside the graph).
        weights_source: ``checkpoint``, ``none`` (a model without weights), ``in-memory`` (weights not
            loaded from a checkpoint when exported, e.g. ``--no-pretrained`` random ones) or ``unknown``.
        path: the file.

    Raises:
        WeightsNotFoundError: the file does not exist.
        CheckpointError: not a readable ONNX model, or without lowlight metadata.
        UsageError: onnxruntime is not installed.
    """

    def __init__(self, path: str | Path, *, providers: Sequence[str] | None = None, threads: int = 0) -> None:
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise WeightsNotFoundError(f"{self.path} is a folder, not an ONNX file",
                                       hint="name the .onnx file itself, or a checkpoint folder with --weights")
        if not self.path.is_file():
            raise WeightsNotFoundError(f"ONNX model {self.path} does not exist", hint="export one with `lowlight export --format onnx`")
        self._ort = import_onnxruntime()
        self._errors = _runtime_errors(self._ort)
        self._threads = threads
        self._fixed_providers = list(providers) if providers is not None else None
        self._sessions: dict[tuple[str, ...], Any] = {}
        session = self._session(tuple(self._fixed_providers or [CPU_PROVIDER]))
        self.metadata: dict[str, str] = dict(session.get_modelmeta().custom_metadata_map)
        self.info = info_from_metadata(self.metadata, str(self.path))
        self.whole_image_context = self.metadata.get(WHOLE_IMAGE_CONTEXT) == "true"
        self.precision = self.metadata.get("precision", "fp32")
        # a curve model's curve scale as exported (None: not a curve model, or a file from before it was recorded)
        scale = self.metadata.get("curve_scale", "")
        self.exported_curve_scale = int(scale) if scale.isascii() and scale.isdigit() and int(scale) >= 1 else None
        try:  # where the exported weights came from (lowlight_cli.export.artefact.weights_provenance)
            self.weights_source = str(json.loads(self.metadata.get("weights", "{}")).get("source", "unknown"))
        except (ValueError, AttributeError):
            self.weights_source = "unknown"
        inputs = session.get_inputs()
        if len(inputs) != 1 or len(session.get_outputs()) != 1:
            raise CheckpointError(f"{self.path}: expected one input and one output, found {len(inputs)} and {len(session.get_outputs())}")
        self._input_name = inputs[0].name
        self._input_dtype = np.float16 if inputs[0].type == "tensor(float16)" else np.float32

    def _session(self, providers: tuple[str, ...]) -> Any:
        if providers not in self._sessions:
            options = self._ort.SessionOptions()
            options.log_severity_level = 3  # errors only: the library never prints
            if self._threads:
                options.intra_op_num_threads = self._threads
            try:
                self._sessions[providers] = self._ort.InferenceSession(str(self.path), options, providers=list(providers))
            except self._errors as exc:
                raise CheckpointError(f"{self.path} is not a model onnxruntime can load: {exc}") from None
        return self._sessions[providers]

    @property
    def graph_precision(self) -> str:
        """The precision the graph computes in, fixed at export: the :class:`Enhancer` runs it as is and
        refuses an explicit other one (see :func:`lowlight_cli.inference.engine.exported_precision`)."""
        return self.precision

    @property
    def label(self) -> str:
        """How messages name this model: its file."""
        return f"the ONNX file {self.path.name}"

    def check_tile(self, tile: int | None) -> None:
        """Refuse tiles (``tile`` > 0) for a model with a whole-image context.

        Raises:
            UsageError: the model uses whole-image statistics and ``tile`` asks for tiles.
        """
        if self.whole_image_context and tile:
            raise UsageError(
                f"{self.path.name} cannot be tiled: {self.info.name} uses statistics of the whole photo, which "
                "an ONNX graph computes per tile, so tiles would differ in exposure",
                hint=f"drop --tile (or use --tile 0) to run whole images, or run the PyTorch model (--model {self.info.name}), which hands every tile the statistics of the whole photo",
            )

    def providers_for(self, device: torch.device) -> tuple[str, ...]:
        """The onnxruntime providers used for batches on ``device``."""
        if self._fixed_providers is not None:
            return tuple(self._fixed_providers)
        if device.type == "cuda" and CUDA_PROVIDER in self._ort.get_available_providers():
            return (CUDA_PROVIDER, CPU_PROVIDER)
        return (CPU_PROVIDER,)

    def runtime(self, device: torch.device | str = "cpu") -> str:
        """E.g. ``onnxruntime 1.20.1 (CPUExecutionProvider)``: what runs batches on ``device``."""
        providers = ", ".join(self.providers_for(torch.device(device)))
        return f"onnxruntime {self._ort.__version__} ({providers})"

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Enhance ``batch`` ``(B, 3, H, W)`` float in ``[0, 1]`` -> same shape, float32, same device.

        Raises:
            ValueError: not a ``(B, 3, H, W)`` batch, or ``H``/``W`` not multiples of the input multiple.
            CheckpointError: onnxruntime fails on the batch (e.g. a graph with a fixed input size).
        """
        multiple = self.info.input_multiple
        if batch.ndim != 4 or batch.shape[1] != 3 or batch.shape[-2] % multiple or batch.shape[-1] % multiple:
            raise ValueError(f"expected a (B, 3, H, W) batch with H, W multiples of {multiple}, got {tuple(batch.shape)}")
        session = self._session(self.providers_for(batch.device))
        feed = batch.detach().to("cpu", torch.float32).numpy().astype(self._input_dtype, copy=False)
        try:
            (output,) = session.run(None, {self._input_name: feed})
        except self._errors as exc:
            raise CheckpointError(f"{self.path}: onnxruntime failed on a {tuple(batch.shape)} batch: {exc}") from None
        return torch.from_numpy(np.asarray(output, dtype=np.float32)).to(batch.device)

    def to(self, device: torch.device | str) -> OnnxModel:
        """No-op kept for interface parity with ``nn.Module``: the provider follows each batch's device."""
        return self

    def eval(self) -> OnnxModel:
        """No-op (an exported graph is always in inference mode)."""
        return self

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, architecture={self.info.name!r}, precision={self.precision!r})"
