"""DCE-Net (SCL-LLE, PIE): size, forward contract, tile-exactness, reduced-resolution curves, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lowlight_cli.errors import ConfigError, WeightsNotFoundError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.models import MODELS, create_model, list_models, load_checkpoint, model_info, save_checkpoint
from lowlight_cli.models.dce import DCENet, apply_curves

from .photos import dark_photo


def lively(name: str = "scl-lle", seed: int = 0, **overrides: object) -> DCENet:
    """A random DCE-Net whose curves brighten and vary across the image (He-initialised weights x1.5,
    last bias -1). The authors' N(0, 0.02) initialisation gives curves near 0, which would let
    tiling or resolution errors hide."""
    model = create_model(name, pretrained=False, **overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for conv in model.convolutions():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator) * 1.5 * (2 / conv.weight[0].numel()) ** 0.5)
            conv.bias.zero_()
        model.conv7.bias.fill_(-1.0)
    return model


def as_batch(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None]


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean()))


def smooth_image(height: int, width: int) -> torch.Tensor:
    """A dim, slowly varying colour image (no detail finer than ~1/4 of its side)."""
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    channels = [0.08 + 0.06 * torch.sin(3 * x + phase) * torch.cos(2 * y - phase) + 0.05 * x * y for phase in (0.0, 0.7, 1.4)]
    return torch.stack(channels)[None]


def test_paper_sizes_have_the_published_parameter_count_and_their_own_papers():
    assert {"scl-lle", "pie"} <= set(list_models()) and "dce-tiny" in list_models(include_test=True)
    assert "dce-tiny" not in list_models()
    for name in ("scl-lle", "pie"):
        model = create_model(name, pretrained=False)
        assert sum(p.numel() for p in model.parameters()) == 79_416
        assert [tuple(c.weight.shape) for c in model.convolutions()] == [
            (32, 3, 3, 3), (32, 32, 3, 3), (32, 32, 3, 3), (32, 32, 3, 3), (32, 64, 3, 3), (32, 64, 3, 3), (24, 64, 3, 3)
        ]
        info = model_info(name)
        assert info.family == "dce" and info.tile_exact and info.receptive_radius == 7 and info.bundled_weights == f"{name}-lol"
    assert "Semantically Contrastive" in model_info("scl-lle").paper and "Physics-inspired" in model_info("pie").paper
    assert sum(p.numel() for p in create_model("dce-tiny", pretrained=False).parameters()) < 10_000


def test_forward_train_contract_and_forward_is_the_clamped_output():
    model = lively().train()
    x = as_batch(dark_photo(40, 56))
    out = model.forward_train(x)
    assert set(out) == {"output", "stages", "curves"} and out["stages"] == []
    assert out["curves"].shape == (1, 24, 40, 56) and out["curves"].abs().max() <= 1
    assert out["output"].shape == x.shape and out["output"].requires_grad and out["curves"].requires_grad
    assert out["output"].mean() > 2 * x.mean()  # these curves brighten
    with torch.no_grad():
        assert torch.equal(model.eval()(x), out["output"].detach().clamp(0, 1))


def test_curves_are_applied_in_order_as_published():
    x = torch.rand(2, 3, 5, 7)
    curves = torch.rand(2, 24, 5, 7) * 2 - 1
    expected = x.clone()
    for i in range(8):
        r = curves[:, 3 * i : 3 * i + 3]
        expected = expected + r * (expected.pow(2) - expected)
    assert torch.allclose(apply_curves(x, curves), expected, atol=1e-7)
    # any curve in [-1, 1] keeps [0, 1] in [0, 1]
    extreme = apply_curves(x, torch.sign(curves))
    assert extreme.min() >= 0 and extreme.max() <= 1
    with pytest.raises(ValueError, match="do not fit"):
        apply_curves(x, curves[:, :23])


@pytest.mark.parametrize(("tile", "overlap", "batch_size"), [(64, 16, 3), (128, 32, 2), (96, 15, 4)])
def test_tiled_inference_equals_whole_image(tile, overlap, batch_size):
    model = lively()
    image = dark_photo(150, 230)
    whole = Enhancer(model, InferenceConfig(device="cpu", precision="fp32", tile=0)).enhance(image)
    tiled = Enhancer(model, InferenceConfig(device="cpu", precision="fp32", tile=tile, overlap=overlap, batch_size=batch_size)).enhance(image)
    assert np.abs(whole - image).mean() > 0.05  # the model really does something
    assert np.abs(tiled - whole).max() <= 1e-5


def test_too_little_overlap_is_not_exact_which_is_why_the_radius_is_declared():
    model = lively()
    image = dark_photo(150, 230)
    whole = Enhancer(model, InferenceConfig(device="cpu", precision="fp32", tile=0)).enhance(image)
    abutting = Enhancer(model, InferenceConfig(device="cpu", precision="fp32", tile=64, overlap=0)).enhance(image)
    assert np.abs(abutting - whole).max() > 1e-3


def test_curve_scale_one_is_the_plain_model():
    plain = lively()
    scaled = lively(curve_scale=1)
    x = as_batch(dark_photo(48, 64))
    with torch.no_grad():
        assert torch.equal(plain(x), scaled(x))
    assert scaled.info.tile_exact and scaled.config["curve_scale"] == 1


@pytest.mark.parametrize(("scale", "min_psnr"), [(2, 40.0), (4, 33.0), (8, 27.0)])
def test_reduced_resolution_curves_stay_close_on_smooth_images(scale, min_psnr):
    full = lively()
    fast = lively(curve_scale=scale)
    assert not fast.info.tile_exact and fast.info.receptive_radius == 0 and fast.config["curve_scale"] == scale
    x = smooth_image(202, 262)  # not a multiple of the scale
    with torch.no_grad():
        reference, quick = full(x), fast(x)
        curves = fast.forward_train(x)["curves"]
    assert quick.shape == x.shape and curves.shape == (1, 24, 202, 262) and curves.abs().max() <= 1
    assert (reference - x).abs().mean() > 0.05
    # away from the border: within 7 px of it zero padding shapes the curves, and at 1/scale
    # resolution that band is scale times wider
    band = 8 * scale
    assert psnr(quick[..., band:-band, band:-band], reference[..., band:-band, band:-band]) > min_psnr
    assert psnr(quick, reference) < psnr(quick[..., band:-band, band:-band], reference[..., band:-band, band:-band])
    # on a noisy photo the full-resolution curves carry detail the reduced ones miss
    photo = as_batch(dark_photo(202, 262))
    with torch.no_grad():
        assert psnr(fast(photo), full(photo)) < psnr(quick, reference)


def test_curve_scale_changes_the_running_model_and_its_checkpoint(tmp_path):
    model = lively()
    x = as_batch(dark_photo(64, 64))
    with torch.no_grad():
        before = model(x)
        model.set_curve_scale(4)
        after = model(x)
    assert not torch.equal(before, after) and not model.info.tile_exact
    folder = save_checkpoint(model, tmp_path / "fast", architecture="scl-lle", kwargs=model.config)
    loaded = load_checkpoint(folder)
    assert loaded.curve_scale == 4 and not loaded.info.tile_exact
    with torch.no_grad():
        assert torch.equal(loaded(x), after)
        assert torch.equal(loaded.set_curve_scale(1)(x), before)
    for bad in (0, 1.5, -2):
        with pytest.raises(ConfigError, match="curve_scale"):
            model.set_curve_scale(bad)


def test_random_initialisation_is_seeded_and_small():
    a, b = create_model("pie", pretrained=False), create_model("pie", pretrained=False)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert 0.015 < float(a.conv3.weight.detach().std()) < 0.025  # the authors' N(0, 0.02)


def test_missing_trained_weights_say_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LOWLIGHT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(WeightsNotFoundError, match="no trained weights for model 'dce-tiny'") as caught:
        create_model("dce-tiny")
    assert "--weights" in caught.value.hint
    assert "lowlight import" in MODELS.get("scl-lle").info.description
