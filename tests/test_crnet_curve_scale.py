"""``--curve-scale N`` on CRNet's curve models: the body runs on an area-downscaled copy of the photo,
its correction and gain maps are upsampled, and the curve is applied at full resolution."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.cli.loading import describe_run
from lowlight_cli.errors import ConfigError, UsageError
from lowlight_cli.export import export_onnx
from lowlight_cli.inference import Enhancer, InferenceConfig, auto_curve_scale, engine
from lowlight_cli.io import read_image
from lowlight_cli.models import MODELS, create_model, load_checkpoint, save_checkpoint

from .photos import dark_photo, save_photo

runner = CliRunner()


def _trained_like(name: str = "crnet-curve-dn") -> torch.nn.Module:
    """Random weights with every zero-initialised part (context, refinement, heads) switched on."""
    torch.manual_seed(0)
    model = create_model(name, pretrained=False)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() == 0:
                p.normal_(std=0.05)
    return model.eval()


def _head_inputs(model: torch.nn.Module, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The raw head output the curve stage receives when ``model`` enhances ``x``."""
    seen = []
    original = model._curve_stage
    model._curve_stage = lambda x_, raw, *rest: seen.append(raw) or original(x_, raw, *rest)  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            model(x, context=context)
    finally:
        del model._curve_stage
    return seen[0]


def test_the_body_sees_the_block_means_and_the_context_the_full_photo():
    model = _trained_like()
    x = torch.rand(1, 3, 64, 96) * 0.3
    context = model.image_context(x)
    full_raw = _head_inputs(model, F.avg_pool2d(x, 2), context)  # scale 1 on the downscaled photo
    model.set_curve_scale(2)
    assert torch.allclose(_head_inputs(model, x, context), full_raw, atol=1e-6)
    with torch.no_grad():  # by default the context is the full-resolution photo's, as tiles get it
        assert torch.allclose(model(x), model(x, context=context), atol=1e-6)
        out = model(x)
    assert out.shape == x.shape and (out >= 0).all() and (out <= 1).all()


def test_scale_one_is_the_model_as_trained_and_the_setting_is_validated():
    model = _trained_like()
    x = torch.rand(1, 3, 64, 64) * 0.3
    with torch.no_grad():
        before = model(x)
        model.set_curve_scale(4)
        assert model.info.input_multiple == 32 and model.config["curve_scale"] == 4
        assert not torch.equal(model(x), before)
        model.set_curve_scale(1)
        assert model.info.input_multiple == 8
        assert torch.equal(model(x), before)
    for bad in (0, -1, 1.5):
        with pytest.raises(ConfigError, match="curve_scale"):
            model.set_curve_scale(bad)
    residual = create_model("crnet-s", pretrained=False)
    assert not residual.supports_curve_scale and model.supports_curve_scale
    with pytest.raises(ConfigError, match="output: curve"):
        residual.set_curve_scale(2)


def test_smooth_photos_barely_change_and_checkpoints_keep_the_scale(tmp_path):
    model = create_model("crnet-curve-dn", pretrained=True).eval()  # the bundled weights: trained maps

    def mean_change(height: int, width: int) -> float:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
        x = torch.stack([0.05 + 0.1 * xx, 0.04 + 0.1 * yy, 0.03 + 0.05 * xx * yy])[None]
        with torch.no_grad():
            full = model.set_curve_scale(1)(x)
            fast = model.set_curve_scale(2)(x)
        return float((full - fast).abs().mean())

    small, large = mean_change(128, 160), mean_change(512, 640)
    # the option is for large photos: the larger the photo, the less the half-size body loses
    assert large < small and large < 2 / 255  # under 2 gray levels on a smooth 512x640 photo (stage 4: 1.45)
    model = _trained_like().set_curve_scale(2)
    save_checkpoint(model, tmp_path / "w", architecture="crnet-curve-dn", kwargs=model.config)
    again = load_checkpoint(tmp_path / "w")
    assert again.curve_scale == 2 and again.info.input_multiple == 16


def test_tiles_and_odd_sizes_work_at_reduced_resolution():
    model = _trained_like().set_curve_scale(2)
    photo = np.random.default_rng(0).random((150, 203, 3), dtype=np.float32) * 0.3
    whole = Enhancer(model, InferenceConfig(device="cpu", tile=0)).enhance(photo)
    tiled = Enhancer(model, InferenceConfig(device="cpu", tile=96, overlap=16)).enhance(photo)
    assert whole.shape == tiled.shape == photo.shape
    assert np.abs(whole - tiled).mean() < 0.02


