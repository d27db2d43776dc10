"""Contracts every loss keeps: shapes checked instead of broadcast, SSIM as a loss takes unclamped
outputs with and without grad, float64 through the frozen-network losses, the caller's random state
left alone by loading weights, and ``create_loss`` errors that list the options."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lowlight_cli.errors import UsageError
from lowlight_cli.losses import (
    FeaturePreservationLoss,
    PerceptualLoss,
    ProgressiveLoss,
    SemanticContrastiveLoss,
    TextureContrastiveLoss,
    create_loss,
    feature_preservation_loss,
    multi_consistency_loss,
    progressive_loss,
    ssim_loss,
)
from lowlight_cli.models import create_model
from lowlight_cli.priors import create_prior


@pytest.fixture(scope="module")
def vgg():
    return create_prior("vgg19-normalised", stand_in=True)


def _rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# --- shapes -------------------------------------------------------------------------------------


def test_progressive_loss_refuses_a_batch_it_would_broadcast():
    output, target = _rand(2, 3, 16, 16), _rand(1, 3, 16, 16)
    with pytest.raises(ValueError, match=r"output \(2, 3, 16, 16\) and target \(1, 3, 16, 16\)"):
        progressive_loss(output, [], target)
    with pytest.raises(ValueError, match="stage 2"):
        progressive_loss(target, [target, target[:, :1]], target)


def test_multi_consistency_loss_refuses_mismatched_images():
    a, b = _rand(2, 3, 8, 8), _rand(1, 3, 8, 8)
    with pytest.raises(ValueError, match="student .* and teacher .* must have the same shape"):
        multi_consistency_loss(a, [], b, [])
    with pytest.raises(ValueError, match="student stage 1"):
        multi_consistency_loss(a, [a], a, [b])
    loss, _ = multi_consistency_loss(a, [a], a.clone(), [a.clone()])
    assert loss.item() == 0.0


def test_feature_losses_refuse_images_that_pool_to_one_feature_size(vgg):
    inputs, outputs = _rand(1, 3, 32, 32), _rand(1, 3, 31, 31)
    assert vgg.features(inputs)["relu3_1"].shape == vgg.features(outputs)["relu3_1"].shape  # what the check guards
    with pytest.raises(ValueError, match="inputs .* and outputs .* must have the same shape"):
        FeaturePreservationLoss(vgg)(inputs, outputs)
    with pytest.raises(ValueError, match="output .* and target .* must have the same shape"):
        PerceptualLoss(vgg, ["relu1_2"])(outputs, inputs)
    with pytest.raises(ValueError, match="input layer 1"):
        feature_preservation_loss([torch.zeros(1, 4, 2, 2)], [torch.zeros(2, 4, 2, 2)])


def test_semantic_contrastive_refuses_mismatched_views():
    loss = SemanticContrastiveLoss(create_prior("squeezenet", stand_in=True))
    anchor = _rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="negative"):
        loss.terms(anchor, anchor, _rand(2, 3, 64, 64))


# --- SSIM as a loss -----------------------------------------------------------------------------


def test_ssim_loss_takes_unclamped_outputs_with_and_without_grad():
    target = _rand(1, 3, 24, 24)
    output = target * 1.4 - 0.1  # outside [0, 1], as a model's raw output
    assert output.min() < 0 and output.max() > 1
    with torch.no_grad():
        validation = ssim_loss(output, target)
    training = ssim_loss(output.clone().requires_grad_(), target)
    assert validation.item() == pytest.approx(training.item(), abs=1e-7) and validation.item() > 0
    assert ProgressiveLoss(lambda_ms=0.0)(output, [], target).item() == pytest.approx(validation.item(), abs=1e-7)


def test_progressive_module_passes_the_final_l1_weight():
    target, output = _rand(1, 3, 16, 16), _rand(1, 3, 16, 16, seed=1)
    plain = ProgressiveLoss(lambda_ms=0.0)(output, [], target)
    with_l1 = ProgressiveLoss(lambda_ms=0.0, lambda_final_l1=2.0)(output, [], target)
    assert with_l1.item() == pytest.approx(plain.item() + 2.0 * (output - target).abs().mean().item(), rel=1e-5)


# --- dtypes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["texture", "perceptual", "preservation"])
def test_float64_images_go_through_the_frozen_network_losses(vgg, which):
    output = _rand(1, 3, 32, 32, seed=2).double().requires_grad_()
    other = _rand(1, 3, 32, 32, seed=3).double()
    if which == "texture":
        loss = TextureContrastiveLoss(vgg, form="infonce")(output, other, 0.1 * other)
    elif which == "perceptual":
        loss = PerceptualLoss(vgg, ["relu1_2", "relu2_1"])(output, other)
    else:
        loss = FeaturePreservationLoss(vgg)(other, output)
    loss.backward()
    assert torch.isfinite(loss) and output.grad is not None and output.grad.dtype == torch.float64
    assert output.grad.abs().sum() > 0


def test_perceptual_loss_is_zero_on_identical_images_and_uses_every_layer_by_default(vgg):
    loss = PerceptualLoss(vgg)
    assert loss.layers == tuple(vgg.info.layers)
    x = _rand(1, 3, 32, 32)
    assert loss(x, x.clone()).item() == 0.0
    assert loss(x, 0.5 * x).item() > 0


# --- random state -------------------------------------------------------------------------------


def test_loading_weights_leaves_the_callers_random_state_alone(tmp_path: Path):
    path = tmp_path / "vgg.safetensors"
    save_file({k: v.contiguous() for k, v in create_prior("vgg19-normalised", stand_in=True).state_dict().items()}, str(path))
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    create_prior("vgg19-normalised", weights=path)
    create_model("crnet-s", weights=Path(__file__).resolve().parents[1] / "weights" / "crnet-s-lol")
    assert torch.equal(torch.rand(4), expected)


# --- create_loss --------------------------------------------------------------------------------


def test_create_loss_lists_the_options_of_a_wrong_call(vgg):
    with pytest.raises(UsageError) as caught:
        create_loss("progressive", lamda_ms=2.0)
    assert "lamda_ms" in str(caught.value) and "lambda_ms=1.0" in caught.value.hint
    with pytest.raises(UsageError) as caught:
        create_loss("perceptual")
    assert "network" in str(caught.value) and "create_prior" in caught.value.hint
    assert isinstance(create_loss("perceptual", network=vgg, layers=["relu1_2"]), PerceptualLoss)
