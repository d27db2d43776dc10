"""``--colour input``: the output keeps the input's colour at low resolution and the model's
brightness and detail (lowlight_cli.inference.colour), from the library, ``enhance``, ``evaluate``
and validation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.data.pairs import ImagePair
from lowlight_cli.errors import ConfigError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.inference import colour as colour_module
from lowlight_cli.inference.colour import CEILING, LUMA, keep_input_colour, thumbnail
from lowlight_cli.io import read_image

from .enhance_runs import enhance_each_mode
from .photos import dark_photo, save_photo

runner = CliRunner()


def _shares(rgb: np.ndarray) -> np.ndarray:
    mean = rgb.reshape(-1, 3).astype(np.float64).mean(0)
    return mean / mean.sum()


def _coloured(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth, strongly coloured float image in [0.05, 0.6]: an orange left half, a blue right half."""
    rng = np.random.default_rng(seed)
    rgb = np.empty((height, width, 3), np.float32)
    rgb[:, : width // 2] = (0.6, 0.3, 0.1)
    rgb[:, width // 2 :] = (0.1, 0.25, 0.55)
    return np.clip(rgb + rng.normal(0, 0.01, rgb.shape).astype(np.float32), 0.05, 0.6)


def _grey_brightened(low: np.ndarray, gain: float = 1.5) -> np.ndarray:
    """What a desaturating model does: the input's luma, brightened, in every channel."""
    return np.repeat(np.clip(low @ LUMA * gain, 0, 1)[..., None], 3, axis=2).astype(low.dtype)


def test_a_desaturated_output_gets_the_inputs_colour_and_keeps_its_brightness():
    low = _coloured()
    out = _grey_brightened(low)
    before_luma = float((out @ LUMA).mean())
    keep_input_colour(low, out, grid=8)
    for half in (np.s_[:, :28], np.s_[:, 36:]):  # away from the edge the 8-px grid blurs
        np.testing.assert_allclose(_shares(out[half]), _shares(low[half]), atol=0.01)
    assert float((out @ LUMA).mean()) == pytest.approx(before_luma, rel=0.02)


def test_grey_stays_grey_and_a_matching_output_is_left_alone():
    grey = np.repeat(np.linspace(0.1, 0.9, 40 * 50, dtype=np.float32).reshape(40, 50, 1), 3, axis=2)
    out = grey * 0.5
    keep_input_colour(grey, out)
    np.testing.assert_allclose(out, grey * 0.5, atol=1e-6)
    low = _coloured()
    same = np.clip(low * 1.4, 0, 1)  # already the input's colour: nothing to correct
    corrected = same.copy()
    keep_input_colour(low, corrected)
    np.testing.assert_allclose(corrected, same, atol=2e-3)


def test_the_correction_never_clips_what_the_model_left_unclipped():
    low = np.zeros((16, 16, 3), np.float32)
    low[...] = (0.5, 0.2, 0.05)  # saturated orange: red gets a large gain
    out = np.full_like(low, 0.7)  # a bright grey output: the full correction would take red to 1.28
    keep_input_colour(low, out)
    assert out.max() <= CEILING + 1e-6
    np.testing.assert_allclose(out[..., 0], CEILING, atol=1e-5)  # as much of the correction as fits
    assert out[..., 0].mean() > out[..., 2].mean() + 0.4  # about half of the colour is back
    hot = np.full_like(low, 0.99)  # near white, no channel is lifted past 254 (nor past the model's own, if higher)
    keep_input_colour(low, hot)
    assert hot.max() <= 254 / 255 + 1e-6
    white = np.ones_like(low)
    keep_input_colour(low, white)
    assert white.max() <= 1.0 and white[..., 0].min() == 1.0  # nothing above the model's white; a touch of colour comes back


def test_the_ceiling_fit_is_continuous_at_the_models_brightest_channel():
    """A pixel whose brightest channel is at the ceiling took none of a correction raising it by
    0.1% and all of one lowering it by 0.1% (fp32 and bf16 outputs 3 levels apart came out 58 apart)."""
    from lowlight_cli.inference.colour import _fit_under_ceiling

    model = np.array([[[190.0, 195.0, 250.5]]], np.float32)
    fitted = [_fit_under_ceiling(model.copy(), model * np.array([1.5, 0.8, g], np.float32), 250.0, 255.0)
              for g in (0.999, 1.0, 1.001)]
    assert max(np.abs(a - b).max() for a, b in zip(fitted, fitted[1:])) < 0.5
    assert all(f.max() <= 254.0 + 1e-4 for f in fitted)
    rng = np.random.default_rng(0)  # nearby model outputs give nearby results, over many pixels
    base = rng.uniform(200, 255, (64, 64, 3)).astype(np.float32)
    gain = rng.uniform(0.7, 1.4, (64, 64, 3)).astype(np.float32)
    nudged = np.clip(base + rng.uniform(-1, 1, base.shape).astype(np.float32), 0, 255)
    a = _fit_under_ceiling(base.copy(), base * gain, 250.0, 255.0)
    b = _fit_under_ceiling(nudged.copy(), nudged * gain, 250.0, 255.0)
    assert np.abs(a - b).max() < 12  # the old fit: jumps of tens of levels
    assert (a <= np.maximum(base.max(axis=2, keepdims=True), 254.0) + 1e-3).all()


def test_integer_images_float_images_and_band_size_agree(monkeypatch):
    low = _coloured(70, 90)
    out = _grey_brightened(low)
    as_float = out.copy()
    keep_input_colour(low, as_float)
    eight = np.rint(out * 255).astype(np.uint8)
    keep_input_colour(np.rint(low * 255).astype(np.uint8), eight)
    sixteen = np.rint(out * 65535).astype(np.uint16)
    keep_input_colour(np.rint(low * 65535).astype(np.uint16), sixteen)
    # 8-bit rounding of the inputs moves the dark cells' shares a little
    assert np.abs(eight / 255.0 - as_float).max() < 5 / 255 and np.abs(eight / 255.0 - as_float).mean() < 1 / 255
    assert np.abs(sixteen / 65535.0 - as_float).max() < 2e-3
    monkeypatch.setattr(colour_module, "BAND_ROWS", 7)  # bands of 7 rows: the same image
    banded = _grey_brightened(low)
    keep_input_colour(low, banded)
    np.testing.assert_array_equal(banded, as_float)


def test_thumbnails_average_and_refuse_bad_input():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 100:] = 255
    small = thumbnail(image, 4)
    assert small.shape == (2, 4, 3) and small.dtype == np.float32
    np.testing.assert_allclose(small[:, :2], 0)
    np.testing.assert_allclose(small[:, 2:], 1)
    dark = np.zeros((4, 4, 3), np.uint8)
    dark[:2, :, 0] = 1  # half the pixels at one level: the average is half a level, not rounded
    np.testing.assert_allclose(thumbnail(dark, 1)[0, 0, 0], 0.5 / 255, rtol=1e-2)  # uint8 rounding would give 0 or 1 level
    assert thumbnail(image[:2, :3], 64).shape == (2, 3, 3)  # never enlarged
    with pytest.raises(ValueError, match="one size"):
        keep_input_colour(image, image[:50])
    with pytest.raises(ValueError, match="grid"):
        keep_input_colour(image, image.copy(), grid=0)


class _Desaturating(torch.nn.Module):
    """A stand-in for a LOL-trained model: brightens and removes colour."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        luma = (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return (luma * 1.5).clamp(0, 1).repeat(1, 3, 1, 1)


def _enhancer(colour: str, tile: int = 0) -> Enhancer:
    from lowlight_cli.models import create_model

    model = create_model("gamma")  # the wrapper and its ModelInfo; its forward replaced below
    model.forward = _Desaturating().forward  # type: ignore[method-assign]
    return Enhancer(model, InferenceConfig(device="cpu", tile=tile, overlap=16, colour=colour))


def test_enhancer_keeps_the_input_colour_only_when_asked_on_both_paths():
    low = _coloured(90, 120)
    pixels = np.rint(low * 255).astype(np.uint8)
    plain = _enhancer("model").enhance_pixels(pixels)
    kept = _enhancer("input").enhance_pixels(pixels)
    assert np.ptp(_shares(plain)) < 0.01  # grey
    np.testing.assert_allclose(_shares(kept), _shares(pixels), atol=0.01)
    from_float = np.rint(_enhancer("input").enhance((pixels / 255.0).astype(np.float32)) * 255)
    # the integer path keeps the output at 16 bits for the colour step, the float path in float: one
    # rounding to 8 bits either way (they differed by up to 4 levels when the integer path corrected
    # the rounded output: lowlight evaluate then did not score what lowlight enhance saves)
    assert np.abs(from_float - kept).max() <= 1 and (from_float != kept).mean() < 0.005
    tiled = _enhancer("input", tile=64).enhance_pixels(pixels)  # the colour step runs on the whole output
    np.testing.assert_array_equal(tiled, kept)
    with pytest.raises(ConfigError, match="colour"):
        InferenceConfig(colour="vivid")
    grey_photo = _enhancer("input").enhance_pixels(pixels, gray=True)  # a grey photo stays grey
    assert np.array_equal(grey_photo[..., 0], grey_photo[..., 2])
    tensor = torch.from_numpy(low).permute(2, 0, 1)[None].requires_grad_(True)  # a tensor that tracks gradients works too
    assert _enhancer("input").enhance_tensor(tensor).shape == tensor.shape


def test_dark_inputs_give_the_same_colour_through_integer_and_float_pixels():
    """The photo's shadows average a few 8-bit levels: their thumbnails must not be rounded."""
    rng = np.random.default_rng(5)
    low = np.clip(rng.normal((6, 4, 3), 1.5, (120, 160, 3)), 0, 255).round().astype(np.uint8)  # levels ~1-10
    out = np.clip(low.astype(np.float32) @ LUMA * 12 / 255, 0, 1)[..., None].repeat(3, axis=2)
    as_float = out.copy()
    keep_input_colour(low.astype(np.float32) / 255, as_float)
    as_uint8 = np.rint(out * 255).astype(np.uint8)
    keep_input_colour(low, as_uint8)
    assert np.abs(as_uint8 / 255.0 - as_float).max() < 3 / 255


def test_validation_can_score_with_the_inputs_colour():
    from lowlight_cli.training.distributed import DistContext
    from lowlight_cli.training.validation import validate

    low = _coloured()
    high = np.clip(low * 1.5, 0, 1)  # the reference: the input brightened, colour and all
    pair = ImagePair("p", np.rint(low * 255).astype(np.uint8), np.rint(high * 255).astype(np.uint8))
    as_model = validate(_Desaturating(), [pair], torch.device("cpu"), DistContext(), multiple=1)
    as_input = validate(_Desaturating(), [pair], torch.device("cpu"), DistContext(), multiple=1, colour="input")
    assert as_input.psnr > as_model.psnr + 5


def test_cli_enhance_and_evaluate_take_colour(tmp_path):
    save_photo(tmp_path / "in" / "a.png", dark_photo(60, 80, seed=3))
    base = ["enhance", str(tmp_path / "in"), "--model", "gamma"]
    plain = runner.invoke(app, [*base, "-o", str(tmp_path / "plain")])
    kept = runner.invoke(app, [*base, "-o", str(tmp_path / "kept"), "--colour", "input", "--json"])
    assert plain.exit_code == 0 and kept.exit_code == 0, kept.output
    assert "the input's colour" in kept.output and "the input's colour" not in plain.output
    summary = json.loads(kept.stdout[kept.stdout.index("{"):])
    assert summary["colour"] == "input"
    a, b = read_image(tmp_path / "plain" / "a.png").rgb, read_image(tmp_path / "kept" / "a.png").rgb
    assert a.shape == b.shape and not np.array_equal(a, b)
    bad = runner.invoke(app, [*base, "-o", str(tmp_path / "bad"), "--colour", "vivid"])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()
    photo = dark_photo(64, 64, seed=4)
    save_photo(tmp_path / "data" / "low" / "b.png", photo)
    save_photo(tmp_path / "data" / "high" / "b.png", photo)
    scores = {}
    for colour in ("model", "input"):
        result = runner.invoke(app, ["evaluate", "--model", "gamma", "--data", str(tmp_path / "data"), "--metrics", "psnr",
                                     "--colour", colour, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout[result.stdout.index("{"):])
        assert report["inference"]["colour"] == colour
        scores[colour] = report["summary"]["psnr"]["mean"]
    assert scores["model"] != pytest.approx(scores["input"], abs=0.01)
    refused = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "data" / "low"), "--ref", str(tmp_path / "data" / "high"),
                                  "--metrics", "psnr", "--colour", "input"])
    assert refused.exit_code == 2 and "--colour applies" in refused.output


