"""save_checkpoint writes only checkpoints that load_checkpoint can rebuild (round-trips in test_models.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lowlight_cli.errors import CheckpointError
from lowlight_cli.models import create_model, load_checkpoint, save_checkpoint


@pytest.mark.parametrize(
    ("name", "overrides"),
    [("crnet-tiny", {"channels": 4}), ("dce-tiny", {"width": 4}), ("semi-llie-tiny", {"width": 8})],
)
def test_saving_without_architecture_and_kwargs_records_the_models_own(tmp_path, name, overrides):
    model = create_model(name, pretrained=False, **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # not the seeded initialisation: the weights themselves must travel
    torch.manual_seed(7)
    before = torch.get_rng_state()
    folder = save_checkpoint(model, tmp_path / "ckpt")
    # the check rebuilds the model; that must not move the caller's random stream (a training run)
    assert torch.equal(torch.get_rng_state(), before)
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == name
    assert all(config["kwargs"][k] == v for k, v in overrides.items())
    loaded = load_checkpoint(folder)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("architecture", "kwargs", "message"),
    [
        ("crnet-tiny", {}, r"does not have this model's tensors \(.*\(4,\) here, \(8,\) rebuilt"),  # forgot the override
        ("crnet-s", None, None),  # a registered name of the family, with the model's own kwargs: fine
        ("crnet-s", {}, "does not have this model's tensors"),
        ("dce-tiny", None, "dce-tiny has no architecture option 'channels'"),  # another family
        ("dce-tiny", {}, "does not have this model's tensors"),
        ("crnet-tiy", None, "unknown architecture 'crnet-tiy'"),
        ("crnet-tiny", {"chanels": 4}, "no architecture option 'chanels'"),
    ],
)
def test_architecture_and_kwargs_that_cannot_rebuild_the_model_are_refused_before_writing(
    tmp_path, architecture, kwargs, message
):
    model = create_model("crnet-tiny", pretrained=False, channels=4)
    folder = tmp_path / "out" / "ckpt"
    if message is None:
        save_checkpoint(model, folder, architecture=architecture, kwargs=kwargs)
        assert load_checkpoint(folder).config["channels"] == 4
        return
    with pytest.raises(CheckpointError, match=message) as excinfo:
        save_checkpoint(model, folder, architecture=architecture, kwargs=kwargs)
    assert excinfo.value.message.startswith("cannot save a checkpoint")
    assert not (tmp_path / "out").exists()  # nothing written, not even the folder
    if architecture == "crnet-tiy":
        assert "crnet-tiny" in (excinfo.value.hint or "")  # did you mean


def test_numpy_scalar_kwargs_are_stored_as_python_numbers(tmp_path):
    model = create_model("crnet-tiny", pretrained=False, channels=4)
    kwargs = {"channels": np.int64(4), "max_gain": np.float32(64.0), "chroma_luma": np.bool_(False)}
    folder = save_checkpoint(model, tmp_path / "ckpt", architecture="crnet-tiny", kwargs=kwargs,
                             provenance={"steps": np.int32(3), "loss": [np.float64(0.25)]})
    text = (folder / "config.json").read_text()
    config = json.loads(text)
    assert config["kwargs"] == {"channels": 4, "max_gain": 64.0, "chroma_luma": False}
    assert type(config["kwargs"]["channels"]) is int and config["provenance"] == {"steps": 3, "loss": [0.25]}
    assert load_checkpoint(folder).config["channels"] == 4


def test_kwargs_config_json_cannot_hold_are_refused_clearly(tmp_path):
    model = create_model("crnet-tiny", pretrained=False)
    with pytest.raises(CheckpointError, match=r"kwargs\['channels'\] is a Tensor"):
        save_checkpoint(model, tmp_path / "ckpt", architecture="crnet-tiny", kwargs={"channels": torch.tensor(8)})
    assert not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(("version", "message"), [(2, "checkpoint format 2, written by a newer lowlight"),
                                                  ("1", "format_version must be a positive integer"),
                                                  (0, "format_version must be a positive integer")])
def test_a_checkpoint_format_this_version_cannot_read_is_refused(tmp_path, version, message):
    folder = tmp_path / "ckpt"
    save_checkpoint(create_model("crnet-tiny", pretrained=False), folder)
    config = json.loads((folder / "config.json").read_text())
    assert config["format_version"] == 1
    load_checkpoint(folder)
    config["format_version"] = version
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message) as caught:
        load_checkpoint(folder)
    assert version != 2 or "upgrade lowlight" in caught.value.hint
