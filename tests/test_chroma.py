"""Chroma smoothing of a brightened image (ours): guided by luma, gated by brightening, luma kept."""

from __future__ import annotations

import pytest
import torch

from lowlight_cli.errors import ConfigError
from lowlight_cli.models import create_model
from lowlight_cli.models.chroma import box_mean, smooth_chroma


def _luma(rgb: torch.Tensor) -> torch.Tensor:
    return 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]


def _scene(height: int = 64, width: int = 80) -> torch.Tensor:
    """A smooth coloured gradient with a vertical colour and brightness edge in the middle."""
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    left = torch.stack((0.35 + 0.1 * y, 0.2 + 0.05 * x, 0.15 + 0.0 * x))  # dark warm
    right = torch.stack((0.3 + 0.0 * y, 0.55 + 0.1 * x, 0.75 - 0.1 * y))  # bright cool
    return torch.where(x < 0.5, left, right)[None]


def _chroma_noise(clean: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    """``clean`` plus colour noise that leaves luma unchanged."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(clean.shape, generator=gen) * sigma
    noise = noise - _luma(noise)[:, None]  # each pixel's noise has zero luma
    return clean + noise


def test_box_mean_is_the_window_average_inside_and_keeps_constants():
    x = torch.rand(1, 2, 20, 24, dtype=torch.float64)
    box = box_mean(x, 2)
    assert torch.allclose(box[..., 5, 7], x[..., 3:8, 5:10].mean(dim=(-2, -1)))
    assert torch.allclose(box_mean(torch.full((1, 1, 9, 9), 0.3), 3), torch.full((1, 1, 9, 9), 0.3))


@pytest.mark.parametrize("scale", [1, 2])
def test_a_zero_gate_returns_the_image_bit_for_bit(scale):
    y = torch.rand(1, 3, 64, 80)
    assert torch.equal(smooth_chroma(y, torch.zeros(1, 1, 64, 80), 2, 1e-4, scale=scale), y)


@pytest.mark.parametrize("scale", [1, 2])
def test_colour_noise_goes_luma_and_colour_edges_stay(scale):
    clean = _scene()
    noisy = _chroma_noise(clean, 0.04)
    out = smooth_chroma(noisy, torch.ones(1, 1, 64, 80), 2, 1e-4, scale=scale)
    assert torch.allclose(_luma(out), _luma(noisy), atol=1e-5)  # luma untouched
    before = (noisy - clean).abs().mean()
    after = (out - clean).abs().mean()
    assert after < 0.4 * before, (before, after)
    # the colour edge (which has a brightness edge) stays sharp: columns next to it keep their colours
    edge = clean.shape[-1] // 2
    assert (out[..., edge - 2] - clean[..., edge - 2]).abs().mean() < 0.5 * before
    assert (out[..., edge + 1] - clean[..., edge + 1]).abs().mean() < 0.5 * before


def test_the_gate_scales_the_smoothing():
    noisy = _chroma_noise(_scene(), 0.04)
    full = smooth_chroma(noisy, torch.ones(1, 1, 64, 80), 2, 1e-4)
    half = smooth_chroma(noisy, torch.full((1, 1, 64, 80), 0.5), 2, 1e-4)
    assert torch.allclose(half - noisy, 0.5 * (full - noisy), atol=1e-6)


def test_no_channel_is_raised_into_the_ceiling():
    noisy = _chroma_noise(_scene() * 0.5 + 0.49, 0.06)  # bright, saturated corners near 1
    ceiling = 254 / 255
    out = smooth_chroma(noisy, torch.ones(1, 1, 64, 80), 2, 1e-4, ceiling=ceiling)
    assert (out <= torch.clamp(noisy, min=ceiling) + 1e-7).all()


@pytest.mark.parametrize("scale", [1, 2])
def test_gradients_are_exact(scale):
    x = torch.rand(1, 3, 14, 16, dtype=torch.float64, requires_grad=True)
    gate = torch.rand(1, 1, 14, 16, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: smooth_chroma(0.5 * a + 0.2, gate, 2, 1e-2, scale=scale), (x,))


def test_half_precision_is_computed_in_float32():
    noisy = _chroma_noise(_scene(), 0.04)
    gate = torch.ones(1, 1, 64, 80)
    out = smooth_chroma(noisy.bfloat16(), gate, 2, 1e-4)
    assert out.dtype == torch.bfloat16
    assert (out.float() - smooth_chroma(noisy.bfloat16().float(), gate, 2, 1e-4)).abs().max() < 1e-2


def test_crnet_option_is_validated_and_changes_only_brightened_pixels():
    with pytest.raises(ConfigError, match="chroma_radius"):
        create_model("crnet-tiny", pretrained=False, chroma_radius=2)  # a residual CRNet has no brightening
    with pytest.raises(ConfigError, match="chroma_radius"):
        create_model("crnet-curve", pretrained=False, chroma_radius=-1)
    with pytest.raises(ConfigError, match="chroma_luma needs chroma_radius"):
        create_model("crnet-curve", pretrained=False, chroma_luma=True)
    torch.manual_seed(0)
    plain = create_model("crnet-curve", pretrained=False).eval()
    smoothed = create_model("crnet-curve", pretrained=False, chroma_radius=2).eval()
    smoothed.load_state_dict(plain.state_dict())  # no weights of its own
    x = _chroma_noise(_scene() * 0.15, 0.01).clamp(0, 1)
    with torch.no_grad():
        a, b = plain(x), smoothed(x)
    assert not torch.equal(a, b) and torch.allclose(_luma(a), _luma(b), atol=1e-4)
    with torch.no_grad():  # a gain of 1 everywhere: nothing brightened, nothing smoothed
        for head in (plain.heads[-1], smoothed.heads[-1]):
            head.bias[-3:].fill_(-50.0)
        assert torch.equal(plain(x), smoothed(x))


def test_reduced_resolution_fitting_keeps_the_window_and_the_grid():
    noisy = _chroma_noise(_scene(61, 77), 0.04)  # sizes that are no multiple of the scale
    gate = torch.ones(1, 1, 61, 77)
    at2 = smooth_chroma(noisy, gate, 2, 1e-4, scale=2)
    assert at2.shape == noisy.shape
    # the fit's downscale never exceeds the radius: the window stays 5 px wide at any curve scale
    assert torch.equal(smooth_chroma(noisy, gate, 2, 1e-4, scale=8), at2)
    clean = _scene(61, 77)
    assert (at2 - clean).abs().mean() < 0.6 * (noisy - clean).abs().mean()


def test_luma_smoothing_averages_flat_noise_keeps_edges_and_leaves_chroma_as_it_was():
    clean = _scene()
    gen = torch.Generator().manual_seed(1)
    noisy = clean + 0.004 * torch.randn(clean.shape, generator=gen)  # faint grain: variance below eps
    gate = torch.ones(1, 1, 64, 80)
    plain = smooth_chroma(noisy, gate, 2, 1e-4)
    smoothed = smooth_chroma(noisy, gate, 2, 1e-4, luma=True)
    assert torch.equal(smooth_chroma(noisy, torch.zeros(1, 1, 64, 80), 2, 1e-4, luma=True), noisy)
    chroma = lambda rgb: rgb - _luma(rgb)[:, None]  # noqa: E731
    assert torch.allclose(chroma(smoothed), chroma(plain), atol=1e-5)  # luma moves all channels alike
    flat = (slice(None), slice(None), slice(8, 56), slice(4, 34))  # inside the left half
    assert (_luma(smoothed) - _luma(clean))[flat[0], flat[2], flat[3]].abs().mean() < 0.6 * (
        (_luma(noisy) - _luma(clean))[flat[0], flat[2], flat[3]].abs().mean())
    edge = clean.shape[-1] // 2  # the brightness edge (a luma step of ~0.3) stays a step
    step = _luma(smoothed)[..., edge + 2].mean() - _luma(smoothed)[..., edge - 3].mean()
    assert step > 0.9 * (_luma(clean)[..., edge + 2].mean() - _luma(clean)[..., edge - 3].mean())
