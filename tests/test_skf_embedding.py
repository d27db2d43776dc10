"""SKF's model parts: the semantic prior on the low-light input and the semantic-aware embedding module (SEM).

The prior runs on a seeded random stand-in of ESPNetv2-VOC (it says so): these tests check shapes,
the no-gradient contract and the wiring into SEMs, not segmentation quality (the real network is
checked against its published references in ``test_priors.py``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lowlight_cli.errors import UsageError
from lowlight_cli.models.skf import SemanticEmbedding, SemanticPrior, TransposedCrossAttention
from lowlight_cli.priors import SemanticRegions, create_prior


@pytest.fixture(scope="module")
def espnet_stand_in():
    network = create_prior("espnetv2-voc", stand_in=True)
    assert network.is_stand_in
    return network


def test_prior_gives_probabilities_and_features_of_the_low_input_without_gradient(espnet_stand_in):
    prior = SemanticPrior(espnet_stand_in)
    low = (0.1 * torch.rand(2, 3, 48, 40)).requires_grad_(True)
    guidance = prior(low)
    assert guidance.probabilities.shape == (2, 21, 48, 40)
    assert torch.allclose(guidance.probabilities.sum(dim=1), torch.ones(2, 48, 40), atol=1e-5)
    assert {name: tuple(f.shape) for name, f in guidance.features.items()} == {
        "level1": (2, 32, 24, 20), "level2": (2, 128, 12, 10), "level3": (2, 256, 6, 5), "level4": (2, 512, 3, 3),
    }  # fmt: skip
    assert not guidance.probabilities.requires_grad and not any(f.requires_grad for f in guidance.features.values())
    # the labels are the region provider's semantic regions of the same input
    assert torch.equal(guidance.labels, SemanticRegions(espnet_stand_in)(low))
    pyramid = guidance.pyramid()
    assert [tuple(p.shape) for p in pyramid] == [(2, 21, 48, 40), (2, 128, 12, 10), (2, 256, 6, 5)]
    assert prior.pyramid_channels() == tuple(p.shape[1] for p in pyramid) == (21, 128, 256)
    assert len(guidance.pyramid(2)) == 2 and prior.pyramid_channels(1) == (21,)
    with pytest.raises(UsageError, match="1 to 3"):
        guidance.pyramid(4)


def test_prior_refuses_networks_that_do_not_segment():
    with pytest.raises(UsageError, match="segmentation"):
        SemanticPrior(create_prior("vgg19-normalised", stand_in=True))


@pytest.mark.parametrize(
    ("image_shape", "semantic_shape"),
    [
        ((1, 16, 7, 9), (1, 21, 28, 36)),  # semantic map finer than the features
        ((2, 32, 33, 17), (2, 128, 9, 5)),  # coarser, odd sizes
        ((2, 8, 16, 16), (2, 4, 16, 16)),  # same size
        ((1, 2, 1, 1), (1, 3, 4, 4)),  # a single pixel
    ],
)
def test_sem_keeps_the_shape_and_starts_as_the_identity(image_shape, semantic_shape):
    torch.manual_seed(0)
    sem = SemanticEmbedding(image_shape[1], semantic_shape[1])
    image, semantic = torch.randn(image_shape), torch.rand(semantic_shape)
    out = sem(image, semantic)
    assert out.shape == image.shape
    assert torch.equal(out, image)  # zero-initialised output projections: an enhancer starts as without SEM
    with torch.no_grad():  # once trained (here: random output projections) it changes the features
        sem.attention.project_out.weight.normal_()
        sem.ffn.project_out.weight.normal_()
    changed = sem(image, semantic)
    assert changed.shape == image.shape and not torch.allclose(changed, image)


def test_sem_gradients_reach_both_inputs():
    torch.manual_seed(1)
    sem = SemanticEmbedding(16, 21)
    image = torch.randn(2, 16, 12, 10, requires_grad=True)
    semantic = torch.rand(2, 21, 24, 20, requires_grad=True)
    target = torch.randn(2, 16, 12, 10)
    # at initialisation the image passes through, and the zeroed projections are what learns first
    F.mse_loss(sem(image, semantic), target).backward()
    assert image.grad.abs().sum() > 0
    assert sem.attention.project_out.weight.grad.abs().sum() > 0 and sem.ffn.project_out.weight.grad.abs().sum() > 0
    # after one optimiser step the semantic features steer the output, and receive gradient
    torch.optim.SGD(sem.parameters(), lr=0.1).step()
    image.grad = semantic.grad = None
    sem.zero_grad()
    F.mse_loss(sem(image, semantic), target).backward()
    assert image.grad.abs().sum() > 0 and semantic.grad.abs().sum() > 0
    assert sem.semantic_in.weight.grad.abs().sum() > 0 and sem.attention.temperature.grad.abs().sum() > 0


def test_sem_guided_by_the_prior_at_three_decoder_scales(espnet_stand_in):
    prior = SemanticPrior(espnet_stand_in)
    low = 0.1 * torch.rand(1, 3, 64, 48)
    decoder = [torch.randn(1, 16, 64, 48), torch.randn(1, 16, 32, 24), torch.randn(1, 32, 16, 12)]  # scales 1, 1/2, 1/4
    sems = [SemanticEmbedding(f.shape[1], s) for f, s in zip(decoder, prior.pyramid_channels())]
    for sem in sems:
        torch.nn.init.normal_(sem.attention.project_out.weight, std=0.1)
    outputs = [sem(f, s) for sem, f, s in zip(sems, decoder, prior(low).pyramid())]
    assert [o.shape for o in outputs] == [f.shape for f in decoder]
    assert all(torch.isfinite(o).all() for o in outputs)


def test_transposed_attention_is_softmax_over_channel_similarities():
    """With identity projections, head h computes softmax(T * q_n k_n^T) v over its channels."""
    torch.manual_seed(2)
    channels, heads = 4, 2
    attention = TransposedCrossAttention(channels, heads).double()
    with torch.no_grad():
        for conv in (*attention.query, *attention.key_value, attention.project_out):
            conv.weight.zero_()
        eye = torch.eye(channels, dtype=torch.float64)[:, :, None, None]
        attention.query[0].weight.copy_(eye)
        attention.key_value[0].weight.copy_(torch.cat([eye, eye]))
        attention.project_out.weight.copy_(eye)
        attention.query[1].weight[:, 0, 1, 1] = 1.0  # depthwise 3x3 as a delta
        attention.key_value[1].weight[:, 0, 1, 1] = 1.0
        attention.temperature.copy_(torch.tensor([2.0, 0.5]).view(2, 1, 1))
    image, semantic = torch.randn(1, channels, 5, 6, dtype=torch.float64), torch.randn(1, channels, 5, 6, dtype=torch.float64)
    q = F.normalize(semantic.reshape(heads, channels // heads, 30), dim=-1)
    k = F.normalize(image.reshape(heads, channels // heads, 30), dim=-1)
    weights = (torch.tensor([2.0, 0.5], dtype=torch.float64).view(2, 1, 1) * q @ k.transpose(1, 2)).softmax(dim=-1)
    expected = (weights @ image.reshape(heads, channels // heads, 30)).reshape(1, channels, 5, 6)
    assert torch.allclose(attention(image, semantic), expected, atol=1e-12)


def test_sem_rejects_mismatched_inputs():
    sem = SemanticEmbedding(8, 21)
    with pytest.raises(ValueError, match="image features"):
        sem(torch.randn(1, 4, 8, 8), torch.rand(1, 21, 8, 8))
    with pytest.raises(ValueError, match="semantic features"):
        sem(torch.randn(1, 8, 8, 8), torch.rand(1, 20, 8, 8))
    with pytest.raises(ValueError, match="semantic features"):
        sem(torch.randn(2, 8, 8, 8), torch.rand(1, 21, 8, 8))
    with pytest.raises(ValueError, match="divisible"):
        SemanticEmbedding(7, 21, heads=2)
