"""PSNR, SSIM, quantisation and the metric registry (NIQE is in test_metrics_niqe.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import skimage.data
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

from lowlight_cli.errors import ConfigError, MetricError, UnknownNameError
from lowlight_cli.metrics import (
    NIQE,
    PSNR,
    SSIM,
    MetricInfo,
    create_metric,
    list_metrics,
    metric_info,
    psnr,
    quantize,
    ssim,
)
from lowlight_cli.metrics.color import gray_matlab, luma_bt601

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"),
        ],
    ),
]
# float32 SSIM on 0..255 loses ~1e-4 to cancellation in E[x^2] - E[x]^2; float64 is exact to ~1e-12.
SSIM_ATOL = {torch.float32: 2e-4, torch.float64: 1e-10}


def to_tensor(image: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(H, W, 3) values on 0..255 -> (1, 3, H, W) in [0, 1]."""
    return (
        torch.from_numpy(np.asarray(image, dtype=np.float64) / 255.0)
        .permute(2, 0, 1)[None]
        .to(dtype)
    )


def skimage_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """The spec's independent reference on 0..255 values, channels last."""
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1 if a.ndim == 3 else None,
        )
    )


@pytest.fixture(scope="module")
def astronaut_pair() -> tuple[np.ndarray, np.ndarray]:
    """A real image and a darkened, noisy, 8-bit version of it."""
    clean = skimage.data.astronaut()[100:356, 100:356].astype(np.float64)
    rng = np.random.default_rng(1)
    dark = np.clip(np.round(0.3 * clean + rng.normal(0, 4, clean.shape)), 0, 255)
    return clean, dark


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_metrics_with_their_direction() -> None:
    assert {"psnr", "ssim", "niqe"} <= set(list_metrics())
    assert metric_info("psnr") == MetricInfo(
        name="psnr",
        full_reference=True,
        higher_is_better=True,
        input_range="0..1 float RGB, scored on the 0..255 scale",
        description=metric_info("psnr").description,
        paper=metric_info("psnr").paper,
    )
    assert metric_info("ssim").full_reference and metric_info("ssim").higher_is_better
    assert not metric_info("niqe").full_reference and not metric_info("niqe").higher_is_better
    assert "Mittal" in metric_info("niqe").paper


def test_create_metric_builds_configured_modules() -> None:
    assert isinstance(create_metric("psnr"), PSNR)
    metric = create_metric("ssim", space="y", window_size=7)
    assert isinstance(metric, SSIM) and metric.space == "y" and metric.window_size == 7
    assert isinstance(create_metric("niqe", space="gray"), NIQE)


def test_unknown_metric_suggests_close_names() -> None:
    with pytest.raises(UnknownNameError) as excinfo:
        create_metric("ssmi")
    assert "ssim" in (excinfo.value.hint or "")


def test_unknown_metric_option_names_the_metrics_options() -> None:
    with pytest.raises(ConfigError, match=r"'psnr' has no option 'data_rang' \(its options: data_range\)") as excinfo:
        create_metric("psnr", data_rang=255)
    assert excinfo.value.hint == "did you mean data_range?"
    with pytest.raises(ConfigError, match="window_size"):
        create_metric("ssim", window=7)
    with pytest.raises(MetricError, match="data_range must be a positive number"):
        create_metric("ssim", data_range=0)  # a value the option refuses, at construction


# --- quantize ---------------------------------------------------------------------------------


def test_quantize_rounds_to_8_bit_codes_and_clips() -> None:
    x = torch.tensor([-0.1, 0.0, 0.3, 0.5, 1.0, 1.3], dtype=torch.float64)
    codes = quantize(x) * 255
    assert torch.equal(
        codes, torch.tensor([0.0, 0.0, 76.0, 128.0, 255.0, 255.0], dtype=torch.float64)
    )
    assert torch.equal(quantize(quantize(x)), quantize(x))


