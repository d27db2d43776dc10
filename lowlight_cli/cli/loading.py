"""Build the model a command asked for, warning when its output cannot mean anything."""

from __future__ import annotations

from ..models import EnhancementModel, create_model
from .console import err


def load_model(name: str, weights: str | None, no_pretrained: bool) -> EnhancementModel:
    """``create_model`` with the CLI's flags; warns on stderr for a random initialisation."""
    model = create_model(name, pretrained=not no_pretrained, weights=weights)
    if no_pretrained and model.info.needs_weights:
        err.print(
            f"[yellow]warning:[/] {name} runs with random weights (--no-pretrained): "
            "its output means nothing; use it for tests and benchmarks only"
        )
    return model
