"""SKF's semantic-guided colour histogram loss: known values, a slow reference loop, gradients, regions."""

from __future__ import annotations

import pytest
import torch
from torch.autograd import gradcheck

from lowlight_cli.losses import SemanticHistogramLoss, create_loss, semantic_histogram_loss
from lowlight_cli.losses.histogram import RECOMMENDED_WEIGHT
from lowlight_cli.losses.region_masks import compact_labels, largest_region_masks

F64 = torch.float64


def reference_loss(output, target, regions, bins=256, slope=400.0, min_fraction=0.01):
    """The definition, one image, region, channel and bin at a time (as the authors' loop, with our normalisation)."""
    edges = torch.linspace(0, 1, bins + 1, dtype=output.dtype)
    per_image = []
    for b in range(output.shape[0]):
        if regions.ndim == 3:
            weights = [(regions[b] == label).to(output.dtype) for label in torch.unique(regions[b])]
        else:
            weights = list(regions[b].to(output.dtype))
        distances = []
        for weight in weights:
            mass = weight.sum()
            if mass <= 0 or mass < min_fraction * weight.numel():
                continue
            channel_distances = []
            for c in range(3):
                total = 0.0
                for j in range(bins):
                    def bin_count(x):
                        member = torch.sigmoid(slope * (x - edges[j])) - torch.sigmoid(slope * (x - edges[j + 1]))
                        return (weight * member).sum() / mass

                    total = total + (bin_count(output[b, c]) - bin_count(target[b, c])).abs()
                channel_distances.append(0.5 * total)
            distances.append(sum(channel_distances) / 3)
        per_image.append(sum(distances) / len(distances) if distances else torch.zeros((), dtype=output.dtype))
    return sum(per_image) / len(per_image)


def test_identical_images_give_zero_and_different_ones_a_positive_value():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 12, 12), torch.rand(2, 3, 12, 12)
    labels = torch.randint(0, 3, (2, 12, 12))
    probabilities = torch.rand(2, 4, 12, 12).softmax(dim=1)
    for regions in (labels, probabilities):
        assert semantic_histogram_loss(x, x, regions).item() == 0.0
        assert semantic_histogram_loss(x, y, regions).item() > 0.1


def test_known_values_disjoint_and_shifted_colours():
    # one region, every pixel 0.25 vs every pixel 0.75: the distributions do not overlap -> total variation 1
    output, target = torch.full((1, 3, 4, 4), 0.25, dtype=F64), torch.full((1, 3, 4, 4), 0.75, dtype=F64)
    labels = torch.zeros(1, 4, 4, dtype=torch.long)
    assert semantic_histogram_loss(output, target, labels).item() == pytest.approx(1.0, abs=1e-9)
    # only the right half differs and it is its own region: that region scores 1, the other 0 -> mean 0.5
    target = output.clone()
    target[..., 2:] = 0.75
    halves = torch.tensor([[0, 0, 1, 1]]).expand(4, 4)[None]
    assert semantic_histogram_loss(output, target, halves).item() == pytest.approx(0.5, abs=1e-9)
    # as one region, half of the mass moved: total variation 0.5
    assert semantic_histogram_loss(output, target, labels).item() == pytest.approx(0.5, abs=1e-9)


def test_regions_count_equally_whatever_their_size_and_tiny_ones_are_left_out():
    output = torch.full((1, 3, 10, 10), 0.25, dtype=F64)
    target = output.clone()
    target[:, :, :, :1] = 0.75  # a 10-pixel column changes colour
    labels = torch.zeros(1, 10, 10, dtype=torch.long)
    labels[:, :, :1] = 1  # ... and is its own region (10% of the image)
    assert semantic_histogram_loss(output, target, labels).item() == pytest.approx(0.5, abs=1e-9)
    # below min_fraction, the column no longer counts: only the unchanged region is left
    assert semantic_histogram_loss(output, target, labels, min_fraction=0.2).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("kind", ["labels", "probabilities"])
def test_matches_the_slow_reference_loop(kind):
    torch.manual_seed(1)
    output, target = torch.rand(2, 3, 6, 5, dtype=F64), torch.rand(2, 3, 6, 5, dtype=F64)
    if kind == "labels":
        regions = torch.tensor([0, 4, 9])[torch.randint(0, 3, (2, 6, 5))]  # sparse label values
        regions[1] = 4  # image 1: a single region
    else:
        regions = torch.randn(2, 4, 6, 5, dtype=F64).softmax(dim=1)
    fast = semantic_histogram_loss(output, target, regions, bin_chunk=40)  # a chunk size that does not divide 256
    assert fast.item() == pytest.approx(reference_loss(output, target, regions).item(), rel=1e-10, abs=1e-12)


