"""``--curve-scale N``: curve models (DCE-Net) estimate their curves at 1/N resolution and apply them at
full resolution, from ``enhance``, ``evaluate`` and ``export``; other models and ONNX files refuse it."""

from __future__ import annotations

import numpy as np
import pytest
import onnxruntime as ort
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.export import export_onnx
from lowlight_cli.io import read_image
from lowlight_cli.models import create_model, save_checkpoint

from .photos import dark_photo, save_photo

runner = CliRunner()


def test_partial_blocks_are_averaged_over_the_pixels_they_hold():
    model = create_model("scl-lle", pretrained=False).set_curve_scale(4)
    x = torch.rand(1, 3, 10, 7)
    seen = []
    model.curve_maps = lambda small: seen.append(small) or torch.zeros(1, 24, *small.shape[-2:])  # type: ignore[method-assign]
    model.estimate_curves(x)
    small = seen[0]
    assert small.shape[-2:] == (3, 2)
    torch.testing.assert_close(small[..., 2, 1], x[..., 8:, 4:].mean(dim=(-2, -1)))
    torch.testing.assert_close(small[..., 0, 0], x[..., :4, :4].mean(dim=(-2, -1)))


def test_enhance_runs_reduced_resolution_curves_and_says_so(tmp_path):
    save_photo(tmp_path / "in" / "a.png", dark_photo(70, 90, seed=1))
    whole = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "full"), "--model", "scl-lle", "--no-pretrained"])
    fast = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "fast"), "--model", "scl-lle",
                               "--no-pretrained", "--curve-scale", "4"])
    assert whole.exit_code == 0 and fast.exit_code == 0, fast.output
    assert "curves at 1/4 resolution" in fast.output and "curves at" not in whole.output
    a, b = read_image(tmp_path / "full" / "a.png").rgb, read_image(tmp_path / "fast" / "a.png").rgb
    assert a.shape == b.shape and not np.array_equal(a, b)


def test_models_without_curves_and_onnx_files_refuse_it(tmp_path):
    save_photo(tmp_path / "in" / "a.png", dark_photo(40, 40, seed=2))
    result = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", "crnet-tiny",
                                 "--no-pretrained", "--curve-scale", "2"])
    assert result.exit_code == 2 and "(--curve-scale) applies to curve models" in result.output
    onnx_path = tmp_path / "m.onnx"
    export_onnx(create_model("dce-tiny", pretrained=False), onnx_path)
    result = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--model", str(onnx_path),
                                 "--curve-scale", "2"])
    assert result.exit_code == 2 and "--curve-scale does not apply" in result.output
    result = runner.invoke(app, ["enhance", str(tmp_path / "in"), "--model", "scl-lle", "--curve-scale", "0"])
    assert result.exit_code == 2


def test_export_keeps_the_scale_and_onnxruntime_agrees_at_sizes_it_does_not_divide(tmp_path):
    torch.manual_seed(0)
    model = create_model("dce-tiny", pretrained=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    target = tmp_path / "fast.onnx"
    weights = tmp_path / "w"
    save_checkpoint(model, weights, architecture="dce-tiny", kwargs=model.config)
    result = runner.invoke(app, ["export", "--model", "dce-tiny", "--weights", str(weights), "--curve-scale", "3", "-o", str(target)])
    assert result.exit_code == 0, result.output
    x = torch.rand(1, 3, 37, 53)
    with torch.no_grad():
        expected = model.set_curve_scale(3)(x).numpy()
    session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4


def test_curve_scale_is_bounded(tmp_path):
    """A scale of 100000 once asked CRNet's padding for terabytes; 64 is the coarsest accepted."""
    from lowlight_cli.errors import ConfigError
    from lowlight_cli.models import create_model

    for scale in ("65", "100000"):
        result = runner.invoke(app, ["enhance", str(tmp_path), "--model", "crnet-curve", "--curve-scale", scale])
        text = " ".join(result.output.replace("│", " ").split())  # Typer's error box wraps
        assert result.exit_code == 2 and "an integer from 1 to 64" in text
    with pytest.raises(ConfigError, match="from 1 to 64"):
        create_model("crnet-curve", pretrained=False).set_curve_scale(65)
    assert create_model("pie", pretrained=False).set_curve_scale(64).curve_scale == 64
