"""An ONNX model with a whole-photo context (CRNet ``global_context``) never runs tiled: its graph would
compute the context per tile and change the exposure tile by tile. It runs whole images instead, as
PyTorch does, or refuses an explicit ``--tile``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.export import export_onnx
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.inference.onnx_backend import OnnxModel
from lowlight_cli.io import read_image
from lowlight_cli.models import create_model

from .photos import dark_photo, save_photo

runner = CliRunner()


@pytest.fixture(scope="module")
def context_model() -> torch.nn.Module:
    model = create_model("crnet-tiny", pretrained=False, global_context=True, context_channels=8)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model


@pytest.fixture(scope="module")
def context_onnx(context_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "ctx.onnx"
    export_onnx(context_model, path)
    return path


def _props(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_metadata_records_the_whole_image_context(context_onnx, tmp_path):
    assert _props(context_onnx)["whole_image_context"] == "true"
    assert OnnxModel(context_onnx).whole_image_context
    plain = tmp_path / "plain.onnx"
    export_onnx(create_model("crnet-tiny", pretrained=False), plain)
    assert _props(plain)["whole_image_context"] == "false" and not OnnxModel(plain).whole_image_context


def test_tiles_are_refused_and_whole_images_agree_with_pytorch(context_model, context_onnx, tmp_path):
    photo = save_photo(tmp_path / "in" / "a.png", dark_photo(96, 128, seed=2))
    rgb = read_image(photo).rgb.astype(np.float32) / 255.0
    expected = Enhancer(context_model, InferenceConfig(device="cpu", tile=0)).enhance(rgb)

    out = tmp_path / "out"
    for command in (["enhance", str(photo), "-o", str(out)], ["evaluate", "--data", str(photo.parent), "--metrics", "niqe"]):
        result = runner.invoke(app, [*command, "--model", str(context_onnx), "--tile", "64", "--overlap", "16"])
        assert result.exit_code == 2, result.output
        assert "cannot be tiled" in result.output and "--tile" in result.output
    assert not out.exists()

    result = runner.invoke(app, ["enhance", str(photo), "--model", str(context_onnx), "-o", str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "whole images" in result.output
    written = read_image(out / "a.png").rgb.astype(np.int32)
    assert np.abs(written - np.round(expected * 255).astype(np.int32)).max() <= 1


def test_the_library_enhancer_refuses_tiles_and_runs_whole_images_too(context_model, context_onnx):
    from lowlight_cli.errors import UsageError

    model = OnnxModel(context_onnx)
    with pytest.raises(UsageError, match="cannot be tiled"):
        Enhancer(model, InferenceConfig(device="cpu", tile=64))
    rgb = dark_photo(96, 160, seed=4).astype(np.float32) / 255.0
    whole = Enhancer(model, InferenceConfig(device="cpu"))  # no tile asked: whole images, not the default tiles
    assert whole.tile == 0
    assert Enhancer(model, InferenceConfig(device="cpu", overlap=200)).tile == 0  # no tiles: any overlap
    expected = Enhancer(context_model, InferenceConfig(device="cpu", tile=0)).enhance(rgb)
    assert np.abs(whole.enhance(rgb) - expected).max() < 1e-4
