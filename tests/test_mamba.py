"""Semi-LLIE's Mamba backbone: the authors' size, registered sizes, forward contract, SS2D against a
sequential reference, tiled inference, checkpoints, export, missing weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.errors import ConfigError, WeightsNotFoundError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.models import MODELS, create_model, list_models, load_checkpoint, model_info, save_checkpoint
from lowlight_cli.models.complexity import measure_complexity
from lowlight_cli.models.mamba import SS2D, SemiLLIEConfig, SemiLLIENet

from .photos import dark_photo
from .test_selective_scan import reference_scan, scan_orders


def lively(name: str = "semi-llie-tiny", seed: int = 0) -> SemiLLIENet:
    """A random model with every parameter nudged, so the parts that start inert (LayerNorm
    biases, unit skip scales) take part too."""
    model = create_model(name, pretrained=False)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_authors_network_has_their_size_and_layers():
    """610,530 trainable parameters: the authors' script prints 610,548 because it also counts the
    two fixed 3x3 gradient kernels (18 values) of its gradient-map output, which belong to the
    gradient loss here."""
    model = create_model("semi-llie", pretrained=False)
    assert sum(p.numel() for p in model.parameters()) == 610_530
    assert [tuple(c.weight.shape) for c in (model.estimator.conv1, model.estimator.depth_conv, model.estimator.conv2)] == [
        (64, 4, 1, 1), (64, 16, 5, 5), (3, 64, 1, 1)]
    assert tuple(model.stem.weight.shape) == (64, 6, 3, 3) and tuple(model.tail.weight.shape) == (3, 64, 3, 3)
    assert [len(g.blocks) for g in model.groups] == [2, 2]
    ss2d = model.groups[0].blocks[0].ss2d
    shapes = {name: tuple(p.shape) for name, p in ss2d.named_parameters()}
    assert shapes["in_proj.weight"] == (256, 64) and shapes["fuse.weight"] == (128, 256, 1, 1)
    assert shapes["dwconv3.weight"] == (128, 1, 3, 3) and shapes["dwconv5.weight"] == (128, 1, 5, 5)
    assert shapes["x_proj_weight"] == (4, 4 + 2 * 16, 128) and shapes["dt_proj_weight"] == (4, 128, 4)
    assert shapes["A_log"] == (512, 16) and shapes["D"] == (512,) and shapes["out_proj.weight"] == (64, 128)
    # Mamba's initialisation: A = -(1..N), D = 1, steps softplus(bias) in [0.001, 0.1]
    assert torch.allclose(-torch.exp(ss2d.A_log[7]), -torch.arange(1.0, 17.0))
    steps = torch.nn.functional.softplus(ss2d.dt_proj_bias)
    assert torch.all(ss2d.D == 1) and 0.001 <= steps.min() and steps.max() <= 0.1 + 1e-6


def test_registered_sizes_declare_a_global_model():
    assert {"semi-llie", "semi-llie-s"} <= set(list_models()) and "semi-llie-tiny" not in list_models()
    for name in ("semi-llie", "semi-llie-s", "semi-llie-tiny"):
        info = model_info(name)
        assert info.family == "semi-llie" and not info.tile_exact and info.receptive_radius == 0
        assert info.exportable and "2409.16604" in info.paper
        assert info.default_tile % info.input_multiple == 0
    assert model_info("semi-llie").bundled_weights == model_info("semi-llie-tiny").bundled_weights == ""
    assert model_info("semi-llie-s").bundled_weights == "semi-llie-s-lol-sup10"  # the better of the two trained
    assert model_info("semi-llie-s").input_multiple == 4 and model_info("semi-llie").input_multiple == 1
    tiny = create_model("semi-llie-tiny", pretrained=False)
    assert sum(p.numel() for p in tiny.parameters()) < 20_000


def test_cpu_variant_is_at_least_8x_cheaper():
    full = measure_complexity(create_model("semi-llie", pretrained=False), size=32)
    small = measure_complexity(create_model("semi-llie-s", pretrained=False), size=32)
    assert full.macs_per_pixel / small.macs_per_pixel >= 8


def test_forward_train_contract_and_clamped_eval_forward():
    model = lively().train()
    x = torch.from_numpy(dark_photo(24, 40)).permute(2, 0, 1)[None]
    out = model.forward_train(x)
    assert set(out) == {"output", "stages"} and out["stages"] == []
    assert out["output"].shape == x.shape and out["output"].requires_grad
    out["output"].mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model.forward_train(x)["output"].clamp(0, 1))


def test_stochastic_depth_acts_in_training_only():
    model = lively("semi-llie-tiny").train()
    model.groups[0].blocks[0].drop_rate = 0.5
    x = torch.rand(4, 3, 16, 16)
    torch.manual_seed(0)
    with torch.no_grad():
        first, second = model.forward_train(x)["output"], model.forward_train(x)["output"]
        assert not torch.equal(first, second)  # some samples lost the SS2D branch in one pass only
        model.eval()
        assert torch.equal(model(x), model(x))


def test_downscaled_variant_keeps_shape_and_needs_its_multiple():
    model = create_model("semi-llie-s", pretrained=False)
    x = torch.rand(1, 3, 32, 44)
    with torch.no_grad():
        assert model(x).shape == x.shape
    with pytest.raises(ValueError, match="semi-llie-s takes images whose sides are multiples of 4, got 30x44"):
        model(torch.rand(1, 3, 30, 44))


def test_ss2d_scan_matches_per_direction_sequential_reference():
    """SS2D's core (projections per direction, A = -exp(A_log), step bias, skip D, merge) in
    float64 against the sequential scan on each direction's pixel order."""
    cfg = SemiLLIEConfig(width=8, d_state=3, expand=1)
    torch.manual_seed(2)
    ss2d = SS2D(cfg).double()
    height, width = 4, 6
    x = torch.randn(1, cfg.inner, height, width, dtype=torch.float64)
    got = ss2d.scan(x)
    expected = torch.zeros_like(got)
    for k, order in enumerate(scan_orders(height, width)):
        sequence = torch.stack([x[:, :, i, j] for i, j in order], dim=-1)  # (1, E, L)
        params = torch.einsum("bel,ce->bcl", sequence, ss2d.x_proj_weight[k])
        ranks, B, C = params.split([cfg.rank, cfg.d_state, cfg.d_state], dim=1)
        steps = torch.einsum("brl,er->bel", ranks, ss2d.dt_proj_weight[k])
        part = slice(k * cfg.inner, (k + 1) * cfg.inner)
        y = reference_scan(sequence, steps, -torch.exp(ss2d.A_log[part]), B, C, ss2d.D[part], ss2d.dt_proj_bias[k])
        for position, (i, j) in enumerate(order):
            expected[:, :, i, j] += y[:, :, position]
    assert torch.allclose(got, expected, atol=1e-10)