def test_auto_scale_gives_full_resolution_photos_smaller_default_tiles_on_the_cpu(monkeypatch):
    monkeypatch.setattr(engine, "AUTO_CURVE_MAX_PIXELS", 140 * 140)
    monkeypatch.setattr(engine, "FULL_RESOLUTION_CURVE_TILE", 96)
    photo = np.random.default_rng(2).random((150, 200, 3), dtype=np.float32) * 0.3  # 30,000 px: curves at 1/2
    enhancer = Enhancer(_trained_like(), InferenceConfig(device="cpu", curve_scale="auto"))
    assert enhancer.tile == 2048 and enhancer.full_resolution_tile() == 96 and enhancer.whole_photo_pixels() == 96 * 96
    mid = photo[:100, :190]  # 19,000 px: full resolution and larger than one 96-px tile, so 96-px tiles
    tiled = enhancer.enhance(mid)
    assert enhancer.curve_scale == 1 and enhancer.last_tile == 96 and enhancer.tile == 2048
    same = Enhancer(_trained_like(), InferenceConfig(device="cpu", tile=96, overlap=32)).enhance(mid)
    assert np.array_equal(tiled, same)
    small = enhancer.enhance(photo[:60, :150])  # 9,000 px, wider than a small tile: one tile, as whole
    assert enhancer.curve_scale == 1 and enhancer.last_tile == 0  # it ran whole
    assert np.array_equal(small, Enhancer(_trained_like(), InferenceConfig(device="cpu", tile=0)).enhance(photo[:60, :150]))
    enhancer.enhance(photo)  # reduced resolution: the default tile, larger than the photo: whole
    assert enhancer.curve_scale == 2 and enhancer.last_tile == 0
    # kept as asked: an explicit tile, a fixed curve scale, an overlap the small tile cannot hold
    for config in (InferenceConfig(device="cpu", tile=512, curve_scale="auto"), InferenceConfig(device="cpu"),
                   InferenceConfig(device="cpu", curve_scale="auto", overlap=48)):
        kept = Enhancer(_trained_like(), config)
        assert kept.whole_photo_pixels() == 0
        kept.enhance(mid)
        assert kept.tile == (512 if config.tile else 2048) and kept.last_tile == 0  # mid fits in either tile


def test_auto_scale_keeps_photos_up_to_8_mp_whole_and_halves_larger_ones(monkeypatch):
    assert [auto_curve_scale(h, w) for h, w in ((2000, 2000), (3000, 4000), (4248, 5664), (6000, 8000))] == [1, 2, 2, 4]
    model = _trained_like()
    enhancer = Enhancer(model, InferenceConfig(device="cpu", tile=0, curve_scale="auto"))
    monkeypatch.setattr(engine, "AUTO_CURVE_MAX_PIXELS", 64 * 64)
    photo = np.random.default_rng(1).random((64, 80, 3), dtype=np.float32) * 0.3
    large = enhancer.enhance(photo)
    assert enhancer.curve_scale == 2 and enhancer.info.input_multiple == 16
    assert np.array_equal(large, Enhancer(_trained_like(), InferenceConfig(device="cpu", tile=0, curve_scale=2)).enhance(photo))
    small = enhancer.enhance(photo[:48])
    assert enhancer.curve_scale == 1
    assert np.array_equal(small, Enhancer(_trained_like(), InferenceConfig(device="cpu", tile=0)).enhance(photo[:48]))
    # never finer than the scale the model was built with (its checkpoint's) ...
    coarse = Enhancer(create_model("crnet-curve-dn", pretrained=False, curve_scale=4),
                      InferenceConfig(device="cpu", tile=0, curve_scale="auto"))
    coarse.enhance(photo[:48])
    assert coarse.curve_scale == 4
    # ... whatever another enhancer of the same model set before this one was made
    shared = _trained_like()
    Enhancer(shared, InferenceConfig(device="cpu", tile=0, curve_scale=2)).enhance(photo)
    later = Enhancer(shared, InferenceConfig(device="cpu", tile=0, curve_scale="auto"))
    later.enhance(photo[:48])
    assert later.curve_scale == 1
    with pytest.raises(UsageError, match="curve models"):
        Enhancer(create_model("crnet-s", pretrained=False), InferenceConfig(device="cpu", curve_scale="auto"))
    with pytest.raises(ConfigError, match="curve_scale"):
        InferenceConfig(curve_scale="fast")


