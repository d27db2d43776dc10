"""The default photo model leaves no frame: the outermost rows and columns are as bright as the next.

Issue 15: every output of the earlier default (crnet-s-lol) had a dark 1-2 pixel frame, 15 to 20
gray levels below its neighbours, whole and tiled: the zero padding of its convolutions at the
border of the 1/4-resolution body. The input here is smooth (no edge near the border), so any
step between the outer two rows or columns and the next two comes from the model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.models import MODELS, create_model

DEFAULT = "crnet-curve-dn"
MAX_STEP = 2.0 / 255.0  # two gray levels


def smooth_dark_photo(height: int = 200, width: int = 264) -> np.ndarray:
    """A dark, smooth, coloured image ``(H, W, 3)`` in [0, 1] with mild noise."""
    y, x = np.mgrid[0:height, 0:width] / 50.0
    base = 0.08 + 0.04 * np.sin(x + 0.5) * np.cos(y)
    rgb = np.stack([base, base * 0.8 + 0.01, base * 0.6 + 0.02], axis=-1)
    rgb += np.random.default_rng(0).normal(0, 0.004, rgb.shape)
    return np.clip(rgb, 0, 1).astype(np.float32)


def border_steps(out: np.ndarray) -> list[float]:
    """Mean gray of rows/cols 2-3 minus that of rows/cols 0-1, for each of the four sides."""
    gray = out.mean(axis=-1)
    return [
        gray[2:4].mean() - gray[:2].mean(),
        gray[-4:-2].mean() - gray[-2:].mean(),
        gray[:, 2:4].mean() - gray[:, :2].mean(),
        gray[:, -4:-2].mean() - gray[:, -2:].mean(),
    ]


def _models() -> list:
    params = [pytest.param("random", id=f"random-weights-{DEFAULT}"), pytest.param("random-body", id="random-weights-crnet-curve")]
    folder = MODELS.get(DEFAULT).info.bundled_weights
    params.append(pytest.param("trained", id=f"trained-{folder}"))
    return params


@pytest.mark.parametrize("weights", _models())
@pytest.mark.parametrize("tile", [0, 128], ids=["whole", "tiled"])
def test_default_model_output_has_no_dark_frame(weights, tile):
    torch.manual_seed(0)
    if weights.startswith("random"):
        # the default, and crnet-curve: the same model without its refinement stage
        model = create_model(DEFAULT if weights == "random" else "crnet-curve", pretrained=False)
        for head in model.heads:  # a random head barely moves the image: make the body matter
            torch.nn.init.normal_(head.weight, std=0.05)
        if model.refine is not None:  # and the refinement stage (zero-initialised) too
            torch.nn.init.normal_(model.refine.out.weight, std=0.05)
    else:
        model = create_model(DEFAULT)
    photo = smooth_dark_photo()
    expected = border_steps(photo)
    out = Enhancer(model, InferenceConfig(device="cpu", tile=tile, overlap=32)).enhance(photo)
    assert out.mean() > photo.mean()  # it did enhance
    gain = out.mean() / photo.mean()
    for step, step_in in zip(border_steps(out), expected):
        assert abs(step - gain * step_in) < MAX_STEP, (border_steps(out), expected)


def test_the_check_catches_a_frame():
    photo = smooth_dark_photo()
    framed = photo.copy()
    framed[:1] *= 0.5
    assert max(abs(s) for s in border_steps(framed)) > MAX_STEP