def test_tiled_inference_runs_and_stays_close_to_whole_image(record_property):
    """The scan is global, so tiles are not exact (tile_exact=False): a tile does not see the rest
    of the photo. No bound follows from the architecture (a trained model may carry context across
    the whole image); for these random weights the tiling error must be far (20 dB) below what the
    model changes in the image, and a photo that fits in one tile is exact."""
    model = lively()
    image = dark_photo(150, 230)
    whole = Enhancer(model, InferenceConfig(device="cpu", tile=0)).enhance(image)
    tiled = Enhancer(model, InferenceConfig(device="cpu", tile=64, overlap=16, batch_size=3)).enhance(image)
    assert tiled.shape == whole.shape == image.shape and np.isfinite(tiled).all()
    tiled_psnr, effect_psnr = psnr(tiled, whole), psnr(whole, image)
    record_property("tiled_vs_whole_psnr_db", round(tiled_psnr, 2))  # 50.0 dB when written; effect 18.2 dB
    assert tiled_psnr > effect_psnr + 20
    one_tile = Enhancer(model, InferenceConfig(device="cpu", tile=256, overlap=16)).enhance(image)
    assert np.array_equal(one_tile, whole)


def test_bf16_autocast_keeps_the_scan_in_float32():
    model = lively()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x)
    assert torch.isfinite(low).all() and (low.float() - reference).abs().max() < 0.05


def test_checkpoint_roundtrip_rebuilds_the_architecture(tmp_path):
    model = lively()
    folder = save_checkpoint(model, tmp_path / "ckpt", architecture="semi-llie-tiny", kwargs=model.config)
    assert json.loads((folder / "config.json").read_text())["kwargs"]["depths"] == [1]
    loaded = load_checkpoint(folder, expected_family="semi-llie")
    assert isinstance(loaded, SemiLLIENet) and loaded.cfg == model.cfg
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_bad_configurations_are_config_errors():
    for bad in ({"width": 30}, {"depths": ()}, {"depths": (2, 0)}, {"d_state": 0}, {"drop_path": 1.0}, {"downscale": 0}):
        with pytest.raises(ConfigError):
            create_model("semi-llie-tiny", pretrained=False, **bad)


def test_missing_trained_weights_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "cache"))
    for name in ("semi-llie",):
        with pytest.raises(WeightsNotFoundError, match=f"no trained weights for model '{name}'") as caught:
            create_model(name)
        assert "--weights" in caught.value.hint
        assert "no trained weights" in MODELS.get(name).info.description


def test_export_command_passes_its_parity_check(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "x.onnx"
    result = CliRunner().invoke(app, ["export", "--model", "semi-llie-tiny", "--no-pretrained", "--format", "onnx", "-o", str(path)])
    assert result.exit_code == 0, result.output
    assert path.is_file() and "parity" in result.output.lower()