def test_label_maps_and_their_one_hot_probabilities_agree():
    torch.manual_seed(2)
    output, target = torch.rand(2, 3, 8, 8, dtype=F64), torch.rand(2, 3, 8, 8, dtype=F64)
    labels = torch.randint(0, 3, (2, 8, 8))
    one_hot = torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).to(F64)
    assert semantic_histogram_loss(output, target, labels).item() == pytest.approx(
        semantic_histogram_loss(output, target, one_hot).item(), rel=1e-12
    )


def test_gradcheck_float64_small_case():
    torch.manual_seed(3)
    output = (0.1 + 0.8 * torch.rand(1, 3, 3, 3, dtype=F64)).requires_grad_(True)
    target = torch.rand(1, 3, 3, 3, dtype=F64)
    labels = torch.tensor([[[0, 0, 1], [0, 1, 1], [2, 2, 2]]])
    probabilities = torch.randn(1, 3, 3, 3, dtype=F64).softmax(dim=1)
    for regions in (labels, probabilities):
        assert gradcheck(lambda x: semantic_histogram_loss(x, target, regions, bins=32, slope=50.0, bin_chunk=8), (output,))
    # the SKF setting itself (256 bins, slope 400), with and without chunk checkpointing
    assert gradcheck(lambda x: semantic_histogram_loss(x, target, labels, bin_chunk=256), (output,))
    assert gradcheck(lambda x: semantic_histogram_loss(x, target, labels, bin_chunk=48), (output,))


def test_only_the_output_gets_gradient_and_the_value_does_not_depend_on_the_chunking():
    torch.manual_seed(4)
    output = torch.rand(2, 3, 16, 16, requires_grad=True)
    target = torch.rand(2, 3, 16, 16, requires_grad=True)
    probabilities = torch.rand(2, 5, 16, 16).softmax(dim=1).requires_grad_(True)
    value = semantic_histogram_loss(output, target, probabilities, bin_chunk=16)
    value.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert target.grad is None and probabilities.grad is None
    with torch.no_grad():
        assert semantic_histogram_loss(output, target, probabilities, bin_chunk=256).item() == pytest.approx(value.item(), rel=1e-5)


def test_module_registration_and_errors():
    torch.manual_seed(5)
    x, y = torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8)
    labels = torch.randint(0, 2, (1, 8, 8))
    module = create_loss("semantic_histogram", min_fraction=0.0)
    assert isinstance(module, SemanticHistogramLoss)
    assert module(x, y, labels).item() == semantic_histogram_loss(x, y, labels, min_fraction=0.0).item()
    assert 0.0 < RECOMMENDED_WEIGHT < 1.0
    with pytest.raises(ValueError, match="integer labels"):
        semantic_histogram_loss(x, y, labels.float())
    with pytest.raises(ValueError, match="labels must be"):
        semantic_histogram_loss(x, y, labels[:, :4])
    with pytest.raises(ValueError, match=">= 0"):
        semantic_histogram_loss(x, y, labels - 1)
    with pytest.raises(ValueError, match="both be"):
        semantic_histogram_loss(x, y[:, :, :4], labels)
    with pytest.raises(ValueError, match="slope"):
        SemanticHistogramLoss(slope=0)


def test_compact_labels_and_largest_regions_are_per_image_and_distinct():
    labels = torch.tensor([[[5, 5, 5, 2]], [[2, 7, 7, 7]]])
    ids, counts = compact_labels(labels)
    assert ids.tolist() == [[[1, 1, 1, 0]], [[0, 1, 1, 1]]] and counts.tolist() == [[1, 3], [1, 3]]
    masks, areas = largest_region_masks(labels, 2)
    assert areas.tolist() == [[3.0, 1.0], [3.0, 1.0]]
    assert masks[0, 0, 0].tolist() == [1, 1, 1, 0] and masks[0, 1, 0].tolist() == [0, 0, 0, 1]
    assert bool((masks.sum(dim=1) <= 1).all())  # never one region twice
    # an image with fewer regions than asked gets empty masks in the remaining places
    masks, areas = largest_region_masks(torch.tensor([[[1, 1]], [[0, 3]]]), 2)
    assert areas.tolist() == [[2.0, 0.0], [1.0, 1.0]] and masks[0, 1].sum() == 0
