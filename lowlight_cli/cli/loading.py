"""Build the model and engine a command asked for, and say in one line what will actually run."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape

from ..errors import UsageError
from ..hub import bundled_weights_dir, bundled_weights_names, is_hub_ref, resolve_weights
from ..inference import Enhancer
from ..inference.engine import AUTO_CURVE_MAX_PIXELS, require_curve_model
from ..inference.onnx_backend import OnnxModel, is_onnx_path
from ..models import EnhancementModel, create_model, list_models
from ..models.checkpoint import read_config
from .console import err

LoadedModel = EnhancementModel | OnnxModel


def model_for_weights(name: str | None, weights: str | None, default: str) -> tuple[str, str | None]:
    """The model a command runs and the weights to load: ``--model`` as given; without it, the
    architecture that the ``--weights`` checkpoint names (so ``--weights weights/pie-lol`` runs a
    ``pie``), else ``default``.

    When the architecture had to be read, ``--weights`` has been resolved to its local folder (a
    bundled name or ``hf-hub:`` reference found once), and that folder is returned as the weights,
    so loading does not look it up again; otherwise ``weights`` comes back as given.

    Raises:
        WeightsNotFoundError, CheckpointError: ``--weights`` names no readable checkpoint.
    """
    if name is not None:
        return name, weights
    if weights is None:
        return default, None
    folder = resolve_weights(default, weights)  # a folder, a bundled name or hf-hub:, as create_model finds it
    return str(read_config(folder)["architecture"]), str(folder)


def refuse_weights_as_model(name: str, weights: str | None) -> None:
    """``--model`` given bundled weights, an ``hf-hub:`` reference or a checkpoint folder, without
    ``--weights``: say to pass it as ``--weights`` (which reads the model from the checkpoint).

    Raises:
        UsageError: ``name`` names weights, not a model.
    """
    if weights is not None or is_onnx_path(name) or name in list_models(include_test=True):
        return
    if name in bundled_weights_names() or is_hub_ref(name) or (Path(name).expanduser() / "config.json").is_file():
        raise UsageError(f"--model {name} names weights, not a model",
                         hint=f"pass them as --weights {name} (the model is read from the checkpoint)")


def load_model(name: str, weights: str | None, no_pretrained: bool, curve_scale: int | str | None = None) -> LoadedModel:
    """``create_model`` with the CLI's flags; prints nothing (see :func:`describe_weights`).

    ``name`` ending in ``.onnx`` loads that exported file, run by onnxruntime; its weights are
    inside it, so ``--weights``, ``--no-pretrained`` and ``--curve-scale`` are usage errors then.
    ``curve_scale`` (``--curve-scale``) applies to curve models only (``supports_curve_scale``);
    ``"auto"`` is checked here and applied per photo by the enhancer.

    Raises:
        UsageError: a flag that does not apply to the model; ``name`` names weights, not a model.
    """
    if is_onnx_path(name):
        flags = (("--weights", weights is not None), ("--no-pretrained", no_pretrained))
        for flag, given in flags:
            if given:
                raise UsageError(
                    f"{flag} does not apply to {name}: an ONNX file carries its own weights",
                    hint=f"drop {flag}, or export the weights you want: lowlight export --model ARCH --weights PATH",
                )
        if curve_scale is not None:
            raise UsageError(
                f"--curve-scale does not apply to {name}: an ONNX graph runs its curves at the scale it was exported with",
                hint="drop --curve-scale, or export one at the scale you want: "
                     "lowlight export --model ARCH --curve-scale N -o FILE.onnx",
            )
        import torch

        return OnnxModel(name, threads=torch.get_num_threads())  # the CLI's count (cli.cores may have lowered it)
    refuse_weights_as_model(name, weights)
    model = create_model(name, pretrained=not no_pretrained, weights=weights)
    if curve_scale is not None:
        require_curve_model(model)
        if curve_scale != "auto":
            model.set_curve_scale(int(curve_scale))
    return model


def describe_weights(name: str, model: LoadedModel, *, explicit: bool = False) -> str:
    """What ``name`` runs, in words: the weights folder actually loaded (and its architecture when
    it is not ``name``'s own), an ONNX file's architecture, no weights, or random weights.

    ``explicit``: the weights were named with ``--weights`` (not picked by default)."""
    if isinstance(model, OnnxModel):
        return f"{model.info.name} exported to ONNX ({model.precision})"
    if not model.info.needs_weights:
        return "no weights needed"
    folder = getattr(model, "checkpoint_dir", None)
    if folder is None:
        return "random weights (--no-pretrained)"
    folder = Path(folder)
    bundled = bundled_weights_dir()
    text = f"bundled weights {folder.name}" if bundled is not None and folder.parent.resolve() == bundled.resolve() else f"weights {folder}"
    if model.info.name != name:
        family = "" if explicit else ", the best trained weights of its family"
        text += f" ({model.info.name} architecture{family})"
    return text


def run_precision(model: LoadedModel, enhancer: Enhancer) -> str:
    """The precision ``model`` runs at: the enhancer's, or onnxruntime's for an exported file."""
    return f"onnxruntime {model.precision}" if isinstance(model, OnnxModel) else enhancer.precision


def describe_run(name: str, model: LoadedModel, enhancer: Enhancer, *, explicit: bool = False) -> str:
    """``NAME with WEIGHTS on DEVICE (PRECISION, TILING)``: what a run of ``enhancer`` uses."""
    tile_text = "whole images" if enhancer.tile == 0 else f"tiles of {enhancer.tile} px"
    if 0 < enhancer.full_resolution_tile() < enhancer.tile:
        tile_text += (f", {enhancer.full_resolution_tile()} px where the curves run at full resolution"
                      f" above {enhancer.whole_photo_pixels() / 1e6:.1f} MP")
    precision = run_precision(model, enhancer)
    compiled = ", compiled" if enhancer.config.compile else ""
    scale = getattr(model, "curve_scale", 1)
    if enhancer.config.curve_scale == "auto":
        own = int(getattr(model, "built_curve_scale", 1))
        at = f"at 1/{own} resolution, coarser" if own > 1 else "at reduced resolution"
        compiled += f", curves {at} above {AUTO_CURVE_MAX_PIXELS / 1e6:g} MP"
    elif scale > 1:
        compiled += f", curves at 1/{scale} resolution"
    exported = getattr(model, "exported_curve_scale", None)  # an ONNX curve model: fixed in its graph
    if exported is not None:
        compiled += f", curves at {'full' if exported == 1 else f'1/{exported}'} resolution as exported"
    if enhancer.config.colour == "input":
        compiled += ", the input's colour"
    if enhancer.config.blacks == "keep":
        compiled += ", blacks kept"
    weights = describe_weights(name, model, explicit=explicit)
    return f"{name} with {weights} on {enhancer.device} ({precision}, {tile_text}{compiled})"


def announce(name: str, model: LoadedModel, first_line: str) -> None:
    """Print ``first_line`` (naming the weights, see :func:`describe_weights`), then what the user
    should know about the model: random weights, an ONNX model that runs whole images only."""
    err.print(escape(first_line))
    if isinstance(model, OnnxModel):
        if model.weights_source == "in-memory":
            err.print(f"[yellow]warning:[/] {escape(model.path.name)} was exported from weights not loaded from a checkpoint "
                      "(e.g. --no-pretrained random weights): its output may mean nothing")
        if model.whole_image_context:
            err.print(f"[yellow]note:[/] {model.info.name} uses statistics of the whole photo, which its ONNX graph "
                      "cannot share between tiles: it runs whole images")
    elif model.info.needs_weights and getattr(model, "checkpoint_dir", None) is None:
        err.print(
            f"[yellow]warning:[/] {name} runs with random weights (--no-pretrained): "
            "its output means nothing; use it for tests and benchmarks only"
        )