def test_enhancers_sharing_one_model_each_run_at_their_own_scale():
    model = _trained_like()
    plain = Enhancer(model, InferenceConfig(device="cpu", tile=0))
    half = Enhancer(model, InferenceConfig(device="cpu", tile=0, curve_scale=2))
    photo = np.random.default_rng(2).random((72, 100, 3), dtype=np.float32) * 0.3
    first = plain.enhance(photo)  # runs at the model's own scale (1) ...
    fast = half.enhance(photo)  # ... this one sets 2 for its photo ...
    assert half.curve_scale == 2 and not np.array_equal(first, fast)
    assert model.curve_scale == 1  # ... and puts the model's own back after it
    assert np.array_equal(plain.enhance(photo), first) and plain.info.input_multiple == 8  # not taken over
    model.set_curve_scale(4)  # a scale the caller sets on the model ...
    assert np.array_equal(half.enhance(photo), fast) and model.curve_scale == 4
    # ... is what an enhancer without a scale of its own runs (72x100 is no multiple of 32: it pads
    # for the scale the model has, instead of failing on the size it cached)
    assert not np.array_equal(plain.enhance(photo), first) and plain.info.input_multiple == 32 and plain.curve_scale == 4


def test_scale_values_are_plain_integers():
    assert create_model("crnet-curve", pretrained=False, curve_scale=np.int64(2)).config["curve_scale"] == 2
    assert type(create_model("crnet-curve", pretrained=False, curve_scale=np.int64(2)).config["curve_scale"]) is int
    for bad in (2.0, True, "2"):
        with pytest.raises(ConfigError, match="curve_scale"):
            create_model("crnet-curve", pretrained=False, curve_scale=bad)


def test_enhance_says_so_and_onnx_export_keeps_the_scale(tmp_path):
    save_photo(tmp_path / "in" / "a.png", dark_photo(70, 90, seed=3))
    auto = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "auto"), "--model", "crnet-curve-dn",
                               "--no-pretrained", "--json", "--curve-scale", "auto"])
    whole = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "full"), "--model", "crnet-curve-dn",
                                "--no-pretrained", "--curve-scale", "1"])
    default = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "default"), "--model",
                                  "crnet-curve-dn", "--no-pretrained", "--json"])
    fast = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "fast"), "--model", "crnet-curve-dn",
                               "--no-pretrained", "--curve-scale", "2", "--json"])
    assert auto.exit_code == 0 and whole.exit_code == 0 and fast.exit_code == 0, fast.output
    assert "curves at reduced resolution above 8 MP" in auto.output
    assert "curves at 1/2 resolution" not in auto.output and "curves at" not in whole.output
    # auto is enhance's default for the photo models (crnet-curve, crnet-curve-dn), not for DCE-Net
    assert default.exit_code == 0 and "curves at reduced resolution above 8 MP" in default.output
    assert "1024 px where the curves run at full resolution above 1.0 MP" in " ".join(default.output.split())
    assert '"curve_scale": 1' in default.stdout
    assert [n for n in MODELS.names() if MODELS.get(n).info.enhance_auto_curve_scale] == ["crnet-curve", "crnet-curve-dn"]
    dce = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "dce"), "--model", "scl-lle",
                              "--no-pretrained"])
    assert dce.exit_code == 0 and "curves at" not in dce.output
    # a checkpoint built at scale 2 says so under auto
    trained_at_2 = create_model("crnet-curve-dn", pretrained=False, curve_scale=2)
    text = describe_run("crnet-curve-dn", trained_at_2, Enhancer(trained_at_2, InferenceConfig(device="cpu", curve_scale="auto")))
    assert "curves at 1/2 resolution, coarser above 8 MP" in text
    assert "curves at 1/2 resolution" in fast.output
    assert '"curve_scale": 2' in fast.stdout and '"curve_scale": 1' in auto.stdout  # per file, in --json
    assert np.array_equal(read_image(tmp_path / "auto" / "a.png").rgb, read_image(tmp_path / "full" / "a.png").rgb)
    bad = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--curve-scale", "half"])
    assert bad.exit_code == 2 and "neither auto nor an integer" in bad.output
    other = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--model", "crnet-tiny",
                                "--no-pretrained", "--curve-scale", "auto"])
    assert other.exit_code == 2 and "(--curve-scale) applies to curve models" in other.output
    digit = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "x"), "--curve-scale", "\u00b2"])
    assert digit.exit_code == 2 and "neither auto nor an integer" in digit.output
    assert read_image(tmp_path / "fast" / "a.png").rgb.shape == read_image(tmp_path / "full" / "a.png").rgb.shape
    model = _trained_like().set_curve_scale(2)
    export_onnx(model, tmp_path / "m.onnx")
    x = torch.rand(1, 3, 64, 96) * 0.3
    with torch.no_grad():
        expected = model(x).numpy()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - expected).max() < 1e-4
    onnx_auto = runner.invoke(app, ["enhance", str(tmp_path / "in"), "-o", str(tmp_path / "y"), "--model",
                                    str(tmp_path / "m.onnx"), "--curve-scale", "auto"])
    assert onnx_auto.exit_code == 2 and "runs its curves at the scale it was exported with" in onnx_auto.output
    assert "lowlight export --model ARCH --curve-scale N" in onnx_auto.output  # the way to another scale
    from lowlight_cli.inference.onnx_backend import OnnxModel

    exported = OnnxModel(tmp_path / "m.onnx")
    assert exported.exported_curve_scale == 2  # recorded in the file's metadata
    text = describe_run(str(tmp_path / "m.onnx"), exported, Enhancer(exported, InferenceConfig(device="cpu")))
    assert "curves at 1/2 resolution as exported" in text
    # evaluate and compare record it with the scores, as they do for the PyTorch model
    pairs = tmp_path / "pairs"
    for kind in ("low", "high"):
        (pairs / kind).mkdir(parents=True)
        shutil.copy(next((tmp_path / "in").glob("a.*")), pairs / kind / "a.png")
    scored = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "m.onnx"), "--data", str(pairs), "--json"])
    assert scored.exit_code == 0, scored.output
    assert json.loads(scored.stdout)["inference"]["curve_scale"] == 2
    compared = runner.invoke(app, ["compare", str(tmp_path / "m.onnx"), "--data", str(pairs), "--json"])
    assert compared.exit_code == 0, compared.output
    assert json.loads(compared.stdout)["rows"][1]["inference"]["curve_scale"] == 2
    enhanced = runner.invoke(app, ["enhance", str(pairs / "low"), "-o", str(tmp_path / "e"), "--model",
                                   str(tmp_path / "m.onnx"), "--json"])
    assert enhanced.exit_code == 0 and json.loads(enhanced.stdout)["files"][0]["curve_scale"] == 2
    export_onnx(create_model("crnet-s", pretrained=False), tmp_path / "s.onnx")
    assert OnnxModel(tmp_path / "s.onnx").exported_curve_scale is None  # not a curve model: nothing said


