"""The library's own edges: what ``Enhancer``, ``Trainer`` and the io helpers accept, and how they
refuse the rest (a researcher's mistakes get the project's errors, not a black image or a
traceback from inside torch)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lowlight_cli.errors import ConfigError, InputError, UsageError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.io import find_images, read_image, replace_rgb, write_image
from lowlight_cli.models import create_model


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer(create_model("crnet-tiny", pretrained=False), InferenceConfig(device="cpu"))


def _photo(height: int = 24, width: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((height, width, 3)) * 0.2).astype(np.float32)


@pytest.mark.parametrize("bad, message", [
    (lambda rgb: (rgb * 255).astype(np.uint8), "uint8 pixels"),
    (lambda rgb: rgb * 255, "outside \\[0, 1\\].*0..255"),
    (lambda rgb: np.where(rgb > 0.1, np.nan, rgb).astype(np.float32), "NaN"),
    (lambda rgb: rgb - 0.5, "outside \\[0, 1\\]"),
    (lambda rgb: rgb[..., :2], "\\(H, W, 3\\)"),
    (lambda rgb: rgb[:0], "empty"),
    (lambda rgb: torch.from_numpy(rgb), "numpy array"),
])
def test_enhance_refuses_what_is_not_float_rgb_in_0_1(enhancer, bad, message):
    with pytest.raises(InputError, match=message) as caught:
        enhancer.enhance(bad(_photo()))
    assert isinstance(caught.value, ValueError)  # callers catching ValueError keep working


def test_enhance_clips_a_small_overshoot_and_takes_read_only_and_float64_arrays(enhancer):
    rgb = _photo()
    expected = enhancer.enhance(rgb)
    overshoot = rgb.copy()
    overshoot[0, 0] = [1.005, -0.004, 0.5]  # bicubic resampling strays this far
    kept = overshoot.copy()
    assert np.array_equal(enhancer.enhance(overshoot), enhancer.enhance(np.clip(overshoot, 0, 1)))
    assert np.array_equal(overshoot, kept)  # the caller's array is not clipped in place
    frozen = rgb.astype(np.float64)
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on read-only memory
        assert np.allclose(enhancer.enhance(frozen), expected, atol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (lambda x: (x * 255).to(torch.uint8), "float tensor"),
    (lambda x: x[:, :1], "\\(1, 3, H, W\\)"),
    (lambda x: torch.cat([x, x]), "\\(1, 3, H, W\\)"),
    (lambda x: x[..., :0], "empty"),
    (lambda x: x * 255, "outside"),
])
def test_enhance_tensor_refuses_what_is_not_one_float_rgb_image(enhancer, bad, message):
    x = torch.from_numpy(_photo()).permute(2, 0, 1)[None]
    with pytest.raises(InputError, match=message):
        enhancer.enhance_tensor(bad(x))


def test_enhance_tensor_takes_float64_as_float32(enhancer):
    x = torch.from_numpy(_photo()).permute(2, 0, 1)[None]
    assert torch.allclose(enhancer.enhance_tensor(x.double()), enhancer.enhance_tensor(x), atol=1e-6)


def test_enhance_pixels_refuses_float_and_empty_pixels(enhancer):
    with pytest.raises(InputError, match="uint8 or uint16"):
        enhancer.enhance_pixels(_photo())
    with pytest.raises(InputError, match="empty"):
        enhancer.enhance_pixels(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(InputError, match="visible"):
        enhancer.enhance_pixels(np.zeros((4, 4, 3), np.uint8), visible=np.ones((3, 4), bool))


def test_an_enhancer_keeps_its_curve_scale_when_another_changes_the_shared_model():
    model = create_model("crnet-curve-dn", pretrained=False)
    rgb = _photo(64, 96)
    first = Enhancer(model, InferenceConfig(device="cpu"))
    before = first.enhance(rgb)
    other = Enhancer(model, InferenceConfig(device="cpu", curve_scale=4))
    other.enhance(rgb)
    assert other.curve_scale == 4 and model.curve_scale == 1  # the model's own scale is put back
    assert np.array_equal(first.enhance(rgb), before)  # so the first enhancer's photos do not change


def test_replace_rgb_refuses_integer_pixels(tmp_path):
    path = tmp_path / "a.png"
    write_image(path, replace_rgb(read_image_from(np.full((4, 4, 3), 30, np.uint8), tmp_path), np.full((4, 4, 3), 0.5, np.float32)))
    image = read_image(path)
    with pytest.raises(ValueError, match="float RGB"):
        replace_rgb(image, image.rgb)
    with pytest.raises(ValueError, match="go up to 128: divide by 255"):  # 0..255 floats were clipped to white
        replace_rgb(image, image.rgb.astype(np.float32))


def read_image_from(pixels: np.ndarray, folder):
    import cv2

    cv2.imwrite(str(folder / "src.png"), pixels)
    return read_image(folder / "src.png")


def test_find_images_takes_one_folder_as_a_path(tmp_path):
    read_image_from(np.zeros((4, 4, 3), np.uint8), tmp_path)
    assert [f.path.name for f in find_images(str(tmp_path))] == ["src.png"]
    assert [f.path.name for f in find_images(tmp_path)] == ["src.png"]


def _tiny_config(**assign):
    from lowlight_cli.training import build_config

    settings = ["data.root=synthetic", "model.name=crnet-tiny", "optim.max_steps=1", "data.batch_size=2",
                "data.patch_size=32", "data.patches_per_image=1", "data.synthetic_count=4", "run.device=cpu"]
    return build_config(assignments=settings + [f"{k}={v}" for k, v in assign.items()])


def test_a_trainer_refuses_a_folder_holding_a_run_unless_resuming(tmp_path):
    from lowlight_cli.training import Trainer

    run = tmp_path / "run"
    Trainer(_tiny_config(), run).fit()
    log = (run / "log.jsonl").read_text()
    with pytest.raises(UsageError, match="already holds a run"):
        Trainer(_tiny_config(), run)
    assert (run / "log.jsonl").read_text() == log  # nothing written over
    Trainer(_tiny_config(**{"optim.max_steps": 2}), run, resume=True).fit()


@pytest.mark.parametrize("section, key, value, message", [
    ("data", "patch_size", "32", "data.patch_size must be int"),
    ("optim", "lr", -1.0, "optim.lr must be > 0"),
    ("run", "channels_last", 1, "run.channels_last must be bool"),
    ("data", "batch_size", True, "data.batch_size must be int"),
])
def test_a_trainer_validates_a_config_built_by_hand(tmp_path, section, key, value, message):
    from lowlight_cli.training import Trainer

    cfg = _tiny_config()
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(ConfigError, match=message):
        Trainer(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("section, key, value, message", [
    ("data", "patch_size", 34, "data.patch_size 34 must be a multiple of 4"),  # it crashed inside the model
    ("run", "device", "gpu", "run.device must be auto, cpu, cuda"),
    ("run", "precision", "int8", "run.precision must be one of"),
])
def test_a_hand_built_config_is_checked_before_the_run_starts(tmp_path, section, key, value, message):
    cfg = _tiny_config(**{"model.name": "crnet-s"})
    setattr(getattr(cfg, section), key, value)
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_a_trainer_given_a_dict_names_a_call_that_works():
    from lowlight_cli.training import Trainer, build_config

    with pytest.raises(TypeError, match=r"build_config\(yaml_path=") as said:
        Trainer({"model": {"name": "crnet-tiny"}}, None)
    assert "build_config(yaml_path=" in str(said.value)
    build_config(yaml_path=None, assignments=["model.name=crnet-s"])  # the call it names


@pytest.mark.parametrize("settings", [{"tile": "512"}, {"tile": 512.0}, {"batch_size": 2.5}, {"overlap": True},
                                      {"batch_size": None}, {"compile": "no"}])
def test_inference_config_refuses_values_of_the_wrong_type(settings):
    with pytest.raises(ConfigError, match="must be"):
        InferenceConfig(device="cpu", **settings)
    assert InferenceConfig(device="cpu", tile=np.int64(256)).tile == 256


def test_a_hand_built_config_takes_numpy_numbers_and_paths_as_plain_values(tmp_path):
    from lowlight_cli.training import Trainer

    cfg = _tiny_config()
    cfg.optim.epochs, cfg.run.seed, cfg.optim.lr = np.int64(3), np.int32(1), np.float32(1e-4)
    cfg.run.compile, cfg.run.out = np.bool_(False), tmp_path / "out"
    Trainer(cfg, tmp_path / "run")
    assert (type(cfg.optim.epochs), type(cfg.run.seed), type(cfg.optim.lr), type(cfg.run.compile), type(cfg.run.out)) == (
        int, int, float, bool, str)


def test_a_trainer_refuses_a_folder_holding_a_state_caught_between_renames(tmp_path):
    from lowlight_cli.training import Trainer

    run = tmp_path / "run"
    Trainer(_tiny_config(), run).fit()
    (run / "last").rename(run / "last.old")  # a crash between the two renames of a save
    with pytest.raises(UsageError, match="already holds a run"):
        Trainer(_tiny_config(), run)
    assert (run / "last.old").is_dir()


# --- what a Python user passes by mistake: said at the edge, not from deep inside ---------------


@pytest.mark.parametrize("model, config, message", [
    ("crnet-curve-dn", None, r"create_model\('crnet-curve-dn'\) makes one"),
    (None, None, "Enhancer takes a model, got NoneType"),
    ("model", {"device": "cpu"}, r"InferenceConfig, got dict: InferenceConfig\(\*\*settings\)"),
])
def test_enhancer_says_what_it_takes(model, config, message):
    if model == "model":
        model = create_model("gamma")
    with pytest.raises(TypeError, match=message):
        Enhancer(model, config)


def test_trainer_takes_a_train_config_not_a_dict(tmp_path):
    from lowlight_cli.training import Trainer

    with pytest.raises(TypeError, match="build_config"):
        Trainer({"model": {"name": "crnet-tiny"}}, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_resume_with_nothing_to_resume_writes_nothing(tmp_path):
    from lowlight_cli.errors import CheckpointError
    from lowlight_cli.training import Trainer

    with pytest.raises(CheckpointError, match="no resumable state"):
        Trainer(_tiny_config(), tmp_path / "run", resume=True)
    assert not (tmp_path / "run").exists()  # it left a folder with data.json and split.json


def test_io_helpers_say_what_they_take(tmp_path):
    from lowlight_cli.io import to_float

    image = read_image_from(np.zeros((4, 4, 3), np.uint8), tmp_path)
    with pytest.raises(TypeError, match="takes an ImageData, got ndarray"):
        write_image(tmp_path / "out.png", image.rgb)
    assert not (tmp_path / "out.png").exists()
    with pytest.raises(TypeError, match=r"file path, got ndarray \(pixels are already an image"):
        read_image(image.rgb)
    with pytest.raises(TypeError, match="file path, got int"):
        read_image(5)
    with pytest.raises(ValueError, match="numpy array of uint8 or uint16 pixels, got list"):
        to_float([[1, 2, 3]])


def test_save_checkpoint_refuses_a_file_for_its_folder(tmp_path):
    from lowlight_cli.errors import CheckpointError
    from lowlight_cli.models import save_checkpoint

    photo = tmp_path / "photo.png"
    photo.write_bytes(b"not mine")
    with pytest.raises(CheckpointError, match="it is a file"):
        save_checkpoint(create_model("crnet-tiny", pretrained=False), photo)
    assert photo.read_bytes() == b"not mine"



@pytest.mark.parametrize("prediction, message", [
    (np.zeros((16, 16, 3), np.uint8), "uint8 pixels"),  # would be read as floats in [0, 1]: 0 dB, no error
    (np.zeros((16, 16), np.float32), "shape \\(16, 16\\)"),
    (torch.zeros(3, 16, 16), "Tensor"),
])
def test_the_scorer_refuses_what_it_would_score_wrong(prediction, message):
    from lowlight_cli.evaluation import Protocol, Scorer

    reference = np.ones((16, 16, 3), np.float32) * 0.5
    with pytest.raises(InputError, match=message):
        Scorer(Protocol(metrics=("psnr",))).score("x", prediction, reference)


@pytest.mark.parametrize("settings, message", [
    ({"gt_mean": "no"}, "gt_mean is True or False"),  # a non-empty string switched GT-mean on
    ({"metrics": "psnr"}, "got the string 'psnr'"),
    ({"crop_border": 2.5}, "crop_border is a whole number"),
])
def test_a_protocol_refuses_values_of_the_wrong_type(settings, message):
    from lowlight_cli.evaluation import Protocol

    with pytest.raises(UsageError, match=message):
        Protocol(**settings)
    assert hash(Protocol(metrics=["psnr", "ssim"])) == hash(Protocol())  # a list is kept as a tuple


def test_a_visible_mask_is_bool_and_tiled_outputs_stay_in_0_1(enhancer):
    pixels = (_photo(40, 48) * 255).astype(np.uint8)
    alpha = np.full((40, 48), 255, np.uint8)
    alpha[:, :20] = 0
    with pytest.raises(InputError, match="visible is a bool mask, got uint8"):
        enhancer.enhance_pixels(pixels, visible=alpha)
    enhancer.enhance_pixels(pixels, visible=alpha > 0)
    tiled = Enhancer(create_model("clahe"), InferenceConfig(device="cpu", tile=64, overlap=8))
    bright = np.random.default_rng(0).random((300, 300, 3)).astype(np.float32)
    out = tiled.enhance(bright)  # blended tile edges reached 1.0000001
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_save_checkpoint_refuses_weights_load_checkpoint_would_refuse(tmp_path):
    from lowlight_cli.errors import CheckpointError
    from lowlight_cli.models import save_checkpoint

    model = create_model("crnet-tiny", pretrained=False)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    with pytest.raises(CheckpointError, match="hold NaN or inf"):
        save_checkpoint(model, tmp_path / "nan", architecture="crnet-tiny", kwargs=model.config)
    assert not (tmp_path / "nan").exists()
