"""Losses of the curve methods (SCL-LLE, PIE): known values, module == function, gradients.

Feature losses run on seeded random stand-ins of the frozen networks (they say so), and once on
the real VGG19-normalised weights when ``../shared/nets`` is present.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.autograd import gradcheck

from lowlight_cli.losses import (
    LOSSES,
    BrightnessContrastiveLoss,
    ColourConstancyLoss,
    ExposureControlLoss,
    FeaturePreservationLoss,
    IlluminationSmoothnessLoss,
    RegionBrightnessLoss,
    TextureContrastiveLoss,
    brightness_contrastive_loss,
    colour_constancy_loss,
    create_loss,
    exposure_control_loss,
    feature_preservation_loss,
    gram_matrix,
    illumination_smoothness_loss,
    region_brightness_loss,
    texture_contrastive_loss,
    texture_infonce_loss,
)
from lowlight_cli.losses.contrastive import brightness_distances
from lowlight_cli.losses.features import gram_distances
from lowlight_cli.priors import FelzenszwalbRegions, create_prior

SHARED_NETS = Path(__file__).resolve().parents[2] / "shared" / "nets"
F64 = torch.float64


@pytest.fixture(scope="module")
def vgg_stand_in():
    """VGG19-normalised architecture with seeded random weights (a stand-in, not the trained network)."""
    network = create_prior("vgg19-normalised", stand_in=True)
    assert network.is_stand_in
    return network


# --- zero-reference -----------------------------------------------------------------------------


def test_illumination_smoothness_known_value_and_constant_curves():
    ramp = (0.1 * torch.arange(6.0)).view(1, 1, 1, 6).expand(2, 24, 5, 6)
    # horizontal steps of 0.1 everywhere: 2 / B * (B * 24 * 0.01) = 0.48; no vertical change
    assert illumination_smoothness_loss(ramp).item() == pytest.approx(0.48, rel=1e-5)
    assert illumination_smoothness_loss(ramp.transpose(2, 3)).item() == pytest.approx(0.48, rel=1e-5)
    assert illumination_smoothness_loss(torch.full((2, 24, 5, 6), 0.7)).item() == 0.0
    assert IlluminationSmoothnessLoss()(ramp) == illumination_smoothness_loss(ramp)
    with pytest.raises(ValueError, match="2x2"):
        illumination_smoothness_loss(torch.zeros(1, 24, 1, 5))


def test_colour_constancy_known_value_and_grey_images():
    image = torch.stack([torch.full((4, 4), 0.5), torch.full((4, 4), 0.2), torch.full((4, 4), 0.2)])[None]
    assert colour_constancy_loss(image).item() == pytest.approx(math.sqrt(2 * 0.09**2), rel=1e-5)
    grey = torch.full((2, 3, 4, 4), 0.3, requires_grad=True)
    loss = ColourConstancyLoss()(grey)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(grey.grad).all()


def test_exposure_control_known_value_ignores_the_partial_border():
    image = torch.ones(1, 3, 20, 40)
    image[:, :, :16, :32] = 0.4
    assert exposure_control_loss(image).item() == pytest.approx(0.04, rel=1e-5)  # (0.4 - 0.6)^2, two patches
    assert ExposureControlLoss(well_exposed=0.4)(image).item() == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="16x16"):
        exposure_control_loss(torch.rand(1, 3, 8, 32))


def test_zero_reference_losses_pass_gradcheck():
    generator = torch.Generator().manual_seed(0)
    curves = torch.rand(2, 6, 4, 5, generator=generator, dtype=F64).requires_grad_()
    images = torch.rand(2, 3, 16, 32, generator=generator, dtype=F64).requires_grad_()
    assert gradcheck(illumination_smoothness_loss, (curves,))
    assert gradcheck(colour_constancy_loss, (images,))
    assert gradcheck(lambda x: exposure_control_loss(x, patch=8), (images,))


# --- contrastive ----------------------------------------------------------------------------------


def test_brightness_contrastive_known_values():
    anchor = torch.full((2, 3, 4, 4), 0.3)
    positives, negatives = torch.full((3, 3, 4, 4), 0.5), torch.zeros(1, 3, 4, 4)
    # d_AP = 0.2, d_AN = 0.3: 0.2 - 0.3 + 0.3
    assert brightness_contrastive_loss(anchor, positives, negatives).item() == pytest.approx(0.2, abs=1e-6)
    assert brightness_contrastive_loss(anchor, positives, torch.ones(1, 3, 4, 4)).item() == pytest.approx(0.0, abs=1e-6)
    assert BrightnessContrastiveLoss(margin=0.5)(anchor, positives, negatives).item() == pytest.approx(0.4, abs=1e-6)
    # every anchor against every positive, by the mean over channels
    a = torch.zeros(2, 3, 2, 2)
    a[1] = 1.0
    others = torch.tensor([0.0, 0.25, 1.0]).view(3, 1, 1, 1).expand(3, 3, 2, 2)
    assert torch.allclose(brightness_distances(a, others), torch.tensor([[0.0, 0.25, 1.0], [1.0, 0.75, 0.0]]))


def test_brightness_contrastive_gradient_reaches_the_output_only():
    generator = torch.Generator().manual_seed(1)
    output = torch.rand(2, 3, 6, 6, generator=generator, dtype=F64).requires_grad_()
    positives = (0.5 + 0.5 * torch.rand(2, 3, 6, 6, generator=generator, dtype=F64)).requires_grad_()
    negatives = (0.2 * torch.rand(3, 3, 6, 6, generator=generator, dtype=F64)).requires_grad_()
    assert gradcheck(lambda y: brightness_contrastive_loss(y, positives, negatives), (output,))
    brightness_contrastive_loss(output, positives, negatives).backward()
    assert output.grad.abs().sum() > 0 and positives.grad is None and negatives.grad is None


def test_gram_matrix_and_distances():
    features = torch.arange(8.0).view(1, 2, 2, 2)
    flat = features.view(2, 4)
    assert torch.allclose(gram_matrix(features)[0], flat @ flat.T / 8)
    anchor = [torch.rand(2, 4, 6, 6), torch.rand(2, 8, 3, 3)]
    others = [torch.rand(3, 4, 10, 10), torch.rand(3, 8, 5, 5)]  # other sizes are fine: Gram is C x C
    d = gram_distances(anchor, others)
    assert d.shape == (2, 3)
    expected = sum(((gram_matrix(a)[1] - gram_matrix(o)[2]) ** 2).sum() for a, o in zip(anchor, others))
    assert d[1, 2].item() == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(gram_distances(anchor, [a[:1] for a in anchor])[0], torch.zeros(1), atol=1e-7)


def test_texture_losses_known_values():
    generator = torch.Generator().manual_seed(2)
    anchor = [torch.rand(1, 4, 5, 5, generator=generator)]
    negatives = [torch.rand(2, 4, 5, 5, generator=generator) * 3]
    d_an = gram_distances(anchor, negatives)
    # positives equal to the anchor: d_AP = 0
    hinge = texture_contrastive_loss(anchor, anchor, negatives, margin=0.04)
    assert hinge.item() == pytest.approx(max(0.0, 0.04 - d_an.mean().item()), abs=1e-6)
    infonce = texture_infonce_loss(anchor, anchor, negatives)
    expected = torch.stack([-torch.log(torch.exp(dn) / (torch.exp(dn) + torch.exp(torch.zeros(())))) for dn in d_an[0]]).mean()
    assert infonce.item() == pytest.approx(expected.item(), rel=1e-5)


def test_texture_losses_pass_gradcheck():
    generator = torch.Generator().manual_seed(3)

    def maps(batch: int, *sizes: tuple[int, int, int], scale: float = 1.0) -> list[torch.Tensor]:
        return [scale * torch.rand(batch, *size, generator=generator, dtype=F64) for size in sizes]

    anchor = [a.requires_grad_() for a in maps(2, (3, 4, 4), (5, 2, 2))]
    positives = maps(2, (3, 4, 4), (5, 2, 2))
    negatives = maps(1, (3, 6, 6), (5, 3, 3), scale=2.0)
    # a large margin keeps the hinge active (differentiable) for this check
    assert gradcheck(lambda a, b: texture_contrastive_loss([a, b], positives, negatives, margin=10.0), tuple(anchor))
    assert gradcheck(lambda a, b: texture_infonce_loss([a, b], positives, negatives), tuple(anchor))


@pytest.mark.parametrize("form", ["hinge", "infonce"])
def test_texture_module_trains_the_output_through_the_frozen_network(vgg_stand_in, form):
    loss_fn = TextureContrastiveLoss(vgg_stand_in, form=form, margin=1e6)  # margin: keep the hinge active
    generator = torch.Generator().manual_seed(4)
    output = (0.3 * torch.rand(2, 3, 32, 32, generator=generator)).requires_grad_()
    positives = torch.rand(2, 3, 32, 32, generator=generator).requires_grad_()
    negatives = 0.05 * torch.rand(2, 3, 32, 32, generator=generator)
    loss = loss_fn(output, positives, negatives)
    loss.backward()
    assert torch.isfinite(loss) and output.grad.abs().sum() > 0
    assert positives.grad is None
    assert all(p.grad is None for p in vgg_stand_in.parameters())
    features = [f for f in loss_fn.features(output)]
    pos, neg = loss_fn.reference_features(positives), loss_fn.reference_features(negatives)
    direct = texture_infonce_loss(features, pos, neg) if form == "infonce" else texture_contrastive_loss(features, pos, neg, margin=1e6)
    assert loss.item() == pytest.approx(direct.item(), rel=1e-5)


def test_feature_preservation_defaults_to_the_deepest_layer_and_has_gradients(vgg_stand_in):
    loss_fn = FeaturePreservationLoss(vgg_stand_in)
    assert loss_fn.layers == ("relu3_1",)  # VGG19-normalised's stand-in for the papers' relu4_3
    generator = torch.Generator().manual_seed(5)
    inputs = 0.1 * torch.rand(1, 3, 32, 32, generator=generator)
    assert loss_fn(inputs, inputs.clone()).item() == 0.0
    output = (inputs * 4).requires_grad_()
    loss = loss_fn(inputs, output)
    loss.backward()
    assert loss > 0 and output.grad.abs().sum() > 0
    features_in = vgg_stand_in.features(inputs, layers=["relu3_1"])["relu3_1"]
    features_out = vgg_stand_in.features(output, layers=["relu3_1"])["relu3_1"]
    assert loss.item() == pytest.approx(feature_preservation_loss([features_in], [features_out]).item(), rel=1e-5)


def test_feature_preservation_on_vgg16_uses_the_papers_relu4_3():
    assert FeaturePreservationLoss(create_prior("vgg16", stand_in=True)).layers == ("relu4_3",)


@pytest.mark.skipif(not SHARED_NETS.is_dir(), reason=f"real frozen-network weights not present ({SHARED_NETS} is absent)")
def test_feature_losses_on_the_real_vgg19_weights():
    network = create_prior("vgg19-normalised")
    assert not network.is_stand_in
    generator = torch.Generator().manual_seed(6)
    dark = 0.1 * torch.rand(1, 3, 48, 48, generator=generator)
    output = (dark * 5).clamp(0, 1).requires_grad_()
    preservation = FeaturePreservationLoss(network)(dark, output)
    texture = TextureContrastiveLoss(network, margin=1e6)(output, torch.rand(2, 3, 48, 48, generator=generator), dark)
    (preservation + texture).backward()
    assert preservation > 0 and output.grad.abs().sum() > 0


# --- regions ----------------------------------------------------------------------------------------


def naive_region_brightness(images: torch.Tensor, regions: torch.Tensor, ignore_index: int | None = None) -> torch.Tensor:
    """Reference with explicit loops over images and regions."""
    per_image = []
    for image, labels in zip(images, regions):
        brightness = image.mean(0)
        keep = labels != ignore_index if ignore_index is not None else torch.ones_like(labels, dtype=torch.bool)
        total = brightness.new_zeros(())
        for label in labels[keep].unique():
            values = brightness[(labels == label) & keep]
            total = total + ((values - values.mean()) ** 2).sum()
        per_image.append(total / max(int(keep.sum()), 1))
    return torch.stack(per_image).mean()


def test_region_brightness_matches_a_loop_reference():
    generator = torch.Generator().manual_seed(7)
    images = torch.rand(3, 3, 9, 11, generator=generator, dtype=F64)
    regions = torch.randint(0, 5, (3, 9, 11), generator=generator) * 7  # sparse labels
    regions[1, :3] = 255
    assert region_brightness_loss(images, regions).item() == pytest.approx(naive_region_brightness(images, regions).item(), rel=1e-10)
    got = RegionBrightnessLoss(ignore_index=255)(images, regions)
    assert got.item() == pytest.approx(naive_region_brightness(images, regions, 255).item(), rel=1e-10)


def test_region_brightness_treats_each_image_on_its_own():
    images = torch.cat([torch.full((1, 3, 4, 4), 0.2), torch.full((1, 3, 4, 4), 0.8)])
    regions = torch.zeros(2, 4, 4, dtype=torch.long)
    # label 0 is evenly lit in each image; mixing the batch (as the authors' code does) would not give 0
    assert region_brightness_loss(images, regions).item() == pytest.approx(0.0, abs=1e-12)
    halves = torch.zeros(1, 4, 4, dtype=torch.long)
    halves[:, :, 2:] = 1
    ramp = torch.tensor([0.0, 1.0, 0.5, 0.5]).view(1, 1, 1, 4).expand(1, 3, 4, 4)
    assert region_brightness_loss(ramp, halves).item() == pytest.approx(0.125)


def test_region_brightness_gradients_and_errors():
    generator = torch.Generator().manual_seed(8)
    images = torch.rand(2, 3, 5, 6, generator=generator, dtype=F64).requires_grad_()
    regions = torch.randint(0, 3, (2, 5, 6), generator=generator)
    assert gradcheck(lambda x: region_brightness_loss(x, regions), (images,))
    with pytest.raises(ValueError, match=">= 0"):
        region_brightness_loss(images, regions - 1)
    with pytest.raises(ValueError, match="integer"):
        region_brightness_loss(images, regions.double())
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        region_brightness_loss(images, regions[:, :4])
    assert region_brightness_loss(images, torch.full_like(regions, 9), ignore_index=9).item() == 0.0


def test_region_brightness_on_felzenszwalb_regions():
    pytest.importorskip("skimage")
    from .photos import dark_photo

    photo = torch.from_numpy(dark_photo(64, 80, exposure=0.3)).permute(2, 0, 1)[None].repeat(2, 1, 1, 1)
    output = (photo * 3).clamp(0, 1).requires_grad_()
    regions = FelzenszwalbRegions()(output)
    assert regions.shape == (2, 64, 80) and regions.max() > 0
    loss = region_brightness_loss(output, regions)
    loss.backward()
    assert loss > 0 and output.grad.abs().sum() > 0


def test_losses_are_registered_by_name(vgg_stand_in):
    for name in ("illumination_smoothness", "colour_constancy", "exposure_control", "brightness_contrastive", "region_brightness"):
        assert name in LOSSES and isinstance(create_loss(name), torch.nn.Module)
    assert create_loss("texture_contrastive", network=vgg_stand_in, form="infonce").form == "infonce"
    assert create_loss("feature_preservation", network=vgg_stand_in).layers == ("relu3_1",)
    with pytest.raises(ValueError, match="form"):
        TextureContrastiveLoss(vgg_stand_in, form="triplet")