def test_one_rule_for_scales_and_one_refusal_naming_the_registered_curve_models():
    from lowlight_cli.inference.engine import require_curve_model
    from lowlight_cli.models.registry import curve_model_names

    assert set(curve_model_names()) == {"crnet-curve", "crnet-curve-dn", "scl-lle", "pie", "zero-dce"}
    from lowlight_cli.models import MODELS, list_models

    for name in list_models(include_test=True):  # answered from the registry agrees with a built model
        entry = MODELS.get(name)
        built = create_model(name, pretrained=False)
        assert entry.builder.curve_capable(entry.kwargs) == bool(getattr(built, "supports_curve_scale", False)), name
    with pytest.raises(UsageError, match="crnet-s is not one") as refused:
        require_curve_model(create_model("crnet-s", pretrained=False))
    assert all(name in refused.value.hint for name in curve_model_names())
    require_curve_model(create_model("pie", pretrained=False))  # a curve model passes
    for bad in (2.0, True, "2", 0):  # the same rule in every curve model and in the engine's config
        for make in (lambda s: create_model("pie", pretrained=False).set_curve_scale(s),
                     lambda s: create_model("crnet-curve", pretrained=False).set_curve_scale(s),
                     lambda s: InferenceConfig(curve_scale=s)):
            with pytest.raises(ConfigError, match="curve_scale"):
                make(bad)
    assert InferenceConfig(curve_scale=np.int64(2)).curve_scale == 2


def test_forward_train_at_a_curve_scale_is_the_model_set_to_that_scale():
    model = _trained_like()
    x = torch.rand(2, 3, 64, 96) * 0.3
    with torch.no_grad():
        trained_at_2 = model.forward_train(x, curve_scale=2)
        full = model.forward_train(x)
        model.set_curve_scale(2)
        set_to_2 = model.forward_train(x)
    assert torch.allclose(trained_at_2["output"], set_to_2["output"], atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(trained_at_2["stages"], set_to_2["stages"]))
    assert not torch.allclose(full["output"], set_to_2["output"], atol=1e-4)  # the override took effect
    model.set_curve_scale(1)
    with pytest.raises(ConfigError):
        model.forward_train(x, curve_scale=0)
    with pytest.raises(ConfigError, match="output: curve"):
        create_model("crnet-tiny", pretrained=False).forward_train(x, curve_scale=2)
