"""SKF's semantic-guided adversarial loss and its patch discriminator: LSGAN values, region choice, gradients."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lowlight_cli.losses import (
    AdversarialDiscriminatorLoss,
    AdversarialGeneratorLoss,
    create_loss,
    discriminator_loss,
    generator_loss,
)
from lowlight_cli.losses.adversarial import region_errors, worst_region
from lowlight_cli.models.discriminator import PatchDiscriminator


class FixedScores(nn.Module):
    """A stand-in discriminator: score maps chosen by the test, one per kind of input.

    Images whose mean is above 0.5 are "references" and get ``real``, the others ``fake``; the
    input enters with weight 0 so gradients have a path, and ``bias`` is a parameter (0).
    """

    def __init__(self, fake: torch.Tensor, real: torch.Tensor) -> None:
        super().__init__()
        self.fake, self.real = fake, real
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores = self.real if images.mean() > 0.5 else self.fake
        return scores + self.bias + 0.0 * images.mean()


def halves(batch: int = 1, height: int = 8, width: int = 8) -> torch.Tensor:
    """Labels: left half 3, right half 7 (non-contiguous values)."""
    labels = torch.full((batch, height, width), 3)
    labels[..., width // 2 :] = 7
    return labels


def test_lsgan_values_for_constant_scores():
    fake_out, reference = torch.full((2, 3, 8, 8), 0.2), torch.full((2, 3, 8, 8), 0.8)
    regions = halves(2)
    d = FixedScores(fake=torch.full((2, 1, 2, 2), 0.3), real=torch.full((2, 1, 2, 2), 0.6))
    # generator: (D(fake) - 1)^2 everywhere = 0.49, global and local alike
    assert generator_loss(d, fake_out, regions).item() == pytest.approx(0.49)
    # discriminator: (D(fake)^2 + (D(real) - 1)^2) / 2 = (0.09 + 0.16) / 2
    assert discriminator_loss(d, fake_out, reference, regions).item() == pytest.approx(0.125)
    perfect = FixedScores(fake=torch.zeros(2, 1, 2, 2), real=torch.ones(2, 1, 2, 2))
    assert discriminator_loss(perfect, fake_out, reference, regions).item() == 0.0
    fooled = FixedScores(fake=torch.ones(2, 1, 2, 2), real=torch.ones(2, 1, 2, 2))
    assert generator_loss(fooled, fake_out, regions).item() == 0.0


def test_the_generator_is_judged_on_its_least_real_region():
    # score map 2x2 over an 8x8 image: the left column of patches covers region 3, the right one region 7
    fake = torch.tensor([[[[0.2, 0.9], [0.2, 0.9]]]])
    d = FixedScores(fake=fake, real=torch.ones(1, 1, 2, 2))
    output, regions = torch.full((1, 3, 8, 8), 0.2), halves()
    errors = (fake - 1) ** 2
    global_term = errors.mean().item()  # (0.64 + 0.01) / 2
    assert generator_loss(d, output, regions).item() == pytest.approx(0.9 * global_term + 0.1 * 0.64)
    assert generator_loss(d, output, regions, local_share=1.0).item() == pytest.approx(0.64)
    # with labels swapped the same (left) region is still the one picked: selection follows the scores
    assert generator_loss(d, output, 10 - regions, local_share=1.0).item() == pytest.approx(0.64)


def test_the_discriminator_trains_on_its_worst_fake_and_worst_real_region():
    fake = torch.tensor([[[[0.1, 0.7], [0.1, 0.7]]]])  # the right region looks most real: worst fake region
    real = torch.tensor([[[[0.4, 1.0], [0.4, 1.0]]]])  # the left region looks least real: worst real region
    d = FixedScores(fake=fake, real=real)
    value = discriminator_loss(d, torch.full((1, 3, 8, 8), 0.2), torch.full((1, 3, 8, 8), 0.8), halves(), local_share=1.0)
    assert value.item() == pytest.approx((0.49 + 0.36) / 2)


def test_worst_region_uses_coverage_weights_and_distinct_candidates():
    errors = torch.tensor([[[[1.0, 4.0], [1.0, 4.0]]]])
    masks = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]], [[0.0, 0.5], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]]]])
    assert region_errors(errors, masks)[0, :2].tolist() == [1.0, 4.0] and region_errors(errors, masks)[0, 2].isnan()
    values, index = worst_region(errors, masks)
    assert index.tolist() == [1] and values.tolist() == [4.0]  # an empty candidate is never picked
    with pytest.raises(ValueError, match="at least one region"):
        worst_region(errors, torch.zeros(1, 2, 2, 2))
    # candidates are the largest regions, each scored on its own: rows of classes 2, 2, 2, 1, 1, 0
    labels = torch.tensor([2, 2, 2, 1, 1, 0])[None, :, None].expand(1, 6, 4).contiguous()
    fake = torch.ones(1, 1, 6, 4)  # a stride-1 stand-in: one score per pixel
    fake[..., 3:, :] = 0.0  # the largest class looks real, the two smaller ones fake
    d = FixedScores(fake=fake, real=torch.ones(1, 1, 6, 4))
    output = torch.full((1, 3, 6, 4), 0.2)
    assert generator_loss(d, output, labels, candidates=1, local_share=1.0).item() == 0.0  # class 2 only
    assert generator_loss(d, output, labels, candidates=2, local_share=1.0).item() == 1.0  # class 1, distinct from 2


def test_regions_given_as_probabilities_work_like_labels():
    fake = torch.tensor([[[[0.2, 0.9], [0.2, 0.9]]]])
    d = FixedScores(fake=fake, real=torch.ones(1, 1, 2, 2))
    labels = halves()
    one_hot = torch.nn.functional.one_hot(labels // 4, 2).permute(0, 3, 1, 2).float()  # 3 -> 0, 7 -> 1
    output = torch.full((1, 3, 8, 8), 0.2)
    assert generator_loss(d, output, one_hot).item() == pytest.approx(generator_loss(d, output, labels).item())


def test_generator_loss_sends_gradient_to_the_output_only():
    torch.manual_seed(0)
    d = PatchDiscriminator(width=8)
    output = torch.rand(2, 3, 32, 32, requires_grad=True)
    value = generator_loss(d, output, halves(2, 32, 32))
    value.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in d.parameters())  # nothing accumulates in the discriminator


def test_discriminator_loss_trains_the_discriminator_and_never_the_generator():
    torch.manual_seed(1)
    d = PatchDiscriminator(width=8)
    output = torch.rand(2, 3, 32, 32, requires_grad=True)
    target = torch.rand(2, 3, 32, 32)
    discriminator_loss(d, output, target, halves(2, 32, 32)).backward()
    assert output.grad is None  # detached inside
    assert all(p.grad is not None for p in d.parameters())
    assert d.body[0].weight.grad.abs().sum() > 0  # the one input path is the one the generator is judged through


def test_a_few_discriminator_steps_separate_real_from_fake():
    torch.manual_seed(2)
    d = PatchDiscriminator(width=8)
    optimiser = torch.optim.Adam(d.parameters(), lr=2e-3)
    reference = torch.rand(4, 3, 32, 32)
    output = (reference * 0.3).clamp(0, 1)  # too dark: easy to tell apart
    regions = halves(4, 32, 32)
    first = discriminator_loss(d, output, reference, regions).item()
    for _ in range(30):
        optimiser.zero_grad()
        discriminator_loss(d, output, reference, regions).backward()
        optimiser.step()
    assert discriminator_loss(d, output, reference, regions).item() < 0.5 * first
    assert generator_loss(d, output, regions).item() > 0.5  # and the dark output is now judged fake


def test_modules_registration_and_errors():
    d = FixedScores(fake=torch.full((1, 1, 2, 2), 0.5), real=torch.ones(1, 1, 2, 2))
    output, reference, regions = torch.full((1, 3, 8, 8), 0.2), torch.full((1, 3, 8, 8), 0.8), halves()
    g, dl = create_loss("adversarial_generator", candidates=3), create_loss("adversarial_discriminator", local_share=0.2)
    assert isinstance(g, AdversarialGeneratorLoss) and isinstance(dl, AdversarialDiscriminatorLoss)
    assert g(d, output, regions).item() == generator_loss(d, output, regions, candidates=3).item()
    assert dl(d, output, reference, regions).item() == discriminator_loss(d, output, reference, regions, local_share=0.2).item()
    with pytest.raises(ValueError, match="local_share"):
        AdversarialGeneratorLoss(local_share=1.5)
    with pytest.raises(ValueError, match="one shape"):
        discriminator_loss(d, output, reference[..., :4], regions)
    with pytest.raises(ValueError, match="labels must be"):
        generator_loss(d, output, regions[..., :4])


def test_patch_discriminator_shapes_and_limits():
    d = PatchDiscriminator(width=8, downsamplings=2)
    assert d(torch.rand(3, 3, 20, 36)).shape == (3, 1, 5, 9) and d.input_multiple == 4
    with pytest.raises(ValueError, match="at least 8x8"):
        d(torch.rand(1, 3, 6, 16))
    with pytest.raises(ValueError, match="images"):
        d(torch.rand(1, 4, 16, 16))  # no extra channels: it judges exactly the generator's images
