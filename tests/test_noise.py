"""The photo's noise level (Immerkaer's estimate in the cells of the unshuffled input) and the
noise-adaptive ``eps`` of the default model's guided filter (``chroma_noise``, ours)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lowlight_cli.errors import ConfigError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.models import create_model
from lowlight_cli.models.noise import IMMERKAER_SCALE, AmplifiedNoise, cell_noise_response, cell_noise_taps, noise_eps

MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
LUMA = np.array([0.299, 0.587, 0.114])


def _cell_estimate(rgb: torch.Tensor, cell: int = 8) -> float:
    """Immerkaer's sigma from the cells of ``rgb`` ``(1, 3, H, W)``, as the model takes it."""
    response = cell_noise_response(F.pixel_unshuffle(rgb, cell), cell_noise_taps(cell))
    return IMMERKAER_SCALE * float(response.mean())


def test_cell_taps_are_the_masks_response_inside_each_cell():
    rgb = torch.rand(1, 3, 16, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    luma = np.einsum("chw,c->hw", rgb[0].numpy(), LUMA)
    expected = np.zeros((2, 3))
    for cy in range(2):
        for cx in range(3):
            block = luma[8 * cy : 8 * cy + 8, 8 * cx : 8 * cx + 8]
            responses = [abs((MASK * block[i - 1 : i + 2, j - 1 : j + 2]).sum()) for i in range(1, 7) for j in range(1, 7)]
            expected[cy, cx] = np.mean(responses)
    got = cell_noise_response(F.pixel_unshuffle(rgb.float(), 8), cell_noise_taps(8))
    assert got.shape == (1, 1, 2, 3)
    assert np.allclose(got[0, 0].numpy(), expected, atol=1e-5)
    with pytest.raises(ValueError, match="no position"):
        cell_noise_taps(2)


def test_the_estimate_finds_white_noise_and_ignores_linear_shading():
    gen = torch.Generator().manual_seed(1)
    flat = torch.full((1, 3, 256, 256), 0.3)
    for sigma in (0.005, 0.02):
        noisy = flat + torch.randn(1, 1, 256, 256, generator=gen) * sigma  # the same noise in each channel: luma's is sigma
        assert _cell_estimate(noisy) == pytest.approx(sigma, rel=0.05)
    y, x = torch.meshgrid(torch.linspace(0, 1, 256), torch.linspace(0, 1, 256), indexing="ij")
    shading = (0.1 + 0.5 * x + 0.3 * y).expand(1, 3, 256, 256)
    assert _cell_estimate(shading) < 1e-5


def test_noise_eps_is_the_curves_slope_times_sigma_squared():
    gain = torch.tensor([1.0, 2.0, 8.0, 64.0]).reshape(1, 1, 1, 4)
    y = torch.tensor([0.0, 0.02, 0.1, 0.5]).reshape(1, 1, 4, 1)
    f = gain * y / (1 + (gain - 1) * y)  # (1, 1, 4, 4)
    h = 1e-4
    slope = (gain * (y + h) / (1 + (gain - 1) * (y + h)) - f) / h  # numerical derivative
    luma = f.expand(1, 1, 4, 4).contiguous()
    kept = luma.clone()
    brightening = (1 - 1 / gain).expand(1, 1, 4, 4).contiguous()
    gate = torch.ones(1, 1, 4, 4)
    sigma = torch.tensor([[0.01]])
    got = noise_eps(luma, brightening, gate, sigma, 4.0)
    assert torch.equal(luma, kept)  # the caller's luma is not written
    assert torch.allclose(got, 4.0 * (slope * 0.01) ** 2, rtol=2e-2, atol=1e-9)
    assert torch.allclose(got[..., 0], torch.full((1, 1, 4), 4.0 * 0.01**2))  # gain 1: slope 1 at every level
    # the differentiable form and the in-place one agree
    graph = noise_eps(luma.clone().requires_grad_(True), brightening, gate, sigma, 4.0)
    assert torch.allclose(graph.detach(), got)
    assert torch.equal(noise_eps(luma, brightening, torch.zeros_like(gate), sigma, 4.0), torch.zeros_like(gate))
    # at a coarser fitting resolution the brightening is area-averaged to the luma's grid
    noise = AmplifiedNoise(torch.full((1, 1, 8, 8), 0.875), sigma, 4.0)
    coarse = noise.variance(torch.zeros(1, 1, 4, 4), torch.ones(1, 1, 4, 4), scale=2)
    assert coarse.shape == (1, 1, 4, 4) and torch.allclose(coarse, torch.full_like(coarse, 4.0 * (8.0 * 0.01) ** 2))


def test_the_option_is_validated():
    with pytest.raises(ConfigError, match="chroma_noise needs"):
        create_model("crnet-curve", pretrained=False, chroma_noise=4.0)  # no guided filter to set
    with pytest.raises(ConfigError, match="chroma_noise needs"):
        create_model("crnet-curve", pretrained=False, chroma_radius=2, global_context=False, chroma_noise=4.0)
    for bad in (-1.0, float("nan"), True, "4"):
        with pytest.raises(ConfigError, match="chroma_noise must be"):
            create_model("crnet-curve-dn", pretrained=False, chroma_radius=2, chroma_noise=bad)


def _brightening_pair(strength: float) -> tuple[torch.nn.Module, torch.nn.Module]:
    """``crnet-curve-dn`` with and without ``chroma_noise``, same weights, a gain of 8 everywhere."""
    torch.manual_seed(0)
    plain = create_model("crnet-curve-dn", pretrained=False, chroma_radius=2, chroma_luma=True).eval()
    with torch.no_grad():
        plain.heads[-1].weight.zero_()
        plain.heads[-1].bias.zero_()  # no correction; gain logits 0: g = 64 ** 0.5 = 8
    adaptive = create_model("crnet-curve-dn", pretrained=False, chroma_radius=2, chroma_luma=True,
                            chroma_noise=strength).eval()
    adaptive.load_state_dict(plain.state_dict())  # no weights of its own (the taps are not saved)
    assert set(adaptive.state_dict()) == set(plain.state_dict())
    return plain, adaptive


def test_noisy_flat_areas_are_smoothed_more_and_unbrightened_photos_pass():
    plain, adaptive = _brightening_pair(4.0)
    gen = torch.Generator().manual_seed(2)
    x = (0.04 + torch.randn(1, 1, 96, 96, generator=gen) * 0.004).clamp(0, 1).expand(1, 3, 96, 96).contiguous()
    with torch.no_grad():
        a, b = plain(x), adaptive(x)
    inner = (..., slice(8, -8), slice(8, -8))
    assert b[inner].std() < 0.7 * a[inner].std()  # the amplified noise is averaged
    assert abs(float(b[inner].mean() - a[inner].mean())) < 2e-3  # the level is not
    context = adaptive.image_context(x, band=16)
    assert context.shape == (1, adaptive.cfg.context_channels + 1)
    assert IMMERKAER_SCALE * float(context[0, -1]) == pytest.approx(0.004, rel=0.1)
    # tiles get the whole photo's noise level through the context: tiled = whole, as without the option
    whole = Enhancer(adaptive, InferenceConfig(device="cpu", tile=0)).enhance(x[0].permute(1, 2, 0).numpy())
    tiled = Enhancer(adaptive, InferenceConfig(device="cpu", tile=64, overlap=16)).enhance(x[0].permute(1, 2, 0).numpy())
    reference = Enhancer(plain, InferenceConfig(device="cpu", tile=64, overlap=16)).enhance(x[0].permute(1, 2, 0).numpy())
    plain_whole = Enhancer(plain, InferenceConfig(device="cpu", tile=0)).enhance(x[0].permute(1, 2, 0).numpy())
    assert np.abs(whole - tiled).max() < 1e-3 and np.abs(plain_whole - reference).max() < 1e-3  # under 1/4 gray level
    with torch.no_grad():  # band by band: the whole photo's mean
        full = adaptive._context_features(adaptive._stem_input(x)).mean(dim=(-2, -1))
    assert torch.allclose(context, full, rtol=1e-5, atol=1e-7)
    with torch.no_grad():  # a gain of 1 everywhere: nothing brightened, nothing smoothed
        for model in (plain, adaptive):
            model.heads[-1].bias[-3:].fill_(-50.0)
        assert torch.equal(plain(x), adaptive(x))


def test_reduced_resolution_fitting_takes_the_noise_too():
    plain, adaptive = _brightening_pair(4.0)
    gen = torch.Generator().manual_seed(3)
    x = (0.04 + torch.randn(1, 1, 128, 128, generator=gen) * 0.004).clamp(0, 1).expand(1, 3, 128, 128).contiguous()
    for model in (plain, adaptive):
        model.set_curve_scale(2)
    with torch.no_grad():
        a, b = plain(x), adaptive(x)
    inner = (..., slice(8, -8), slice(8, -8))
    assert b[inner].std() < 0.8 * a[inner].std()
    assert math.isfinite(float(b.sum()))


def test_onnx_export_carries_the_noise_level(tmp_path):
    pytest.importorskip("onnxruntime")
    from lowlight_cli.export import export_onnx
    from lowlight_cli.inference.onnx_backend import OnnxModel

    _, adaptive = _brightening_pair(4.0)
    path = tmp_path / "adaptive.onnx"
    export_onnx(adaptive, path, sizes=[(64, 96), (96, 128)])
    gen = torch.Generator().manual_seed(4)
    x = (0.04 + torch.randn(1, 1, 64, 96, generator=gen) * 0.004).clamp(0, 1).expand(1, 3, 64, 96)
    rgb = x[0].permute(1, 2, 0).contiguous().numpy()
    expected = Enhancer(adaptive, InferenceConfig(device="cpu", tile=0)).enhance(rgb)
    exported = Enhancer(OnnxModel(path), InferenceConfig(device="cpu", tile=0)).enhance(rgb)
    assert np.abs(exported - expected).max() < 1e-4
