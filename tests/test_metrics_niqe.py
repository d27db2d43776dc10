"""NIQE: calibration against the MATLAB release, the MATLAB imresize port, AGGD fit, edge cases."""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lowlight_cli.errors import MetricError
from lowlight_cli.metrics import NIQE, MetricWarning, create_metric, niqe
from lowlight_cli.metrics.imresize import cubic_kernel, imresize_bicubic, resize_contributions
from lowlight_cli.metrics.niqe import (
    _ALPHA_GRID,
    _gamma_tables,
    _nearest_alpha_index,
    fit_aggd,
    local_residual,
    mscn,
    niqe_features,
    pristine_model,
)

BABOON_MATLAB_NIQE = (
    5.72957338  # MATLAB R2021a, original LIVE release, BT.601 Y (calibration README)
)
BABOON_TOLERANCE = 1e-3
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "lowlight_cli" / "metrics" / "data"


def shared_dir() -> Path:
    """Shared fixtures: $LOWLIGHT_SHARED, else the ``shared`` folder beside the repository."""
    return Path(os.environ.get("LOWLIGHT_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"could not read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def baboon() -> np.ndarray:
    path = shared_dir() / "data" / "calibration" / "baboon.png"
    if not path.is_file():
        pytest.skip(
            f"calibration image not found at {path} (set LOWLIGHT_SHARED to the shared folder)"
        )
    return read_rgb(path)


NATURAL_IMAGES = {
    name: getattr(skimage.data, name)() for name in ("astronaut", "coffee", "chelsea")
}


# --- calibration and pristine model -----------------------------------------------------------


def test_baboon_matches_published_matlab_niqe(baboon: np.ndarray) -> None:
    assert niqe(baboon, space="y") == pytest.approx(BABOON_MATLAB_NIQE, abs=BABOON_TOLERANCE)


def test_module_scores_tensors_like_the_function(baboon: np.ndarray) -> None:
    images = torch.from_numpy(np.stack([baboon, baboon[::-1].copy()]) / 255.0).permute(0, 3, 1, 2)
    scores = NIQE(space="y")(images.float())
    assert scores.dtype == torch.float64 and scores.shape == (2,)
    assert float(scores[0]) == pytest.approx(niqe(baboon), abs=1e-9)
    assert float(scores[1]) == pytest.approx(niqe(baboon[::-1]), abs=1e-9)
    gray = NIQE(space="gray")(images[:1])
    assert float(gray[0]) == pytest.approx(niqe(baboon, space="gray"), abs=1e-9)
    assert float(gray[0]) != pytest.approx(float(scores[0]), abs=1e-4)  # the option is honoured


def test_pristine_model_is_the_attributed_live_release() -> None:
    npz = PACKAGE_DATA / "niqe_pris_params.npz"
    digest = hashlib.sha256(npz.read_bytes()).hexdigest()
    assert digest == "2a7c182a68c9e7f1b2e2e5ec723279d6f65d912b6fcaf37eb2bf03d7367c4296"
    mu, cov = pristine_model()
    assert mu.shape == (36,) and cov.shape == (36, 36)
    assert mu.sum() == pytest.approx(17.3287655282, abs=1e-9)
    assert cov.sum() == pytest.approx(13.2768073474, abs=1e-9)
    notice = (PACKAGE_DATA / "NOTICE.md").read_text(encoding="utf-8")
    assert "University of Texas at Austin" in notice and "Mittal" in notice


# --- edge cases ---------------------------------------------------------------------------------


@settings(max_examples=8, deadline=None)
@given(
    value=st.floats(0, 255),
    height=st.integers(96, 220),
    width=st.integers(96, 220),
    rgb=st.booleans(),
)
def test_constant_images_give_nan_with_a_warning(
    value: float, height: int, width: int, rgb: bool
) -> None:
    image = np.full((height, width, 3) if rgb else (height, width), value)
    with pytest.warns(MetricWarning, match="constant or black"):
        assert np.isnan(niqe(image))


def test_black_batch_gives_nan_without_crashing() -> None:
    with pytest.warns(MetricWarning):
        scores = NIQE()(torch.zeros(2, 3, 100, 120))
    assert torch.isnan(scores).all()


@pytest.mark.parametrize("shape", [(95, 200, 3), (200, 40, 3), (50, 50)])
def test_images_under_96_px_raise(shape: tuple[int, ...]) -> None:
    with pytest.raises(MetricError, match="at least 96x96"):
        niqe(np.random.default_rng(0).uniform(0, 255, shape))


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (np.zeros((100, 100, 4)), {}, "expected an"),
        (np.full((100, 100), np.nan), {}, "NaN or infinite"),
        (np.zeros((100, 100, 3)), {"space": "lab"}, "unknown space"),
    ],
)
def test_bad_input_raises_clearly(image: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(MetricError, match=message):
        niqe(image, **kwargs)


def test_16_bit_image_scores_like_its_8_bit_original() -> None:
    image = NATURAL_IMAGES["coffee"]
    sixteen = image.astype(np.uint16) * 257  # 0..65535, the same image
    assert niqe(sixteen) == pytest.approx(niqe(image), abs=1e-12)  # was scored on 0..65535 (13.05 vs 10.77)
    assert niqe(sixteen, space="gray") == pytest.approx(niqe(image, space="gray"), abs=1e-12)


def test_unit_range_float_image_is_refused_unless_data_range_says_so() -> None:
    image = NATURAL_IMAGES["coffee"]
    unit = image / 255.0
    # scored as 0..255 it was nearly black: NaN with a misleading "constant or black image?" warning
    with pytest.raises(MetricError, match=r"within \[0, 1\]") as excinfo:
        niqe(unit)
    assert "data_range=1.0" in (excinfo.value.hint or "")
    assert niqe(unit, data_range=1.0) == pytest.approx(niqe(image), abs=1e-9)
    assert niqe(image.astype(np.float64), data_range=255) == niqe(image)
    with pytest.raises(MetricError, match="data_range must be a positive number"):
        niqe(image, data_range=0)


def test_module_refuses_images_outside_0_1() -> None:
    images = torch.rand(1, 3, 100, 100, generator=torch.Generator().manual_seed(0))
    with pytest.raises(MetricError, match=r"outside \[0, data_range\] = \[0, 1\]") as excinfo:
        NIQE()(images * 255)
    assert "data_range=255" in (excinfo.value.hint or "")  # the hint's advice is an option NIQE() has


def test_module_takes_data_range_like_psnr(baboon: np.ndarray) -> None:
    images = torch.from_numpy(baboon).permute(2, 0, 1)[None].double()  # 0..255
    scored = NIQE(data_range=255)(images)
    assert float(scored[0]) == pytest.approx(float(NIQE()(images / 255)[0]), abs=1e-9)
    assert float(create_metric("niqe", data_range=255)(images)[0]) == float(scored[0])
    with pytest.raises(MetricError, match="data_range must be a positive number"):
        NIQE(data_range=0)


@pytest.mark.parametrize("offset", [-1000.0, 300.0])
def test_function_refuses_values_off_its_scale(offset: float) -> None:
    image = NATURAL_IMAGES["coffee"].astype(np.float64) + offset  # scored as it was: 33.7 for the -1000 case
    with pytest.raises(MetricError, match=r"outside \[0, 255\]"):
        niqe(image)
    with pytest.raises(MetricError, match=r"outside \[0, 65535\]"):
        niqe(np.full((100, 100), 70000.0), data_range=65535)


def test_single_block_warns_that_the_score_is_unreliable() -> None:
    image = NATURAL_IMAGES["astronaut"][100:196, 200:296]
    with pytest.warns(MetricWarning, match="only one block"):
        assert np.isfinite(niqe(image))


@settings(max_examples=10, deadline=None)
@given(
    name=st.sampled_from(sorted(NATURAL_IMAGES)),
    size=st.tuples(st.integers(192, 300), st.integers(192, 300)),
    corner=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    space=st.sampled_from(["y", "gray"]),
)
def test_natural_crops_score_finite_and_plausible(
    name: str, size: tuple[int, int], corner: tuple[float, float], space: str
) -> None:
    image = NATURAL_IMAGES[name]
    height, width = min(size[0], image.shape[0]), min(size[1], image.shape[1])
    top = int(corner[0] * (image.shape[0] - height))
    left = int(corner[1] * (image.shape[1] - width))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # natural crops must not hit the NaN path
        score = niqe(image[top : top + height, left : left + width], space=space)
    assert np.isfinite(score) and 0 < score < 100


def test_noise_scores_worse_than_a_natural_image() -> None:
    natural = NATURAL_IMAGES["astronaut"]
    noise = np.random.default_rng(0).uniform(0, 255, natural.shape)
    assert niqe(noise) > niqe(natural) + 5


# --- flat regions (the numerical trap of the spec) -----------------------------------------------


@pytest.fixture(scope="module")
def flat_image() -> np.ndarray:
    """Camera with a constant dark square and a clipped bright square, as in low-light images; at
    0.6 of its levels, so that the offsets below keep it on NIQE's 0..255 scale."""
    image = skimage.data.camera().astype(np.float64) * 0.6
    image[:250, :250] = 37.0
    image[300:, 300:] = 153.0
    return image


def test_mscn_is_exactly_zero_inside_flat_regions(flat_image: np.ndarray) -> None:
    # 3 px from an edge the 7x7 window sees only the constant value.
    assert np.count_nonzero(local_residual(flat_image)[:247, :247]) == 0
    assert np.count_nonzero(mscn(flat_image + 0.3)[303:, 303:]) == 0
    assert np.count_nonzero(mscn(flat_image)[250:300, :]) > 0  # textured rows are untouched


@pytest.mark.parametrize("offset", [1e-3, 0.3, 100.0])
def test_flat_regions_do_not_move_the_score(flat_image: np.ndarray, offset: float) -> None:
    # Adding a constant changes nothing mathematically; with +-1e-14 residual noise in the flat
    # squares the score of this image moves by up to 10%, with exact zeros by ~1e-12.
    assert niqe(flat_image + offset) == pytest.approx(niqe(flat_image), abs=1e-8)


def test_local_residual_is_image_minus_gaussian_mean() -> None:
    image = np.random.default_rng(0).uniform(0, 255, (40, 30))
    x = np.arange(-3, 4)
    window = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()
    padded = np.pad(image, 3, mode="edge")  # MATLAB imfilter 'replicate'
    mean = sum(window[i, j] * padded[i : i + 40, j : j + 30] for i in range(7) for j in range(7))
    np.testing.assert_allclose(local_residual(image), image - mean, atol=1e-10, rtol=0)


# --- AGGD fit -----------------------------------------------------------------------------------


def test_nearest_alpha_equals_dense_argmin_like_matlab_min() -> None:
    r = _gamma_tables()[3]
    assert np.all(np.diff(r) > 0), "r(alpha) must increase strictly for the binary search"
    rng = np.random.default_rng(0)
    targets = np.concatenate(
        [rng.uniform(0, 1, 2000), r[rng.integers(0, r.size, 50)], [-1.0, 2.0, np.nan]]
    )
    with np.errstate(invalid="ignore"):
        dense = np.argmin((r[None, :] - targets[:, None]) ** 2, axis=1)  # NaN row -> 0, as MATLAB
    np.testing.assert_array_equal(_nearest_alpha_index(targets), dense)


@pytest.mark.parametrize(("sampler", "alpha"), [("standard_normal", 2.0), ("laplace", 1.0)])
def test_aggd_fit_recovers_known_shapes(sampler: str, alpha: float) -> None:
    samples = getattr(np.random.default_rng(0), sampler)(size=(3, 200_000))
    fitted, beta_left, beta_right, mean = fit_aggd(samples)
    np.testing.assert_allclose(fitted, alpha, atol=0.05)
    np.testing.assert_allclose(beta_left / beta_right, 1.0, atol=0.02)
    np.testing.assert_allclose(mean, 0.0, atol=0.02)
    assert _ALPHA_GRID[0] == 0.2 and _ALPHA_GRID[-1] == 10.0 and _ALPHA_GRID.size == 9801


def test_aggd_one_sided_samples_give_nan_scales_and_first_grid_alpha() -> None:
    alpha, beta_left, beta_right, _ = fit_aggd(
        np.abs(np.random.default_rng(0).normal(size=(1, 500)))
    )
    assert alpha[0] == 0.2 and np.isnan(beta_left[0]) and np.isfinite(beta_right[0])


def test_features_have_36_columns_per_whole_block() -> None:
    features = niqe_features(NATURAL_IMAGES["coffee"])  # 400 x 600 -> 4 x 6 blocks
    assert features.shape == (24, 36)
    assert np.isfinite(features).all()


# --- MATLAB imresize ----------------------------------------------------------------------------

# MATLAB's antialiased bicubic at scale 0.5: cubic(d/2)/2 at d = +-0.5, 1.5, 2.5, 3.5, which sum to
# one: hand values of the a = -0.5 kernel at 0.25, 0.75, 1.25, 1.75, halved.
_HALF_TAPS = [-0.01171875, -0.03515625, 0.11328125, 0.43359375]
HALF_SCALE_TAPS = np.array(_HALF_TAPS + _HALF_TAPS[::-1])


def test_cubic_kernel_known_values() -> None:
    x = np.array([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5])
    expected = [1.0, 0.8671875, 0.2265625, 0.0, -0.0703125, -0.0234375, 0.0, 0.0]
    np.testing.assert_array_equal(cubic_kernel(x), expected)


def test_half_scale_contributions_are_matlabs_eight_taps() -> None:
    weights, indices = resize_contributions(20, 10, 0.5)
    assert weights.shape == (10, 8)
    np.testing.assert_allclose(weights, np.tile(HALF_SCALE_TAPS, (10, 1)), atol=1e-15, rtol=0)
    assert indices[4].tolist() == list(
        range(5, 13)
    )  # output 5 (1-based) sits at input 9.5 (1-based)
    assert indices[0].tolist() == [2, 1, 0, 0, 1, 2, 3, 4]  # symmetric border, edge repeated
    assert indices[-1].tolist() == [15, 16, 17, 18, 19, 19, 18, 17]


def test_imresize_ramp_matches_hand_computed_matlab_values() -> None:
    ramp = np.tile(np.arange(1.0, 9.0), (4, 1))  # 4 rows of 1..8
    out = imresize_bicubic(ramp, 0.5)
    assert out.shape == (2, 4)
    # By hand from HALF_SCALE_TAPS: output 1 reads [3,2,1,1,2,3,4,5] (mirrored border), output 2
    # reads [1,1,2,...,7], hence 3.5 - 0.01171875; the right side mirrors that. Rows are constant.
    np.testing.assert_allclose(
        out[0], [1.44921875, 3.48828125, 5.51171875, 7.55078125], atol=1e-12, rtol=0
    )
    np.testing.assert_allclose(out[1], out[0], atol=0, rtol=0)


@settings(max_examples=20, deadline=None)
@given(
    height=st.integers(1, 60),
    width=st.integers(1, 60),
    value=st.floats(-1e3, 1e3),
    scale=st.sampled_from([0.5, 0.25, 0.75, 2.0]),
)
def test_imresize_keeps_constants_and_uses_ceil_sizes(
    height: int, width: int, value: float, scale: float
) -> None:
    out = imresize_bicubic(np.full((height, width), value), scale)
    assert out.shape == (int(np.ceil(height * scale)), int(np.ceil(width * scale)))
    np.testing.assert_allclose(out, value, atol=1e-12 * max(1.0, abs(value)), rtol=0)


def test_imresize_keeps_a_2d_linear_ramp_linear_in_the_interior() -> None:
    rows, cols = np.mgrid[0:64, 0:48].astype(np.float64)
    out = imresize_bicubic(3 * rows - 2 * cols + 5, 0.5)
    i, j = np.mgrid[0:32, 0:24].astype(np.float64)
    expected = (
        3 * (2 * i + 0.5) - 2 * (2 * j + 0.5) + 5
    )  # output i maps to input 2i + 0.5 (0-based)
    np.testing.assert_allclose(out[2:-2, 2:-2], expected[2:-2, 2:-2], atol=1e-10, rtol=0)


# --- speed ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_twelve_megapixel_image_scores_within_ten_seconds() -> None:
    rng = np.random.default_rng(0)
    small = NATURAL_IMAGES["astronaut"].astype(np.float32)
    image = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_CUBIC)
    image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255)
    start = time.process_time()
    score = niqe(image)
    elapsed = time.process_time() - start
    assert np.isfinite(score)
    assert elapsed < 10.0, f"NIQE of 12 MP took {elapsed:.1f} s of CPU time"
