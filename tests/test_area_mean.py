"""models.base.area_mean: avg_pool2d's cell means, by halvings for inference."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowlight_cli.models.base import area_mean


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_cell_means_match_avg_pool2d(factor, monkeypatch):
    import lowlight_cli.models.base as base

    x = torch.rand(2, 3, 32, 48)
    with torch.no_grad(), monkeypatch.context() as patched:
        patched.setattr(base.F, "avg_pool2d", None)  # the halvings, not the fallback
        got = area_mean(x, factor)
    assert got.shape == (2, 3, 32 // factor, 48 // factor)
    assert torch.allclose(got, F.avg_pool2d(x, factor), atol=1e-6, rtol=0)


def test_a_constant_image_keeps_its_value_exactly():
    x = torch.full((1, 3, 16, 16), 0.3)
    with torch.no_grad():
        assert torch.equal(area_mean(x, 4), torch.full((1, 3, 4, 4), 0.3))


@pytest.mark.parametrize("shape,factor,ceil_mode", [((1, 3, 15, 16), 2, True), ((1, 3, 12, 12), 3, False),
                                                     ((1, 3, 18, 18), 4, True)])
def test_other_sizes_and_factors_are_avg_pool2d_itself(shape, factor, ceil_mode):
    x = torch.rand(shape)
    with torch.no_grad():
        assert torch.equal(area_mean(x, factor, ceil_mode=ceil_mode), F.avg_pool2d(x, factor, ceil_mode=ceil_mode))


def test_gradients_flow_through_the_differentiable_form():
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    area_mean(x, 2).sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, 0.25))


def test_a_channels_last_tensor_gets_avg_pool2d():
    x = torch.rand(1, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(area_mean(x, 2), F.avg_pool2d(x, 2))


def test_half_precision_gets_avg_pool2d():
    x = torch.rand(1, 3, 8, 8).to(torch.bfloat16)
    with torch.no_grad():
        assert torch.equal(area_mean(x, 2), F.avg_pool2d(x, 2))
