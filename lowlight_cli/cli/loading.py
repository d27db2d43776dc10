"""Build the model a command asked for, warning when its output cannot mean anything."""

from __future__ import annotations

from ..errors import UsageError
from ..inference.onnx_backend import OnnxModel, is_onnx_path
from ..models import EnhancementModel, create_model
from .console import err


def load_model(name: str, weights: str | None, no_pretrained: bool) -> EnhancementModel | OnnxModel:
    """``create_model`` with the CLI's flags; warns on stderr for a random initialisation.

    ``name`` ending in ``.onnx`` loads that exported file, run by onnxruntime; its weights are
    inside it, so ``--weights`` and ``--no-pretrained`` are usage errors then.
    """
    if is_onnx_path(name):
        for flag, given in (("--weights", weights is not None), ("--no-pretrained", no_pretrained)):
            if given:
                raise UsageError(
                    f"{flag} does not apply to {name}: an ONNX file carries its own weights",
                    hint=f"drop {flag}, or export the weights you want: lowlight export --model ARCH --weights PATH",
                )
        model = OnnxModel(name)
        err.print(f"{name}: {model.info.name} exported to ONNX ({model.precision}), run by onnxruntime")
        return model
    model = create_model(name, pretrained=not no_pretrained, weights=weights)
    folder = getattr(model, "checkpoint_dir", None)
    if folder is not None and model.info.name != name:
        err.print(f"{name}: weights {folder} ({model.info.name} architecture)"
                  + (", the best trained weights of its family" if weights is None else ""))
    if no_pretrained and model.info.needs_weights:
        err.print(
            f"[yellow]warning:[/] {name} runs with random weights (--no-pretrained): "
            "its output means nothing; use it for tests and benchmarks only"
        )
    return model