def test_quantize_takes_numpy_arrays_and_refuses_integer_codes() -> None:
    x = np.array([[-0.1, 0.3], [0.5, 1.3]], dtype=np.float32)
    out = quantize(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_array_equal(out, quantize(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(quantize(x.T), quantize(x).T)  # any strides
    with pytest.raises(MetricError, match="float"):
        quantize(np.array([0, 128, 255], dtype=np.uint8))


def test_dark_16_bit_pair_scores_like_its_8_bit_rounding() -> None:
    rng = np.random.default_rng(3)
    a8 = rng.integers(0, 40, (1, 3, 64, 64)).astype(np.float64)
    b8 = np.clip(a8 + rng.integers(-12, 13, a8.shape), 0, 255)
    # 16-bit versions whose 8-bit rounding is exactly a8, b8: code * 257 plus noise under half a
    # step (its variance, 1/12 of a squared 8-bit step per image, is small next to the MSE of ~50).
    a16 = a8 * 257 + rng.integers(-127, 128, a8.shape) * (a8 > 0)
    b16 = b8 * 257 + rng.integers(-127, 128, b8.shape) * (b8 > 0)
    a8t, b8t = torch.from_numpy(a8 / 255), torch.from_numpy(b8 / 255)
    a16t, b16t = torch.from_numpy(a16 / 65535), torch.from_numpy(b16 / 65535)
    assert torch.equal(quantize(a16t), a8t) and torch.equal(quantize(b16t), b8t)
    assert float(psnr(a16t, b16t)) == pytest.approx(float(psnr(a8t, b8t)), abs=0.05)
    assert float(ssim(a16t, b16t)) == pytest.approx(float(ssim(a8t, b8t)), abs=1e-3)


# --- PSNR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_psnr_known_value_and_identical_images(device: str, dtype: torch.dtype) -> None:
    target = torch.rand(2, 3, 16, 16, dtype=dtype, device=device) * 0.9
    # One 8-bit step everywhere: 10 log10(255^2 / 1) = 20 log10(255).
    assert psnr(target + 1 / 255, target).cpu().double() == pytest.approx(
        [48.1308036] * 2, abs=1e-3
    )
    assert torch.isinf(psnr(target, target)).all()
    assert psnr(target, target).dtype == dtype


def test_psnr_mse_over_all_pixels_and_channels() -> None:
    target = torch.zeros(1, 3, 4, 4, dtype=torch.float64)
    pred = target.clone()
    pred[0, 1, 0, 0] = 48 / 255  # squared error 48^2 in one of 48 values -> MSE 48 on 0..255
    assert float(psnr(pred, target)) == pytest.approx(10 * math.log10(255**2 / 48), abs=1e-12)
    assert float(psnr(pred * 255, target * 255, data_range=255.0)) == pytest.approx(
        float(psnr(pred, target))
    )


def test_psnr_module_matches_function_and_rejects_mismatched_shapes() -> None:
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    assert torch.equal(PSNR()(a, b), psnr(a, b))
    with pytest.raises(MetricError, match="shapes differ"):
        psnr(a, b[..., :7])


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_psnr_is_symmetric(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    b = torch.rand(1, 3, 8, 8, generator=g, dtype=torch.float64)
    assert torch.equal(psnr(a, b), psnr(b, a))


# --- input checks shared by PSNR and SSIM -----------------------------------------------------


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_values_outside_data_range_are_refused_naming_it(metric, astronaut_pair) -> None:
    clean, dark = astronaut_pair
    a, b = to_tensor(dark), to_tensor(clean)
    # the 0..255 images with the default data_range=1 used to score a plausible, wrong value
    with pytest.raises(MetricError, match=r"outside \[0, data_range\] = \[0, 1\]") as excinfo:
        metric(a * 255, b * 255)
    assert "data_range=255" in (excinfo.value.hint or "")
    torch.testing.assert_close(metric(a * 255, b * 255, data_range=255), metric(a, b))
    with pytest.raises(MetricError, match="reference values span -"):
        metric(a, b - 0.01)
    # rounding-size excursions (0.1% of the range) are scored as they are
    assert torch.isfinite(metric(a * (1 + 5e-4), b - 5e-4)).all()
    # a prediction being trained (the metric as a loss, e.g. 1 - SSIM) may stray outside
    assert metric((a * 1.2).requires_grad_(), b).requires_grad


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("data_range", [0, -1.0, float("nan"), float("inf"), "255", True])
def test_data_range_must_be_a_positive_number(metric, data_range) -> None:
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(MetricError, match="data_range must be a positive number"):
        metric(x, x, data_range=data_range)


def test_metric_modules_refuse_a_bad_data_range_when_built() -> None:
    for module in (PSNR, SSIM):
        with pytest.raises(MetricError, match="data_range must be a positive number"):
            module(data_range=0)


@pytest.mark.parametrize(
    "score", [psnr, ssim, lambda a, b: PSNR()(a, b), lambda a, b: SSIM()(a, b), lambda a, b: NIQE()(a)]
)
def test_numpy_input_gets_a_clear_error_saying_how_to_convert(score) -> None:
    image = np.random.default_rng(0).random((1, 3, 100, 100))
    with pytest.raises(MetricError, match="torch tensors, got a numpy.ndarray") as excinfo:
        score(image, image)
    assert "torch.from_numpy" in (excinfo.value.hint or "")


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_mixed_float_dtypes_are_promoted(metric) -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 3, 24, 24, generator=g)
    b = (a + 0.1 * torch.rand(2, 3, 24, 24, generator=g)).clamp(0, 1).double()
    score = metric(a, b)
    assert score.dtype == torch.float64
    torch.testing.assert_close(score, metric(a.double(), b), atol=0, rtol=0)
    torch.testing.assert_close(metric(b, a), metric(b, a.double()), atol=0, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_are_scored_in_float32(dtype: torch.dtype, astronaut_pair) -> None:
    clean, dark = astronaut_pair
    a, b = to_tensor(dark), to_tensor(clean)
    half_a, half_b = a.to(dtype), b.to(dtype)
    # 0..255 moments overflow float16 (SSIM was NaN); a half-step error overflowed 1 / MSE (PSNR inf)
    score = ssim(half_a, half_b)
    assert score.dtype == torch.float32 and psnr(half_a, half_b).dtype == torch.float32  # not rounded back to half
    assert float(score) == pytest.approx(float(ssim(half_a.double(), half_b.double())), abs=1e-2)
    near = (half_b.float() + 0.5 / 255).clamp(0, 1).to(dtype)
    assert float(psnr(near, half_b)) == pytest.approx(float(psnr(near.double(), half_b.double())), abs=0.5)


# --- SSIM -------------------------------------------------------------------------------------


def test_ssim_matches_skimage_on_random_images() -> None:
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.uniform(0, 255, (40, 53, 3))
        b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255)
        ours = float(ssim(to_tensor(a), to_tensor(b)))
        assert ours == pytest.approx(skimage_ssim(a, b), abs=1e-10)


def test_ssim_matches_skimage_on_a_real_dark_noisy_image(
    astronaut_pair: tuple[np.ndarray, np.ndarray],
) -> None:
    clean, dark = astronaut_pair
    ours = float(ssim(to_tensor(dark), to_tensor(clean)))
    assert ours == pytest.approx(skimage_ssim(dark, clean), abs=1e-10)
    assert 0.05 < ours < 0.9  # a real, imperfect score, not a degenerate 0 or 1


@pytest.mark.parametrize("shape", [(2, 3, 11, 11), (1, 3, 18, 30), (2, 3, 37, 23), (1, 3, 64, 41)])
@pytest.mark.parametrize("space,window", [("rgb", 11), ("y", 7)])
def test_ssim_banded_cpu_path_equals_the_convolution(shape: tuple[int, ...], space: str, window: int) -> None:
    """float64 on the CPU is scored band by band (``lowlight evaluate``'s path); with gradients it
    takes the convolution: the two agree to rounding at heights below, at and across the band."""
    gen = torch.Generator().manual_seed(sum(shape))
    a = torch.rand(shape, generator=gen, dtype=torch.float64)
    b = (a + 0.2 * torch.randn(shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    banded = ssim(a, b, space=space, window_size=window)
    convolved = ssim(a.clone().requires_grad_(), b, space=space, window_size=window).detach()
    assert banded.shape == (shape[0],)
    assert torch.allclose(banded, convolved, rtol=0, atol=1e-12)
    assert (banded < 0.99).all()  # a real score, not the identity's 1


@pytest.mark.parametrize("space", ["y", "gray"])
def test_ssim_single_channel_spaces_match_skimage(
    space: str, astronaut_pair: tuple[np.ndarray, np.ndarray]
) -> None:
    clean, dark = astronaut_pair
    convert = luma_bt601 if space == "y" else gray_matlab
    ref = skimage_ssim(convert(*np.moveaxis(dark, -1, 0)), convert(*np.moveaxis(clean, -1, 0)))
    assert float(ssim(to_tensor(dark), to_tensor(clean), space=space)) == pytest.approx(
        ref, abs=1e-10
    )


def test_ssim_averages_the_valid_region_like_skimage_crop(
    astronaut_pair: tuple[np.ndarray, np.ndarray],
) -> None:
    clean, dark = astronaut_pair
    _, full_map = structural_similarity(
        dark,
        clean,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
        channel_axis=-1,
        full=True,
    )
    ours = float(ssim(to_tensor(dark), to_tensor(clean)))
    assert ours == pytest.approx(float(full_map[5:-5, 5:-5].mean()), abs=1e-10)
    # A different border would be visibly different on this image, so the check above has teeth.
    assert abs(ours - float(full_map[4:-4, 4:-4].mean())) > 1e-5
    assert abs(ours - float(full_map.mean())) > 1e-4


def test_ssim_y_space_uses_bt601_luma_on_0_255() -> None:
    white = torch.ones(1, 3, 1, 1, dtype=torch.float64) * 255
    assert float(luma_bt601(white[:, 0], white[:, 1], white[:, 2])) == pytest.approx(
        235.0, abs=1e-12
    )
    black = torch.zeros(1, 3, 11, 11, dtype=torch.float64)
    # Black luma is 16, not 0: SSIM(black, 1/255 gray) sees means 16 and 17.
    c1 = (0.01 * 255) ** 2
    y1 = 16 + (65.481 + 128.553 + 24.966) / 255
    expected = (2 * 16 * y1 + c1) / (16**2 + y1**2 + c1)
    assert float(ssim(black, black + 1 / 255, space="y")) == pytest.approx(expected, abs=1e-12)


@pytest.fixture
def single_thread() -> Iterator[None]:
    """Run tiny-tensor tests on one thread: on shared busy cores a thread pool only waits."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("single_thread")
@pytest.mark.parametrize("space", ["rgb", "y", "gray"])
def test_ssim_gradcheck(space: str) -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda p: ssim(p, target, window_size=11, space=space), (pred,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_dtypes_agree_and_module_matches_function(device: str, dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(1)
    a64 = torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)
    b64 = (a64 + 0.1 * torch.rand(2, 3, 24, 24, generator=g, dtype=torch.float64)).clamp(0, 1)
    a, b = a64.to(device, dtype), b64.to(device, dtype)
    score = ssim(a, b)
    assert score.dtype == dtype and score.device.type == device and score.shape == (2,)
    torch.testing.assert_close(score.cpu().double(), ssim(a64, b64), atol=SSIM_ATOL[dtype], rtol=0)
    torch.testing.assert_close(SSIM(space="gray")(a, b), ssim(a, b, space="gray"), atol=0, rtol=0)


def test_ssim_data_range_scales_inputs() -> None:
    a, b = (
        torch.rand(1, 3, 16, 16, dtype=torch.float64),
        torch.rand(1, 3, 16, 16, dtype=torch.float64),
    )
    for space in ("rgb", "y"):
        torch.testing.assert_close(
            ssim(a * 255, b * 255, data_range=255.0, space=space), ssim(a, b, space=space)
        )


@pytest.mark.parametrize(
    ("kwargs", "shape", "message"),
    [
        ({}, (1, 3, 10, 32), "smaller than the 11x11 window"),
        ({"window_size": 8}, (1, 3, 16, 16), "odd"),
        ({"space": "lab"}, (1, 3, 16, 16), "unknown space"),
        ({"space": "y"}, (1, 2, 16, 16), "3-channel"),  # one channel is a gray image, scored as it is
        ({}, (3, 16, 16), r"\(B, C, H, W\)"),
    ],
)
def test_ssim_rejects_bad_input_clearly(kwargs: dict, shape: tuple[int, ...], message: str) -> None:
    x = torch.rand(shape)
    with pytest.raises(MetricError, match=message):
        ssim(x, x, **kwargs)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["rgb", "y", "gray"]))
def test_ssim_is_symmetric_bounded_and_one_on_identity(seed: int, space: str) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(1, 3, 16, 16, generator=g, dtype=torch.float64)
    b = (
        a * torch.rand(1, generator=g, dtype=torch.float64)
        + 0.2 * torch.rand(a.shape, generator=g, dtype=torch.float64)
    ).clamp(0, 1)
    torch.testing.assert_close(ssim(a, b, space=space), ssim(b, a, space=space), atol=1e-14, rtol=0)
    assert float(ssim(a, b, space=space)) <= 1.0 + 1e-12
    torch.testing.assert_close(
        ssim(a, a, space=space), torch.ones(1, dtype=torch.float64), atol=1e-12, rtol=0
    )
