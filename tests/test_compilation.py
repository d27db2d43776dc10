"""``--compile`` for inference: same output as eager, compiled only when asked, clear refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.data.pairs import synthetic_pairs
from lowlight_cli.errors import ConfigError, UsageError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.inference.compilation import CXX_NAMES
from lowlight_cli.models import create_model

runner = CliRunner()
HAS_CXX = any(shutil.which(name) for name in CXX_NAMES)


def _photo() -> np.ndarray:
    return synthetic_pairs(1, size=(160, 224), seed=5)[0].low.astype(np.float32) / 255.0


@pytest.mark.skipif(not HAS_CXX, reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_tiled_inference_matches_eager_with_the_whole_photo_context():
    from torch._dynamo.utils import counters

    model = create_model("crnet-s")  # bundled weights, with the global context handed to every tile
    config = dict(device="cpu", tile=64, overlap=16, batch_size=4)
    photo = _photo()
    eager = Enhancer(model, InferenceConfig(**config)).enhance(photo)
    counters.clear()
    compiled_enhancer = Enhancer(model, InferenceConfig(**config, compile=True))
    compiled = compiled_enhancer.enhance(photo)
    assert counters["stats"]["unique_graphs"] > 0  # it really compiled
    assert np.abs(compiled - eager).max() < 1e-4
    assert set(model.state_dict()) == set(create_model("crnet-s").state_dict())  # the model stays plain


def test_compile_refuses_models_without_weights_and_missing_compilers(monkeypatch):
    with pytest.raises(UsageError, match=r"compile \(--compile\) applies to trained PyTorch models"):
        Enhancer(create_model("gamma"), InferenceConfig(device="cpu", compile=True))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="needs a C\\+\\+ compiler"):
        Enhancer(create_model("crnet-tiny", pretrained=False), InferenceConfig(device="cpu", compile=True))


def test_enhance_cli_without_a_cpp_compiler_says_so_and_writes_nothing(tmp_path, monkeypatch):
    import cv2

    photo = tmp_path / "dark.png"
    cv2.imwrite(str(photo), (_photo()[..., ::-1] * 255).round().astype(np.uint8))
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    result = runner.invoke(app, ["enhance", str(photo), "--model", "crnet-s", "--device", "cpu", "--compile",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 2 and "needs a C++ compiler" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()

