"""Broken weights never give silent black images: refused at load, or the file fails and nothing is written."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lowlight_cli.cli.app import app
from lowlight_cli.errors import CheckpointError, ModelOutputError
from lowlight_cli.inference import Enhancer, InferenceConfig
from lowlight_cli.models import create_model, load_checkpoint, save_checkpoint
from lowlight_cli.models.base import EnhancementModel, ModelInfo

from .photos import dark_photo, save_photo

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("no_hub")


@pytest.fixture()
def diverged(tmp_path) -> Path:
    """The last/ of a diverged run: NaN weights, and a config.json without sha256 (nothing to verify)."""
    model = create_model("crnet-tiny", pretrained=False)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(k for k, v in state.items() if v.is_floating_point())
    state[first][...] = float("nan")
    folder = save_checkpoint(model, tmp_path / "run" / "last", architecture="crnet-tiny", kwargs=model.config, state_dict=state,
                             allow_non_finite=True)  # as a training run saves its last state
    config = json.loads((folder / "config.json").read_text())
    del config["sha256"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_non_finite_weights_are_refused_at_load(diverged, tmp_path):
    with pytest.raises(CheckpointError, match="non-finite"):
        load_checkpoint(diverged)
    photo = save_photo(tmp_path / "in" / "a.png", dark_photo(48, 64))
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(photo), "-o", str(out), "-m", "crnet-tiny", "--weights", str(diverged)])
    assert result.exit_code == 1, result.output
    assert "non-finite" in result.output and "best/" in result.output and "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


class Broken(EnhancementModel):
    """A stand-in for broken weights: NaN or one flat colour whenever the input is not flat."""

    info = ModelInfo(name="broken", family="test", description="broken weights", default_tile=0, needs_weights=False)

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.amax() == x.amin():
            return x
        return torch.full_like(x, float("nan")) if self.kind == "nan" else torch.full_like(x, 0.5)


@pytest.mark.parametrize("kind", ["nan", "flat"])
def test_unusable_output_fails_that_file_and_writes_nothing(kind, tmp_path, monkeypatch):
    import lowlight_cli.cli.enhance as cli_enhance

    monkeypatch.setattr(cli_enhance, "load_model", lambda *args: Broken(kind))
    folder = tmp_path / "in"
    save_photo(folder / "photo.png", dark_photo(48, 64))
    save_photo(folder / "flat.png", np.full((32, 32, 3), 0.2))  # a flat input may come out flat
    out = tmp_path / "out"
    result = runner.invoke(app, ["enhance", str(folder), "-o", str(out), "--device", "cpu", "--precision", "fp32"])
    assert result.exit_code == 3, result.output
    assert sorted(p.name for p in out.iterdir()) == ["flat.png"]  # no black or grey photo.png
    message = "not finite" if kind == "nan" else "one flat colour"
    assert result.output.count(message) == 1 and "photo.png" in result.output


def test_flat_check_leaves_real_enhancers_alone():
    rgb = dark_photo(64, 80)
    rgb[:, :40] = 0.2  # a flat half: its tiles are flat in and out
    for name in ("gamma", "clahe"):
        enhancer = Enhancer(create_model(name), InferenceConfig(device="cpu", tile=64, overlap=16))
        assert np.isfinite(enhancer.enhance(rgb)).all()
    with pytest.raises(ModelOutputError, match="flat"):
        Enhancer(Broken("flat"), InferenceConfig(device="cpu", tile=0)).enhance(rgb)


def test_a_one_coloured_input_may_come_out_one_coloured():
    """A single pixel or a solid colour differs between its channels but not in space: a flat
    output is no sign of broken weights there (it was refused as one)."""
    from lowlight_cli.inference.engine import check_output

    for pixel in ((4, 33, 2), (200, 10, 10)):
        solid = torch.tensor(pixel, dtype=torch.float32).div(255).view(1, 3, 1, 1)
        for size in ((1, 1), (16, 16)):
            x = solid.expand(1, 3, *size).contiguous()
            check_output(x, torch.full_like(x, 0.5))  # flat in, flat out: accepted
    varied = torch.rand(1, 3, 16, 16)
    with pytest.raises(ModelOutputError, match="flat"):
        check_output(varied, torch.full_like(varied, 0.5))


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    """Both files are written before either is renamed: a failure writing config.json (a full disk)
    must not leave new weights beside the old config.json (whose sha256 would no longer match)."""
    from lowlight_cli.models import checkpoint

    old = create_model("crnet-tiny", pretrained=False)
    folder = save_checkpoint(old, tmp_path / "ckpt", architecture="crnet-tiny", kwargs=old.config)
    before = {name: (folder / name).read_bytes() for name in ("model.safetensors", "config.json")}
    new = create_model("crnet-tiny", pretrained=False)
    with torch.no_grad():
        for p in new.parameters():
            p.add_(1.0)

    def full_disk(path, data):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(checkpoint, "_stage_bytes", full_disk)
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(new, folder, architecture="crnet-tiny", kwargs=new.config)
    assert {name: (folder / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]  # no temporaries left
    monkeypatch.undo()
    load_checkpoint(folder)  # still the old, verified pair
    save_checkpoint(new, folder, architecture="crnet-tiny", kwargs=new.config)
    reloaded = load_checkpoint(folder)
    assert all(torch.equal(a, b) for a, b in zip(reloaded.state_dict().values(), new.state_dict().values()))


def test_checkpoint_files_get_the_usual_permissions_not_the_temporary_files_private_ones(tmp_path):
    import stat

    from lowlight_cli.permissions import FILE_MODE

    model = create_model("crnet-tiny", pretrained=False)
    folder = save_checkpoint(model, tmp_path / "ckpt", architecture="crnet-tiny", kwargs=model.config)
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == FILE_MODE  # 0644 under the usual umask, not 0600