def test_enhance_keeps_a_photos_colour_by_default_with_the_photo_model_only(tmp_path):
    from lowlight_cli.models import MODELS

    outputs = enhance_each_mode(tmp_path, "colour", ("input", "model"))
    assert outputs["default"][1] == "input" and np.array_equal(outputs["default"][0], outputs["input"][0])
    assert outputs["model"][1] == "model" and not np.array_equal(outputs["model"][0], outputs["input"][0])
    assert outputs["crnet-s"][1] == "model"  # the others keep the model's colour unless told
    assert {n for n in MODELS.names() if MODELS.get(n).info.enhance_colour == "input"} == {"crnet-curve-dn"}


def test_bands_corrected_side_by_side_give_what_one_thread_gives(monkeypatch):
    rng = np.random.default_rng(7)
    low = (rng.random((1100, 1000, 3)) * 40).astype(np.uint8)  # over a megapixel: the bands run in threads
    out = np.clip(low.astype(np.float32) * 5 + rng.normal(0, 20, low.shape), 0, 255).astype(np.uint8)
    threaded = out.copy()
    monkeypatch.setattr(colour_module, "band_workers", lambda pixels: 2)
    keep_input_colour(low, threaded)
    monkeypatch.setattr(colour_module, "band_workers", lambda pixels: 1)
    alone = out.copy()
    keep_input_colour(low, alone)
    assert np.array_equal(threaded, alone) and not np.array_equal(alone, out)


def test_the_colour_step_writes_into_another_array_rounded_once():
    """An output kept at 16 bits and corrected into an 8-bit array: the same as correcting it in
    place at 16 bits and rounding to 8 bits then, and the 16-bit output is left as it was."""
    rng = np.random.default_rng(3)
    low = (rng.random((40, 50, 3)) * 80).astype(np.uint8)
    out16 = (rng.random((40, 50, 3)) * 65535).astype(np.uint16)
    kept16 = out16.copy()
    keep_input_colour(low, kept16)
    into = np.empty((40, 50, 3), np.uint8)
    before = out16.copy()
    keep_input_colour(low, out16, into=into)
    np.testing.assert_array_equal(out16, before)
    assert np.abs(into.astype(int) - np.rint(kept16 / 257.0)).max() <= 1  # the in-place result rounded once more
    with pytest.raises(ValueError, match="one size"):
        keep_input_colour(low, out16, into=np.empty((40, 49, 3), np.uint8))
