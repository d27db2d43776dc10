"""``--blacks keep``: a toe after the model lowers the blacks it lifted to a photo's, with grain scaled
with its surroundings (lowlight_cli.inference.blacks), from the library, ``enhance`` and ``evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.errors import ConfigError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.inference import blacks as blacks_module
from lowlight_cli.inference.blacks import REFERENCE_BLACK, base_step, keep_blacks, luma_base, plan_toe
from lowlight_cli.inference.colour import LUMA
from lowlight_cli.models import create_model

from .enhance_runs import enhance_each_mode
from .photos import dark_photo, save_photo

runner = CliRunner()


def _lifted(height: int = 120, width: int = 160, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A dark photo (a black half with a few levels of noise, a mid-grey half, a lamp) and what a
    model that lifts blacks makes of it: ``0.2 + 2.5 x`` with noise, float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    low = np.zeros((height, width, 3), np.float32)
    low[:, : width // 2] = 0.01
    low[:, width // 2 :] = (0.12, 0.10, 0.08)
    low[10:20, 10:20] = 0.9  # a lamp in the dark half
    low = np.clip(low + rng.normal(0, 0.004, low.shape).astype(np.float32), 0, 1)
    out = np.clip(0.2 + 2.5 * low + rng.normal(0, 0.02, low.shape).astype(np.float32), 0, 1)
    return low, out


def _black(rgb: np.ndarray) -> float:
    return float(np.percentile(rgb.astype(np.float64) @ LUMA / (255.0 if rgb.dtype == np.uint8 else 1.0), 1))


def test_the_toe_brings_a_lifted_black_down_and_leaves_the_rest():
    low, out = _lifted()
    toned = out.copy()
    toe = keep_blacks(low, toned)
    assert toe is not None and 0 < toe.strength <= blacks_module.MAX_TOE
    # the black moves towards a photo's; the grain around it keeps it a little above (its base is above it)
    assert _black(out) > 0.19 and REFERENCE_BLACK - 0.01 < _black(toned) < _black(out) - 0.05
    assert np.all(toned >= low - 1e-6)  # never below the input
    assert np.all(toned <= out + 1e-6)  # it only lowers
    bright = (out @ LUMA) >= toe.pivot
    np.testing.assert_allclose(toned[bright], out[bright], atol=1e-6)  # above the pivot: as the model left it
    lamp = toned[12:18, 12:18]
    np.testing.assert_allclose(lamp, out[12:18, 12:18], atol=1e-6)  # a lamp in the dark keeps its own level
    dark = np.s_[40:, 5:70]  # the gain follows the base: the grain is scaled, not steepened
    assert (toned[dark] @ LUMA).std() <= (out[dark] @ LUMA).std()
    ratio = toned[dark] / np.maximum(out[dark], 1e-6)  # one gain per pixel: hue kept
    mask = (toned[dark] > low[dark] + 1e-4).all(axis=-1)
    assert np.ptp(ratio[mask], axis=-1).max() < 1e-4


def test_nothing_happens_where_no_toe_is_needed():
    low, out = _lifted()
    passed = low.copy()  # a photo the model passed unchanged
    assert keep_blacks(low, passed) is None and np.array_equal(passed, low)
    deep = np.clip(out - 0.2, 0, 1)  # blacks already at or below a photo's
    kept = deep.copy()
    assert keep_blacks(low, kept) is None and np.array_equal(kept, deep)
    with pytest.raises(ValueError, match="one size"):
        keep_blacks(low[:10], out)


def test_bands_give_the_whole_image_step_on_every_dtype(monkeypatch):
    low, out = _lifted(300, 130, seed=2)
    toe = plan_toe(low, out)
    whole = np.maximum(out * toe.gain(luma_base(out @ LUMA, toe.radius))[..., None], low)
    monkeypatch.setattr(blacks_module, "BAND_ROWS", 16)  # many bands, each shorter than the base's reach
    banded = out.copy()
    keep_blacks(low, banded)
    np.testing.assert_allclose(banded, whole, atol=2e-6)
    source = np.rint(out * 65535).astype(np.uint16)
    into = np.empty(source.shape, np.uint8)  # written into another array at its own depth, rounded once
    keep_blacks(np.rint(low * 255).astype(np.uint8), source, into=into)
    assert np.array_equal(source, np.rint(out * 65535).astype(np.uint16))  # the source left as it was
    assert np.abs(into / 255.0 - whole).max() < 1 / 255
    passed = np.empty_like(into)
    assert keep_blacks(low, low.copy(), into=passed) is None and np.array_equal(passed, np.rint(low * 255))
    as_uint16 = np.rint(out * 65535).astype(np.uint16)
    keep_blacks(np.rint(low * 255).astype(np.uint8), as_uint16)  # dtypes may differ
    assert np.abs(as_uint16 / 65535.0 - whole).max() < 2 / 255


def test_a_large_photos_base_runs_on_a_coarse_grid_and_bands_still_give_the_whole_step(monkeypatch):
    """From a radius of 12 px (a short side of about 1150 px, or a grid of over 2 MP) the base's guided filter runs on block
    means and is interpolated back: close to the exact filter, and banded = whole to float rounding,
    with bands that cut blocks."""
    assert [base_step(h, w) for h, w in ((400, 600), (1100, 1900), (1225, 1633), (3000, 4000), (4243, 5657))] == [1, 1, 2, 4, 5]
    assert base_step(1100, 20000) == 4  # a long panorama: its grid held to about 2 MP
    low, out = _lifted(1250, 1330, seed=4)
    toe = plan_toe(low, out)
    assert toe is not None and (toe.radius, toe.step) == (12, 2)
    luma = out @ LUMA
    fast, exact = luma_base(luma, toe.radius, step=toe.step), luma_base(luma, toe.radius)
    assert not np.array_equal(fast, exact) and np.abs(fast - exact).mean() < 2e-3
    assert np.abs(fast - exact).max() < 0.05  # at the lamp's edge
    np.testing.assert_array_equal(luma_base(luma, 4, step=1), luma_base(luma, 4))
    whole = np.maximum(out * toe.gain(fast)[..., None], low)
    monkeypatch.setattr(blacks_module, "BAND_ROWS", 37)  # bands of an odd height: they cut the 2x2 blocks
    banded = out.copy()
    assert keep_blacks(low, banded) == toe
    np.testing.assert_allclose(banded, whole, atol=2e-6)


def test_bands_toned_side_by_side_give_what_one_thread_gives(monkeypatch):
    low, out = _lifted(1250, 1330, seed=6)
    monkeypatch.setattr(blacks_module, "BAND_ROWS", 100)
    monkeypatch.setattr(blacks_module, "band_workers", lambda pixels: 2)
    threaded = out.copy()
    toe = keep_blacks(low, threaded)
    monkeypatch.setattr(blacks_module, "band_workers", lambda pixels: 1)
    alone = out.copy()
    assert keep_blacks(low, alone) == toe
    assert np.array_equal(threaded, alone) and not np.array_equal(alone, out)


def test_enhancer_keeps_blacks_only_when_asked_on_both_paths_and_tiles():
    low = np.rint(dark_photo(96, 128, seed=7) * 255).astype(np.uint8)
    model = create_model("crnet-curve-dn", pretrained=True)

    def run(blacks: str, tile: int = 0, colour: str = "model") -> np.ndarray:
        return Enhancer(model, InferenceConfig(device="cpu", precision="fp32", tile=tile, blacks=blacks,
                                               colour=colour)).enhance_pixels(low)

    plain, kept = run("model"), run("keep")
    assert _black(kept) < _black(plain) - 0.02
    assert np.all(kept.astype(int) >= low.astype(int) - 1)  # never darker than the input
    tiled = run("model", tile=64)
    keep_blacks(low, tiled)  # the step runs on the whole output, after the tiles are put together
    tiled_kept = run("keep", tile=64)
    assert np.abs(tiled.astype(int) - tiled_kept).max() <= 1  # the enhancer rounds once, this twice
    float_path = np.rint(Enhancer(model, InferenceConfig(device="cpu", precision="fp32", blacks="keep")).enhance(
        low.astype(np.float32) / 255) * 255)
    assert np.abs(float_path - kept).max() <= 1 and (float_path != kept).mean() < 0.005
    both = run("keep", colour="input")
    assert _black(both) < _black(run("model", colour="input")) - 0.02
    grey_photo = np.repeat(low[..., 1:2], 3, axis=2)
    grey = Enhancer(model, InferenceConfig(device="cpu", blacks="keep")).enhance_pixels(grey_photo, gray=True)
    assert np.array_equal(grey[..., 0], grey[..., 2])  # a grey photo stays grey
    with pytest.raises(ConfigError, match="blacks"):
        InferenceConfig(blacks="deep")


def test_enhance_keeps_blacks_by_default_with_the_photo_model_only(tmp_path):
    from lowlight_cli.models import MODELS

    outputs = enhance_each_mode(tmp_path, "blacks", ("keep", "model"))
    assert outputs["default"][1] == "keep" and np.array_equal(outputs["default"][0], outputs["keep"][0])
    assert outputs["model"][1] == "model" and _black(outputs["model"][0]) > _black(outputs["keep"][0])
    assert outputs["crnet-s"][1] == "model"  # the others keep the model's blacks unless told
    assert {n for n in MODELS.names() if MODELS.get(n).info.enhance_blacks == "keep"} == {"crnet-curve-dn"}
    bad = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "bad"), "--blacks", "deep"])
    assert bad.exit_code == 2 and not (tmp_path / "bad").exists()


def test_evaluate_and_compare_take_blacks(tmp_path):
    photo = dark_photo(64, 64, seed=4)
    save_photo(tmp_path / "data" / "low" / "b.png", photo)
    save_photo(tmp_path / "data" / "high" / "b.png", photo)
    scores = {}
    for blacks in ("model", "keep"):
        result = runner.invoke(app, ["evaluate", "--model", "crnet-curve-dn", "--data", str(tmp_path / "data"),
                                     "--metrics", "psnr", "--blacks", blacks, "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout[result.stdout.index("{"):])
        assert report["inference"]["blacks"] == blacks
        scores[blacks] = report["summary"]["psnr"]["mean"]
    assert scores["model"] != pytest.approx(scores["keep"], abs=0.01)
    refused = runner.invoke(app, ["evaluate", "--pred", str(tmp_path / "data" / "low"), "--ref", str(tmp_path / "data" / "high"),
                                  "--metrics", "psnr", "--blacks", "keep"])
    assert refused.exit_code == 2 and "--blacks applies" in refused.output
    compared = runner.invoke(app, ["compare", "crnet-curve-dn", "--data", str(tmp_path / "data"), "--metrics", "psnr",
                                   "--blacks", "keep", "--json"])
    assert compared.exit_code == 0, compared.output
    report = json.loads(compared.stdout[compared.stdout.index("{"):])
    assert [row["inference"]["blacks"] for row in report["rows"] if row["inference"]] == ["keep"]
