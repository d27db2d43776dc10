"""PIE's Bag of Curves negatives: darker or brighter as labelled, seeded, hue-keeping value curves."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from lowlight_cli.data.synthetic import SAMPLE_PHOTOS, sample_photo
from lowlight_cli.losses.curves import CURVES, GAMMA_RANGE, bag_of_curves, gamma_curve, log_curve, tone_curve


@pytest.fixture(scope="module")
def positives() -> torch.Tensor:
    """Normal-light photos (scikit-image samples), 48x64, repeated to a batch of 24."""
    pytest.importorskip("skimage")
    photos = [cv2.resize(sample_photo(name), (64, 48), interpolation=cv2.INTER_AREA) for name in SAMPLE_PHOTOS]
    batch = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255.0
    return batch.repeat(5, 1, 1, 1)[:24]


def hue_saturation(images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """OpenCV's HSV of float RGB images (hue in degrees), an implementation independent of ours."""
    hsv = np.stack([cv2.cvtColor(np.ascontiguousarray(i.permute(1, 2, 0).numpy()), cv2.COLOR_RGB2HSV) for i in images])
    return hsv[..., 0], hsv[..., 1], hsv[..., 2]


def test_dark_negatives_are_darker_and_bright_ones_brighter(positives):
    negatives = bag_of_curves(positives, torch.Generator().manual_seed(0))
    assert negatives.images.shape == positives.shape and negatives.images.dtype == positives.dtype
    assert negatives.images.min() >= 0 and negatives.images.max() <= 1
    before, after = positives.mean(dim=(1, 2, 3)), negatives.images.mean(dim=(1, 2, 3))
    assert (after[negatives.dark] < 0.6 * before[negatives.dark]).all()
    assert (after[~negatives.dark] > before[~negatives.dark] + 0.05).all()
    assert set(negatives.curve.tolist()) == {0, 1, 2}  # every curve of the bag is used


@pytest.mark.parametrize("batch", [8, 7, 1])
def test_half_dark_half_bright(positives, batch):
    dark = bag_of_curves(positives[:batch], torch.Generator().manual_seed(batch)).dark
    assert int(dark.sum()) in {batch // 2, (batch + 1) // 2}


def test_seeded_generator_gives_the_same_negatives(positives):
    a = bag_of_curves(positives, torch.Generator().manual_seed(3))
    b = bag_of_curves(positives, torch.Generator().manual_seed(3))
    c = bag_of_curves(positives, torch.Generator().manual_seed(4))
    assert torch.equal(a.images, b.images) and torch.equal(a.curve, b.curve) and torch.equal(a.dark, b.dark)
    assert torch.equal(a.parameter, b.parameter)
    assert not (torch.equal(a.curve, c.curve) and torch.equal(a.dark, c.dark) and torch.equal(a.parameter, c.parameter))


def test_parameters_follow_the_paper(positives):
    negatives = bag_of_curves(positives.repeat(3, 1, 1, 1), torch.Generator().manual_seed(5))
    for index, name in enumerate(CURVES):
        for dark in (True, False):
            chosen = negatives.parameter[(negatives.curve == index) & (negatives.dark == dark)]
            assert chosen.numel() > 0, (name, dark)
            if name == "tone":
                assert (chosen == (6.0 if dark else 0.1)).all()
            elif name == "log":
                assert (chosen == (10.0 if dark else 40.0)).all()
            else:
                low, high = GAMMA_RANGE["dark" if dark else "bright"]
                assert ((chosen >= low) & (chosen <= high)).all()


@pytest.mark.parametrize(("curve", "parameter"), [(tone_curve, 6.0), (tone_curve, 0.1), (log_curve, 10.0), (log_curve, 40.0)])
def test_value_curves_keep_hue_and_saturation(positives, curve, parameter):
    images = positives[:5]
    out = curve(images, torch.full((5,), parameter))
    hue_in, sat_in, _ = hue_saturation(images)
    hue_out, sat_out, value_out = hue_saturation(out)
    coloured = (sat_in > 0.2) & (value_out > 0.05)  # hue is defined and not lost to 8-bit-like darkness
    assert coloured.mean() > 0.2
    difference = np.abs(hue_in - hue_out)[coloured]
    assert np.minimum(difference, 360 - difference).max() < 0.5
    assert np.abs(sat_in - sat_out)[coloured].max() < 1e-3


def test_curves_known_values():
    grey = torch.full((1, 3, 2, 2), 0.5)
    assert torch.allclose(tone_curve(grey, torch.tensor([6.0])), torch.full_like(grey, 0.5**6))
    assert torch.allclose(gamma_curve(grey, torch.tensor([2.0])), torch.full_like(grey, 0.25))
    white = torch.ones(1, 3, 2, 2)
    assert torch.allclose(log_curve(white, torch.tensor([10.0])), torch.full_like(white, 10 * np.log(256) / 255))
    assert torch.allclose(log_curve(white, torch.tensor([60.0])), white)  # clipped at 255
    black = torch.zeros(1, 3, 2, 2)
    for curve, p in ((tone_curve, 0.1), (log_curve, 40.0)):
        assert torch.equal(curve(black, torch.tensor([p])), black)


def test_rejects_non_rgb_batches():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        bag_of_curves(torch.rand(3, 8, 8))
